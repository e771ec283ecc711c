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

from evaluator import api
from evaluator.cases import case_from_data
from evaluator.decision import Decision
from evaluator.engine import Engine
from evaluator.errors import EngineError, PolicyError
from evaluator.lint import lint_paths
from evaluator.model import Determination, Status
from evaluator.policies import Library, load_policy
from evaluator.program import Program
from evaluator.testing import load_suite

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
