"""The engine runs the assembly tests judge (test_assembly_plan, test_referenced_verdict,
test_outcome_fail_closed): each case's governing policies, with the facts each sees and the
engine's trace. Made when a test asks (the `example_runs` fixture, tests/conftest.py), never at
import, so collecting the tests runs no engine."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

from evaluator import api
from evaluator.case.cases import Case
from evaluator.compile.program import Program
from evaluator.engine.durable import Engine, Trace
from evaluator.language.model import Policy
from evaluator.language.policies import Library

# (case_id/policy id, case, effective policy, its program, the facts it saw, the trace)
Run = tuple[str, Case, Policy, Program, list[dict[str, Any]], Trace]


# (case_id/policy id, case, effective policy, its program, the facts it sees)
Governed = tuple[str, Case, Policy, Program, list[dict[str, Any]]]


def governed(judged: Iterable[tuple[Case, Library]]) -> Iterator[Governed]:
    """Each case's governing policies (each version once) with the facts they see, the
    referenced policies' results among them, as `api` gives them to the engine."""
    for case, library in judged:
        for policy in {p.ref: p for p in api._governing(case, library).values() if p}.values():
            effective = api.with_plan(case, policy)
            program = api.program_for(effective)
            seen = api.facts_for(case, effective)
            chain = (effective.id,)
            facts = [*seen, *api._policy_results(case, effective, program, seen, chain)]
            yield f"{case.case_id}/{policy.id}", case, effective, program, facts


def runs(judged: Iterable[tuple[Case, Library]]) -> Iterator[Run]:
    """`governed`, with the engine's trace of each."""
    for label, case, effective, program, facts in governed(judged):
        yield label, case, effective, program, facts, Engine.get().run(program, facts)


def changed(trace: Trace, **changes: Any) -> Trace:
    """A shallow copy of the trace with some attributes replaced: the runs are shared by every
    test of the session, so none may change a trace in place."""
    copied = copy.copy(trace)
    for name, value in changes.items():
        setattr(copied, name, value)
    return copied
