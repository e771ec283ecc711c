"""durable_rules' error 303 (ERR_MAX_STACK_SIZE): refused when the policy is compiled.

durable_rules matches a fact by walking its alpha network depth first with a stack of 64
pending tests (events.c `handleAlpha`); a ruleset in which one fact can have more pending fails
every assert of such a fact with error 303, at evaluation only. `ruleset.alpha_stack` rebuilds
the network as rete.c does and bounds that stack; `render` refuses a program past 64 with an
`engine_limit` problem. These tests tie the bound to the engine at its edge, show a refused
policy really fails in the engine, and show the shipped policies well inside it. On 150
generated policies (tests/test_fuzz_policies.py's generator) rendered the old way, every one
the engine refused with error 303 was bounded at 69 or more, every one it ran at 60 or less.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import durable_rules_engine as dre
import pytest
from test_compiler import BASE_FACTS, clause, document, write  # type: ignore[import-not-found]
from test_folding import folded_clauses  # type: ignore[import-not-found]
from test_nesting import SHAPES, _facts, _shape  # type: ignore[import-not-found]

from evaluator import api
from evaluator.compile import compiler, ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import Eq, Join
from evaluator.compile.ruleset import MAX_ALPHA_STACK, alpha_stack, render
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError, PolicyError
from evaluator.language.conditions import Truth
from evaluator.language.policies import Library, load_policy

CATCH_ALL = {"all": [{"m": {"$ex": {"t": 1}}}, {"n": {"t": "__never__"}}]}


def _joins(count: int) -> dict[str, Any]:
    """`count` rules whose second pattern joins a fact of type x: durable_rules never shares a
    join node, so an x fact enters `count` nodes at once."""
    rule = {"all": [{"a": {"t": "a"}}, {"x": {"$and": [{"t": "x"}, {"k": {"a": "key"}}]}}]}
    definition: dict[str, Any] = {f"r{i}": {**rule, "dist": 0} for i in range(count)}
    definition["catch_all"] = CATCH_ALL
    return definition


def _assert_one_fact(definition: dict[str, Any]) -> str:
    handle = dre.create_ruleset(f"stack-{uuid.uuid4().hex[:8]}", json.dumps(definition))
    facts = [{"sid": "1", "id": "a1", "t": "a", "key": "1"}, {"sid": "1", "id": "x1", "t": "x"}]
    facts[1]["k"] = "1"
    try:
        dre.assert_facts(handle, json.dumps(facts))
    except Exception as error:  # the extension raises its own bare error type
        return str(error)
    # no delete_state: it can abort on a raw session (durable-rules.md trap 20)
    return "ok"


def test_the_bound_meets_the_engine_at_its_edge() -> None:
    """63 join nodes under one test run and are within the bound; 65 fail with error 303 and are
    past it. (64 run too: the bound counts the catch-all's test beside them, which the engine
    happens to walk first; it may refuse one more than needed, never one fewer.)"""
    assert alpha_stack(_joins(63)) <= MAX_ALPHA_STACK
    assert _assert_one_fact(_joins(63)) == "ok"
    assert alpha_stack(_joins(65)) > MAX_ALPHA_STACK
    assert "error code: 303" in _assert_one_fact(_joins(65))


def _joins_first(test: Any, lane: int) -> dict[str, Any]:
    """How patterns were rendered before: type, lane, every join, then the other tests."""
    parts = ruleset._flatten(test)
    kind = [t for t in parts if isinstance(t, Eq) and t.field == "t"][:1]
    joins = [t for t in parts if isinstance(t, Join)]
    rest = [t for t in parts if t not in kind and not isinstance(t, Join)]
    ordered = [*kind, *joins, *rest]
    lane_test = {"$nex": {f"_lane{lane}": 1}}
    tests = [ruleset.render_test(t) for t in ordered]
    return {"$and": [tests[0], lane_test, *tests[1:]]}


@pytest.fixture
def shapes_joins_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tests/test_nesting.py's eight nesting shapes in one policy, rendered with the joins
    first: the ruleset in which durable_rules refused a single fused segment with error 303
    (compiled per node: folded, the same shapes need fewer tests per fact)."""
    monkeypatch.setattr(ruleset, "_with_lane", _joins_first)
    clauses = [clause(cid, _shape(*shape)) for cid, shape in SHAPES.items()]
    path: Path = write(tmp_path, json.dumps(document(clauses, "all-shapes")), "all-shapes")
    return path


def test_a_policy_past_the_bound_is_refused_when_compiled(shapes_joins_first: Path) -> None:
    with pytest.raises(PolicyError) as raised:
        compile_policy(load_policy(shapes_joins_first), fold=False)
    (problem,) = raised.value.problems
    assert problem.code == "engine_limit"
    assert f"it allows {MAX_ALPHA_STACK}, error 303" in problem.message


def test_the_refused_policy_really_fails_in_the_engine(
    shapes_joins_first: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal is not a false alarm: with the check lifted, the same policy compiles and
    the engine fails on one fact with error 303 (an engine error, never a determination, but
    only at evaluation)."""
    monkeypatch.setattr(ruleset, "MAX_ALPHA_STACK", 10**6)
    program = compile_policy(load_policy(shapes_joins_first), fold=False)
    assert alpha_stack(render(program)) > MAX_ALPHA_STACK
    with pytest.raises(EngineError, match="error code: 303"):
        Engine.get().run(program, [*BASE_FACTS, *_facts([Truth.TRUE])])


@pytest.mark.parametrize("policy", [p.ref for p in Library().all()])
def test_the_shipped_policies_are_well_inside_the_bound(policy: str) -> None:
    """Joins used to come before equality tests: lumbar-fusion reached 56 and si-joint-fusion
    61 of the 64; behind the equality tests they need 21 and 37. Folded whole, lumbar-fusion
    needed 58/49/49 (2024.1/2025.1/2026.1); the compiler hands back to the per-node lowering
    the folds past this margin (`compiler.FOLD_STACK_MARGIN`): 35/41/34."""
    program = api.program_for(Library().get(policy))
    assert alpha_stack(render(program)) <= MAX_ALPHA_STACK - 20


@pytest.mark.parametrize(("limit", "margin"), [(40, 20), (18, 0)])
def test_folds_past_the_budget_go_back_to_the_per_node_lowering(
    limit: int, margin: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folded whole, lumbar-fusion@2024.1 needs 58 pending tests per fact, per node 17. Under a
    lower limit the folded program would be refused (error 303): the compiler hands folds back
    to the per-node lowering, one at a time, until the program fits the limit less the margin,
    and keeps folding the clauses that fit (18 with no margin: nearly every fold goes back)."""
    monkeypatch.setattr(ruleset, "MAX_ALPHA_STACK", limit)
    monkeypatch.setattr(compiler, "FOLD_STACK_MARGIN", margin)
    policy = Library().get("lumbar-fusion@2024.1")
    program = compile_policy(policy)
    assert alpha_stack(render(program)) <= limit - margin
    assert not program.name.endswith("~unfolded")
    if limit == 40:
        # measured: LF-NICOTINE and LF-DEFORMITY-SIGNIFICANT no longer fit whole beside the
        # folded quantifiers, only parts of them do (LF-IMAGING-CORRELATION, folded, would
        # fire per pair of lines: compiler._products); since the folds are chosen on the
        # shaped program (compile/shaping.py), LF-DIABETES goes back too under this budget
        # (the real one folds all seven: shaping lowered the bound from 55 to 38)
        assert folded_clauses(program) >= {
            "LF-CONSERVATIVE-DURATION",
            "LF-INSTABILITY",
            "LF-SI-FIXATION",
            "LF-URGENT",
        }


def test_a_policy_the_per_node_lowering_cannot_run_is_still_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below the per-node program's 17 nothing is left to hand back: the limit is reported."""
    monkeypatch.setattr(ruleset, "MAX_ALPHA_STACK", 16)
    with pytest.raises(PolicyError) as raised:
        compile_policy(Library().get("lumbar-fusion@2024.1"))
    (problem,) = raised.value.problems
    assert problem.code == "engine_limit"


def _alternatives_in_a_row(groups: int) -> dict[str, Any]:
    """One pattern of `groups` two-way alternatives in a row: each group's alternatives meet
    in one forward node, so the network reaches the last test along 2^groups paths."""
    tests = [{"$or": [{f"p{i}": "a"}, {f"q{i}": "b"}]} for i in range(groups)]
    return {"r": {"all": [{"m": {"$and": [{"t": "x"}, *tests]}}]}, "catch_all": CATCH_ALL}


def test_the_bound_visits_each_node_of_the_network_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found at stop 25: the bound walked the network as a tree, 2^n calls for n alternatives
    in a row in one pattern (35 ran for more than ten minutes): a policy with many `any` in one
    test would hang `render`, lint and `necessity check`."""
    calls = 0
    original = ruleset._pending

    def counted(*args: Any) -> int:
        nonlocal calls
        calls += 1
        return original(*args)

    monkeypatch.setattr(ruleset, "_pending", counted)
    bound = alpha_stack(_alternatives_in_a_row(14))
    assert calls <= 8 * 14  # a few nodes a group, each worked out once (2^14 walked as a tree)
    assert bound == 16  # one pending alternative a group, the type test and the catch-all's
