"""Cases sharing one engine session, one after another, never retracted (issue 10, stop 20).

A program that shares sessions (`ruleset.shares`: small, no `count` rules) runs up to
`Engine.CASES_PER_SESSION` cases in one durable_rules session; every fact carries its case's
key and every pattern of a rule after the first joins the first on it. These tests pin that no
fact of one case ever takes part in another case's firing (positive and negated patterns), that
every shared ruleset carries the join where the engine honours it, that a failed case takes its
session with it, and that every case gets the trace it gets alone, in any order.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import durable_rules_engine as dre
import orjson
import pytest

import tests.test_shaping_generated as shaping_generated
from benchmarks import benchgen, compare
from evaluator import api
from evaluator.compile import joins, ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import Program
from evaluator.compile.ruleset import CASE_KEY, definition_text, shares
from evaluator.engine import durable as engine
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import EngineError
from evaluator.language.policies import Library, load_policy
from tests.test_compiler import write
from tests.test_sessions import _derived, in_threads

ROOT = Path(__file__).parent.parent

Run = tuple[Program, list[dict[str, Any]]]


def _alone(program: Program, facts: list[dict[str, Any]]) -> tuple[Any, ...]:
    # a traced run always has a session of its own
    return _derived(Engine.get().run(program, facts, trace=True))


@pytest.fixture(scope="module")
def bench() -> list[Run]:
    """120 generated bench cases with the bench policy's program."""
    policy = Library(compare.POLICIES).get(compare.POLICY)
    program = api.program_for(policy)
    _, parsed = compare.parse(benchgen.generate(120))
    return [(program, api.facts_for(case, policy)) for case in parsed]


@pytest.fixture(scope="module")
def examples(example_runs: Any) -> list[Run]:
    """Every example's runs, each program compiled again under another name with sharing
    allowed at any size (`SHARE_MAX_BETA` lifted): the shipped programs are too large to share
    in the product, and their joined rulesets must keep cases apart all the same."""
    out: list[Run] = []
    fresh: dict[str, Program] = {}
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(ruleset, "SHARE_MAX_BETA", 10**6)
        for _, _, effective, program, facts, _ in example_runs:
            joined = fresh.get(program.name)
            if joined is None:
                joined = replace(compile_policy(effective), name=f"{program.name}~shared")
                definition_text(joined)  # decided and rendered while sharing is allowed
                fresh[program.name] = joined
            if shares(joined):
                out.append((joined, facts))
    return out


def _policy(tmp_path: Path) -> Program:
    """A small policy: a positive pattern (an imaging finding) and a negated one (no red flag,
    through a derived fact), each of which another case's fact could wrongly satisfy."""
    data = {
        "id": "shared-small",
        "version": "1",
        "title": "shared-small",
        "status": "active",
        "effective": {"from": "2025-01-01"},
        "procedures": [{"procedure": "lumbar_fusion"}],
        "references": [{"id": 1, "citation": "c"}],
        "facts": {"flagged": {"description": "a red flag", "fields": {"kind": "string"}}},
        "rules": [
            {
                "id": "flag",
                "for_each": [{"fact": "red_flag", "as": "rf"}],
                "derive": {"fact": "flagged", "set": {"kind": {"from": "rf.kind"}}},
            }
        ],
        "sections": [
            {
                "id": "s",
                "title": "S",
                "clauses": [
                    {
                        "id": cid,
                        "title": cid,
                        "requires": requires,
                        "cites": [1],
                        "recommendation": "r",
                    }
                    for cid, requires in (
                        ("S-NO-FLAG", {"not": {"exists": {"fact": "flagged"}}}),
                        ("S-FINDING", {"exists": {"fact": "imaging_finding"}}),
                    )
                ],
            }
        ],
    }
    path = tmp_path / "policies" / "shared-small" / "1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return compile_policy(load_policy(path))


BASE: list[dict[str, Any]] = [
    {"t": "case", "id": "case:1", "case_id": "c1"},
    {"t": "request", "id": "request:1"},
]
HAS_BOTH = [
    *BASE,
    {"t": "red_flag", "id": "red_flag:1", "kind": "cauda_equina"},
    {"t": "imaging_finding", "id": "imaging_finding:1", "finding": "spondylolisthesis"},
]


class Sids:
    """The sid of every session `_Session.run` ran a case in, in order."""

    def __init__(self) -> None:
        self.sids: list[str] = []


@pytest.fixture
def sids(monkeypatch: pytest.MonkeyPatch) -> Sids:
    seen = Sids()
    real = engine._Session.run

    def spy(self: engine._Session, facts: Any) -> None:
        seen.sids.append(self.sid)
        real(self, facts)

    monkeypatch.setattr(engine._Session, "run", spy)
    Engine.get().release()  # every test starts with no open session
    return seen


def _status(trace: Trace, clause: str) -> str:
    return str(trace.statuses[clause].fact["status"])


def test_a_case_never_meets_another_cases_facts_positive_or_negated(
    tmp_path: Path, sids: Sids
) -> None:
    program = _policy(tmp_path)
    assert shares(program)
    both, neither = HAS_BOTH, list(BASE)
    alone = {id(both): _alone(program, both), id(neither): _alone(program, neither)}
    assert _status(Engine.get().run(program, both, trace=True), "S-NO-FLAG") == "not_met"
    sids.sids.clear()
    for first, second in ((both, neither), (neither, both), (both, neither)):
        traces = [Engine.get().run(program, first), Engine.get().run(program, second)]
        assert [_derived(t) for t in traces] == [alone[id(first)], alone[id(second)]]
    # one session for all six cases: the other case's facts were there, and did not count
    assert len(set(sids.sids)) == 1
    after = Engine.get().run(program, neither)
    # the earlier finding satisfies nobody else, the earlier red flag blocks nobody else
    assert _status(after, "S-FINDING") != "met"
    assert _status(after, "S-NO-FLAG") == "met"
    # and the missing red flag of the case before hides no red flag of the case after
    assert _status(Engine.get().run(program, both), "S-NO-FLAG") == "not_met"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    """tests/test_shaping_generated.py's policies (derived types over several stages, joins
    by same_as, nested every/some), 20 of them, with 6 cases each."""
    root = tmp_path_factory.mktemp("generated")
    out: list[Run] = []
    for seed in range(20):
        rng = random.Random(seed)
        data = shaping_generated._policy(rng, f"gen-{seed}")
        # as there: the engine's matching is what is compared, not the authoring checks
        with mock.patch.object(joins, "check", return_value=None):
            path = write(root, json.dumps(data, indent=1), data["id"])
            program = compile_policy(load_policy(path))
        out += [(program, shaping_generated._facts(rng)) for _ in range(6)]
    return out


def test_every_shared_ruleset_joins_each_pattern_after_the_first_on_the_case_key(
    generated: list[Run],
) -> None:
    programs = [api.program_for(p) for p in Library().all()]
    programs += [api.program_for(p) for p in Library(compare.POLICIES).all()]
    programs += list({id(p): p for p, _ in generated}.values())
    checked = 0
    for program in programs:
        if not shares(program):
            continue
        checked += 1
        definition = json.loads(definition_text(program))
        for name, rule in definition.items():
            if name == "catch_all":  # never fires (no fact has its second type)
                continue
            patterns = rule["all"]
            (lead,) = patterns[0]
            for pattern in patterns[1:]:
                ((alias, expression),) = pattern.items()
                tests = expression["$and"]
                join = {CASE_KEY: {lead: CASE_KEY}}
                assert join in tests, (program.name, name, alias)
                # the engine ignores a join behind a nested group (`_with_lane`)
                nested = [i for i, t in enumerate(tests) if "$or" in t or "$and" in t]
                assert all(i > tests.index(join) for i in nested), (program.name, name, alias)
    # the bench policy and most of the generated ones
    assert checked >= 10


def test_a_new_process_reads_the_share_decision_from_the_cached_text(generated: list[Run]) -> None:
    """A process that reads a ruleset from the disk cache takes `shares` from its text (no
    second rendering at cold start): the same answer as working it out."""
    programs = [api.program_for(p) for p in Library().all()]
    programs += [api.program_for(p) for p in Library(compare.POLICIES).all()]
    programs += list({id(p): p for p, _ in generated}.values())
    answers = set()
    for program in programs:
        text = definition_text(program)
        memos = dict(program.__dict__)
        try:
            program.__dict__.pop("_ruleset_shares", None)
            program.__dict__.pop("_ruleset_text", None)
            worked_out = shares(program)
            program.__dict__.pop("_ruleset_shares", None)
            object.__setattr__(program, "_ruleset_text", text)
            assert shares(program) == worked_out, program.name
            answers.add(worked_out)
        finally:
            program.__dict__.update(memos)
    assert answers == {True, False}


def test_shared_and_alone_give_the_same_traces_in_any_order(
    bench: list[Run],
    examples: list[Run],
    generated: list[Run],
    sids: Sids,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = [*bench, *examples, *[(p, f) for p, f in generated if shares(p)]]
    assert len({p.name for p, _ in examples}) >= 2  # lumbar-decompression, a lumbar-fusion
    assert all(shares(p) for p, _ in runs)
    alone = [_alone(p, f) for p, f in runs]
    # sessions roll over in the middle of each order, after cases of other programs
    monkeypatch.setattr(Engine, "CASES_PER_SESSION", 7)
    shuffled = list(range(len(runs)))
    random.Random(20).shuffle(shuffled)
    sids.sids.clear()
    for order in (list(range(len(runs))), shuffled, shuffled[::-1]):
        got = {i: _derived(Engine.get().run(*runs[i])) for i in order}
        assert [got[i] for i in range(len(runs))] == alone
    assert len(set(sids.sids)) < len(sids.sids) / 5


def test_a_failed_case_takes_its_session_with_it(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch
) -> None:
    (program, first), (_, failing), (_, after) = bench[:3]
    Engine.get().run(program, first)
    real = dre.complete_and_start_action
    calls = {"n": 0}

    def broken(handle: int, state: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # in the middle of the case's first stage
            raise RuntimeError("injected")
        return real(handle, state)

    monkeypatch.setattr(dre, "complete_and_start_action", broken)
    with pytest.raises(EngineError, match="injected"):
        Engine.get().run(program, failing)
    monkeypatch.setattr(dre, "complete_and_start_action", real)
    trace = Engine.get().run(program, after)
    first_sid, failed_sid, after_sid = sids.sids
    assert first_sid == failed_sid  # the failing case ran in the shared session
    assert after_sid != failed_sid  # which went with it: the next case starts a new one
    assert _derived(trace) == _alone(program, after)


def test_a_hash_collision_with_another_case_runs_the_case_alone(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """durable_rules reports a fact it takes for one it saw (a 32-bit content hash collision,
    trap 4); in a shared session the other fact may be another case's: the case is decided as
    if alone, and the session (unsafe to delete) is left."""
    (program, first), (_, second), (_, third) = bench[:3]
    Engine.get().run(program, first)
    real = dre.assert_facts
    deleted: list[str] = []
    real_delete = dre.delete_state
    calls = {"n": 0}

    def colliding(handle: int, text: str) -> Any:
        calls["n"] += 1
        return 2 if calls["n"] == 1 else real(handle, text)  # 2: "already observed"

    def spy(handle: int, sid: str) -> Any:
        deleted.append(sid)
        return real_delete(handle, sid)

    monkeypatch.setattr(dre, "assert_facts", colliding)
    monkeypatch.setattr(dre, "delete_state", spy)
    trace = Engine.get().run(program, second)
    assert _derived(trace) == _alone(program, second)
    shared_sid, _, alone_sid = sids.sids[:3]
    assert alone_sid != shared_sid
    assert shared_sid not in deleted
    Engine.get().run(program, third)
    assert sids.sids[-1] not in (shared_sid, alone_sid)


def test_a_firing_that_matched_another_cases_fact_is_an_engine_error(
    bench: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were a join missing, the engine would hand a case another case's fact: never used."""
    program, _ = bench[0]
    rule = next(r for r in program.rules if len(r.patterns) > 1)
    session = engine._Session(0, program, "7", "3")
    session.state, session.stage = 1, rule.stage
    matched = {p.alias: {CASE_KEY: "3", "t": "x"} for p in rule.patterns}
    matched[rule.patterns[-1].alias][CASE_KEY] = "2"
    message = orjson.dumps({rule.name: matched}).decode()
    monkeypatch.setattr(dre, "start_action_for_state", lambda _h, _s: (None, message))
    monkeypatch.setattr(dre, "complete_and_start_action", lambda _h, _s: None)
    with pytest.raises(EngineError, match="another case"):
        session.drain()
    assert session.trace.statuses == {}
    assert session.trace.values == {}


def test_threads_sharing_a_program_get_their_own_traces(bench: list[Run]) -> None:
    program = bench[0][0]
    cases = [f for _, f in bench[:30]]
    expected = [_alone(program, f) for f in cases]

    def work() -> None:
        for _ in range(4):
            assert [_derived(Engine.get().run(program, f)) for f in cases] == expected

    assert in_threads(work, 3) == []


@pytest.mark.parametrize("fails", [True, False], ids=["failing", "sixteenth"])
def test_release_while_a_case_runs_never_deletes_its_session_again_or_unfinished(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """`release` takes the open session while a case runs in it and waits for the case. That
    case's own end retires the session (it failed, or it was the last one the session takes):
    `release` must then leave it alone. Deleting it again, or deleting the failed case's
    unfinished session (trap 20), crashes the process inside durable_rules."""
    (program, first), (_, second) = bench[:2]
    Engine.get().run(program, first)  # an action ran in the session: it may be deleted
    monkeypatch.setattr(Engine, "CASES_PER_SESSION", 2)
    deleted: list[str] = []
    monkeypatch.setattr(dre, "delete_state", lambda _handle, sid: deleted.append(sid))
    inside, go = threading.Event(), threading.Event()
    real = dre.complete_and_start_action

    def blocking(handle: int, state: int) -> Any:
        if not inside.is_set():
            inside.set()
            assert go.wait(30)
            if fails:
                raise RuntimeError("injected")
        return real(handle, state)

    monkeypatch.setattr(dre, "complete_and_start_action", blocking)
    errors: list[BaseException] = []

    def case() -> None:
        try:
            Engine.get().run(program, second)
        except BaseException as error:
            errors.append(error)

    running = threading.Thread(target=case)
    running.start()
    assert inside.wait(30)
    releasing = threading.Thread(target=Engine.get().release)
    releasing.start()
    for _ in range(3000):  # until release took the session (then it waits for the case)
        if not Engine.get()._open:
            break
        threading.Event().wait(0.01)
    assert not Engine.get()._open
    go.set()
    running.join(30)
    releasing.join(30)
    assert sids.sids[0] == sids.sids[1]  # both cases ran in the shared session
    assert [type(e) for e in errors] == ([EngineError] if fails else [])
    # deleted once at the 2nd case's end, or (failed, unfinished) never
    assert deleted == ([] if fails else [sids.sids[0]])


def _deletions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sids `delete_state` is called with from now on (each still deleted)."""
    deleted: list[str] = []
    real = dre.delete_state

    def spy(handle: int, sid: str) -> Any:
        deleted.append(sid)
        return real(handle, sid)

    monkeypatch.setattr(dre, "delete_state", spy)
    return deleted


def _finishes(work: Any, seconds: float = 60) -> list[BaseException]:
    """Run `work` in a daemon thread; fail if it is still running after `seconds` (a hang), and
    return what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:
            raised.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the engine hung"
    return raised


@pytest.mark.parametrize("call", [1, 2, 3])
def test_an_interrupt_right_after_an_assert_never_hangs(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch, call: int
) -> None:
    """A Ctrl-C (or any error) after `assert_facts` returned and before the first of its actions
    started: the session has an action that never started. durable_rules' `abandon_action`
    only frees an action's message, so `start_action_for_state` hands out the same action
    again; a loop that abandons until none is left never ended (found at stop 21)."""
    (program, first), (_, failing), *rest = bench[:6]
    Engine.get().run(program, first)
    real = dre.assert_facts
    calls = {"n": 0}

    def interrupted(handle: int, text: Any) -> Any:
        result = real(handle, text)
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(dre, "assert_facts", interrupted)
    raised = _finishes(lambda: Engine.get().run(program, failing))
    assert [type(error) for error in raised] == [KeyboardInterrupt]
    monkeypatch.setattr(dre, "assert_facts", real)
    # the session went with the interrupted case; the next cases are decided as if alone
    for _, facts in rest:
        assert _derived(Engine.get().run(program, facts)) == _alone(program, facts)
    assert sids.sids[1] == sids.sids[0] != sids.sids[2]


def test_an_interrupt_after_an_assert_in_a_session_of_its_own_never_hangs(
    bench: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    # traced runs (and programs that do not share) have a session per case: the same path
    (program, facts), (_, after) = bench[:2]
    real = dre.assert_facts
    calls = {"n": 0}

    def interrupted(handle: int, text: Any) -> Any:
        result = real(handle, text)
        calls["n"] += 1
        if calls["n"] == 2:  # the session's state is known from the first call on
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(dre, "assert_facts", interrupted)
    raised = _finishes(lambda: Engine.get().run(program, facts, trace=True))
    assert [type(error) for error in raised] == [KeyboardInterrupt]
    monkeypatch.setattr(dre, "assert_facts", real)
    assert _derived(Engine.get().run(program, after)) == _alone(program, after)


def test_a_case_refused_before_the_engine_keeps_the_open_session(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A case whose facts the engine never got (two facts with one id, a number the engine
    cannot take) leaves nothing in the open session: the session stays open for the next case
    rather than being retired, and never deleted, at every such case."""
    (program, first), (_, second), (_, third) = bench[:3]
    deleted = _deletions(monkeypatch)
    Engine.get().run(program, first)
    duplicate = [*second, second[-1]]
    with pytest.raises(EngineError, match="share an id"):
        Engine.get().run(program, duplicate)
    infinite = [*second, {"t": "case", "id": "odd:1", "x": float("inf")}]
    with pytest.raises(EngineError, match="cannot be given to the engine"):
        Engine.get().run(program, infinite)
    decided = _derived(Engine.get().run(program, third))
    shared = sids.sids[:]
    assert decided == _alone(program, third)
    assert len(shared) == 4
    assert len(set(shared)) == 1  # one session for all of them
    assert shared[0] not in deleted  # still open (the traced run alone deleted its own)
    Engine.get().release()
    assert deleted.count(shared[0]) == 1


def test_a_program_registered_afresh_deletes_its_old_open_session(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once too many failed sessions are left in a ruleset, the program is registered afresh
    (`Engine._left_in_place`); the old ruleset's open session was dropped undeleted."""
    (program, first), (_, second) = bench[:2]
    deleted = _deletions(monkeypatch)
    Engine.get().run(program, first)
    Engine.get()._handles.pop(program.name)  # as `_left_in_place` does at its limit
    decided = _derived(Engine.get().run(program, second))
    old, new = sids.sids[:2]
    assert old != new
    assert deleted == [old]
    assert decided == _alone(program, second)


def test_an_interrupt_while_the_old_open_session_is_deleted_leaves_the_new_one_free(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program registered afresh deletes the old ruleset's open session (above) after taking
    the new one's lock. A Ctrl-C inside that deletion left the new session locked for good:
    every later case of the program ran alone (a session each), and `release` waited for the
    lock forever (found at stop 21, review of the engine)."""
    (program, first), (_, second), (_, third), (_, fourth) = bench[:4]
    Engine.get().run(program, first)
    Engine.get()._handles.pop(program.name)  # as `_left_in_place` does at its limit
    real = dre.delete_state

    def interrupted(_handle: int, _sid: str) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(dre, "delete_state", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Engine.get().run(program, second)
    monkeypatch.setattr(dre, "delete_state", real)
    opened = Engine.get()._open[program.name]
    if opened.lock.locked():
        Engine.get()._open.pop(program.name)  # else the next test's `release` waits forever
    assert not opened.lock.locked()
    # the next cases run in the new open session, one after another, as they would have
    expected = [_alone(program, third), _alone(program, fourth)]
    sids.sids.clear()
    assert [_derived(Engine.get().run(program, f)) for f in (third, fourth)] == expected
    assert sids.sids == [opened.sid, opened.sid]
    assert _finishes(Engine.get().release, 30) == []


# Pairs of session ids with one 32-bit FNV-1a hash each: durable_rules finds a session by that
# hash alone (state.c `getStateNode`), so the second names the first's session while it lives.
COLLIDING_SIDS = {True: ("30937689", "31021600"), False: ("42052414", "76078819")}


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "alone"])
def test_a_new_session_never_lands_in_a_live_one_whose_id_hashes_alike(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    """A failed session is left in place for good (trap 20). A later session whose id hashed
    to the same 32 bits went to that session in the engine: its case met the failed case's
    facts and stage markers ("saw stage 1 twice", an engine error for a sound case, or worse
    had the failed case's markers not gone in). The engine now skips such an id."""
    (program, failing), (_, after) = bench[:2]
    expected = _alone(program, after)
    sids.sids.clear()
    engine_ = Engine.get()
    colliding = COLLIDING_SIDS[shared]
    tail = itertools.count((3 if shared else 4) * 10**9)
    monkeypatch.setattr(engine_, "_sid_numbers", itertools.chain(colliding, tail))
    real = dre.complete_and_start_action
    calls = {"n": 0}

    def broken(handle: int, state: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected")
        return real(handle, state)

    monkeypatch.setattr(dre, "complete_and_start_action", broken)
    with pytest.raises(EngineError, match="injected"):
        engine_.run(program, failing, trace=not shared)
    monkeypatch.setattr(dre, "complete_and_start_action", real)
    assert sids.sids == [colliding[0]]  # left in place: it failed in its first stage
    assert _derived(engine_.run(program, after, trace=not shared)) == expected
    assert sids.sids[1] != colliding[1]
    engine_.release()
    live = engine_._live[engine_._handles[program.name]]
    assert engine._sid_hash(colliding[0]) in live  # left in place for good
    assert engine._sid_hash(sids.sids[1]) not in live  # deleted: its id's hash is free again


def test_a_real_id_hash_collision_with_another_cases_fact_runs_the_case_alone(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the mocked collision above, with a real one: durable_rules tells facts apart by the
    32-bit FNV-1a hash of their engine id (state.c `getMessage`), and "1|nicotine:6045700998"
    (the second case's fact, under its case key) hashes as "0|nicotine:1" (the first case's).
    The engine takes part of the batch, reports "observed"; the case is decided as if alone,
    the session is left (never deleted) and the next case starts a new one."""
    assert engine._sid_hash("1|nicotine:6045700998") == engine._sid_hash("0|nicotine:1")
    (program, first), (_, second), (_, third) = bench[:3]
    assert any(f["id"] == "nicotine:1" for f in first)
    renamed = [{**f, "id": "nicotine:6045700998"} if f["id"] == "nicotine:1" else f for f in second]
    assert renamed != second
    expected = [_alone(program, renamed), _alone(program, third)]
    sids.sids.clear()
    deleted = _deletions(monkeypatch)
    Engine.get().run(program, first)
    assert _derived(Engine.get().run(program, renamed)) == expected[0]
    assert _derived(Engine.get().run(program, third)) == expected[1]
    shared, _, alone, after = sids.sids
    assert sids.sids[1] == shared != alone  # the shared try, then alone
    assert after not in (shared, alone)
    Engine.get().release()
    assert shared not in deleted


@pytest.mark.parametrize("release_first", [True, False], ids=["release", "next-case"])
def test_a_case_cut_off_before_it_retired_its_session_leaves_it_unused_and_undeleted(
    bench: list[Run], sids: Sids, monkeypatch: pytest.MonkeyPatch, release_first: bool
) -> None:
    """A failed case retires its session in an exception handler; a second Ctrl-C arriving as
    that handler starts cuts it off, and the session stayed open with the failed case's facts
    and pending actions: the next case met them (an engine error for a sound case), and
    `release` deleted the unfinished session (trap 20: a crash inside durable_rules)."""
    (program, first), (_, failing), (_, after) = bench[:3]
    expected = _alone(program, after)
    Engine.get().run(program, first)  # an action ran in the session: it may be deleted
    sids.sids.clear()
    deleted: list[str] = []  # recorded, not deleted: a wrong delete here would crash
    monkeypatch.setattr(dre, "delete_state", lambda _handle, sid: deleted.append(sid))
    real_action, real_retire = dre.complete_and_start_action, Engine._retire

    def interrupted(_handle: int, _state: int) -> Any:
        raise KeyboardInterrupt

    def retire_cut_off(*_args: Any) -> None:
        monkeypatch.setattr(Engine, "_retire", real_retire)
        raise KeyboardInterrupt  # the second Ctrl-C

    monkeypatch.setattr(dre, "complete_and_start_action", interrupted)
    monkeypatch.setattr(Engine, "_retire", retire_cut_off)
    with pytest.raises(KeyboardInterrupt):
        Engine.get().run(program, failing)
    monkeypatch.setattr(dre, "complete_and_start_action", real_action)
    (cut,) = sids.sids
    if release_first:
        Engine.get().release()
    else:
        assert _derived(Engine.get().run(program, after)) == expected
        assert sids.sids[-1] != cut
        Engine.get().release()
    assert cut not in deleted
    assert _derived(Engine.get().run(program, after)) == expected
