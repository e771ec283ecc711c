"""Tests for language.policies: loading policy files and the Library that selects versions."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.cli.main import main as cli_main
from evaluator.compile.compiler import compile_policy
from evaluator.errors import PolicyError, PolicyNotFoundError, SchemaError
from evaluator.language import policies
from evaluator.language.model import Lifecycle
from evaluator.language.policies import Library, PolicyRef, load_policy

HERE = Path(__file__).parent
SHIPPED = Library()

TEMPLATE = """\
id: {id}
version: "{version}"
title: {id} {version}
status: {status}
effective: {effective}
procedures: [{{procedure: lumbar_fusion}}]
references: [{{id: 1, citation: c}}]
sections:
  - id: s
    title: S
    clauses:
      - id: X-ONE
        title: never smoked
        requires: {{fact: nicotine, field: status, equals: never}}
        cites: [1]
        recommendation: r
"""


def write(
    root: Path,
    folder: str,
    stem: str,
    *,
    policy_id: str | None = None,
    version: str | None = None,
    status: str = "active",
    start: str = "2025-01-01",
    until: str | None = None,
) -> Path:
    effective = f'{{from: "{start}"' + (f', until: "{until}"' if until else "") + "}"
    path = root / folder / f"{stem}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = TEMPLATE.format(
        id=policy_id or folder, version=version or stem, status=status, effective=effective
    )
    path.write_text(text)
    return path


@pytest.fixture
def library(tmp_path: Path) -> Library:
    root = tmp_path / "policies"
    write(root, "alpha", "2023.1", status="retired", start="2023-01-01", until="2023-12-31")
    write(root, "alpha", "2024.1", start="2024-01-01", until="2024-12-31")
    write(root, "alpha", "2025.1", start="2025-01-01")
    write(root, "alpha", "2025.2", status="draft", start="2025-06-01")
    write(root, "beta", "1", start="2025-01-01")
    return Library(root)


def not_found(library: Library, ref: str, on: date | None = None) -> PolicyNotFoundError:
    with pytest.raises(PolicyNotFoundError) as caught:
        library.get(ref, on)
    return caught.value


# --- selecting a version ------------------------------------------------------------------------


def test_unknown_policy_lists_the_known_ones(library):
    error = not_found(library, "gamma")
    assert error.code == "unknown_policy"
    assert "`gamma`" in str(error)
    assert "`alpha`, `beta`" in str(error)


def test_unknown_policy_in_an_empty_library(tmp_path):
    error = not_found(Library(tmp_path / "nothing-here"), "alpha")
    assert error.code == "unknown_policy"
    assert "none" in str(error)


def test_unknown_version_lists_the_versions(library):
    error = not_found(library, "alpha@2026.1")
    assert error.code == "unknown_version"
    assert "`2023.1`, `2024.1`, `2025.1`, `2025.2`" in str(error)


@pytest.mark.parametrize(
    ("on", "version"),
    [
        (date(2024, 1, 1), "2024.1"),
        (date(2024, 12, 31), "2024.1"),
        (date(2025, 1, 1), "2025.1"),
        (date(2025, 7, 1), "2025.1"),
        (None, "2025.1"),
    ],
    ids=["first-day", "last-day", "next-version", "draft-not-selected", "no-date-newest-active"],
)
def test_version_in_force_on_a_date(library, on, version):
    assert library.get("alpha", on).version == version


def test_a_retired_version_stays_in_force_inside_its_window(library):
    # A 2023 case evaluated today uses the version in force in 2023, retired or not.
    assert library.get("alpha", date(2023, 6, 1)).version == "2023.1"


def test_before_the_first_window_nothing_is_in_force(library):
    error = not_found(library, "alpha", date(2022, 6, 1))
    assert error.code == "no_version_in_force"
    assert "2022-06-01" in str(error)


def test_before_any_version_nothing_is_in_force(library):
    assert not_found(library, "beta", date(2024, 12, 31)).code == "no_version_in_force"


@pytest.mark.parametrize(
    ("ref", "status"),
    [("alpha@2025.2", Lifecycle.DRAFT), ("alpha@2023.1", Lifecycle.RETIRED)],
    ids=["draft", "retired"],
)
def test_a_named_version_is_returned_whatever_its_status(library, ref, status):
    assert library.get(ref).status is status


def test_versions_sort_numerically(tmp_path):
    root = tmp_path / "policies"
    for stem in ("2025.9", "2025.10", "2025.2"):
        write(root, "alpha", stem, status="draft")
    write(root, "alpha", "2024.1")
    library = Library(root)
    assert [p.stem for p in library.paths()] == ["2024.1", "2025.2", "2025.9", "2025.10"]


# --- overlapping windows are an error wherever the library is loaded (issue 7) -----------------


@pytest.fixture
def tie(tmp_path: Path) -> Path:
    # 2025.1 and 2025.01 sort the same: which one applied depended on directory order.
    root = tmp_path / "policies"
    write(root, "alpha", "2025.1")
    write(root, "alpha", "2025.01")
    return root


def test_overlapping_versions_are_an_error_when_selecting(tie):
    with pytest.raises(PolicyError) as caught:
        Library(tie).get("alpha", date(2025, 6, 1))
    assert caught.value.code == "overlapping_versions"
    assert "`alpha@2025.1`" in str(caught.value)
    assert "`alpha@2025.01`" in str(caught.value)


def test_overlapping_versions_are_an_error_when_listing(tie):
    with pytest.raises(PolicyError):
        Library(tie).all()


def test_overlapping_versions_are_an_error_for_validate(tie):

    results = api.validate_paths([tie / "alpha"])
    assert [r.error.code if r.error else None for r in results] == [
        "overlapping_versions",
        "overlapping_versions",
    ]


def test_a_retired_overlapping_version_is_an_error_too(tmp_path):
    root = tmp_path / "policies"
    write(root, "alpha", "2024.1", status="retired", start="2024-01-01")
    write(root, "alpha", "2025.1", start="2025-01-01")
    with pytest.raises(PolicyError):
        Library(root).get("alpha", date(2025, 6, 1))


def test_a_draft_never_overlaps_and_is_used_only_when_named(tmp_path):
    root = tmp_path / "policies"
    write(root, "alpha", "2025.1")
    write(root, "alpha", "2026.1", status="draft", start="2025-01-01")
    library = Library(root)
    assert library.get("alpha", date(2025, 6, 1)).version == "2025.1"
    assert library.get("alpha").version == "2025.1"
    assert library.get("alpha@2026.1").status is Lifecycle.DRAFT


def test_listing(library):
    assert library.ids() == ["alpha", "beta"]
    assert [p.ref for p in library.all()] == [
        "alpha@2023.1",
        "alpha@2024.1",
        "alpha@2025.1",
        "alpha@2025.2",
        "beta@1",
    ]


def test_policies_are_loaded_once(library):
    assert library.get("alpha@2025.1") is library.get("alpha", date(2025, 2, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("alpha", PolicyRef("alpha")), ("alpha@2025.1", PolicyRef("alpha", "2025.1"))],
    ids=["id", "id-and-version"],
)
def test_policy_ref(text, expected):
    assert PolicyRef.parse(text) == expected
    assert str(expected) == text


# --- a file in the wrong place ------------------------------------------------------------------


def test_file_name_and_version_mismatch(tmp_path):
    path = write(tmp_path / "policies", "alpha", "2025.3", version="2025.4")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    (problem,) = caught.value.problems
    assert problem.code == "version_mismatch"
    assert (problem.location.file, problem.location.line) == (str(path), 2)
    assert "`2025.4`" in problem.message
    assert "`2025.3.yaml`" in problem.message


def test_folder_and_id_mismatch(tmp_path):
    path = write(tmp_path / "policies", "alpha", "1", policy_id="beta")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    (problem,) = caught.value.problems
    assert problem.code == "id_mismatch"
    assert problem.location.line == 1


def test_both_mismatches_are_reported_at_once(tmp_path):
    path = write(tmp_path / "policies", "alpha", "1", policy_id="beta", version="2")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert [p.code for p in caught.value.problems] == ["version_mismatch", "id_mismatch"]


def test_a_mismatched_file_breaks_selection_of_its_policy(tmp_path):
    root = tmp_path / "policies"
    write(root, "alpha", "1")
    write(root, "alpha", "2", version="3")
    with pytest.raises(PolicyError, match="does not match"):
        Library(root).get("alpha")


# --- the shipped policies -----------------------------------------------------------------------


@pytest.mark.parametrize("path", list(SHIPPED.paths()), ids=lambda p: f"{p.parent.name}@{p.stem}")
def test_every_shipped_policy_loads_and_compiles(path):
    policy = load_policy(path)
    assert (policy.id, policy.version) == (path.parent.name, path.stem)
    program = compile_policy(policy)
    assert set(program.clauses) == {c.id for c in policy.clauses}


def test_policies_are_shipped():
    assert "lumbar-fusion" in SHIPPED.ids()


@pytest.mark.parametrize("policy_id", SHIPPED.ids(), ids=str)
def test_every_shipped_policy_has_an_active_version(policy_id):
    policy = SHIPPED.get(policy_id)
    assert policy.status is Lifecycle.ACTIVE
    assert policy.in_force(policy.effective_from)


def test_no_policy_or_clause_id_appears_in_the_evaluator() -> None:
    # The engine is general: adding a policy needs no code (issue: a policy library).
    root = Path(__file__).parent.parent
    names = set()
    for policy in Library(root / "policies").all():
        names.add(policy.id)
        names.update(c.id for c in policy.clauses)
    sources = {p: p.read_text(encoding="utf-8") for p in (root / "evaluator").rglob("*.py")}
    found = sorted(
        (str(p.relative_to(root)), n) for p, t in sources.items() for n in names if n in t
    )
    assert found == []


# --- only the version in force is built (cold start, issue 10) -----------------------------------


def _builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on building policy models: the list of files built, as `<folder>@<stem>`."""
    built: list[str] = []
    original = policies.build_policy

    def spy(document, plan=None):
        path = Path(document.path)
        built.append(f"{path.parent.name}@{path.stem}")
        return original(document, plan)

    monkeypatch.setattr(policies, "build_policy", spy)
    return built


def test_selecting_by_date_builds_only_the_version_in_force(library, monkeypatch):
    built = _builds(monkeypatch)
    assert library.get("alpha", date(2024, 6, 1)).version == "2024.1"
    assert library.get("alpha").version == "2025.1"  # the newest active one
    assert built == ["alpha@2024.1", "alpha@2025.1"]
    # the others are built when asked for, once, and agree with a library that built them all
    everything = [p.ref for p in library.all()]
    assert built == ["alpha@2024.1", "alpha@2025.1", "alpha@2023.1", "alpha@2025.2", "beta@1"]
    fresh = Library(library.root)
    assert everything == [p.ref for p in fresh.all()]
    assert library.get("alpha", date(2024, 6, 1)) == fresh.get("alpha", date(2024, 6, 1))


def test_a_version_not_in_force_is_still_checked_against_the_schema(tmp_path):
    root = tmp_path / "policies"
    write(root, "alpha", "2024.1", start="2024-01-01", until="2024-12-31")
    write(root, "alpha", "2025.1", start="2025-01-01")
    broken = root / "alpha" / "2024.1.yaml"
    broken.write_text(broken.read_text().replace("status: active", "status: in_force"))
    with pytest.raises(SchemaError) as caught:
        Library(root).get("alpha", date(2025, 6, 1))
    assert caught.value.problems[0].location.file == str(broken)


def test_a_version_not_in_force_in_the_wrong_place_still_breaks_selection(tmp_path):
    root = tmp_path / "policies"
    write(root, "alpha", "2024.1", version="2024.9", start="2024-01-01", until="2024-12-31")
    write(root, "alpha", "2025.1", start="2025-01-01")
    with pytest.raises(PolicyError) as caught:
        Library(root).get("alpha", date(2025, 6, 1))
    assert [p.code for p in caught.value.problems] == ["version_mismatch"]


def test_overlapping_windows_read_unbuilt_give_the_error_of_the_built_versions(tie):
    with pytest.raises(PolicyError) as selecting:
        Library(tie).get("alpha", date(2025, 6, 1))
    with pytest.raises(PolicyError) as listing:
        Library(tie).versions("alpha")
    assert selecting.value.problems == listing.value.problems


def test_one_shared_library_per_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(Library, "_SHARED", {})
    root = tmp_path / "policies"
    write(root, "alpha", "1")
    assert Library.shared(root) is Library.shared(str(root / ".." / "policies"))
    assert Library.shared() is Library.shared(SHIPPED.root)
    assert Library.shared() is not Library.shared(root)
    # a referenced policy is looked up in the same Library as the CLI's
    policy = Library.shared().get("lumbar-fusion", date(2025, 6, 1))
    assert Library.shared() in api._libraries(policy)


def test_evaluating_the_founding_case_builds_each_policy_it_needs_once(monkeypatch):
    monkeypatch.setattr(Library, "_SHARED", {})
    built = _builds(monkeypatch)
    founding = HERE.parent / "examples" / "cases" / "t12-s2-fusion.json"
    result = CliRunner().invoke(cli_main, ["evaluate", str(founding)])
    assert result.exit_code in (0, 1, 3), result.output
    # the fusion policy refers to the SI-joint one, which also governs a line: built once; the
    # fusion policy's versions not in force on the request date are not built at all
    assert sorted(built) == [
        "lumbar-decompression@2025.1",
        "lumbar-fusion@2025.1",
        "si-joint-fusion@2025.1",
    ]


@pytest.mark.parametrize(
    ("case", "needed"),
    [
        # one decompression line: the fusion and SI-joint policies govern none of it
        ("ld-approvable-l4-l5.json", ["lumbar-decompression@2025.1"]),
        ("si-approvable-unilateral.json", ["si-joint-fusion@2025.1"]),
        # a fusion line: the SI-joint policy is built for the fusion policy's reference to it
        ("l4-l5-approvable.json", ["lumbar-fusion@2025.1", "si-joint-fusion@2025.1"]),
    ],
)
def test_a_case_builds_only_the_policies_that_govern_its_lines(monkeypatch, case, needed):
    monkeypatch.setattr(Library, "_SHARED", {})
    built = _builds(monkeypatch)
    result = CliRunner().invoke(cli_main, ["evaluate", str(HERE.parent / "examples/cases" / case)])
    assert result.exit_code in (0, 1, 3), result.output
    assert sorted(built) == needed


def test_a_policy_not_built_still_has_its_window_and_procedures_checked(tmp_path):
    # choosing which policy governs a line reads every policy's versions unbuilt: a version
    # that is not schema-valid still breaks the choice, as it did when every one was built
    root = tmp_path / "policies"
    write(root, "alpha", "2025.1", start="2025-01-01")
    write(root, "beta", "1")
    broken = root / "beta" / "1.yaml"
    broken.write_text(broken.read_text().replace("status: active", "status: in_force"))
    case = load_case(HERE.parent / "examples" / "cases" / "ld-approvable-l4-l5.json")
    with pytest.raises(SchemaError) as caught:
        api._governing(case, Library(root))
    assert caught.value.problems[0].location.file == str(broken)
