"""A referenced policy's determination is read from the engine's verdict, checked as a decision's
assembly checks it, without assembling the decision nobody reads (issue 10).

`decision.verdict` must accept exactly the traces `decision.assemble` accepts, with the same
determination, and refuse the others with the same EngineError: checked on every example's
traces, whole and with each clause status, each deciding value or the verdict taken away. And
end to end: a referenced policy whose trace lacks a clause status or a deciding value is an
engine error for the referring policy, never a determination.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case import cases
from evaluator.compile.program import Program
from evaluator.decide import decision
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import EngineError
from evaluator.language.model import Determination, Policy
from evaluator.language.policies import Library
from tests.engine_runs import Run, changed

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"


def _assembled(run: Run, trace: Trace) -> Determination:
    _, case, policy, program, facts, _ = run
    return decision.assemble(policy, program, trace, case.case_id, facts).determination


def _outcome(call: Any) -> str:
    try:
        return str(call().value)
    except EngineError as error:
        return f"EngineError: {error}"


def test_every_example_gives_the_assembled_determination(example_runs: list[Run]) -> None:
    assert len(example_runs) >= len(EXAMPLES)
    for run in example_runs:
        name, _, policy, program, _, trace = run
        assert decision.verdict(policy, program, trace) is _assembled(run, trace), name


def _mutilated(trace: Trace, policy: Policy, program: Program) -> Iterator[tuple[str, Trace]]:
    """The trace with one thing the engine derived taken away: the verdict, a clause status,
    or the value of the node that decided a clause."""
    yield "verdict", changed(trace, verdict=None)
    for clause in policy.clauses:
        statuses = {k: v for k, v in trace.statuses.items() if k != clause.id}
        yield f"status of {clause.id}", changed(trace, statuses=statuses)
        nodes = program.clauses[clause.id]
        for node in {nodes.requires, nodes.applies, nodes.waiver} - {None}:
            if (node, ()) in trace.values:
                values = {k: v for k, v in trace.values.items() if k != (node, ())}
                yield f"value of {node}", changed(trace, values=values)


def test_a_trace_missing_anything_is_refused_as_assembly_refuses_it(
    example_runs: list[Run],
) -> None:
    refused = 0
    for run in example_runs:
        name, _, policy, program, _, trace = run
        for what, broken in _mutilated(trace, policy, program):
            want = _outcome(lambda r=run, b=broken: _assembled(r, b))
            got = _outcome(lambda p=policy, g=program, b=broken: decision.verdict(p, g, b))
            assert got == want, f"{name} without the {what}"
            refused += want.startswith("EngineError")
    # every clause's status and the verdict, at least: the check has something to catch
    assert refused >= sum(len(run[2].clauses) + 1 for run in example_runs)


@pytest.mark.parametrize("drop", ["status", "value", "verdict"])
def test_a_referenced_policy_the_engine_did_not_decide_is_no_decision(
    drop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The founding case's fusion policy reads the SI-joint policy's determination.
    case = cases.load_case(FOUNDING)
    library = Library()
    fusion = library.get("lumbar-fusion", case.in_force_date)
    referenced = api.program_for(library.get("si-joint-fusion", case.in_force_date))
    run = Engine.run
    broke: list[str] = []

    def derived_less(self: Engine, program: Program, facts: Any, **options: Any) -> Trace:
        trace = run(self, program, facts, **options)
        if program.name != referenced.name:
            return trace
        if drop == "verdict":
            trace.verdict = None
        elif drop == "status":
            gone = next(iter(trace.statuses))
            del trace.statuses[gone]
        else:
            # the deciding value of a clause the engine found applicable
            applicable = [
                c for c, s in trace.statuses.items() if s.fact["status"] != "not_applicable"
            ]
            node = next(
                program.clauses[c].requires
                for c in applicable
                if (program.clauses[c].requires, ()) in trace.values
            )
            del trace.values[(node, ())]
        broke.append(drop)
        return trace

    monkeypatch.setattr(Engine, "run", derived_less)
    with pytest.raises(EngineError, match=r"no (status|value|determination)"):
        api.evaluate(case, fusion)
    assert broke  # the referenced policy was run, and broken


def test_the_referenced_determination_reaches_the_referring_policy() -> None:
    # the fact the referring session gets carries the verdict the referenced run derived
    case = cases.load_case(FOUNDING)
    library = Library()
    fusion = api.with_plan(case, library.get("lumbar-fusion", case.in_force_date))
    si = api.with_plan(case, library.get("si-joint-fusion", case.in_force_date))
    seen = api.facts_for(case, fusion)
    (fact,) = api._policy_results(case, fusion, api.program_for(fusion), seen, (fusion.id,))
    whole = api._evaluate(case, si, seen, (fusion.id,), explain=False, alternative=False)
    assert fact["determination"] == whole.determination.value
    assert fact["version"] == si.version
    assert json.dumps(fact, sort_keys=True)  # plain data, as every fact
