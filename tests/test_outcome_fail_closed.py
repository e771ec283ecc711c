"""Each clause's outcome plan (`_ClausePlan.outcome`, `_Outcome.deciding`) fails closed
(issue 10 review): a status the engine did not derive, one it could not have said, or the
deciding node of a clause not applicable taken away, and assembly and the verdict both refuse:
never a status or a decision made up by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from evaluator.decide import decision
from evaluator.engine.durable import Emitted, Trace
from evaluator.errors import EngineError
from evaluator.language.conditions import Truth
from tests.engine_runs import Run, changed


def _refusals(run: Run, trace: Trace) -> list[Exception]:
    """What assemble and verdict raise on the trace (failing the test if either gives one)."""
    _, _, policy, program, facts, _ = run
    calls: list[Callable[[], object]] = [
        lambda: decision.assemble(policy, program, trace, "c", facts, []),
        lambda: decision.verdict(policy, program, trace),
    ]
    raised = []
    for call in calls:
        with pytest.raises(Exception) as caught:  # noqa: PT011  (told apart by the caller)
            call()
        raised.append(caught.value)
    return raised


def test_a_clause_without_a_status_is_an_engine_error(example_runs: list[Run]) -> None:
    for run in example_runs:
        trace = run[-1]
        for clause in trace.statuses:
            rest = {k: v for k, v in trace.statuses.items() if k != clause}
            for error in _refusals(run, changed(trace, statuses=rest)):
                assert isinstance(error, EngineError), (run[0], clause)
                assert f"no status was derived for `{clause}`" in str(error)


def test_a_status_no_clause_can_have_is_refused(example_runs: list[Run]) -> None:
    for run in example_runs[:5]:
        trace = run[-1]
        for clause, emitted in trace.statuses.items():
            said = Emitted({**emitted.fact, "status": "maybe"}, emitted.rule, emitted.matched)
            wrong = {**trace.statuses, clause: said}
            for error in _refusals(run, changed(trace, statuses=wrong)):
                assert isinstance(error, EngineError), (run[0], clause)
                assert f"the status derived for `{clause}` is not one: 'maybe'" in str(error)


def test_a_clause_not_applicable_without_its_deciding_value_is_an_engine_error(
    example_runs: list[Run],
) -> None:
    """The applicability test decides a clause not applicable (unless a waiver held): with its
    value taken away, both refuse, as for a requirement (tests/test_assembly_plan.py)."""
    checked = 0
    for run in example_runs:
        _, _, policy, program, _, trace = run
        for clause in policy.clauses:
            if trace.statuses[clause.id].fact["status"] != "not_applicable":
                continue
            nodes = program.clauses[clause.id]
            waiver = trace.values.get((nodes.waiver, ())) if nodes.waiver else None
            if waiver is not None and waiver.fact["v"] == Truth.TRUE:
                decider = nodes.waiver
            else:
                decider = nodes.applies
            assert decider, (run[0], clause.id)  # not applicable: something decided it
            rest = {k: v for k, v in trace.values.items() if k != (decider, ())}
            for error in _refusals(run, changed(trace, values=rest)):
                assert isinstance(error, EngineError), (run[0], clause.id)
                assert f"no value was derived for `{decider}`" in str(error)
            checked += 1
    assert checked >= 3


def test_a_clause_only_a_waiver_makes_not_applicable_needs_the_waiver_true(
    example_runs: list[Run],
) -> None:
    """A clause with no applicability test is not applicable only by its waiver: said false or
    unknown, it is an engine error, never a clause not applicable with no evidence."""
    checked = 0
    for run in example_runs:
        _, _, policy, program, _, trace = run
        for clause in policy.clauses:
            nodes = program.clauses[clause.id]
            status = trace.statuses[clause.id].fact["status"]
            if status != "not_applicable" or nodes.applies or not nodes.waiver:
                continue
            held = trace.values[(nodes.waiver, ())]
            for said in (Truth.FALSE, Truth.UNKNOWN):
                other = Emitted({**held.fact, "v": said}, held.rule, held.matched)
                broken = changed(trace, values={**trace.values, (nodes.waiver, ()): other})
                for error in _refusals(run, broken):
                    assert isinstance(error, EngineError), (run[0], clause.id)
                    assert f"`{nodes.waiver}` did not hold" in str(error)
            checked += 1
    assert checked >= 3


def _kleene_damaged(trace: Trace, key: tuple[str, tuple[str, ...]], said: Any) -> Trace:
    held = trace.values[key]
    other = Emitted({**held.fact, "v": said}, held.rule, held.matched)
    return changed(trace, values={**trace.values, key: other})


def test_a_deciding_value_that_is_not_a_kleene_value_is_an_engine_error_naming_the_node(
    example_runs: list[Run],
) -> None:
    """A damaged trace whose deciding node holds 7 (neither false, unknown nor true): both
    refuse with an engine error naming the node, never an internal error (a KeyError, exit 4 as
    a crash) and never a determination (the verdict used to read only that a value was there)."""
    checked = 0
    for run, clause, decider in _deciders(example_runs):
        for said in (7, -1, "2", None):
            for error in _refusals(run, _kleene_damaged(run[-1], (decider, ()), said)):
                assert isinstance(error, EngineError), (run[0], clause, said, error)
                assert f"`{decider}`" in str(error), (run[0], clause, str(error))
                assert "not false, unknown or true" in str(error), str(error)
            checked += 1
    assert checked >= 4 * len(example_runs)


def test_a_value_equal_to_a_kleene_value_but_not_an_int_is_an_engine_error(
    example_runs: list[Run],
) -> None:
    """True, False and 2.0 hash and compare as 1, 0 and 2 (a set or dict lookup takes them
    for a Kleene value): a damaged trace saying them is refused like 7, never read as true,
    unknown or false."""
    checked = 0
    for run, _clause, decider in _deciders(example_runs):
        for said in (True, False, 2.0, 0.0):
            for error in _refusals(run, _kleene_damaged(run[-1], (decider, ()), said)):
                assert isinstance(error, EngineError), (run[0], said, error)
                assert f"`{decider}`" in str(error), str(error)
                assert "not false, unknown or true" in str(error), str(error)
            checked += 1
    assert checked >= 4 * len(example_runs)


def _deciders(runs: list[Run]) -> Iterator[tuple[Run, str, str]]:
    """Each run's clauses with the node whose value decided the status the engine derived."""
    for run in runs:
        trace = run[-1]
        for clause, nodes in run[3].clauses.items():
            status = trace.statuses[clause].fact["status"]
            decider = nodes.applies if status == "not_applicable" else nodes.requires
            waiver = trace.values.get((nodes.waiver, ())) if nodes.waiver else None
            if status == "not_applicable" and waiver is not None and waiver.fact["v"] == 2:
                decider = nodes.waiver
            if decider and (decider, ()) in trace.values:
                yield run, clause, decider


def test_any_value_or_candidate_that_is_not_a_kleene_value_is_an_engine_error(
    example_runs: list[Run],
) -> None:
    """Every node value and candidate of the example traces in turn said as 7: assembly and the
    verdict both refuse, naming the node, whether or not the evidence would read it (a child, a
    bound value or a route read as 7 used to be skipped quietly, dropping evidence from a
    decision, while the verdict accepted the trace)."""
    checked = 0
    for run in example_runs[:12]:
        trace = run[-1]
        for key in trace.values:
            for error in _refusals(run, _kleene_damaged(trace, key, 7)):
                assert isinstance(error, EngineError), (run[0], key, error)
                assert f"value derived for `{key[0]}` is not false" in str(error), str(error)
            checked += 1
        for i, cand in enumerate(trace.candidates):
            said = Emitted({**cand.fact, "v": [7]}, cand.rule, cand.matched)
            broken = changed(
                trace, candidates=[*trace.candidates[:i], said, *trace.candidates[i + 1 :]]
            )
            for error in _refusals(run, broken):
                assert isinstance(error, EngineError), (run[0], i, error)
                assert f"`{cand.fact['n']}` is not false" in str(error), str(error)
            checked += 1
    assert checked >= 100
