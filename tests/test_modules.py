"""Shared modules (issue 11, point 4): imports pinned by version, merged at load, hashed.

The shipped policies import the red-flag waiver and the nicotine clause; their decisions are
the goldens' (tests/test_examples.py). Here: what an import brings (clauses with local
overrides, settings, value sets, rules), what the hash and the records make of a changed
module, and how show, coverage and diff see through imports.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from evaluator import api
from evaluator.audit import diff
from evaluator.authoring import show
from evaluator.authoring.coverage import reachable_statuses
from evaluator.authoring.lint import lint_paths
from evaluator.case.cases import case_from_data
from evaluator.cli.main import main
from evaluator.errors import PolicyError
from evaluator.language.model import Status
from evaluator.language.policies import Library, load_policy

ROOT = Path(__file__).parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"

MODULE: dict[str, Any] = {
    "module": "smoking",
    "version": "1",
    "title": "Smoking",
    "settings": {
        "abstinence": {"value": 6, "unit": "weeks", "description": "Abstinence before surgery."}
    },
    "value_sets": {
        "bmi": {"purpose": "Body mass index.", "codes": {"LOINC": ["39156-5"]}, "unit": "kg/m2"}
    },
    "facts": {"former_smoker": {"description": "A former smoker.", "fields": {"since": "string"}}},
    "rules": [
        {
            "id": "former",
            "for_each": [{"fact": "nicotine", "as": "n", "where": {"status": "former"}}],
            "derive": {"fact": "former_smoker", "set": {"since": "long ago"}},
        }
    ],
    "clauses": {
        "free": {
            "title": "Nicotine free",
            "description": "Never used, or quit long enough ago.",
            "requires": {
                "any": [
                    {"fact": "nicotine", "field": "status", "equals": "never"},
                    {
                        "fact": "nicotine",
                        "field": "quit_date",
                        "measure": "time_before_request",
                        "at_least": {"setting": "abstinence"},
                    },
                ]
            },
            "recommendation": "Stop smoking.",
        },
        "bmi": {
            "title": "BMI below 40",
            "requires": {
                "fact": "observation",
                "where": {"code": {"in_value_set": "bmi"}},
                "field": "value",
                "less_than": {"value": 40, "unit": "kg/m2"},
            },
            "recommendation": "Lose weight.",
        },
    },
}


NEVER = {"fact": "nicotine", "field": "status", "equals": "never"}


def clause(cid: str, **keys: Any) -> dict[str, Any]:
    return {"id": cid, "cites": [1], **keys}


def policy(clauses: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "importer",
        "version": "1",
        "title": "Importer",
        "status": "active",
        "effective": {"from": "2025-01-01"},
        "procedures": [{"procedure": "lumbar_fusion"}],
        "imports": [{"module": "smoking", "version": "1"}],
        "references": [{"id": 1, "citation": "A source."}],
        "sections": [{"id": "s", "title": "S", "clauses": clauses}],
        **extra,
    }


def write(root: Path, data: dict[str, Any], module: dict[str, Any] | None = MODULE) -> Path:
    path: Path = root / "policies" / data["id"] / f"{data['version']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    if module is not None:
        write_module(root, module)
    return path


def write_module(root: Path, module: dict[str, Any]) -> Path:
    path: Path = root / "policies" / "_shared" / module["module"] / f"{module['version']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(module), encoding="utf-8")
    return path


CASE: dict[str, Any] = {
    "case_id": "m",
    "request": {
        "date": "2025-06-20",
        "lines": [{"id": "f", "procedure": "lumbar_fusion", "fusion": "L4-L5"}],
    },
    "nicotine": {"status": "former", "quit_date": "2025-05-09"},
}


def decide(path: Path, case: dict[str, Any] = CASE) -> Any:
    return api.evaluate(case_from_data(case, "case.json"), load_policy(path))


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="necessity")


# --- what an import brings ------------------------------------------------------------------------


def test_a_placed_template_decides_under_the_policy_id(tmp_path: Path) -> None:
    path = write(tmp_path, policy([clause("IM-NICOTINE", use="smoking.free")]))
    loaded = load_policy(path)
    (placed,) = loaded.clauses
    assert (placed.id, placed.title, placed.origin) == (
        "IM-NICOTINE",
        "Nicotine free",
        "smoking@1 free",
    )
    # quit 6 weeks exactly before the request: the imported setting's edge is met
    assert decide(path).clauses[0].status is Status.MET
    short = {**CASE, "nicotine": {"status": "former", "quit_date": "2025-05-10"}}
    assert decide(path, short).clauses[0].status is Status.NOT_MET


def test_keys_written_in_the_policy_replace_the_template(tmp_path: Path) -> None:
    local = clause(
        "IM-NICOTINE",
        use="smoking.free",
        title="Tobacco free",
        requires={"fact": "nicotine", "field": "status", "equals": "never"},
    )
    loaded = load_policy(write(tmp_path, policy([local])))
    (placed,) = loaded.clauses
    assert placed.title == "Tobacco free"
    assert placed.recommendation == "Stop smoking."  # not overridden: the template's
    assert decide(write(tmp_path, policy([local]))).clauses[0].status is Status.NOT_MET


def test_settings_value_sets_facts_and_rules_join_the_policy(tmp_path: Path) -> None:
    uses_rule = clause(
        "IM-FORMER",
        title="Former smoker",
        requires={"exists": {"fact": "former_smoker"}},
        recommendation="r",
    )
    path = write(tmp_path, policy([clause("IM-BMI", use="smoking.bmi"), uses_rule]))
    loaded = load_policy(path)
    assert "abstinence" in loaded.settings
    assert loaded.value_sets["bmi"].shared
    assert loaded.value_sets["bmi"].origin.endswith("1.yaml")
    assert [(r.id, r.origin) for r in loaded.rules] == [("former", "smoking@1")]
    assert "former_smoker" in loaded.derived
    statuses = {c.id: c.status for c in decide(path).clauses}
    assert statuses == {"IM-BMI": Status.NOT_DOCUMENTED, "IM-FORMER": Status.MET}


def test_a_module_may_import_another(tmp_path: Path) -> None:
    inner = {"module": "base", "version": "2", "title": "Base", "settings": MODULE["settings"]}
    outer = {**MODULE, "settings": {}, "imports": [{"module": "base", "version": "2"}]}
    write_module(tmp_path, inner)
    loaded = load_policy(write(tmp_path, policy([clause("IM-N", use="smoking.free")]), outer))
    assert [m.ref for m in loaded.imports] == ["base@2", "smoking@1"]
    assert (
        decide(write(tmp_path, policy([clause("IM-N", use="smoking.free")]), outer))
        .clauses[0]
        .status
        is Status.MET
    )


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"imports": [{"module": "smokin", "version": "1"}]}, "unknown_module", "did you mean"),
        ({"imports": [{"module": "smoking", "version": "9"}]}, "unknown_module", "versions: `1`"),
        ({"settings": MODULE["settings"]}, "import_clash", "setting `abstinence`"),
        ({"rules": [{**MODULE["rules"][0]}]}, "import_clash", "rule `former`"),
    ],
)
def test_import_errors_are_located(
    tmp_path: Path, change: dict[str, Any], code: str, message: str
) -> None:
    data = policy([clause("IM-N", use="smoking.free")])
    data.update(change)
    if "rules" in change:
        data["facts"] = {"x": {"description": "x", "fields": {}}}
    with pytest.raises(PolicyError) as raised:
        load_policy(write(tmp_path, data))
    problem = next(p for p in raised.value.problems if p.code == code)
    assert message in problem.message + (problem.hint or "")
    assert problem.location.line is not None


def test_use_of_a_module_not_imported_and_an_unknown_template(tmp_path: Path) -> None:
    data = policy([clause("IM-N", use="other.free"), clause("IM-M", use="smoking.fre")])
    with pytest.raises(PolicyError) as raised:
        load_policy(write(tmp_path, data))
    codes = {p.code: p for p in raised.value.problems}
    assert codes["unknown_module"].location.pointer == "/sections/0/clauses/0/use"
    assert codes["unknown_import"].hint == "did you mean `smoking.free`?"


def test_a_cycle_of_module_imports_is_an_error(tmp_path: Path) -> None:
    write_module(tmp_path, {**MODULE, "imports": [{"module": "loop", "version": "1"}]})
    loop = {"module": "loop", "version": "1", "title": "Loop"}
    write_module(tmp_path, {**loop, "imports": [{"module": "smoking", "version": "1"}]})
    with pytest.raises(PolicyError) as raised:
        load_policy(write(tmp_path, policy([clause("IM-N", use="smoking.free")]), None))
    assert raised.value.code == "import_cycle"
    assert "smoking -> loop -> smoking" in str(raised.value)


def test_a_module_at_two_versions_clashes(tmp_path: Path) -> None:
    write_module(tmp_path, {**MODULE, "version": "2"})
    data = policy([clause("IM-N", use="smoking.free")])
    data["imports"].append({"module": "smoking", "version": "2"})
    with pytest.raises(PolicyError, match="two versions"):
        load_policy(write(tmp_path, data))


def test_a_module_that_misnames_itself_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, policy([clause("IM-N", use="smoking.free")]))
    write_module(tmp_path, MODULE).rename(path.parent.parent / "_shared" / "smoking" / "3.yaml")
    data = policy([clause("IM-N", use="smoking.free")])
    data["imports"] = [{"module": "smoking", "version": "3"}]
    with pytest.raises(PolicyError, match="says it is module `smoking` version `1`"):
        load_policy(write(tmp_path, data, None))


# --- the hash and the records ---------------------------------------------------------------------


def test_the_content_hash_covers_the_modules(tmp_path: Path) -> None:
    path = write(tmp_path, policy([clause("IM-N", use="smoking.free")]))
    before = load_policy(path)
    edited = {
        **MODULE,
        "settings": {"abstinence": {**MODULE["settings"]["abstinence"], "value": 8}},
    }
    write_module(tmp_path, edited)
    after = load_policy(path)
    assert before.sha256 == after.sha256  # the policy file itself did not change
    assert before.content_sha256 != after.content_sha256
    assert before.imports[0].sha256 != after.imports[0].sha256


def test_provenance_names_each_module_and_its_hash() -> None:
    decision = api.evaluate_path(FOUNDING, "lumbar-fusion")
    imports = decision.provenance["imports"]
    assert set(imports) == {"red-flags", "nicotine"}
    assert imports["nicotine"]["version"] == "2025.1"
    assert len(imports["nicotine"]["sha256"]) == 64


def _record(tmp_path: Path, library: Path) -> Path:
    result = run(
        "evaluate",
        FOUNDING,
        "--format",
        "json",
        "--policy",
        "lumbar-fusion",
        "--policies-dir",
        library,
    )
    assert result.exit_code in (0, 1, 3), result.output
    out = tmp_path / "decision.json"
    out.write_text(result.stdout, encoding="utf-8")
    return out


def test_a_module_edited_in_place_fails_verification(tmp_path: Path) -> None:
    library = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", library)
    recorded = _record(tmp_path, library)
    module = library / "_shared" / "nicotine" / "2025.1.yaml"
    module.write_text(module.read_text().replace("value: 10,", "value: 20,"), encoding="utf-8")
    result = run("verify", recorded, "--case", FOUNDING, "--policies-dir", library)
    assert result.exit_code == 1, result.output
    assert "/provenance/policy_content_sha256" in result.stdout
    assert "/provenance/imports/nicotine/sha256" in result.stdout


def test_a_new_module_version_beside_the_pinned_one_keeps_old_records(tmp_path: Path) -> None:
    library = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", library)
    recorded = _record(tmp_path, library)
    old = library / "_shared" / "nicotine" / "2025.1.yaml"
    new = old.with_name("2026.1.yaml")
    text = old.read_text().replace('version: "2025.1"', 'version: "2026.1"')
    new.write_text(text.replace("value: 10,", "value: 20,"), encoding="utf-8")
    result = run("verify", recorded, "--case", FOUNDING, "--policies-dir", library)
    assert result.exit_code == 0, result.output


# --- the tools see through imports ----------------------------------------------------------------


def test_show_lists_the_modules_and_marks_imported_clauses() -> None:
    text = show.policy_markdown(Library().get("lumbar-fusion@2025.1"))
    assert "## Shared modules" in text
    assert "- `nicotine@2025.1`: Nicotine abstinence" in text
    nicotine = text[text.index("#### LF-NICOTINE") :]
    assert nicotine.index("**From:** shared clause `nicotine@2025.1 nicotine-free`") < 200
    assert "cotinine is at most 10 ng/mL" in nicotine[:2000]


def test_show_names_a_value_set_instead_of_its_codes(tmp_path: Path) -> None:
    text = show.policy_text(
        load_policy(write(tmp_path, policy([clause("IM-B", use="smoking.bmi")])))
    )
    requires = text[text.index("IM-B: BMI below 40") :]
    assert "code in value set bmi" in requires
    assert "LOINC|39156-5" not in requires  # the codes are listed once, under Value sets


def test_coverage_reaches_imported_clauses() -> None:
    reachable = reachable_statuses(Library().get("si-joint-fusion@2025.1"))
    assert reachable["SI-NICOTINE"] >= {Status.MET, Status.NOT_MET, Status.NOT_DOCUMENTED}


def test_diff_sees_a_changed_module_as_a_changed_clause(tmp_path: Path) -> None:
    old = write(tmp_path, policy([clause("IM-N", use="smoking.free")]))
    edited = {**MODULE, "version": "2"}
    edited["settings"] = {"abstinence": {**MODULE["settings"]["abstinence"], "value": 8}}
    write_module(tmp_path, edited)
    data = policy([clause("IM-N", use="smoking.free")], version="2")
    data["imports"] = [{"module": "smoking", "version": "2"}]
    new = write(tmp_path, data, None)
    result = diff.compare(load_policy(old), load_policy(new))
    changed = {(c.category, c.key): c for c in result.changes}
    assert changed[("import", "smoking")].details == ("version 1 -> 2",)
    assert changed[("setting", "abstinence")].details == ("6 weeks -> 8 weeks",)
    assert ("clause", "IM-N") in changed


def test_a_policy_from_standard_input_imports_the_bundled_modules() -> None:
    text = (ROOT / "policies" / "si-joint-fusion" / "2025.1.yaml").read_text(encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", "-"], input=text)
    assert result.exit_code == 0, result.output
    broken = text.replace('module: nicotine, version: "2025.1"', 'module: nicotine, version: "1"')
    result = CliRunner().invoke(main, ["validate", "-"], input=broken)
    assert result.exit_code == 2, result.output
    assert "module `nicotine` has no version `1`" in result.output


def test_validate_and_lint_check_module_files_on_their_own(tmp_path: Path) -> None:
    good = write_module(tmp_path, MODULE)
    assert run("validate", good).exit_code == 0
    misnamed = good.with_name("2.yaml")
    good.rename(misnamed)
    result = run("validate", misnamed)
    assert result.exit_code == 2, result.output
    assert "says it is module `smoking` version `1`" in result.output
    # no policy imports it, and lint still reports it
    write(tmp_path, policy([clause("IM-N", title="t", requires=NEVER, recommendation="r")]), None)
    data = json.loads((tmp_path / "policies" / "importer" / "1.yaml").read_text())
    data.pop("imports")
    (tmp_path / "policies" / "importer" / "1.yaml").write_text(json.dumps(data))
    report = lint_paths([tmp_path / "policies"])
    assert [(f.code, Path(f.location.file or "").name) for f in report.findings] == [
        ("unknown_module", "2.yaml")
    ]


def test_a_problem_in_imported_content_is_located_in_the_module(tmp_path: Path) -> None:
    broken = copy.deepcopy(MODULE)
    broken["clauses"]["free"]["requires"]["any"][0]["field"] = "statu"
    broken["rules"][0]["derive"]["fact"] = "former_smoke"
    path = write(tmp_path, policy([clause("IM-N", use="smoking.free")]), broken)
    report = lint_paths([path])
    module = str(tmp_path / "policies" / "_shared" / "smoking" / "1.yaml")
    located = {(f.code, f.location.file, f.location.pointer) for f in report.findings}
    assert ("unknown_field", module, "/clauses/free/requires/any/0/field") in located
    assert any(code == "undeclared_fact" and file == module for code, file, _ in located)
    # a key the policy overrides is the policy's own
    mine = clause("IM-N", use="smoking.free", requires={**NEVER, "field": "statu"})
    report = lint_paths([write(tmp_path, policy([mine]), MODULE)])
    (finding,) = [f for f in report.findings if f.code == "unknown_field"]
    assert finding.location.file == str(tmp_path / "policies" / "importer" / "1.yaml")


def test_a_module_edited_during_a_run_is_not_served_from_the_old_rules(tmp_path: Path) -> None:
    # same policy file, same bytes: only the module changed, and the engine must see it
    path = write(tmp_path, policy([clause("IM-N", use="smoking.free")]))
    assert decide(path).clauses[0].status is Status.MET
    longer = {"abstinence": {**MODULE["settings"]["abstinence"], "value": 8}}
    write_module(tmp_path, {**MODULE, "settings": longer})
    assert decide(path).clauses[0].status is Status.NOT_MET
