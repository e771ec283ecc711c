"""Decision assembly from a per-program plan (issue 10) gives what was recorded in
tests/golden/digests/assembly-*.json: the same Decision on every example and on generated
bench cases, and on a trace with any node value, clause status, candidate or the verdict taken
away, or a status or value the engine could not have said, the same EngineError (or the same
refusal); `decision.verdict` the same determination or error. The records were first written
by the assembly before the plan (a verbatim copy of it served as the oracle until they
matched); `pytest --update-golden` rewrites them, and a mismatch prints each changed input's
name and its new output in full, to be judged by hand before the new digests are committed.
The mutilated traces' records were rewritten once since, for a stricter refusal (s18 review): a
status no clause can have, or not applicable said of a clause nothing could make so (no
applicability test, its waiver missing or not true), is an engine error where the old code
raised a ValueError or assembled a decision; every other outcome was left as the old code's.
And once more (stop 19) for a node value or candidate that is not false, unknown or true (7):
an engine error naming the node from both, where assembly raised a KeyError or skipped the value
and the verdict accepted the trace; only the `value 7` mutilations changed.

Fail closed: a trace missing what assembly reads is an engine error, never a status; each
mutation below must make at least one of them (counted), so the comparison cannot pass by never
reaching an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.decide import decision
from evaluator.engine.durable import Emitted, Trace
from evaluator.language.conditions import Truth
from evaluator.language.policies import Library
from tests.engine_runs import Run, changed, runs
from tests.test_assembly import POLICIES, bench_cases
from tests.test_normalise_identity import check_recorded, differences, recorded, sha256

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


@pytest.fixture(scope="module")
def bench_runs() -> list[Run]:
    library = Library(POLICIES)
    return list(runs((case, library) for case in bench_cases(150, seed=20250620)))


def _outcome(call: Callable[[], Any]) -> Any:
    """What a call gives: its result, or its exception's type and message."""
    try:
        return call()
    except Exception as error:  # compared, whatever it is
        return (type(error).__name__, str(error))


def _assembled(run: Run, trace: Trace) -> Any:
    """What assembly makes of a trace: the Decision, or the exception's type and message."""
    _, case, policy, program, facts, _ = run
    conflicts = [{"fact": "x", "field": "y", "values": "1, 2", "reason": "disagree"}]
    return _outcome(
        lambda: decision.assemble(policy, program, trace, case.case_id, facts, conflicts)
    )


def _verdict(run: Run, trace: Trace) -> Any:
    _, _, policy, program, _, _ = run
    return _outcome(lambda: decision.verdict(policy, program, trace))


def _said(emitted: Emitted, **fields: Any) -> Emitted:
    return Emitted({**emitted.fact, **fields}, emitted.rule, emitted.matched)


def _mutilated(trace: Trace) -> Iterator[tuple[str, Trace]]:
    """The trace with one thing the engine derived taken away, or said wrongly."""
    yield "no verdict", changed(trace, verdict=None)
    for clause, emitted in trace.statuses.items():
        rest = {k: v for k, v in trace.statuses.items() if k != clause}
        yield f"no status of {clause}", changed(trace, statuses=rest)
        wrong = {**trace.statuses, clause: _said(emitted, status="maybe")}
        yield f"status `maybe` of {clause}", changed(trace, statuses=wrong)
        for status in ("met", "not_met", "not_documented", "not_applicable"):
            other = {**trace.statuses, clause: _said(emitted, status=status)}
            yield f"status {status} of {clause}", changed(trace, statuses=other)
    for key, emitted in trace.values.items():
        rest_values = {k: v for k, v in trace.values.items() if k != key}
        yield f"no value of {key}", changed(trace, values=rest_values)
        for said in (0, 1, 2, 7):
            if said != emitted.fact["v"]:
                other_values = {**trace.values, key: _said(emitted, v=said)}
                yield f"value {said} of {key}", changed(trace, values=other_values)
    for i in range(len(trace.candidates)):
        yield (
            f"no candidate {i}",
            changed(trace, candidates=trace.candidates[:i] + trace.candidates[i + 1 :]),
        )
    if trace.derived:
        yield "no derived facts", changed(trace, derived=[])


def _mutilated_outcomes(runs: list[Run]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Each run's mutilated traces' assembly and verdict, by name, and how many were refused
    how."""
    found: dict[str, dict[str, Any]] = {}
    counts = {"traces": 0, "engine errors": 0, "other refusals": 0}
    for run in runs:
        name, *_, trace = run
        for what, broken in _mutilated(trace):
            assembled = _assembled(run, broken)
            verdict = _verdict(run, broken)
            found.setdefault(name, {})[what] = (assembled, verdict)
            counts["traces"] += 1
            if isinstance(assembled, tuple):
                counts["engine errors" if assembled[0] == "EngineError" else "other refusals"] += 1
    return found, counts


def _check_assembled(name: str, judged: list[Run], update: bool) -> None:
    """Each run's whole trace assembles, its verdict the same determination, as recorded in
    `name`."""
    found = {}
    for run in judged:
        assembled = _assembled(run, run[-1])
        assert not isinstance(assembled, tuple), f"{run[0]}: {assembled}"
        assert _verdict(run, run[-1]) is assembled.determination, run[0]
        found[run[0]] = assembled
    check_recorded(name, found, update)


def test_every_example_assembles_as_recorded(example_runs: list[Run], update_golden: bool) -> None:
    assert len(example_runs) >= len(EXAMPLES)
    _check_assembled("assembly-examples", example_runs, update_golden)


def _check_mutilated(name: str, outputs: dict[str, dict[str, Any]], update: bool) -> None:
    """As `check_recorded`, with a run's many mutilations in one line: a short digest of each
    mutilation's name and outcome, in the order `_mutilated` makes them (a full digest each
    would make a record of megabytes)."""

    def short(what: str, outcome: Any) -> str:
        return sha256((what, outcome))[:8]

    got = {
        run: " ".join(short(what, outcome) for what, outcome in each.items())
        for run, each in outputs.items()
    }
    want = recorded(name, got, update)
    changed = {}
    for run in sorted(got):
        if got[run] != want.get(run):
            before = want.get(run, "").split()
            for i, (what, outcome) in enumerate(outputs[run].items()):
                if i >= len(before) or before[i] != short(what, outcome):
                    changed[f"{run} with {what}"] = outcome
    gone = sorted(want.keys() - got.keys())
    assert not [*changed, *gone], differences(name, changed, gone)


def test_generated_bench_cases_assemble_as_recorded(
    bench_runs: list[Run], update_golden: bool
) -> None:
    _check_assembled("assembly-bench", bench_runs, update_golden)


def test_every_example_trace_mutilated_is_refused_as_recorded(
    example_runs: list[Run], update_golden: bool
) -> None:
    found, counts = _mutilated_outcomes(example_runs)
    # every clause's missing status and the missing verdict are errors, at least
    least = sum(len(run[2].clauses) + 1 for run in example_runs)
    assert counts["engine errors"] >= least, counts
    _check_mutilated("assembly-examples-mutilated", found, update_golden)


def test_bench_traces_mutilated_are_refused_as_recorded(
    bench_runs: list[Run], update_golden: bool
) -> None:
    found, counts = _mutilated_outcomes(bench_runs[:40])
    assert counts["engine errors"] >= sum(len(run[2].clauses) + 1 for run in bench_runs[:40])
    # a status or value no engine says is an engine error too, never an internal one
    assert counts["other refusals"] == 0, counts
    _check_mutilated("assembly-bench-mutilated", found, update_golden)


def test_a_missing_deciding_value_is_an_engine_error_never_a_status(
    example_runs: list[Run],
) -> None:
    # Each clause's deciding node, with its value taken away: an engine error, from both
    # assemble and verdict (the one mechanism `_ClausePlan.outcome` / `_Outcome.deciding`).
    checked = 0
    for run in example_runs:
        name, _, policy, program, _, trace = run
        for clause in policy.clauses:
            node = program.clauses[clause.id].requires
            status = trace.statuses[clause.id].fact["status"]
            if (node, ()) not in trace.values or status == "not_applicable":
                continue
            rest = {k: v for k, v in trace.values.items() if k != (node, ())}
            broken = changed(trace, values=rest)
            new = _assembled(run, broken)
            assert new == ("EngineError", f"no value was derived for `{node}`"), name
            assert _verdict(run, broken) == new, name
            checked += 1
    assert checked >= len(example_runs)


def test_the_slot_builders_give_what_the_constructors_give() -> None:
    view = decision.FactView("nicotine", "nicotine:1", (("status", "former"),), "note:2")
    evidence = decision.Evidence("x is y", Truth.FALSE, (("seg", "L4-L5"),), (view,))
    built = decision._evidence("x is y", Truth.FALSE, (("seg", "L4-L5"),), (view,), None, ())
    assert built == evidence
    assert repr(built) == repr(evidence)
    assert hash(built) == hash(evidence)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.value = Truth.TRUE  # type: ignore[misc]
    # a builder names every field in order, or the module does not load
    with pytest.raises(TypeError, match="fields"):
        decision._slots(decision.FactView, "id", "type", "values", "source")
    with pytest.raises(TypeError, match="fields"):
        decision._slots(decision.FactView, "type", "id", "values")
