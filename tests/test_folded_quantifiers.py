"""Folded quantifiers: an `every` or `some` decided inside its clause's status rules.

Folding reads a quantifier's value from its children's value facts (`folding._quantified`)
instead of asserting it, and a comparison over a type that occurs several times folds on its
own (one firing per deciding fact instead of candidates and their OR). Each new path must keep
the fail-closed guarantee: a child left without a value, a fact passing none of a leaf's
tests, or an empty range nothing decided is an engine error, never a status.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_compiler import Compiled, clause, document, run, truths, write  # type: ignore[import-not-found]
from test_folding import folded_clauses  # type: ignore[import-not-found]

from evaluator.compile import ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import EmitStatus, EmitValue, Eq, Program, Rule
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.conditions import Truth
from evaluator.language.policies import load_policy

F, U, T = Truth.FALSE, Truth.UNKNOWN, Truth.TRUE
SEGMENTS = ("L3-L4", "L4-L5", "L5-S1")
# spondylolisthesis at the fused segment, from the imaging findings named at it (a join)
LISTHESIS = {
    "fact": "imaging_finding",
    "where": {"segment": {"same_as": "seg.segment"}},
    "field": "spondylolisthesis",
    "equals": True,
}


def quantifier(kind: str, **extra: Any) -> dict[str, Any]:
    return {kind: {"fact": "fused_segment", "as": "seg", "require": LISTHESIS, **extra}}


def compiled(tmp_path: Path, tree: dict[str, Any], *, fold: bool = True) -> Program:
    # a name of its own: the engine registers a ruleset once per name, and tests mutate them
    name = f"fq{uuid.uuid4().hex[:12]}"
    path = write(tmp_path, json.dumps(document([clause("C-1", tree)], name)), name)
    program = compile_policy(load_policy(path), fold=fold)
    Engine.get().prepare(program)
    return program


def facts(findings: dict[str, bool | None], segments: int = 2) -> list[dict[str, Any]]:
    """`segments` fused segments and one finding per named segment (None: no field)."""
    out: list[dict[str, Any]] = [
        {"t": "fused_segment", "id": f"seg:{i}", "segment": SEGMENTS[i]} for i in range(segments)
    ]
    for i, (segment, listhesis) in enumerate(findings.items()):
        fact: dict[str, Any] = {"t": "imaging_finding", "id": f"finding:{i}", "segment": segment}
        if listhesis is not None:
            fact["spondylolisthesis"] = listhesis
        out.append(fact)
    return out


def without(program: Program, drop: Callable[[Rule], bool]) -> Program:
    """The program without the rules `drop` selects, registered under a name of its own."""
    kept = tuple(r for r in program.rules if not drop(r))
    assert len(kept) < len(program.rules), "nothing dropped: the test would prove nothing"
    smaller = dataclasses.replace(program, rules=kept, name=f"{program.name}~{uuid.uuid4().hex}")
    Engine.get().prepare(smaller)
    return smaller


CASES = [
    ({"L3-L4": True, "L4-L5": True}, {"every": T, "some": T}),
    ({"L3-L4": True, "L4-L5": False}, {"every": F, "some": T}),
    ({"L3-L4": True, "L4-L5": None}, {"every": U, "some": T}),
    ({"L3-L4": False, "L4-L5": None}, {"every": F, "some": U}),
    ({"L3-L4": False}, {"every": F, "some": U}),  # L4-L5 not named: unknown
    ({"L3-L4": False, "L4-L5": False}, {"every": F, "some": F}),
]


@pytest.mark.parametrize("kind", ["every", "some"])
@pytest.mark.parametrize(("findings", "expected"), CASES)
def test_a_folded_quantifier_decides_as_the_per_node_lowering(
    tmp_path: Path, kind: str, findings: dict[str, bool | None], expected: dict[str, Truth]
) -> None:
    tree = quantifier(kind)
    folded = compiled(tmp_path, tree)
    plain = compiled(tmp_path, tree, fold=False)
    assert folded_clauses(folded) == {"C-1"}
    # the quantifier's own value is no fact: only an empty range's (every) derives one
    own = [
        r for r in folded.rules if isinstance(r.action, EmitValue) and r.origin == "C-1:requires"
    ]
    assert len(own) == (1 if kind == "every" else 0)
    case = facts(findings)
    got, reference = run(Compiled(folded), case), run(Compiled(plain), case)
    assert truths(got) == truths(reference) == {"C-1": expected[kind]}
    # evidence reads the same values: the quantifier's (a record) and each child's (facts)
    assert got.value("C-1:requires") is expected[kind]
    for i in range(2):
        key = (f"seg:{i}",)
        assert got.value("C-1:requires/0", key) is reference.value("C-1:requires/0", key)
    # one firing per segment, one status (more only for several deciding members), the verdict
    assert got.firings < reference.firings
    assert folded.stages < plain.stages


@pytest.mark.parametrize(("if_empty", "expected"), [(None, U), ("true", T), ("false", F)])
def test_an_empty_range_takes_if_empty(
    tmp_path: Path, if_empty: str | None, expected: Truth
) -> None:
    tree = quantifier("every", **({"if_empty": if_empty} if if_empty else {}))
    program = compiled(tmp_path, tree)
    trace = run(Compiled(program), facts({}, segments=0))
    assert truths(trace) == {"C-1": expected}
    assert truths(run(Compiled(program), facts({"L3-L4": True}, segments=1))) == {"C-1": T}


@pytest.mark.parametrize("kind", ["every", "some"])
def test_a_child_left_without_a_value_is_an_engine_error(tmp_path: Path, kind: str) -> None:
    """Without the rule deriving a child's value for a segment no finding names, the status
    rules would read that child as neither false nor unknown (every: met; some: not met):
    the child's missing-value rule fails the evaluation instead."""
    program = compiled(tmp_path, quantifier(kind))

    def absent_rule(rule: Rule) -> bool:
        action = rule.action
        return (
            isinstance(action, EmitValue) and action.node == "C-1:requires/0" and not action.records
        )

    broken = without(program, absent_rule)
    # a segment with a finding still decides (the broken rule is not needed there)
    assert truths(run(Compiled(broken), facts({"L3-L4": True, "L4-L5": True}))) == {"C-1": T}
    with pytest.raises(EngineError) as raised:
        run(Compiled(broken), facts({"L3-L4": True}))
    assert raised.value.code == "engine_incomplete"
    assert "node `C-1:requires/0` got no value with seg=seg:1" in str(raised.value)


@pytest.mark.parametrize("if_empty", [None, "false"])
def test_an_empty_range_nothing_decided_is_an_engine_error(
    tmp_path: Path, if_empty: str | None
) -> None:
    """Without the empty range's value fact no status rule matches a case without segments
    (unless `if_empty: true`, which the negations give): the clause's rule fails."""
    tree = quantifier("every", **({"if_empty": if_empty} if if_empty else {}))
    program = compiled(tmp_path, tree)

    def empty_rule(rule: Rule) -> bool:
        return isinstance(rule.action, EmitValue) and rule.action.node == "C-1:requires"

    broken = without(program, empty_rule)
    with pytest.raises(EngineError) as raised:
        run(Compiled(broken), facts({}, segments=0))
    assert raised.value.code == "engine_incomplete"
    assert "node `C-1:requires` got no value" in str(raised.value)


def test_a_status_rule_without_its_quantifier_is_an_engine_error(tmp_path: Path) -> None:
    """The status rules of a folded quantifier are the only ones deciding the clause."""
    program = compiled(tmp_path, quantifier("every"))
    broken = without(
        program,
        lambda r: isinstance(r.action, EmitStatus) and r.action.status.value == "not_met",
    )
    with pytest.raises(EngineError) as raised:
        run(Compiled(broken), facts({"L3-L4": False, "L4-L5": True}))
    assert "node `C-1:requires` got no value" in str(raised.value)


def test_a_folded_comparison_whose_fact_passes_no_test_is_an_engine_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison inside the quantifier folds on its own: it reads "a true finding" and
    "no true finding" at the segment, so a finding passing none of its tests must fail the
    evaluation rather than read as absent."""
    original = ruleset.render_test

    def render_test(test: Any) -> dict[str, Any]:
        if isinstance(test, Eq) and (test.field, test.value) == ("spondylolisthesis", True):
            return {"$and": [{"t": "__never__"}, original(test)]}
        return original(test)

    monkeypatch.setattr(ruleset, "render_test", render_test)
    program = compiled(tmp_path, quantifier("some"))
    folded = {r.action.node for r in program.rules if isinstance(r.action, EmitValue)}
    assert folded == {"C-1:requires/0"}
    with pytest.raises(EngineError) as raised:
        run(Compiled(program), facts({"L3-L4": True, "L4-L5": False}))
    assert raised.value.code == "engine_incomplete"
    assert "got no value for fact `finding:0`" in str(raised.value)
