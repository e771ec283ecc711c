"""Every `Engine.run` has a session of its own (issue 10, stop 18).

Stop 18 tried reusing one session per program for consecutive cases, the previous case's facts
retracted in between: durable_rules then crashed the process (a segfault or an abort inside
`retract_facts` or a later `assert_facts`) in long runs of generated and shipped programs, so
`run` creates and deletes a session per case again. These tests pin that each case runs in a
session of its own and gets the trace it gets alone, whatever ran before it, in any order and
from several threads.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.compile.program import Program
from evaluator.compile.ruleset import projection
from evaluator.engine import durable as engine
from evaluator.engine.durable import Engine, Trace
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


def _derived(trace: Trace) -> tuple[Any, ...]:
    return (
        trace.values,
        trace.candidates,
        trace.derived,
        trace.statuses,
        trace.verdict,
        trace.firings,
    )


def _judged() -> list[tuple[Program, list[dict[str, Any]]]]:
    """Every example case with each policy that judges it, as (program, facts)."""
    library = Library()
    out = []
    for path in EXAMPLES:
        case = load_case(path)
        for policy in library.all():
            if any(api.governs(policy, line) for line in case.lines):
                effective = api.with_plan(case, policy)
                out.append((api.program_for(effective), api.facts_for(case, effective)))
    return out


@pytest.fixture(scope="module")
def judged() -> list[tuple[Program, list[dict[str, Any]]]]:
    return _judged()


@pytest.fixture(scope="module")
def fusion(
    judged: list[tuple[Program, list[dict[str, Any]]]],
) -> tuple[Program, list[dict[str, Any]]]:
    """A fusion example whose policy reads red flags."""
    return next(
        (p, f)
        for p, f in judged
        if p.name.startswith("lumbar-fusion") and projection(p).keeps("red_flag")
    )


def _facts(text: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(text)
    return found


class Sessions:
    """The sid of every session `_Session.run` ran a case in, in order."""

    def __init__(self) -> None:
        self.sids: list[str] = []

    def reused(self) -> bool:
        return len(set(self.sids)) < len(self.sids)


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Sessions:
    seen = Sessions()
    real = engine._Session.run

    def spy(self: engine._Session, facts: Any) -> None:
        seen.sids.append(self.sid)
        real(self, facts)

    monkeypatch.setattr(engine._Session, "run", spy)
    return seen


@pytest.fixture
def fresh_engine() -> Engine:
    return Engine.get()


def test_every_example_run_after_others_derives_what_it_derives_alone(
    judged: list[tuple[Program, list[dict[str, Any]]]], sessions: Sessions
) -> None:
    engine_ = Engine.get()
    alone = [_derived(engine_.run(p, f, trace=True)) for p, f in judged]
    sessions.sids.clear()
    # three rounds, in a different order each, so that each case follows other cases
    for order in (judged, judged[::-1], judged[1::2] + judged[::2]):
        again = {id(f): _derived(engine_.run(p, f)) for p, f in order}
        assert [again[id(f)] for _, f in judged] == alone
    # a session of its own for every run: none is ever reused (the crash above)
    assert len(sessions.sids) == 3 * len(judged)
    assert not sessions.reused()


def test_threads_running_one_program_each_get_their_own_cases(
    judged: list[tuple[Program, list[dict[str, Any]]]],
    fusion: tuple[Program, list[dict[str, Any]]],
) -> None:
    program = fusion[0]
    cases = [f for p, f in judged if p.name == program.name]
    expected = [_derived(Engine.get().run(program, f, trace=True)) for f in cases]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                got = [_derived(Engine.get().run(program, f)) for f in cases]
                assert got == expected
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_threads_reaching_the_left_sessions_limit_together_register_the_program_once_afresh(
    fusion: tuple[Program, list[dict[str, Any]]],
    fresh_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_left_in_place` runs unlocked from any thread: the second of two threads that both
    count the limit finds the handle already dropped by the first. That must not raise (a
    KeyError from `run`'s `finally` would replace the case's own engine error)."""
    program, facts = fusion
    fresh_engine.run(program, facts)
    monkeypatch.setattr(fresh_engine, "_handles", {})  # the first thread dropped it
    monkeypatch.setattr(fresh_engine, "_left", {program.name: Engine.LEFT_SESSIONS_LIMIT - 1})
    fresh_engine._left_in_place(program.name)  # the second thread, counting the same limit
    assert fresh_engine._left[program.name] == 0
    assert _derived(fresh_engine.run(program, facts)) == _derived(
        fresh_engine.run(program, facts, trace=True)
    )
