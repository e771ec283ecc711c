"""Decision records: provenance, `necessity verify`, the decision log, versions by date."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
from datetime import date
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from evaluator import api
from evaluator.case import cases
from evaluator.cli.main import main
from evaluator.decide import records
from evaluator.language.policies import Library, load_policy

ROOT = Path(__file__).parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
SCHEMA = json.loads((ROOT / "schemas" / "decision.schema.json").read_text(encoding="utf-8"))


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="necessity")


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A copy of the bundled policies that a test may edit."""
    root = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", root)
    return root


def decide(tmp_path: Path, case: Path, *extra: str | Path) -> Path:
    result = run("evaluate", case, "--format", "json", *extra)
    assert result.exit_code in (0, 1, 3), result.output
    out = tmp_path / "decision.json"
    out.write_text(result.stdout, encoding="utf-8")
    return out


# --- provenance -----------------------------------------------------------------------------------


def test_every_decision_carries_its_provenance() -> None:
    result = run("evaluate", FOUNDING, "--policy", "lumbar-fusion", "--format", "json")
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    prov = data["provenance"]
    policy = Library().get("lumbar-fusion@2025.1")
    assert prov["policy_id"] == "lumbar-fusion"
    assert prov["policy_version"] == "2025.1"
    assert prov["policy_sha256"] == policy.sha256
    assert prov["policy_content_sha256"] == policy.content_sha256
    assert prov["case_sha256"] == records.case_sha256(cases.load_case(FOUNDING).fact_dicts())
    assert prov["schemas_sha256"] == records.schemas_sha256()
    assert data["evaluated_at"]


def test_per_line_reviews_carry_provenance_per_decision() -> None:
    data = json.loads(run("evaluate", FOUNDING, "--format", "json").stdout)
    jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    ids = {line["provenance"]["policy_id"] for line in data["lines"] if line["policy"]}
    assert ids == {"lumbar-decompression", "lumbar-fusion", "si-joint-fusion"}


def test_content_hash_ignores_layout_but_not_values(tmp_path: Path) -> None:
    text = (ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml").read_text(encoding="utf-8")
    original = tmp_path / "a" / "2025.1.yaml"
    relaid = tmp_path / "b" / "2025.1.yaml"
    edited = tmp_path / "c" / "2025.1.yaml"
    for path in (original, relaid, edited):
        path.parent.mkdir()
    original.write_text(text, encoding="utf-8")
    relaid.write_text("# a comment\n" + text.replace("\n\n", "\n"), encoding="utf-8")
    edited.write_text(text.replace("value: 3.0", "value: 3.5"), encoding="utf-8")
    a, b, c = (load_policy(p) for p in (original, relaid, edited))
    assert a.sha256 != b.sha256
    assert a.content_sha256 == b.content_sha256
    assert a.content_sha256 != c.content_sha256


# --- verify ---------------------------------------------------------------------------------------


def test_a_decision_verifies(tmp_path: Path) -> None:
    decision = decide(tmp_path, FOUNDING, "--policy", "lumbar-fusion")
    result = run("verify", decision, "--case", FOUNDING)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("identical")


def test_a_per_line_review_verifies(tmp_path: Path) -> None:
    decision = decide(tmp_path, FOUNDING)
    assert run("verify", decision, "--case", FOUNDING).exit_code == 0


def test_a_policy_edited_in_place_fails_verification(tmp_path: Path, library: Path) -> None:
    decision = decide(tmp_path, FOUNDING, "--policy", "lumbar-fusion", "--policies-dir", library)
    policy = library / "lumbar-fusion" / "2025.1.yaml"
    # Same version number, tampered threshold: only the records can tell.
    policy.write_text(policy.read_text().replace("value: 3.0", "value: 2.0"), encoding="utf-8")
    result = run("verify", decision, "--case", FOUNDING, "--policies-dir", library)
    assert result.exit_code == 1, result.output
    assert "/provenance/policy_sha256" in result.stdout
    assert "/provenance/policy_content_sha256" in result.stdout


def test_a_different_case_fails_verification(tmp_path: Path) -> None:
    decision = decide(tmp_path, FOUNDING, "--policy", "lumbar-fusion")
    other = ROOT / "examples" / "cases" / "dynamic-instability.json"
    result = run("verify", decision, "--case", other)
    assert result.exit_code == 1
    assert "/provenance/case_sha256" in result.stdout


def test_a_decision_under_a_now_retired_version_verifies(tmp_path: Path) -> None:
    # A 2024 request is decided under 2024.1 (retired today, in force then) and replays.
    data = json.loads(FOUNDING.read_text(encoding="utf-8"))
    data["request"]["date"] = "2024-06-20"
    case = tmp_path / "case-2024.json"
    case.write_text(json.dumps(data), encoding="utf-8")
    decision = decide(tmp_path, case)
    recorded = json.loads(decision.read_text())
    fusion = next(line for line in recorded["lines"] if line["line"] == "fusion")
    assert fusion["policy"]["version"] == "2024.1"
    assert Library().get("lumbar-fusion@2024.1").status.value == "retired"
    assert run("verify", decision, "--case", case).exit_code == 0


def test_a_version_that_is_not_available_exits_2(tmp_path: Path, library: Path) -> None:
    decision = decide(tmp_path, FOUNDING, "--policy", "lumbar-fusion@2024.1")
    (library / "lumbar-fusion" / "2024.1.yaml").unlink()
    result = run("verify", decision, "--case", FOUNDING, "--policies-dir", library)
    assert result.exit_code == 2
    assert "2024.1" in result.stderr


def test_verify_against_a_git_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "policies", repo / "policies")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "policies"], check=True)
    decision = decide(
        tmp_path, FOUNDING, "--policy", "lumbar-fusion", "--policies-dir", repo / "policies"
    )
    policy = repo / "policies" / "lumbar-fusion" / "2025.1.yaml"
    policy.write_text(policy.read_text().replace("value: 3.0", "value: 2.0"), encoding="utf-8")
    monkeypatch.chdir(repo)  # git:REV paths are relative to the working directory
    ok = run("verify", decision, "--case", FOUNDING, "--policies-dir", "git:HEAD")
    bad = run("verify", decision, "--case", FOUNDING, "--policies-dir", "policies")
    assert ok.exit_code == 0, ok.output
    assert bad.exit_code == 1


# --- the decision log -----------------------------------------------------------------------------


def test_the_log_has_one_line_per_decision_with_the_case_id_masked(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    assert (
        run("evaluate", FOUNDING, "--decision-log", log).exit_code == 3
    )  # the decompression line is pended
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["policy_id"] for x in lines] == [
        "lumbar-decompression",
        "lumbar-fusion",
        "si-joint-fusion",
    ]
    fusion = lines[1]
    assert fusion["lines"] == {"fusion": "not_medically_necessary"}
    assert "LF-INSTABILITY" in fusion["failed_clauses"]
    assert fusion["case_id"].startswith("hmac-sha256:")
    assert "t12-s2-fusion" not in log.read_text()
    assert len({x["decision_id"] for x in lines}) == 3
    assert (tmp_path / "decisions.jsonl.key").stat().st_mode & 0o077 == 0


def test_no_mask_keeps_the_case_id(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    run("evaluate", FOUNDING, "--policy", "lumbar-fusion", "--decision-log", log, "--no-mask")
    (entry,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert entry["case_id"] == "t12-s2-fusion"
    assert entry["lines"] is None
    assert entry["determination"] == "not_medically_necessary"


def test_identifying_fields_come_from_the_case_schema() -> None:
    assert records.identifying_fields() == ("case_id",)


def test_batch_writes_the_log(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    cases_dir = ROOT / "examples" / "cases"
    result = run("batch", cases_dir, "-o", tmp_path / "out.jsonl", "--decision-log", log)
    assert result.exit_code == 0, result.output
    logged = [json.loads(x) for x in log.read_text().splitlines()]
    assert len({x["case_sha256"] for x in logged}) == len(list(cases_dir.glob("*.json")))


def _writer(path: str, n: int) -> None:
    for i in range(n):
        records.append_lines(Path(path), [{"writer": path, "i": i, "pad": "x" * 5000}])


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_writer, args=(str(log), 40)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = log.read_text().splitlines()
    assert len(lines) == 160
    assert all(json.loads(x)["pad"] == "x" * 5000 for x in lines)


# --- the version in force -------------------------------------------------------------------------


def _case(request: str, service: str | None) -> cases.Case:
    data = json.loads(FOUNDING.read_text(encoding="utf-8"))
    data["request"]["date"] = request
    if service:
        data["request"]["service_date"] = service
    return cases.case_from_data(data, "case.json")


@pytest.mark.parametrize(
    ("request_date", "service", "version"),
    [
        ("2024-12-20", None, "2024.1"),
        ("2024-12-20", "2025-01-10", "2025.1"),
        ("2025-02-01", None, "2025.1"),
    ],
    ids=["request-date", "service-date-wins", "current"],
)
def test_the_date_of_service_chooses_the_version(request_date, service, version) -> None:
    case = _case(request_date, service)
    assert case.in_force_date == date.fromisoformat(service or request_date)
    review = api.review_case(case, Library())
    fusion = next(r for r in review.lines if r.line.id == "fusion")
    assert fusion.policy is not None
    assert fusion.policy.version == version


def test_drafts_are_never_chosen_by_date() -> None:
    for case in (_case("2026-06-01", None), _case("2025-06-01", "2026-06-01")):
        review = api.review_case(case, Library())
        fusion = next(r for r in review.lines if r.line.id == "fusion")
        assert fusion.policy is not None
        assert fusion.policy.status.value == "active"


def test_history_lists_versions_with_changelogs() -> None:
    result = run("policies", "--history", "lumbar-fusion")
    assert result.exit_code == 0
    text = result.stdout
    assert text.index("lumbar-fusion@2025.1") < text.index("lumbar-fusion@2024.1")
    assert "2024-01-01 to 2024-12-31" in text
    assert "supersedes 2024.1" in text
    assert "fe_translation" in text
    assert "Simmonds" in text
    data = json.loads(run("policies", "--history", "lumbar-fusion", "--format", "json").stdout)
    assert [v["version"] for v in data["versions"]][-2:] == ["2025.1", "2024.1"]
    assert run("policies", "--history", "nope").exit_code == 2
