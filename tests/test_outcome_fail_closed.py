"""Each clause's outcome plan (`_ClausePlan.outcome`, `_Outcome.deciding`) fails closed
(issue 10 review): a status the engine did not derive, one it could not have said, or the
deciding node of a clause not applicable taken away, and assembly and the verdict both refuse:
never a status or a decision made up by default.
"""

from __future__ import annotations

from collections.abc import Callable

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
