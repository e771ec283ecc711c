"""Simpler folded terms (`folding._simplify`) and the rules that keep them fail closed.

A condition written twice in one clause (a YAML anchor as `applies_when` and `requires`) is
read by one pattern; leaves over the same facts agree on whether there is one; equal terms of
one outcome are one rule. The rule that fails the evaluation on a fact passing none of a
leaf's tests (`Folder._check_tests`) is kept only for leaves whose patterns negate a test: a
leaf read only as "a fact passing these tests" or "no fact" leaves such a fact unmatched, and
its clause without a status, which the engine reports (`Program.required`).
"""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_compiler import Compiled, clause, document, run, truths, write  # type: ignore[import-not-found]
from test_folding import folded_clauses  # type: ignore[import-not-found]

from evaluator.compile import ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import EmitMissing, EmitStatus, Eq, Program
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.policies import load_policy

RED_FLAG = {"exists": {"fact": "red_flag", "where": {"kind": {"one_of": ["tumour", "infection"]}}}}
# the bench policy's nicotine clause: never, or not current with cotinine at most 10
NICOTINE = {
    "any": [
        {"fact": "nicotine", "field": "status", "equals": "never"},
        {
            "all": [
                {"fact": "nicotine", "field": "status", "not_equals": "current"},
                {
                    "fact": "nicotine",
                    "field": "cotinine",
                    "at_most": {"value": 10, "unit": "ng/mL"},
                },
            ]
        },
    ]
}


def compiled(tmp_path: Path, clauses: list[dict[str, Any]], *, fold: bool = True) -> Program:
    # a name of its own: the engine registers a ruleset once per name, and tests mutate them
    name = f"ft{uuid.uuid4().hex[:12]}"
    path = write(tmp_path, json.dumps(document(clauses, name)), name)
    program = compile_policy(load_policy(path), fold=fold)
    Engine.get().prepare(program)
    return program


def statuses_of(program: Program, facts: list[dict[str, Any]]) -> dict[str, str]:
    trace = run(Compiled(program), facts)
    return {c: str(e.fact["status"]) for c, e in trace.statuses.items()}


def status_firings(program: Program, facts: list[dict[str, Any]]) -> int:
    trace = Engine.get().run(program, [*_base(), *facts], trace=True)
    assert trace.log is not None
    return sum(isinstance(program.rule(f.rule).action, EmitStatus) for f in trace.log)


def _base() -> list[dict[str, Any]]:
    return [{"t": "case", "id": "case:1", "case_id": "c1"}, {"t": "request", "id": "request:1"}]


def test_a_condition_written_twice_is_read_by_one_pattern(tmp_path: Path) -> None:
    urgent = clause("C-1", RED_FLAG, applies_when=RED_FLAG)
    program = compiled(tmp_path, [urgent])
    plain = compiled(tmp_path, [urgent], fold=False)
    assert folded_clauses(program) == {"C-1"}
    for rule in program.rules:
        read = [p for p in rule.patterns if Eq("t", "red_flag") in _parts(p.test)]
        assert len(read) <= 1, rule
    # met, not applicable; "applies but not met" matches no case and has no rule
    statuses = {r.action.status.value for r in program.rules if isinstance(r.action, EmitStatus)}
    assert statuses == {"met", "not_applicable"}
    flags = [{"t": "red_flag", "id": f"red_flag:{i}", "kind": "tumour"} for i in range(3)]
    for facts in ([], flags[:1], flags):
        assert statuses_of(program, facts) == statuses_of(plain, facts)
    assert statuses_of(program, []) == {"C-1": "not_applicable"}
    # one firing per red flag, not one per pair of them
    assert status_firings(program, flags) == 3
    trace = run(Compiled(program), flags)
    # the deciding node keeps its value and the fact that decided it, for evidence
    assert trace.values[("C-1:requires", ())].fact["f"] in {f["id"] for f in flags}


NICOTINE_FACTS: list[list[dict[str, Any]]] = [[]] + [
    [
        {"t": "nicotine", "id": "nicotine:1"}
        | ({"status": status} if status else {})
        | ({"cotinine": cotinine} if cotinine is not None else {})
    ]
    for status, cotinine in itertools.product(["never", "current", "former", None], [5, 20, None])
]


def test_leaves_over_one_fact_agree_on_whether_there_is_one(tmp_path: Path) -> None:
    """The three leaves read the one nicotine fact: no fact at all is one case (one rule,
    one firing), not one per leaf that could be "absent"."""
    program = compiled(tmp_path, [clause("C-1", NICOTINE)])
    plain = compiled(tmp_path, [clause("C-1", NICOTINE)], fold=False)
    assert folded_clauses(program) == {"C-1"}
    for facts in NICOTINE_FACTS:
        folded, reference = run(Compiled(program), facts), run(Compiled(plain), facts)
        assert truths(folded) == truths(reference), facts
        # the folded rules record the evidence path: the same values as the per-node rules
        assert folded.values, facts
        for key, emitted in folded.values.items():
            assert emitted.fact["v"] == reference.values[key].fact["v"], (key, facts)
    assert status_firings(program, []) == 1
    # no rule both asks for no nicotine fact and reads one
    for rule in program.rules:
        negated = {p.alias for p in rule.patterns if p.negated and p.test == Eq("t", "nicotine")}
        if negated:
            assert not [p for p in rule.patterns if not p.negated and "nicotine" in str(p.test)]


def test_a_leaf_read_only_positively_has_no_check_rule_and_still_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = {"fact": "nicotine", "field": "status", "equals": "current"}
    program = compiled(tmp_path, [clause("C-1", tree)])
    assert not [r for r in program.rules if isinstance(r.action, EmitMissing) and r.action.source]
    broken = _broken(tmp_path, monkeypatch, [clause("C-1", tree)], ("status", "current"))
    with pytest.raises(EngineError) as raised:
        run(Compiled(broken), [{"t": "nicotine", "id": "nicotine:1", "status": "current"}])
    assert raised.value.code == "engine_incomplete"
    assert "node `C-1:requires` got no value" in str(raised.value)


def test_a_leaf_read_through_a_negated_test_keeps_its_check_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`applies_when` is read as "no diabetes fact that is not diabetic" (applicable when true
    or unknown): a fact passing none of its tests would satisfy that."""
    diabetes = clause(
        "C-1",
        {"fact": "nicotine", "field": "status", "equals": "never"},
        applies_when={"fact": "diabetes", "field": "diabetic", "equals": True},
    )
    program = compiled(tmp_path, [diabetes])
    checks = [r for r in program.rules if isinstance(r.action, EmitMissing) and r.action.source]
    assert [r.action.node for r in checks if isinstance(r.action, EmitMissing)] == [
        "C-1:applies_when"
    ]
    broken = _broken(tmp_path, monkeypatch, [diabetes], ("diabetic", True))
    facts = [
        {"t": "diabetes", "id": "diabetes:1", "diabetic": True},
        {"t": "nicotine", "id": "nicotine:1", "status": "never"},
    ]
    with pytest.raises(EngineError) as raised:
        run(Compiled(broken), facts)
    assert raised.value.code == "engine_incomplete"
    assert "got no value for fact `diabetes:1`" in str(raised.value)


def _broken(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clauses: list[dict[str, Any]],
    equal: tuple[str, object],
) -> Program:
    """The clauses compiled with the equality test `equal` made to match nothing."""
    original = ruleset.render_test

    def render_test(test: Any) -> dict[str, Any]:
        if isinstance(test, Eq) and (test.field, test.value) == equal:
            return {"$and": [{"t": "__never__"}, original(test)]}
        return original(test)

    monkeypatch.setattr(ruleset, "render_test", render_test)
    return compiled(tmp_path, clauses)


def _parts(test: Any) -> list[Any]:
    inner = getattr(test, "tests", None)
    if inner is None:
        return [test]
    return [p for t in inner for p in _parts(t)]
