"""Batch mode (issue 10, stop 21): `Engine.run_many` gives a small program's cases
(`ruleset.shares`) `CASES_PER_BATCH` to a new session, each stage of them all in one
`assert_facts` call, and hands each firing to the case of the facts it matched.

These tests pin that every case gets exactly the trace it gets alone (several orders and chunk
sizes, the bench generator, the generated policies and the examples' programs compiled to
share), that a stage's batch holds every case's facts before any stage marker (trap 2), that a
case that fails fails alone (refused before the engine, failing in it, left without a status)
while the others are decided as alone, that a firing of no single case is an engine error, and
that a chunk's session is deleted only when that is safe (traps 13 and 20).
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import durable_rules_engine as dre
import orjson
import pytest

from benchmarks import benchgen, compare
from evaluator import api
from evaluator.case.cases import Case, load_case
from evaluator.compile.program import KEY, EmitStatus, Program
from evaluator.compile.ruleset import CASE_KEY, shares
from evaluator.engine import durable as engine
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import EngineError, NecessityError, PolicyError
from evaluator.language.policies import Library
from tests import test_shared_sessions as shared
from tests.test_many import _json
from tests.test_sessions import _derived

Run = tuple[Program, list[dict[str, Any]]]
EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "cases").glob("*.json"))

# The same module-scoped runs as tests/test_shared_sessions.py (made once per module).
bench = shared.bench
generated = shared.generated
examples = shared.examples


def _alone(program: Program, facts: list[dict[str, Any]]) -> tuple[Any, ...]:
    return _derived(Engine.get().run(program, facts, trace=True))


class Calls:
    """What the engine was asked: each `assert_facts` batch (decoded), each deleted sid."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.deleted: list[str] = []


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    seen = Calls()
    real_assert, real_delete = dre.assert_facts, dre.delete_state

    def asserting(handle: int, text: str) -> Any:
        seen.batches.append(orjson.loads(text))
        return real_assert(handle, text)

    def deleting(handle: int, sid: str) -> Any:
        seen.deleted.append(sid)
        return real_delete(handle, sid)

    monkeypatch.setattr(dre, "assert_facts", asserting)
    monkeypatch.setattr(dre, "delete_state", deleting)
    Engine.get().release()
    yield seen
    Engine.get().release()


def _traces(results: list[Trace | Exception]) -> list[Trace]:
    traces = [r for r in results if isinstance(r, Trace)]
    assert len(traces) == len(results), results
    return traces


def _sids(batches: list[list[dict[str, Any]]]) -> list[str]:
    return [str(batch[0]["sid"]) for batch in batches]


def _alone_runs(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the cases run alone (`_alone_caught`)."""
    counted: Counter[str] = Counter()
    real = Engine._alone_caught

    def spy(self: Engine, program: Program, facts: list[Mapping[str, Any]]) -> Any:
        counted["alone"] += 1
        return real(self, program, facts)

    monkeypatch.setattr(Engine, "_alone_caught", spy)
    return counted


def test_every_case_gets_its_alone_trace_in_any_order_and_chunk_size(
    bench: list[Run],
    examples: list[Run],
    generated: list[Run],
    calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = [*bench, *examples, *[(p, f) for p, f in generated if shares(p)]]
    assert len({p.name for p, _ in examples}) >= 2
    assert len({p.name for p, _ in runs}) >= 10
    alone = [_alone(p, f) for p, f in runs]
    shuffled = list(range(len(runs)))
    random.Random(21).shuffle(shuffled)
    for size in (1, 3, 7, 16):
        monkeypatch.setattr(Engine, "CASES_PER_BATCH", size)
        for order in (list(range(len(runs))), shuffled, shuffled[::-1]):
            by_program: dict[str, list[int]] = {}
            for i in order:
                by_program.setdefault(runs[i][0].name, []).append(i)
            calls.batches.clear()
            got: dict[int, Any] = {}
            for indices in by_program.values():
                program = runs[indices[0]][0]
                traces = Engine.get().run_many(program, [runs[i][1] for i in indices])
                got.update(zip(indices, traces, strict=True))
            assert all(isinstance(t, Trace) for t in got.values())
            assert [_derived(got[i]) for i in range(len(runs))] == alone
            # a stage of several cases in one call: far fewer calls than stages of all cases
            stages = sum(runs[i][0].stages for i in range(len(runs)))
            if size > 1:
                assert len(calls.batches) < stages / 2


def test_a_stage_batch_holds_every_cases_facts_before_any_marker(
    bench: list[Run], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No case's stage-n rule may fire before every case's facts of that stage are in (trap
    2): each stage's batch ends with the markers of all its cases, one each."""
    monkeypatch.setattr(Engine, "CASES_PER_BATCH", 5)
    program = bench[0][0]
    Engine.get().run_many(program, [f for _, f in bench[:10]])
    staged = [b for b in calls.batches if any(f["t"] == "stage" for f in b)]
    assert len(staged) == 2 * program.stages  # two chunks of five
    for batch in staged:
        kinds = [f["t"] == "stage" for f in batch]
        first = kinds.index(True)
        assert all(kinds[first:]), "a case fact or derived fact after a stage marker"
        markers = batch[first:]
        assert sorted(m[CASE_KEY] for m in markers) == [str(i) for i in range(5)]
        assert len({m["s"] for m in markers}) == 1
        assert first > 0  # the cases' facts (or what they derived) came first


def test_a_case_refused_before_the_engine_fails_alone_and_no_other_runs_again(
    bench: list[Run], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = bench[0][0]
    cases = [list(f) for _, f in bench[:8]]
    duplicate = [*cases[2], dict(cases[2][0])]  # two facts share an id
    bad_number = [*cases[5], {"t": "nicotine", "id": "nicotine:x", "cotinine": float("inf")}]
    cases[2], cases[5] = duplicate, bad_number
    expected: list[Any] = []
    for facts in cases:
        try:
            expected.append(_alone(program, facts))
        except EngineError as error:
            expected.append(str(error))
    assert isinstance(expected[2], str)
    assert isinstance(expected[5], str)
    alone_runs = _alone_runs(monkeypatch)
    calls.batches.clear()
    calls.deleted.clear()
    got = Engine.get().run_many(program, cases)
    assert [str(r) if isinstance(r, Exception) else _derived(r) for r in got] == expected
    assert alone_runs["alone"] == 0  # the chunk went on without the refused cases
    assert len(set(_sids(calls.batches))) == 1
    assert calls.deleted == _sids(calls.batches)[:1]


def _poisoned(facts: list[dict[str, Any]], trace: Trace) -> list[dict[str, Any]]:
    """The case with one fact some firing matched renamed `poison:...`."""
    matched = {i for e in trace.statuses.values() for i in e.matched.values()}
    ids = [f["id"] for f in facts if f.get("id") in matched]
    assert ids
    return [{**f, "id": f"poison:{f['id']}"} if f.get("id") == ids[0] else f for f in facts]


@pytest.fixture
def poison(monkeypatch: pytest.MonkeyPatch) -> None:
    """A firing that matched a fact named `poison:...` fails, alone as in a chunk."""
    real = orjson.loads

    def loads(text: Any) -> Any:
        out = real(text)
        if isinstance(out, dict):
            for given in out.values():
                if isinstance(given, dict) and any(
                    str(f.get(KEY, "")).startswith("poison:") for f in given.values()
                ):
                    raise EngineError.single("engine_failed", "injected: a poisoned firing")
        return out

    monkeypatch.setattr(engine, "orjson", type("Loads", (), {"loads": staticmethod(loads)}))


@pytest.mark.usefixtures("poison")
def test_a_case_failing_in_the_engine_fails_alone_and_the_others_run_again_alone(
    bench: list[Run], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = bench[0][0]
    cases = [list(f) for _, f in bench[:6]]
    alone = [_alone(program, f) for f in cases]
    cases[3] = _poisoned(cases[3], Engine.get().run(program, cases[3]))
    with pytest.raises(EngineError, match="poisoned"):
        Engine.get().run(program, cases[3])
    alone_runs = _alone_runs(monkeypatch)
    calls.batches.clear()
    calls.deleted.clear()
    got = Engine.get().run_many(program, cases)
    assert isinstance(got[3], EngineError)
    assert "poisoned" in str(got[3])
    assert [_derived(t) for t in _traces(got[:3] + got[4:])] == alone[:3] + alone[4:]
    assert alone_runs["alone"] == len(cases)
    chunk = _sids(calls.batches)[0]
    assert chunk not in calls.deleted  # unfinished: never deleted (trap 20)
    assert len(set(_sids(calls.batches))) == 1 + len(cases)  # then each in one of its own


@pytest.mark.parametrize("fault", ["error", "collision"])
def test_a_failed_chunk_is_left_in_place_and_its_cases_decided_alone(
    bench: list[Run], calls: Calls, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """A failure of no case's own (an engine error once, a 32-bit hash collision, trap 4):
    every case of the chunk is decided as alone; the session is left, never deleted."""
    program = bench[0][0]
    cases = [f for _, f in bench[:5]]
    alone = [_alone(program, f) for f in cases]
    if fault == "error":
        real = dre.complete_and_start_action
        count = {"n": 0}

        def broken(handle: int, state: int) -> Any:
            count["n"] += 1
            if count["n"] == 3:
                raise RuntimeError("injected")
            return real(handle, state)

        monkeypatch.setattr(dre, "complete_and_start_action", broken)
    else:
        real_assert = dre.assert_facts  # the `calls` spy
        count = {"n": 0}

        def colliding(handle: int, text: str) -> Any:
            count["n"] += 1
            return 2 if count["n"] == 2 else real_assert(handle, text)  # 2: already observed

        monkeypatch.setattr(dre, "assert_facts", colliding)
    alone_runs = _alone_runs(monkeypatch)
    calls.batches.clear()
    calls.deleted.clear()
    got = Engine.get().run_many(program, cases)
    assert [_derived(t) for t in _traces(got)] == alone
    assert alone_runs["alone"] == len(cases)
    assert _sids(calls.batches)[0] not in calls.deleted


def test_a_case_left_without_a_status_fails_closed_alone(
    bench: list[Run], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine derives no status for a required clause of one case of the chunk (its
    status firings are dropped): that case is an engine error, never a default; the others
    are decided as alone, in the same session, which is complete and deleted."""
    program = bench[0][0]
    statuses = {r.name for r in program.rules if isinstance(r.action, EmitStatus)}
    cases = [f for _, f in bench[:6]]
    alone = [_alone(program, f) for f in cases]
    real = orjson.loads

    def loads(text: Any) -> Any:
        out = real(text)
        if isinstance(out, dict):
            for name, given in list(out.items()):
                if name in statuses and any(f.get(CASE_KEY) == "4" for f in given.values()):
                    return {}  # the firing is dropped: case 4 gets no status from it
        return out

    monkeypatch.setattr(engine, "orjson", type("Loads", (), {"loads": staticmethod(loads)}))
    alone_runs = _alone_runs(monkeypatch)
    calls.batches.clear()
    calls.deleted.clear()
    got = Engine.get().run_many(program, cases)
    assert isinstance(got[4], EngineError)
    assert got[4].problems[0].code == "engine_incomplete"
    assert [_derived(t) for t in _traces(got[:4] + got[5:])] == alone[:4] + alone[5:]
    assert alone_runs["alone"] == 0
    assert calls.deleted == _sids(calls.batches)[:1]


def _chunk_firing(
    bench: list[Run], monkeypatch: pytest.MonkeyPatch, given: Callable[[Any], Any]
) -> engine._Chunk:
    """A chunk of cases "0" and "1" whose engine hands out one firing: `given(rule)`."""
    program = bench[0][0]
    rule = next(r for r in program.rules if len(r.patterns) > 1 and r.stage == 1)
    cases = [engine._Session(0, program, "7", key) for key in ("0", "1")]
    chunk = engine._Chunk(0, program, "7", cases)
    chunk.carrier.state = 1
    message = orjson.dumps({rule.name: given(rule)}).decode()
    monkeypatch.setattr(dre, "start_action_for_state", lambda _h, _s: (None, message))
    monkeypatch.setattr(dre, "complete_and_start_action", lambda _h, _s: None)
    for case in cases:
        case.stage = 1
    return chunk


@pytest.mark.parametrize(
    "case_keys",
    [["0", "1"], ["9", "9"], [None]],
    ids=["two cases", "no case of the chunk", "no case key"],
)
def test_a_firing_of_no_single_case_of_the_chunk_is_an_engine_error(
    bench: list[Run], monkeypatch: pytest.MonkeyPatch, case_keys: list[Any]
) -> None:
    """Were a join missing, the engine would hand a case another case's fact: never used."""

    def given(rule: Any) -> dict[str, Any]:
        matched: dict[str, Any] = {}
        for i, pattern in enumerate(rule.patterns):
            key = case_keys[min(i, len(case_keys) - 1)]
            matched[pattern.alias] = {"t": "x"} if key is None else {CASE_KEY: key, "t": "x"}
        return matched

    chunk = _chunk_firing(bench, monkeypatch, given)
    with pytest.raises(EngineError, match="another case"):
        chunk.drain(1)
    assert all(not c.trace.statuses and not c.trace.values for c in chunk.cases.values())
    assert all(c.trace.firings == 0 for c in chunk.cases.values())


def test_a_batch_of_matches_in_a_chunk_is_an_engine_error(
    bench: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counted rule's batch could hold matches of several cases: never dispatched."""
    chunk = _chunk_firing(
        bench, monkeypatch, lambda rule: [{p.alias: {CASE_KEY: "0"} for p in rule.patterns}]
    )
    with pytest.raises(EngineError, match="batch of matches"):
        chunk.drain(1)


def test_a_firing_outside_its_stage_in_a_chunk_is_an_engine_error(
    bench: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    chunk = _chunk_firing(
        bench, monkeypatch, lambda rule: {p.alias: {CASE_KEY: "1"} for p in rule.patterns}
    )
    for case in chunk.cases.values():
        case.stage = 2  # as `_Chunk.run` sets them before it drains
    with pytest.raises(EngineError, match="of stage 1 fired in stage 2"):
        chunk.drain(2)


def test_an_interrupt_in_a_chunk_leaves_its_session_in_place(
    bench: list[Run], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = bench[0][0]
    real = dre.complete_and_start_action

    def interrupted(_handle: int, _state: int) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(dre, "complete_and_start_action", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Engine.get().run_many(program, [f for _, f in bench[:4]])
    monkeypatch.setattr(dre, "complete_and_start_action", real)
    assert calls.deleted == []  # unfinished (trap 20)
    trace = Engine.get().run_many(program, [bench[4][1]])[0]
    assert isinstance(trace, Trace)
    assert _derived(trace) == _alone(program, bench[4][1])


def test_review_many_runs_a_sharing_programs_cases_together_as_alone(
    calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`api.review_many` on bench cases: each review (or error) is `review_case`'s, and the
    engine got several cases per call."""
    library = Library(compare.POLICIES)
    _, parsed = compare.parse(benchgen.generate(30))
    break_in_the_engine(monkeypatch, parsed[7].case_id)
    alone: list[Any] = []
    for case in parsed:
        try:
            alone.append(_json(api.review_case(case, library)))
        except EngineError as error:
            alone.append(str(error))
    assert isinstance(alone[7], str)
    calls.batches.clear()
    together = api.review_many(parsed, library)
    assert [str(r) if isinstance(r, Exception) else _json(r) for r in together] == alone
    staged = [b for b in calls.batches if any(f["t"] == "stage" for f in b)]
    # the first 16 cases in one chunk, less the refused one
    assert max(sum(f["t"] == "stage" for f in b) for b in staged) == Engine.CASES_PER_BATCH - 1


@pytest.mark.parametrize("first", ["engine", "policy"])
def test_review_many_gives_a_case_the_first_error_review_case_meets(
    monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """A case with two governing policies: one fails in the engine, the other cannot be
    compiled. `review_case` goes policy by policy (gather, run, assemble) and raises the first
    failure it meets; `review_many` gathers every case first, and must still give that one."""
    library = Library()
    case = next(c for c in map(load_case, EXAMPLES) if len(_policies(c, library)) >= 2)
    one, two = _policies(case, library)[:2]
    if first == "policy":
        one, two = two, one
    original_facts, original_program = api.facts_for, api.program_for

    def facts_for(case: Case, policy: Any, *args: Any) -> list[dict[str, Any]]:
        facts = original_facts(case, policy, *args)
        if policy.id == one.id:  # a number the engine cannot take
            facts.append({"t": "nicotine", "id": "nicotine:x", "cotinine": float("inf")})
        return facts

    def program_for(policy: Any) -> Program:
        if policy.id == two.id:
            raise PolicyError.single("injected", "cannot compile")
        return original_program(policy)

    monkeypatch.setattr(api, "facts_for", facts_for)
    monkeypatch.setattr(api, "program_for", program_for)
    with pytest.raises(NecessityError) as alone:
        api.review_case(case, library)
    together = api.review_many([case], library)[0]
    assert type(together) is type(alone.value)
    assert str(together) == str(alone.value)
    order = [p.id for p in _policies(case, library)]
    expected = EngineError if order.index(one.id) < order.index(two.id) else PolicyError
    assert isinstance(together, expected)


def _policies(case: Case, library: Library) -> list[Any]:
    """The case's governing policies in the order `review_case` evaluates them."""
    chosen = api._governing(case, library)
    return list({p.ref: p for line in case.lines if (p := chosen[line.id])}.values())


def break_in_the_engine(monkeypatch: pytest.MonkeyPatch, case_id: str) -> None:
    """The case's facts get a number the engine cannot take: an engine error, alone or not."""
    original = api.facts_for

    def facts_for(case: Case, *args: Any) -> list[dict[str, Any]]:
        facts = original(case, *args)
        if case.case_id == case_id:
            facts.append({"t": "nicotine", "id": "nicotine:broken", "cotinine": float("inf")})
        return facts

    monkeypatch.setattr(api, "facts_for", facts_for)


def test_random_faults_in_batch_mode_never_change_another_case() -> None:
    """tests/fault_sweep_many.py: a seeded quarter of `run_many` calls get a Ctrl-C, an error or
    a reported collision in one durable_rules call or firing (chunks of 1-40 cases, 7 to a
    session, registered afresh often); every case is decided as alone or fails (only when the
    fault fired), a Ctrl-C stops the call, and nothing hangs or crashes. Deterministic."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.fault_sweep_many", "21", "1000"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert done.stdout.strip().endswith("problems 0")
    assert "call raised KeyboardInterrupt" in done.stdout
    assert "decided (collide)" in done.stdout
