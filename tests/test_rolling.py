"""Consecutive `Engine.run` calls share one engine session (issue 10).

A session's fixed cost (its per-rule state, created and deleted) was about a third of a case's
engine time, so `run` gives consecutive cases of a program one session of the joined ruleset,
a case key each, and deletes it after `Engine.ROLLING_CASES` cases. Each case must get exactly
the trace it gets alone, and a failure must stay its own case's.
"""

from __future__ import annotations

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
from evaluator.errors import EngineError, PolicyError
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


def _shares(program: Program) -> bool:
    """Whether the program's cases can share a session: no `count` rules, and its joined
    ruleset fits the engine (else every case runs alone, as `run_many`'s do)."""
    if not engine._shareable(program):
        return False
    try:
        Engine.get()._handle(program, cases=True)
    except PolicyError:
        return False
    return True


@pytest.fixture(scope="module")
def fusion(
    judged: list[tuple[Program, list[dict[str, Any]]]],
) -> tuple[Program, list[dict[str, Any]]]:
    """A fusion example whose policy shares sessions and reads red flags."""
    return next(
        (p, f)
        for p, f in judged
        if p.name.startswith("lumbar-fusion") and projection(p).keeps("red_flag") and _shares(p)
    )


def test_every_example_in_a_shared_session_derives_what_it_derives_alone(
    judged: list[tuple[Program, list[dict[str, Any]]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_ = Engine.get()
    alone = [_derived(engine_.run(p, f, trace=True)) for p, f in judged]
    shared_sids: set[str] = set()
    real = engine._Session.run

    def spy(self: engine._Session, facts: Any) -> None:
        if self.case is not None:
            shared_sids.add(self.sid)
        real(self, facts)

    monkeypatch.setattr(engine._Session, "run", spy)
    # three rounds, in a different order each, so that each case follows other cases' facts
    for order in (judged, judged[::-1], judged[1::2] + judged[::2]):
        shared = {id(f): _derived(engine_.run(p, f)) for p, f in order}
        assert [shared[id(f)] for _, f in judged] == alone
    assert shared_sids  # not a quiet fallback: cases did share sessions


def test_a_negation_does_not_see_an_earlier_case_of_its_session(
    fusion: tuple[Program, list[dict[str, Any]]],
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
    for _ in range(Engine.ROLLING_CASES + 3):
        assert _derived(Engine.get().run(program, with_flag)) == expected["with"]
        assert _derived(Engine.get().run(program, without)) == expected["without"]


def test_a_failed_case_leaves_its_session_and_the_next_case_starts_another(
    fusion: tuple[Program, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    program, facts = fusion
    expected = _derived(Engine.get().run(program, facts, trace=True))
    Engine.get().run(program, facts)  # a shared session is open with one case in it
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
        Engine.get().run(program, facts)
    failed = Engine.get()._rolling.get(program.name)
    assert failed is None  # the failed session is no longer used ...
    assert deleted == []  # ... nor deleted (trap 20)
    failing["on"] = False
    sids = []
    real_run = engine._Session.run

    def run(self: engine._Session, facts: Any) -> None:
        sids.append((self.sid, self.case))
        real_run(self, facts)

    monkeypatch.setattr(engine._Session, "run", run)
    assert _derived(Engine.get().run(program, facts)) == expected
    assert sids[-1][1] == "0"  # the first case of a fresh session


def test_a_case_whose_ids_collide_in_a_shared_session_runs_alone(
    fusion: tuple[Program, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """durable_rules compares message ids by 32-bit hash (trap 4); a shared session holds
    more ids, so a false duplicate there reruns the case in a session of its own."""
    program, facts = fusion
    expected = _derived(Engine.get().run(program, facts, trace=True))
    Engine.get().run(program, facts)
    real = dre.assert_facts
    calls = {"n": 0}

    def collide(handle: int, text: str) -> Any:
        result = real(handle, text)
        calls["n"] += 1
        if calls["n"] == 1:  # the shared session's first call for this case
            assert '"c":' in text
            return (2, result[1])
        return result

    monkeypatch.setattr(dre, "assert_facts", collide)
    assert _derived(Engine.get().run(program, facts)) == expected
    assert program.name not in Engine.get()._rolling  # the poisoned session is left


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


def test_a_case_the_joined_ruleset_fails_on_runs_alone(
    fusion: tuple[Program, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The joined ruleset needs more of the engine's stack than the case's own (its bound is
    checked when it is registered, error 303 otherwise): a case durable_rules refuses in a
    shared session runs alone, where it gets its own result, and the shared one is left."""
    program, facts = fusion
    expected = _derived(Engine.get().run(program, facts, trace=True))
    Engine.get().run(program, facts)
    real = dre.assert_facts

    def refuse(handle: int, text: str) -> Any:
        if '"c":' in text:
            raise RuntimeError("Could not assert facts, error code: 303")
        return real(handle, text)

    monkeypatch.setattr(dre, "assert_facts", refuse)
    assert _derived(Engine.get().run(program, facts)) == expected
    assert program.name not in Engine.get()._rolling


def test_an_engine_error_of_the_case_itself_is_raised_from_a_shared_session(
    fusion: tuple[Program, list[dict[str, Any]]],
) -> None:
    program, facts = fusion
    Engine.get().run(program, facts)
    broken = [*facts, {"t": "nicotine", "id": "nicotine:broken", "cotinine": float("inf")}]
    with pytest.raises(EngineError, match="cannot be given to the engine"):
        Engine.get().run(program, broken)
    assert _derived(Engine.get().run(program, facts)) == _derived(
        Engine.get().run(program, facts, trace=True)
    )
