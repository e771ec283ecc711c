"""A batch's JSON line (batch.encode: one encoder made once, no cycle check) is byte for byte
what json.dumps(record, ensure_ascii=False, sort_keys=True) made, and only a batch's own
worker processes tune their garbage collector, never the caller's process (issue 10)."""

from __future__ import annotations

import gc
import json
import math
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import benchgen
from evaluator.batch import runner as batch
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "cases"
BENCH_POLICIES = ROOT / "benchmarks" / "policies"


def before(record: Any) -> bytes:
    """The line as batch.encode made it before issue 10."""
    return (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def outcome(encode: Any, value: Any) -> Any:
    try:
        return encode(value)
    except (ValueError, TypeError) as error:  # UnicodeEncodeError is a ValueError
        return type(error)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e16, 1e-5, -0.0, 123456789.125, 1e300, 5e-324])
    | st.text()
    | st.sampled_from(['"quoted", colon: \\ slash', "\x00\x1f\x7f\u2028", "\ud800"]),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_any_json_value_encodes_as_json_dumps_did(value):
    got, expected = outcome(batch.encode, value), outcome(before, value)
    assert got == expected
    if isinstance(value, float) and math.isnan(value):
        assert got == b"NaN\n"


def test_a_lone_surrogate_still_fails_as_it_did():
    with pytest.raises(UnicodeEncodeError):
        batch.encode({"case": "\ud800"})


def _lines(folder: Path, policy: str | None, root: Path | None) -> list[tuple[bytes, bytes]]:
    library = Library(root) if root is not None else Library()
    out = []
    for item in batch.items(batch.sources([folder])):
        record = batch.review_item(item, policy, library)
        out.append((batch.encode(record), before(record)))
    return out


def test_every_example_case_s_line_is_the_same():
    lines = _lines(EXAMPLES, None, None)
    assert len(lines) >= 37
    for got, expected in lines:
        assert got == expected


def test_bench_case_lines_are_the_same(tmp_path: Path):
    benchgen.write_files(benchgen.generate(1000, seed=11), tmp_path)
    lines = _lines(tmp_path, "bench-fusion", BENCH_POLICIES)
    assert len(lines) == 1000
    for got, expected in lines:
        assert got == expected
    assert not any(b'"error"' in got for got, _ in lines)


def test_a_batch_in_the_caller_s_process_leaves_its_garbage_collector_alone(tmp_path: Path):
    # A library must not freeze or retune its caller's heap: only worker processes tune theirs.
    benchgen.write_files(benchgen.generate(40, seed=12), tmp_path)
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    library = Library(BENCH_POLICIES)
    with open(os.devnull, "wb") as stream:
        writer = batch.Writer(stream, os.devnull, sync=False)
        batch.run(batch.items([tmp_path]), "bench-fusion", library, writer.write)
        writer.flush()
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen


def test_a_worker_process_collects_its_garbage_less_often(monkeypatch: pytest.MonkeyPatch):
    # _work runs as a worker process's whole life; here in this process, with what it would
    # change of the process (signals, the collector) and the library stood in for.
    calls: list[tuple[int, ...]] = []
    monkeypatch.setattr(gc, "set_threshold", lambda *a: calls.append(a))
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    monkeypatch.setattr(batch, "_library", lambda root: root)
    ours, theirs = multiprocessing.Pipe()
    ours.send(None)  # no chunk: stop at once
    batch._work(theirs, "policies", None, batch.review_item)
    assert ours.recv() == ("ready", None)
    assert calls == [batch.WORKER_GC_THRESHOLDS]
    # the youngest generation less often; the older ones no less often than every 2 (which
    # keeps a worker's peak memory flat: benchmarks, not here)
    young, middle, old = batch.WORKER_GC_THRESHOLDS
    assert young > 700
    assert middle <= 2
    assert old <= 2


# --- the main process reading a worker's line ---------------------------------------------------


def _read(decode: Any, line: bytes) -> Any:
    try:
        return repr(decode(line))  # repr: 1, 1.0 and True differ, and NaN reads as itself
    except (ValueError, RecursionError) as error:
        return type(error)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_a_worker_s_line_is_read_as_json_loads_read_it(value: Any) -> None:
    try:
        line = before({"case": "x", "value": value})
    except (ValueError, TypeError):
        return  # no line: nothing to read
    assert _read(batch._decoded, line) == _read(json.loads, line)


@pytest.mark.parametrize(
    "number",
    [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**18, 10**19, 10**30],
)
def test_integers_past_64_bits_are_read_as_integers(number: int) -> None:
    line = before({"case": "x", "n": number, "m": [number, -number]})
    assert repr(batch._decoded(line)) == repr(json.loads(line))


def test_bench_records_lines_are_read_as_json_loads_read_them(tmp_path: Path) -> None:
    benchgen.write_files(benchgen.generate(100, seed=23), tmp_path)
    library = Library(BENCH_POLICIES)
    for item in batch.items(batch.sources([tmp_path])):
        line = batch.encode(batch.review_item(item, "bench-fusion", library))
        assert repr(batch._decoded(line)) == repr(json.loads(line))
