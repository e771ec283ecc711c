"""A batch worker's chunk reviewed together (issue 10, stop 21): `runner.review_items` gives
every item the record `review_item` gives it alone, error records included (an unreadable
line, an invalid case, an engine error, a bug), and workers use it for the default review."""

from __future__ import annotations

import gc
import json
import multiprocessing
import signal
from pathlib import Path
from typing import Any

import pytest

from benchmarks import benchgen
from evaluator import api
from evaluator.batch import runner as batch
from evaluator.case.cases import Case
from evaluator.engine.durable import Engine
from evaluator.language.policies import Library
from evaluator.render import decision as render
from tests.test_run_many import break_in_the_engine

ROOT = Path(__file__).parent.parent
BENCH_POLICIES = ROOT / "benchmarks" / "policies"


def _stampless(record: dict[str, Any]) -> dict[str, Any]:
    record = json.loads(json.dumps(record))
    record.get("result", {}).pop("evaluated_at", None)
    return record


@pytest.fixture
def items(tmp_path: Path) -> list[batch.Item]:
    """20 bench cases as JSON lines, with an unreadable line and an invalid case among them."""
    lines = [json.dumps(doc) for doc in benchgen.generate(20)]
    lines[4] = "{not json"
    lines[9] = json.dumps({"case_id": 1})
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list(batch.items(batch.sources([path])))


@pytest.mark.parametrize(
    ("policy", "together_call", "not_called"),
    [(None, "review_many", "evaluate_many"), ("bench-fusion", "evaluate_many", "review_many")],
    ids=["each-line-s-policy", "a-named-policy"],
)
def test_a_chunk_together_gets_the_records_its_items_get_alone(
    items: list[batch.Item],
    monkeypatch: pytest.MonkeyPatch,
    policy: str | None,
    together_call: str,
    not_called: str,
) -> None:
    """The chunk's cases go to the engine in one call (`api.review_many`, or with a policy
    named `api.evaluate_many`), each with the record `review_item` gives it alone, error
    records included: an engine error and a bug stay their own case's."""
    library = Library(BENCH_POLICIES)
    break_in_the_engine(monkeypatch, json.loads(items[6].text or "")["case_id"])
    bug = json.loads(items[13].text or "")["case_id"]
    original = api.facts_for

    def facts_for(case: Case, *args: Any) -> list[dict[str, Any]]:
        if case.case_id == bug:
            raise KeyError("injected")
        return original(case, *args)

    monkeypatch.setattr(api, "facts_for", facts_for)
    monkeypatch.setattr(api, not_called, lambda *_: pytest.fail(f"{not_called} called"))
    many = getattr(api, together_call)
    together: list[int] = []

    def spy(cases: Any, *rest: Any) -> Any:
        together.append(len(cases))
        return many(cases, *rest)

    monkeypatch.setattr(api, together_call, spy)
    alone = [_stampless(batch.review_item(item, policy, library)) for item in items]
    got = [_stampless(record) for record in batch.review_items(items, policy, library)]
    assert got == alone
    errors = [r.get("error") for r in got]
    assert errors[4] == errors[9] == "invalid_input"
    assert errors[6] == "engine_error"
    assert errors[13] == "internal_error"
    assert "KeyError" in got[13]["problems"][0]["message"]
    assert errors.count(None) == len(items) - 4
    assert together == [len(items) - 2]  # every case read went in one call


def test_evaluate_many_gives_each_case_what_evaluate_gives_it(
    items: list[batch.Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`api.evaluate_many` on more cases than one engine batch: each decision (or error) is
    `api.evaluate`'s, in order, whatever program runs it."""
    library = Library(BENCH_POLICIES)
    parsed = [batch._load(item) for i, item in enumerate(items) if i not in (4, 9)] * 2
    broken = parsed[6].case_id
    break_in_the_engine(monkeypatch, broken)
    chosen = [(case, batch._selected(case, "bench-fusion", library)) for case in parsed]
    assert len(chosen) > 2 * Engine.CASES_PER_BATCH

    def decided(result: Any) -> Any:
        if isinstance(result, Exception):
            return type(result).__name__, str(result)
        return json.dumps(render.decision_json(result, "stamp"), sort_keys=True)

    alone = []
    for case, policy in chosen:
        try:
            alone.append(decided(api.evaluate(case, policy)))
        except Exception as error:  # compared with what evaluate_many gives
            alone.append(decided(error))
    together = [decided(result) for result in api.evaluate_many(chosen)]
    assert together == alone
    assert sum(isinstance(a, tuple) for a in alone) == 2  # the broken case, twice
    assert api.evaluate_many([]) == []


def test_a_worker_reviews_its_chunk_together(
    items: list[batch.Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_work` (a worker process's whole life, run here in this process) hands the default
    review's chunk to `review_items`; any other review still goes item by item."""
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    monkeypatch.setattr(gc, "set_threshold", lambda *_: None)
    seen = _spied_chunks(monkeypatch)
    for review, expected in ((batch.review_item, [5]), (_item_by_item, [])):
        seen.clear()
        ours, theirs = multiprocessing.Pipe()
        ours.send(items[:5])
        ours.send(None)
        batch._work(theirs, str(BENCH_POLICIES), None, review)
        assert ours.recv() == ("ready", None)
        kind, sent = ours.recv()  # one message a chunk
        assert kind == "done"
        assert len(sent) == 5
        assert seen == expected


def _item_by_item(item: batch.Item, policy: str | None, library: Library) -> dict[str, Any]:
    return batch.review_item(item, policy, library)


def _spied_chunks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = batch.review_items

    def spy(chunk: Any, policy: str | None, library: Library) -> Any:
        seen.append(len(chunk))
        return real(chunk, policy, library)

    monkeypatch.setattr(batch, "review_items", spy)
    return seen


@pytest.mark.parametrize("policy", [None, "bench-fusion"], ids=["every-line", "named"])
def test_one_process_reviews_a_few_cases_at_a_time(
    items: list[batch.Item], policy: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10, stop 23: `batch --jobs 1` reviews its cases a chunk at a time, as a worker
    does (each step over the chunk's cases in turn: 14 % less CPU a bench case), with the
    records it gave one case at a time; any other review still goes item by item."""
    library = Library(BENCH_POLICIES)
    alone = [_stampless(batch.review_item(item, policy, library)) for item in items]
    monkeypatch.setattr(batch, "IN_PROCESS_CHUNK", 8)
    seen = _spied_chunks(monkeypatch)
    got = [_stampless(r) for r in batch.records(iter(items), policy, library)]
    assert seen == [8, 8, 4]
    assert got == alone
    seen.clear()
    assert [
        _stampless(r) for r in batch.records(iter(items), policy, library, review=_item_by_item)
    ] == alone
    assert seen == []


def test_a_chunk_reads_every_case_then_evaluates_every_case_then_renders(
    items: list[batch.Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    library = Library(BENCH_POLICIES)
    steps: list[str] = []

    def spied(name: str, real: Any) -> Any:
        def step(*args: Any) -> Any:
            steps.append(name)
            return real(*args)

        return step

    monkeypatch.setattr(batch, "_load", spied("read", batch._load))
    many = api.evaluate_many

    def evaluate_many(chosen: Any) -> Any:
        steps.extend(["evaluate"] * len(chosen))
        return many(chosen)

    monkeypatch.setattr(api, "evaluate_many", evaluate_many)
    monkeypatch.setattr(batch, "_decision_record", spied("render", batch._decision_record))
    records = batch.review_items(items[:6], "bench-fusion", library)
    # the fifth line is no JSON: read, never evaluated
    assert steps == ["read"] * 6 + ["evaluate"] * 5 + ["render"] * 5
    assert len({r["result"]["evaluated_at"] for r in records if "result" in r}) == 1


def test_a_stop_in_one_process_ends_the_batch_after_the_chunk_in_hand(
    items: list[batch.Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop (Ctrl-C) asked while a chunk is reviewed: its records come out, whole, and no
    further case is read."""
    library = Library(BENCH_POLICIES)
    monkeypatch.setattr(batch, "IN_PROCESS_CHUNK", 8)
    seen = _spied_chunks(monkeypatch)
    taken: list[batch.Item] = []

    def listed() -> Any:
        for item in items:
            taken.append(item)
            yield item

    got = list(batch.records(listed(), "bench-fusion", library, stop=lambda: bool(seen)))
    assert [r["case"] for r in got] == [item.name for item in items[:8]]
    assert len(taken) == 8


def test_one_process_collects_garbage_as_a_worker_only_while_it_reviews_a_chunk(
    items: list[batch.Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk in hand made Python's default thresholds collect far more often (46 us a bench
    case); the caller's thresholds are back whenever its code runs (a record handed out)."""
    library = Library(BENCH_POLICIES)
    seen: list[tuple[int, ...]] = []
    real = batch.review_items

    def spy(chunk: Any, policy: str | None, library: Library) -> Any:
        seen.append(gc.get_threshold())
        return real(chunk, policy, library)

    monkeypatch.setattr(batch, "review_items", spy)
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        handed = [
            gc.get_threshold() for _ in batch.records(iter(items[:3]), "bench-fusion", library)
        ]
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*before)
    assert seen == [batch.WORKER_GC_THRESHOLDS]
    assert handed == [(700, 10, 10)] * 3
    assert after == (700, 10, 10)
