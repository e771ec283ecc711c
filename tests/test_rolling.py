"""Consecutive `Engine.run` calls of a program reuse one engine session (issue 10).

A session's fixed cost (its per-rule state, created and deleted, and its pools growing as facts
arrive) was most of durable_rules' work per case, so `run` keeps one session of a program's own
ruleset and runs its cases there one at a time: before a case, the previous case's facts are
retracted, and the session is used only once the engine reports it empty (no fact, no action
pending). Each case must get exactly the trace it gets alone, and a failure must stay its own
case's. Every test here that checks a reused session also checks that the session was reused,
so that a quiet fallback to new sessions cannot pass for it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import durable_rules_engine as dre
import pytest

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.compile.program import Program
from evaluator.compile.ruleset import projection
from evaluator.engine import durable as engine
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import EngineError
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
def fresh_engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The process's engine with no reused session open (each test starts from none)."""
    engine_ = Engine.get()
    monkeypatch.setattr(engine_, "_reused", {})
    return engine_


def test_every_example_in_a_reused_session_derives_what_it_derives_alone(
    judged: list[tuple[Program, list[dict[str, Any]]]], sessions: Sessions
) -> None:
    engine_ = Engine.get()
    alone = [_derived(engine_.run(p, f, trace=True)) for p, f in judged]
    sessions.sids.clear()
    # three rounds, in a different order each, so that each case follows other cases' facts
    for order in (judged, judged[::-1], judged[1::2] + judged[::2]):
        reused = {id(f): _derived(engine_.run(p, f)) for p, f in order}
        assert [reused[id(f)] for _, f in judged] == alone
    # not a quiet fallback: every program without `count` rules ran in one session all
    # along; a `count` program gets a new session for each case (`engine._reusable`)
    counted = [p for p, _ in judged if any(r.count for r in p.rules)]
    assert counted
    programs = {p.name for p, _ in judged if p not in counted}
    runs_of_counted = 3 * sum(1 for p, _ in judged if p in counted)
    assert len(set(sessions.sids)) == len(programs) + runs_of_counted


def test_a_program_with_count_rules_never_reuses_a_session(
    judged: list[tuple[Program, list[dict[str, Any]]]], sessions: Sessions
) -> None:
    """durable_rules corrupts its memory when the facts of a case that filled part of a
    counted rule's batch are retracted (a segfault in a later retraction or assert, found by
    generated count policies run case after case): such a program runs each case in a new
    session."""
    engine_ = Engine.get()
    program, facts = next((p, f) for p, f in judged if any(r.count for r in p.rules))
    assert not engine._reusable(program)
    sessions.sids.clear()
    for _ in range(3):
        engine_.run(program, facts)
    assert len(set(sessions.sids)) == 3
    assert program.name not in engine_._reused


def test_a_negation_does_not_see_an_earlier_case_of_its_session(
    fusion: tuple[Program, list[dict[str, Any]]], sessions: Sessions
) -> None:
    """A case with a red flag, then one without, in one session: the second's 'no red
    flag' holds, and the first's still fails."""
    program, facts = fusion
    flag = {"t": "red_flag", "id": "red_flag:99", "kind": "tumour"}
    without = [f for f in facts if f.get("t") != "red_flag"]
    with_flag = [*without, flag]
    expected = {
        "with": _derived(Engine.get().run(program, with_flag, trace=True)),
        "without": _derived(Engine.get().run(program, without, trace=True)),
    }
    assert expected["with"][3] != expected["without"][3]
    sessions.sids.clear()
    for _ in range(25):
        assert _derived(Engine.get().run(program, with_flag)) == expected["with"]
        assert _derived(Engine.get().run(program, without)) == expected["without"]
    assert len(set(sessions.sids)) == 1


def test_a_fact_the_retraction_leaves_behind_gives_up_the_session(
    fusion: tuple[Program, list[dict[str, Any]]],
    sessions: Sessions,
    fresh_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The red flag of a case is left in the session (the retraction skips it): the engine
    then reports a fact left, the session is given up, and the next case, without a red
    flag, runs in a new session and gets what it gets alone. Were the session used anyway,
    the earlier case's red flag would block that case's 'no red flag'."""
    program, facts = fusion
    flag = {"t": "red_flag", "id": "red_flag:99", "kind": "tumour"}
    without = [f for f in facts if f.get("t") != "red_flag"]
    expected = _derived(fresh_engine.run(program, without, trace=True))
    real = engine._Session.retraction

    def leaky(self: engine._Session) -> str:
        return real(self).replace(f'{{"sid":"{self.sid}","id":"red_flag:99"}},', "")

    monkeypatch.setattr(engine._Session, "retraction", leaky)
    fresh_engine.run(program, [*without, flag])
    assert _derived(fresh_engine.run(program, without)) == expected
    first, second = sessions.sids[-2:]
    assert first != second  # the leaky session was not used again


@pytest.mark.parametrize(
    "fault", ["fact left", "action pending", "retraction refused", "retraction raises"]
)
def test_a_session_the_engine_does_not_report_empty_is_not_used_again(
    fusion: tuple[Program, list[dict[str, Any]]],
    sessions: Sessions,
    fresh_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    program, facts = fusion
    expected = _derived(fresh_engine.run(program, facts, trace=True))
    fresh_engine.run(program, facts)
    abandoned: list[int] = []
    if fault == "fact left":
        monkeypatch.setattr(dre, "get_facts", lambda *_: '[{"t":"red_flag"}]')
    elif fault == "action pending":
        real_start = dre.start_action_for_state
        calls = {"n": 0}

        def start(handle: int, state: int) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:  # the check right after the retraction
                return ("{}", '{"r0": {}}')
            return real_start(handle, state)

        monkeypatch.setattr(dre, "start_action_for_state", start)
        monkeypatch.setattr(dre, "abandon_action", lambda *_: abandoned.append(1))
    elif fault == "retraction refused":
        monkeypatch.setattr(dre, "retract_facts", lambda *_: (1, 0))
    else:

        def broken(*_: Any) -> Any:
            raise RuntimeError("Could not retract facts, error code: 101")

        monkeypatch.setattr(dre, "retract_facts", broken)
    assert _derived(fresh_engine.run(program, facts)) == expected
    first, second = sessions.sids[-2:]
    assert first != second
    assert abandoned == ([1] if fault == "action pending" else [])


def test_the_retraction_takes_the_stage_markers_first_and_every_fact_the_case_gave(
    fusion: tuple[Program, list[dict[str, Any]]], fresh_engine: Engine
) -> None:
    program, facts = fusion
    fresh_engine.run(program, facts)
    reused = fresh_engine._reused[program.name]
    assert reused.last is not None
    ids = [f["id"] for f in _facts(reused.last)]
    stages = [f"stage{s}" for s in range(1, program.stages + 1)]
    assert ids[: len(stages)] == stages
    assert len(ids) == len(set(ids))
    held = dre.get_facts(reused.handle, reused.sid)
    assert sorted(f["id"] for f in _facts(held)) == sorted(ids)


def test_a_failed_case_gives_up_its_session_and_the_next_case_starts_another(
    fusion: tuple[Program, list[dict[str, Any]]],
    sessions: Sessions,
    fresh_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program, facts = fusion
    expected = _derived(fresh_engine.run(program, facts, trace=True))
    fresh_engine.run(program, facts)  # a reused session is open, with this case's facts
    deleted: list[str] = []
    real_delete = dre.delete_state

    def delete(handle: int, sid: str) -> Any:
        deleted.append(sid)
        return real_delete(handle, sid)

    monkeypatch.setattr(dre, "delete_state", delete)
    real_apply = engine._Session.apply
    failing = {"on": True}

    def apply(self: engine._Session, rule: Any, matched: Any) -> None:
        if failing["on"]:
            raise EngineError.single("engine_failed", "injected")
        real_apply(self, rule, matched)

    monkeypatch.setattr(engine._Session, "apply", apply)
    with pytest.raises(EngineError, match="injected"):
        fresh_engine.run(program, facts)
    assert program.name not in fresh_engine._reused  # the failed session is no longer used ...
    assert deleted == []  # ... nor deleted: the case did not receive every stage (trap 20)
    failing["on"] = False
    assert _derived(fresh_engine.run(program, facts)) == expected
    assert sessions.sids[-1] != sessions.sids[-2]  # the next case started another


def test_a_case_whose_ids_collide_in_a_reused_session_is_an_engine_error_and_gives_it_up(
    fusion: tuple[Program, list[dict[str, Any]]],
    fresh_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """durable_rules compares message ids by 32-bit hash (trap 4): a false duplicate is an
    engine error, as it is alone; the session it poisoned is neither used nor deleted."""
    program, facts = fusion
    expected = _derived(fresh_engine.run(program, facts, trace=True))
    fresh_engine.run(program, facts)
    real = dre.assert_facts
    calls = {"n": 0}

    def collide(handle: int, text: str) -> Any:
        result = real(handle, text)
        calls["n"] += 1
        return (2, result[1]) if calls["n"] == 1 else result

    monkeypatch.setattr(dre, "assert_facts", collide)
    with pytest.raises(EngineError, match="twice"):
        fresh_engine.run(program, facts)
    assert program.name not in fresh_engine._reused
    assert _derived(fresh_engine.run(program, facts)) == expected


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


def test_an_engine_error_of_the_case_itself_is_raised_from_a_reused_session(
    fusion: tuple[Program, list[dict[str, Any]]], sessions: Sessions
) -> None:
    program, facts = fusion
    Engine.get().run(program, facts)
    Engine.get().run(program, facts)
    assert sessions.reused()
    broken = [*facts, {"t": "nicotine", "id": "nicotine:broken", "cotinine": float("inf")}]
    with pytest.raises(EngineError, match="cannot be given to the engine"):
        Engine.get().run(program, broken)
    assert _derived(Engine.get().run(program, facts)) == _derived(
        Engine.get().run(program, facts, trace=True)
    )


def test_a_program_registered_afresh_opens_a_new_session(
    fusion: tuple[Program, list[dict[str, Any]]],
    sessions: Sessions,
    fresh_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After too many sessions were left in place the ruleset is registered afresh
    (`_left_in_place`): the old session belongs to the old ruleset and is not used again."""
    program, facts = fusion
    expected = _derived(fresh_engine.run(program, facts, trace=True))
    fresh_engine.run(program, facts)
    old = fresh_engine._reused[program.name]
    monkeypatch.setattr(fresh_engine, "_handles", {})  # as after LEFT_SESSIONS_LIMIT
    assert _derived(fresh_engine.run(program, facts)) == expected
    assert fresh_engine._reused[program.name].handle != old.handle
    assert sessions.sids[-1] != sessions.sids[-2]


@pytest.mark.parametrize("where", ["retracting", "after the case"])
def test_a_session_interrupted_between_cases_is_never_used_again(
    fusion: tuple[Program, list[dict[str, Any]]],
    sessions: Sessions,
    fresh_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """A Ctrl-C while the previous case's facts are retracted, or after a case ran but before
    its retraction was written: what the session holds is unknown, so the next case runs in
    a new one (in the old one, the earlier case's facts would still be there)."""
    program, facts = fusion
    expected = _derived(fresh_engine.run(program, facts, trace=True))
    fresh_engine.run(program, facts)
    interrupt = {"on": True}

    def once(real: Any) -> Any:
        def interrupted(*args: Any) -> Any:
            if interrupt["on"]:
                interrupt["on"] = False
                raise KeyboardInterrupt
            return real(*args)

        return interrupted

    if where == "retracting":
        monkeypatch.setattr(dre, "retract_facts", once(dre.retract_facts))
    else:
        monkeypatch.setattr(engine._Session, "retraction", once(engine._Session.retraction))
    with pytest.raises(KeyboardInterrupt):
        fresh_engine.run(program, facts)
    assert _derived(fresh_engine.run(program, facts)) == expected
    assert sessions.sids[-1] != sessions.sids[-2]


@pytest.mark.parametrize("held", [True, False])
def test_a_session_another_thread_holds_is_not_deleted_when_the_program_is_registered_afresh(
    fusion: tuple[Program, list[dict[str, Any]]],
    fresh_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    held: bool,
) -> None:
    """The service evaluates from threads: when one thread finds the program registered afresh
    (`_left_in_place`), another may hold the old reused session (its lock taken, its case
    about to run). Deleting it then would pull the session from under that case: it is left in
    place. A session no thread holds is deleted, and marked dirty so that a thread that
    fetched it before does not retract from or run in a deleted session."""
    program, facts = fusion
    expected = _derived(fresh_engine.run(program, facts, trace=True))
    fresh_engine.run(program, facts)
    old = fresh_engine._reused[program.name]
    closed: list[tuple[str, bool]] = []
    real_close = engine._close

    def spy(handle: int, sid: str, *, safe: bool) -> bool:
        closed.append((sid, safe))
        return real_close(handle, sid, safe=safe)

    monkeypatch.setattr(engine, "_close", spy)
    monkeypatch.setattr(fresh_engine, "_handles", {})  # as after LEFT_SESSIONS_LIMIT
    if held:
        assert old.lock.acquire(blocking=False)  # another thread's case, about to run
    try:
        assert _derived(fresh_engine.run(program, facts)) == expected
    finally:
        if held:
            old.lock.release()
    if held:  # left in place: the holder's case runs in a session that still exists
        assert (old.sid, True) not in closed
    else:  # deleted, and a thread that fetched it before gives it up rather than use it
        assert (old.sid, True) in closed
        assert old.dirty
    assert fresh_engine._reused[program.name] is not old


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
