"""A condition on another policy's determination: `{policy: id, is: determination}`.

The referenced policy (the version in force, from the same folder) is evaluated first through
the same API and engine; its determination reaches the referring session as a fact. A cycle is
an error, and a reference that cannot be decided is unknown, which never demonstrates a route.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.authoring.lint import lint_paths
from evaluator.authoring.testing import load_suite
from evaluator.case.cases import case_from_data, load_case
from evaluator.cli.main import main
from evaluator.compile.program import Program
from evaluator.decide.decision import Decision
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError, PolicyError
from evaluator.language.model import Determination, Status
from evaluator.language.policies import Library, load_policy

ROOT = Path(__file__).parent.parent
CASE: dict[str, Any] = {
    "case_id": "ref",
    "request": {
        "date": "2025-06-20",
        "lines": [{"id": "fusion", "procedure": "lumbar_fusion", "fusion": "L4-L5"}],
    },
    "nicotine": {"status": "never"},
}


def _policy(root: Path, pid: str, requires: dict[str, Any], start: str = "2025-01-01") -> Path:
    data = {
        "id": pid,
        "version": "1",
        "title": pid,
        "status": "active",
        "effective": {"from": start},
        "procedures": [{"procedure": "lumbar_fusion"}],
        "references": [{"id": 1, "citation": "c"}],
        "sections": [
            {
                "id": "s",
                "title": "S",
                "clauses": [
                    {
                        "id": f"{pid.upper()}-ONE",
                        "title": "t",
                        "requires": requires,
                        "cites": [1],
                        "recommendation": "r",
                    }
                ],
            }
        ],
    }
    path = root / pid / "1.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


NEVER_SMOKER = {"fact": "nicotine", "field": "status", "equals": "never"}


def _decide(path: Path) -> Decision:
    return api.evaluate(case_from_data(CASE, "case.json"), load_policy(path))


def test_the_referenced_determination_decides_the_route(tmp_path: Path) -> None:
    _policy(tmp_path, "base", NEVER_SMOKER)
    referring = _policy(tmp_path, "top", {"policy": "base", "is": "medically_necessary"})
    decision = _decide(referring)
    assert decision.determination is Determination.MEDICALLY_NECESSARY
    (evidence,) = decision.clauses[0].evidence
    assert evidence.condition == "policy base finds it medically necessary"
    assert [dict(f.values)["determination"] for f in evidence.facts] == ["medically_necessary"]


def test_another_determination_makes_the_route_false(tmp_path: Path) -> None:
    _policy(tmp_path, "base", {"fact": "nicotine", "field": "status", "equals": "current"})
    referring = _policy(tmp_path, "top", {"policy": "base", "is": "medically_necessary"})
    decision = _decide(referring)
    assert decision.clauses[0].status is Status.NOT_MET


def test_a_reference_with_no_version_in_force_is_unknown(tmp_path: Path) -> None:
    _policy(tmp_path, "base", NEVER_SMOKER, start="2030-01-01")
    referring = _policy(tmp_path, "top", {"policy": "base", "is": "medically_necessary"})
    decision = _decide(referring)
    assert decision.clauses[0].status is Status.NOT_DOCUMENTED
    assert decision.determination is not Determination.MEDICALLY_NECESSARY


def test_an_unknown_referenced_policy_is_an_error(tmp_path: Path) -> None:
    referring = _policy(tmp_path, "top", {"policy": "nowhere", "is": "medically_necessary"})
    with pytest.raises(PolicyError, match="unknown policy `nowhere`"):
        _decide(referring)


def test_a_cycle_between_policies_is_an_error(tmp_path: Path) -> None:
    _policy(tmp_path, "one", {"policy": "two", "is": "medically_necessary"})
    two = _policy(tmp_path, "two", {"policy": "one", "is": "medically_necessary"})
    with pytest.raises(PolicyError) as raised:
        _decide(two)
    assert raised.value.code == "reference_cycle"
    assert "two -> one -> two" in str(raised.value)


def test_a_policy_referring_to_itself_does_not_compile(tmp_path: Path) -> None:
    path = _policy(tmp_path, "self", {"policy": "self", "is": "medically_necessary"})
    with pytest.raises(PolicyError, match="refers to its own determination"):
        api.program_for(load_policy(path))


def test_an_engine_error_in_the_referenced_policy_is_no_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _policy(tmp_path, "base", NEVER_SMOKER)
    referring = _policy(tmp_path, "top", {"policy": "base", "is": "medically_necessary"})
    failing = api.program_for(load_policy(base)).name
    run = Engine.run

    def broken(self: Engine, program: Program, facts: Any, **options: Any) -> Any:
        if program.name == failing:
            raise EngineError.single("engine_failed", "injected")
        return run(self, program, facts, **options)

    monkeypatch.setattr(Engine, "run", broken)
    with pytest.raises(EngineError, match="injected"):
        _decide(referring)


def test_lumbar_fusion_reads_the_si_joint_policy_in_force() -> None:
    # The suite case with both requests: the SI-joint policy, evaluated on its own, finds the
    # same case medically necessary, and that is the fact the lumbar-fusion session received.
    library = Library()
    suite = load_suite(ROOT / "policies" / "lumbar-fusion" / "tests" / "edges.yaml", library)
    test = next(t for t in suite.tests if t.name == "si-fixation-by-si-criteria")
    si = library.get("si-joint-fusion", test.case.request_date.lo)
    assert api.evaluate(test.case, si).determination is Determination.MEDICALLY_NECESSARY
    decision = api.evaluate(test.case, suite.policy)
    fixation = next(c for c in decision.clauses if c.id == "LF-SI-FIXATION")
    assert fixation.status is Status.MET
    facts = [f for e in fixation.evidence for f in e.facts if f.type == "policy_result"]
    assert [dict(f.values)["determination"] for f in facts] == ["medically_necessary"]


def test_lint_reports_a_cycle_between_policies(tmp_path: Path) -> None:
    _policy(tmp_path, "one", {"policy": "two", "is": "medically_necessary"})
    _policy(tmp_path, "two", {"policy": "one", "is": "medically_necessary"})
    report = lint_paths([tmp_path])
    cycles = [f for f in report.findings if f.code == "reference_cycle"]
    assert sorted(f.location.file or "" for f in cycles) == sorted(
        str(tmp_path / pid / "1.yaml") for pid in ("one", "two")
    )
    assert all(f.location.pointer == "/sections/0/clauses/0/requires" for f in cycles)


def _si_suite_case(name: str) -> Any:
    suite = load_suite(ROOT / "policies" / "lumbar-fusion" / "tests" / "edges.yaml", Library())
    return next(t for t in suite.tests if t.name == name).case


def test_the_per_line_review_gives_the_fusion_line_its_si_route() -> None:
    # Reviewed line by line, lumbar-fusion judges only its own line but reads the SI-joint line
    # (`reads:`); the referenced SI-joint policy must be judged on those same facts. Judged on
    # the fusion line's facts alone, it would see no SI-joint line, find no test or block on the
    # side to be fused, and the SI route would be false.
    review = api.review_case(_si_suite_case("si-fixation-by-si-criteria"), Library())
    by_line = {r.line.id: r for r in review.lines}
    assert by_line["si-fusion"].determination == "medically_necessary"
    fusion = by_line["fusion"].decision
    assert fusion is not None
    fixation = next(c for c in fusion.clauses if c.id == "LF-SI-FIXATION")
    assert fixation.status is Status.MET
    assert fusion.determination is Determination.MEDICALLY_NECESSARY
    assert review.overall == api.Overall.MEDICALLY_NECESSARY


def test_the_referenced_policy_judges_the_facts_the_referring_one_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = _si_suite_case("si-fixation-by-si-criteria")
    library = Library()
    fusion = library.get("lumbar-fusion", case.request_date.lo)
    seen: dict[str, list[Any]] = {}
    run = Engine.run

    def spy(self: Engine, program: Program, facts: Any, **options: Any) -> Any:
        seen.setdefault(program.name, list(facts))
        return run(self, program, facts, **options)

    monkeypatch.setattr(Engine, "run", spy)
    api.evaluate(case, fusion, ["fusion"])
    si = api.program_for(library.get("si-joint-fusion", case.request_date.lo)).name
    own = api.program_for(fusion).name
    lines = {f["line"] for f in seen[si] if "line" in f}
    assert lines == {"fusion", "si-fusion"}
    assert [f for f in seen[own] if f["t"] != "policy_result"] == seen[si]


def test_the_evaluated_alternative_re_runs_the_reference_on_the_narrower_request() -> None:
    # The founding case: the alternative (decompression L1-S1, fusion L3-S1) drops the pelvic
    # fixation and is a request of its own without the SI-joint line, so SI fixation does not
    # apply there; the referenced policy is evaluated again on that request without error.
    case = load_case(ROOT / "examples" / "cases" / "t12-s2-fusion.json")
    library = Library()
    decision = api.evaluate(case, library.get("lumbar-fusion", case.request_date.lo))
    fixation = next(c for c in decision.clauses if c.id == "LF-SI-FIXATION")
    assert fixation.status is Status.NOT_MET
    assert decision.alternative is not None
    assert decision.alternative.decision is not None
    narrower = decision.alternative.decision
    alt_fixation = next(c for c in narrower.clauses if c.id == "LF-SI-FIXATION")
    assert alt_fixation.status is Status.NOT_APPLICABLE
    assert narrower.determination is Determination.INSUFFICIENT_DOCUMENTATION


# --- issue 11 point 5: the version in force for the line's date; cycles do not compile -----------


def _version(root: Path, pid: str, version: str, requires: dict[str, Any], **window: str) -> Path:
    path = _policy(root, pid, requires, start=window["start"])
    data = json.loads(path.read_text(encoding="utf-8"))
    data["version"] = version
    if "until" in window:
        data["effective"]["until"] = window["until"]
        data["status"] = "retired"
    path.unlink()
    target = path.with_name(f"{version}.yaml")
    target.write_text(json.dumps(data), encoding="utf-8")
    return target


def test_the_reference_is_resolved_on_the_date_of_service(tmp_path: Path) -> None:
    # Requested in 2025 for a service in 2026: the referenced policy's 2026 version decides,
    # as it would if the referenced policy governed the line itself.
    _version(tmp_path, "base", "2025.1", NEVER_SMOKER, start="2025-01-01", until="2025-12-31")
    current = {"fact": "nicotine", "field": "status", "equals": "current"}
    _version(tmp_path, "base", "2026.1", current, start="2026-01-01")
    referring = _policy(tmp_path, "top", {"policy": "base", "is": "medically_necessary"})
    case = {**CASE, "request": {**CASE["request"], "date": "2025-12-20"}}
    case["request"]["service_date"] = "2026-01-10"
    decision = api.evaluate(case_from_data(case, "case.json"), load_policy(referring))
    (evidence,) = decision.clauses[0].evidence
    assert [dict(f.values)["version"] for f in evidence.facts] == ["2026.1"]
    assert decision.clauses[0].status is Status.NOT_MET
    # without a date of service the request date chooses, as for the lines themselves
    del case["request"]["service_date"]
    decision = api.evaluate(case_from_data(case, "case.json"), load_policy(referring))
    assert decision.clauses[0].status is Status.MET


def test_a_cycle_between_policies_does_not_compile(tmp_path: Path) -> None:
    _policy(tmp_path, "one", {"policy": "two", "is": "medically_necessary"})
    two = _policy(tmp_path, "two", {"policy": "one", "is": "medically_necessary"})
    with pytest.raises(PolicyError) as raised:
        api.program_for(load_policy(two))
    (problem,) = raised.value.problems
    assert problem.code == "reference_cycle"
    assert problem.location.pointer == "/sections/0/clauses/0/requires"
    assert problem.location.line is not None


def test_a_cycle_through_a_version_not_in_force_does_not_compile(tmp_path: Path) -> None:
    # Whichever version is in force on a line's date, the cycle is there for some date.
    _version(
        tmp_path,
        "one",
        "2024.1",
        {"policy": "two", "is": "medically_necessary"},
        start="2024-01-01",
        until="2024-12-31",
    )
    _version(tmp_path, "one", "2025.1", NEVER_SMOKER, start="2025-01-01")
    two = _policy(tmp_path, "two", {"policy": "one", "is": "medically_necessary"})
    with pytest.raises(PolicyError, match="two -> one -> two"):
        api.program_for(load_policy(two))


def test_validate_rejects_a_policy_in_a_cycle(tmp_path: Path) -> None:
    _policy(tmp_path, "one", {"policy": "two", "is": "medically_necessary"})
    two = _policy(tmp_path, "two", {"policy": "one", "is": "medically_necessary"})
    result = CliRunner().invoke(main, ["validate", str(two)])
    assert result.exit_code == 2, result.output
    assert "reference_cycle" in result.output or "needs the determination" in result.output


def test_lint_reports_a_cycle_once_per_reference(tmp_path: Path) -> None:
    # the compiler and the library check find the same cycle: one finding, not two
    _policy(tmp_path, "one", {"policy": "two", "is": "medically_necessary"})
    _policy(tmp_path, "two", {"policy": "one", "is": "medically_necessary"})
    report = lint_paths([tmp_path])
    assert len([f for f in report.findings if f.code == "reference_cycle"]) == 2


# The referenced policy's determination is the engine's verdict read without assembling its
# decision (`decision.verdict`): with a fact it needs missing, empty, dated after the request or
# contradicted, the referring policy's route is never true and the request never approved.
RECENT_MRI = {
    "fact": "imaging_study",
    "where": {"modality": {"one_of": ["mri"]}},
    "field": "date",
    "measure": "time_before_request",
    "at_most": {"value": 12, "unit": "months"},
}
_STATEMENT = {"document": "clinic_note", "date": "2025-01-15", "quote": "q"}
UNRELIABLE: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    # how: (the base policy's requirement, the case part it reads, that part as the case has it)
    "missing": (NEVER_SMOKER, "nicotine", {}),
    "empty": (RECENT_MRI, "imaging", {"imaging": []}),
    "dated-after-request": (
        RECENT_MRI,
        "imaging",
        {"imaging": [{"id": "mri", "modality": "mri", "date": "2025-07-30"}]},
    ),
    "contradicted": (
        NEVER_SMOKER,
        "nicotine",
        {
            "nicotine": {
                "status": {
                    "statements": [
                        {"value": "never", "source": _STATEMENT},
                        {"value": "current", "source": {**_STATEMENT, "quote": "smokes"}},
                    ]
                }
            }
        },
    ),
}
RELIABLE: dict[str, dict[str, Any]] = {
    "nicotine": {"nicotine": {"status": "never"}},
    "imaging": {"imaging": [{"id": "mri", "modality": "mri", "date": "2025-04-30"}]},
}


@pytest.mark.parametrize("how", sorted(UNRELIABLE))
def test_a_referenced_policy_on_an_unreliable_fact_never_approves(how: str, tmp_path: Path) -> None:
    requires, part, value = UNRELIABLE[how]
    _policy(tmp_path, "base", requires)
    referring = _policy(tmp_path, "top", {"policy": "base", "is": "medically_necessary"})
    case = {k: v for k, v in CASE.items() if k not in ("nicotine", "imaging")}

    def decide(parts: dict[str, Any]) -> Decision:
        return api.evaluate(case_from_data({**case, **parts}, "case.json"), load_policy(referring))

    # the control: with the fact as it should be, the reference approves
    assert decide(RELIABLE[part]).determination is Determination.MEDICALLY_NECESSARY
    decision = decide(value)
    assert decision.determination is not Determination.MEDICALLY_NECESSARY, how
    assert decision.clauses[0].status is Status.NOT_MET
    (evidence,) = decision.clauses[0].evidence
    (seen,) = [dict(f.values)["determination"] for f in evidence.facts]
    assert seen != "medically_necessary"
