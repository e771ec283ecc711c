"""Sessions and the cases in them (issue 10, stops 18 and 20).

Stop 18 tried reusing one session per program for consecutive cases, the previous case's facts
retracted in between: durable_rules then crashed the process (a segfault or an abort inside
`retract_facts` or a later `assert_facts`) in long runs of generated and shipped programs.
Nothing is ever retracted now: a program that shares sessions (`ruleset.shares`, stop 20) runs
its cases one after another in one session joined on a case key, any other program runs each
case in a session of its own. These tests pin that each case gets the trace it gets alone,
whatever ran before it, in any order and from several threads, and that only a program that
shares sessions has cases sharing one (tests/test_shared_sessions.py has the rest).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.compile.program import Program
from evaluator.compile.ruleset import projection, shares
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
    """The sid of every session `_Session.run` ran a case in, in order, and whether the
    program it ran shares sessions."""

    def __init__(self) -> None:
        self.sids: list[str] = []
        self.sharing: list[bool] = []

    def reused(self) -> bool:
        return len(set(self.sids)) < len(self.sids)

    def reused_unshared(self) -> bool:
        """Whether a session ran a case of a program that does not share sessions and any
        other case."""
        alone = {sid for sid, shared in zip(self.sids, self.sharing, strict=True) if not shared}
        return any(self.sids.count(sid) > 1 for sid in alone)


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Sessions:
    seen = Sessions()
    real = engine._Session.run

    def spy(self: engine._Session, facts: Any) -> None:
        seen.sids.append(self.sid)
        seen.sharing.append(shares(self.program))
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
    sessions.sharing.clear()
    # three rounds, in a different order each, so that each case follows other cases
    for order in (judged, judged[::-1], judged[1::2] + judged[::2]):
        again = {id(f): _derived(engine_.run(p, f)) for p, f in order}
        assert [again[id(f)] for _, f in judged] == alone
    # sessions shared only by the cases of programs that share them (never retracted)
    assert len(sessions.sids) == 3 * len(judged)
    assert not sessions.reused_unshared()
    assert sessions.reused() == any(shares(p) for p, _ in judged)


def in_threads(work: Callable[[], None], count: int) -> list[BaseException]:
    """Run `work` in `count` threads at once; return what any of them raised."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_threads_running_one_program_each_get_their_own_cases(
    judged: list[tuple[Program, list[dict[str, Any]]]],
    fusion: tuple[Program, list[dict[str, Any]]],
) -> None:
    program = fusion[0]
    cases = [f for p, f in judged if p.name == program.name]
    expected = [_derived(Engine.get().run(program, f, trace=True)) for f in cases]

    def work() -> None:
        for _ in range(10):
            got = [_derived(Engine.get().run(program, f)) for f in cases]
            assert got == expected

    assert in_threads(work, 3) == []


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
