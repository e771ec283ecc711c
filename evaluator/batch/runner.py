"""Batch review: many cases, one JSON record per case, in input order, written as it goes.

A batch loses nothing: every case gets a record, whatever goes wrong with it (a bad file, an
engine error, a bug, a worker process that dies), and the batch goes on. Records name the case
and carry its id and content hash, so an interrupted run can be resumed into the same file.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import itertools
import json
import multiprocessing
import os
import signal
import stat
import time
import traceback
import weakref
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from evaluator.errors import EngineError, InputError, Location, NecessityError, Problem
from evaluator.read import source

# The evaluation stack (the case model, the engine, the decision, its rendering: 150 ms of
# imports) is imported where a case is reviewed, not here: the main process of a batch with
# worker processes never reviews one, and importing it there delayed their start and took CPU
# they need (0.15 s a batch, 50 us a case of 3,000). So is the policy language (the model and
# the library, another 50 ms): such a main process is given the policies' folder, not a
# Library (`records`).
if TYPE_CHECKING:
    from evaluator import api
    from evaluator.case import cases
    from evaluator.decide.decision import Decision
    from evaluator.language.model import Policy
    from evaluator.language.policies import Library

STDIN = "-"
STDIN_NAME = "<stdin>"
LINES_SUFFIX = ".jsonl"
CASE_SUFFIXES = (*source.DATA_SUFFIXES, LINES_SUFFIX)

# A JSON Lines stream is read a line at a time; a longer line is refused, not held in memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
# An exception's own text can be anything (a 5,000-digit number, a whole document): cut it.
MAX_MESSAGE = 300

# Error kinds a record may carry; none of them is a determination.
INVALID_INPUT = "invalid_input"
ENGINE_ERROR = "engine_error"
INTERNAL_ERROR = "internal_error"
WORKER_DIED = "worker_died"
FAILURES = frozenset({ENGINE_ERROR, INTERNAL_ERROR, WORKER_DIED})

Record = dict[str, Any]


class BatchError(Exception):
    """The batch cannot go on (not one case's problem): the output or the worker pool failed."""


class OutputError(BatchError):
    """Records could not be written; `error` is the operating system's reason."""

    def __init__(self, name: str, error: OSError) -> None:
        reason = (error.strerror or type(error).__name__).lower()
        super().__init__(f"cannot write {name}: {reason}")
        self.error = error


# --- what to review -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One case to review: a case file (`path`) or one line of a JSON Lines stream (`text`).

    `name` is what its record calls it (the path, or `<stream>:<line>`); `sha256` is the hash of
    its bytes (None when they could not be read); `problem` says why it could not be read.
    A `deferred` case file is not read yet: `read` gives it its hash, bytes and problem where
    it is reviewed (a worker process), and a record is only ever made of an item read.
    """

    name: str
    path: str | None = None
    text: str | None = None
    stream: str | None = None  # the JSON Lines file (or `<stdin>`) holding `text`
    line: int = 1
    sha256: str | None = None
    problem: Problem | None = None
    # A case file's bytes as hashed, so that reviewing it reads the file once, not twice
    # (6 system calls a case); None when they were not kept (unreadable or over the size
    # limit), and the loader then reads the file itself and says what is wrong with it.
    content: bytes | None = field(default=None, repr=False, compare=False)
    deferred: bool = False


def case_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield the case files named, searching folders (sorted) for .json/.yaml/.yml files."""
    return source.find_files(paths)


def sources(paths: Iterable[str | Path]) -> list[Path]:
    """Return the inputs named: case files, `.jsonl` files and `-`, folders searched (sorted)."""
    return list(source.find_files(paths, CASE_SUFFIXES))


def is_stream(path: Path) -> bool:
    """True for an input holding any number of cases (`-` or a `.jsonl` file)."""
    return str(path) == STDIN or path.suffix.lower() == LINES_SUFFIX


def items(
    paths: Iterable[Path], stdin: IO[bytes] | None = None, *, read: bool = True
) -> Iterator[Item]:
    """Yield the cases of `paths` (as `sources` returns them) lazily, one Item each.

    `-` reads JSON Lines from `stdin`: one case document per line, blank lines skipped.
    Without `read`, a case file's item is `deferred`: read and hashed where it is reviewed
    (`records` with worker processes reads it there: the main process, which shares the cores
    with them, is spared 30 us a case), so its `sha256` is not known here.
    """
    for path in paths:
        if str(path) == STDIN:
            if stdin is not None:
                yield from _lines(stdin, STDIN_NAME)
        elif path.suffix.lower() == LINES_SUFFIX:
            yield from _lines_of_file(path)
        elif read:
            yield _file_item(path)
        else:
            yield Item(str(path), path=str(path), deferred=True)


def read(item: Item) -> Item:
    """Return a `deferred` item read (its hash, bytes and any problem, as `items` gives them
    when it reads); any other item as it is."""
    return _file_item(Path(item.path or item.name), item.name) if item.deferred else item


def _file_item(path: Path, name: str | None = None) -> Item:
    problem = _special(path)
    sha256, content = (None, None) if problem else _file_content(path)
    named = str(path) if name is None else name
    return Item(named, path=str(path), sha256=sha256, problem=problem, content=content)


def is_special(path: Path) -> bool:
    """True for a FIFO, device or socket: never opened, since it may never end."""
    return _special(path) is not None


def _special(path: Path) -> Problem | None:
    """Why `path` cannot be read as a file, if it is there but no regular file.

    A FIFO would hang the batch and /dev/zero never ends; a missing file or a folder is left to
    the loader, which says so.
    """
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
    return Problem("unreadable_file", f"not a regular file ({kind})", Location(str(path)))


def _file_sha256(path: Path) -> str | None:
    return _file_content(path)[0]


def _file_content(path: Path) -> tuple[str | None, bytes | None]:
    """Return the hash of the file's bytes and the bytes themselves, the bytes only when a case
    file may hold that many (`source.LIMITS.max_bytes`); (None, None) when it cannot be read."""
    # Read here a piece at a time: hashlib.file_digest allocates a 256 kB buffer per file,
    # which costs more than reading and hashing a case file.
    digest = hashlib.sha256()
    parts: list[bytes] = []
    kept = 0
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None, None  # the loader says what is wrong with it
    try:
        while part := os.read(descriptor, _HASH_CHUNK):
            digest.update(part)
            kept += len(part)
            if kept <= source.LIMITS.max_bytes:
                parts.append(part)
    except OSError:
        return None, None
    finally:
        os.close(descriptor)
    if kept > source.LIMITS.max_bytes:
        return digest.hexdigest(), None  # the loader refuses it, with its own message
    return digest.hexdigest(), parts[0] if len(parts) == 1 else b"".join(parts)


_HASH_CHUNK = 64 * 1024


def _lines_of_file(path: Path) -> Iterator[Item]:
    name = str(path)
    problem = _special(path)
    if problem is None and not path.is_file():
        problem = Problem("file_not_found", "no such file", Location(name))
    if problem is not None:
        yield Item(name, problem=problem)
        return
    try:
        with path.open("rb") as stream:
            yield from _lines(stream, name)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        yield Item(
            name, problem=Problem("unreadable_file", f"cannot read: {reason}", Location(name))
        )


def _lines(stream: IO[bytes], name: str) -> Iterator[Item]:
    for number in itertools.count(1):
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        where = Location(name, number)
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line, a piece at a time
                raw = stream.readline(MAX_LINE_BYTES)
            message = f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB"
            yield Item(f"{name}:{number}", problem=Problem("document_too_large", message, where))
            continue
        content = raw.rstrip(b"\r\n")
        if number == 1 and content.startswith(b"\xef\xbb\xbf"):
            content = content[3:]
        if not content.strip():
            continue
        sha256 = hashlib.sha256(content).hexdigest()
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as error:
            message = f"not utf-8 text (byte 0x{content[error.start]:02x} at offset {error.start})"
            problem = Problem("unreadable_file", message, where)
            yield Item(f"{name}:{number}", sha256=sha256, problem=problem)
            continue
        yield Item(f"{name}:{number}", text=text, stream=name, line=number, sha256=sha256)


# --- one case -----------------------------------------------------------------------------------


def review_item(item: Item, policy: str | None, library: Library) -> Record:
    """Return the record of one case: its result, or why it has none.

    Never raises for anything a case can cause: a bad case, an engine failure or a bug in
    necessity becomes an error record (`invalid_input`, `engine_error`, `internal_error`) and
    the batch goes on.
    """
    item = read(item)
    record: Record = {"case": item.name, "case_id": None, "sha256": item.sha256}
    try:
        case = _loaded(item, record)
        record.update(_review(case, policy, library))
    except Exception as error:  # any bug is this case's record, not the batch's end
        return _failure(record, item, error)
    return record


def review_items(items: Sequence[Item], policy: str | None, library: Library) -> list[Record]:
    """Return `review_item` of each item, in order, each record (error records included) the
    one `review_item` gives. Every case is read before any is reviewed: one step at a time
    over several cases keeps each step's code and data in the CPU's caches, which reviewing
    them one by one, each step in turn, does not (about 15 % less CPU a bench case). The cases
    are reviewed together (batch mode, a small program's cases several to an engine call):
    with no policy named by `api.review_many`; with one by `api.evaluate_many`, then every
    decision is rendered (the time they were evaluated, to the second, is the chunk's)."""
    from evaluator import api  # noqa: PLC0415  (imported where reviewed: see above)

    records: list[Record] = []
    loaded: list[tuple[Record, Item, cases.Case]] = []
    for item in map(read, items):
        record: Record = {"case": item.name, "case_id": None, "sha256": item.sha256}
        try:
            loaded.append((record, item, _loaded(item, record)))
        except Exception as error:  # any bug is this case's record, not the batch's end
            record = _failure(record, item, error)
        records.append(record)
    if policy is not None:
        # A step at a time here too: every case's policy chosen, every case evaluated (batch
        # mode, `api.evaluate_many`), then every decision rendered.
        chosen: list[tuple[Record, Item, cases.Case, Policy]] = []
        for record, item, case in loaded:
            try:
                chosen.append((record, item, case, _selected(case, policy, library)))
            except Exception as error:  # as in `review_item`
                _failure(record, item, error)
        decisions = api.evaluate_many(
            [(case, chosen_policy) for _, _, case, chosen_policy in chosen]
        )
        stamp = _stamp()
        for (record, item, _, _), decision in zip(chosen, decisions, strict=True):
            if isinstance(decision, Exception):
                _failure(record, item, decision)
                continue
            try:
                record.update(_decision_record(decision, stamp))
            except Exception as error:  # as in `review_item`
                _failure(record, item, error)
        return records
    reviews = api.review_many([case for _, _, case in loaded], library)
    for (record, item, _), review in zip(loaded, reviews, strict=True):
        try:
            if isinstance(review, Exception):
                raise review
            record.update(_review_record(review))
        except Exception as error:  # as in `review_item`
            _failure(record, item, error)
    return records


def _failure(record: Record, item: Item, error: Exception) -> Record:
    if isinstance(error, InputError):
        return _failed(record, INVALID_INPUT, error)
    if isinstance(error, EngineError):
        # An engine failure is never a determination: the record carries no result.
        return _failed(record, ENGINE_ERROR, error)
    return _failed(record, INTERNAL_ERROR, _internal(item, error))


def _loaded(item: Item, record: Record) -> cases.Case:
    """Return the item's case, its id noted in its record; raise why it cannot be read."""
    if item.problem is not None:
        raise InputError([item.problem])
    case = _load(item)
    record["case_id"] = case.case_id
    return case


def _load(item: Item) -> cases.Case:
    from evaluator.case import cases  # noqa: PLC0415  (imported where reviewed: see above)

    if item.text is not None:
        document = source.load_line(item.text, item.stream or item.name, item.line)
        return cases.case_from_document(document)
    if item.content is not None and item.path is not None:
        return cases.case_from_document(source.load_bytes(item.content, item.path))
    return cases.load_case(item.path or item.name)


def _review(case: cases.Case, policy: str | None, library: Library) -> Record:
    from evaluator import api  # noqa: PLC0415  (imported where reviewed: see above)

    if policy is None:
        return _review_record(api.review_case(case, library))
    stamp = _stamp()
    return _decision_record(api.evaluate(case, _selected(case, policy, library)), stamp)


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _decision_record(decision: Decision, stamp: str) -> Record:
    from evaluator.render import decision as render  # noqa: PLC0415  (see the imports)

    return {
        "determination": decision.determination.value,
        "x12_action": decision.x12_action,
        "result": render.decision_json(decision, stamp),
    }


# The policy a named policy gives a case depends only on the date that chooses the version in
# force (the library lists and loads its files once): chosen once per date, not per case.
_SELECTED: weakref.WeakKeyDictionary[Library, dict[tuple[str, date], Policy]] = (
    weakref.WeakKeyDictionary()
)


def _selected(case: cases.Case, policy: str, library: Library) -> Policy:
    chosen = _SELECTED.setdefault(library, {})
    key = (policy, case.in_force_date)
    if key not in chosen:
        from evaluator import api  # noqa: PLC0415  (imported where reviewed: see above)

        chosen[key] = api.select_policy(case, policy, library)  # raises every time, if it does
    return chosen[key]


def _review_record(review: api.CaseReview) -> Record:
    from evaluator.render import review as render_review  # noqa: PLC0415  (see above)

    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "determination": review.overall.value,
        "x12_action": review.x12_action,
        "result": render_review.review_json(review, stamp),
    }


def _failed(record: Record, kind: str, error: NecessityError) -> Record:
    for key in ("determination", "x12_action", "result"):
        record.pop(key, None)
    record["error"] = kind
    record["problems"] = [p.as_dict() for p in error.problems]
    return record


def _internal(item: Item, error: Exception) -> NecessityError:
    # The record says where the bug is, in one line; the traceback is not the user's business.
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    text = str(error)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "..."
    message = f"internal error ({type(error).__name__}{where}): {text}".rstrip(": ")
    hint = "this is a bug in necessity; no determination was made for this case"
    return NecessityError([Problem(INTERNAL_ERROR, message, _where(item), hint)])


def _where(item: Item) -> Location:
    if item.stream is not None:
        return Location(item.stream, item.line)
    return Location(item.name)


def _worker_died(item: Item, how: str) -> Record:
    problem = Problem(
        WORKER_DIED,
        f"the worker process reviewing this case died twice ({how})",
        _where(item),
        "no determination was made for this case; review it alone to see why",
    )
    record: Record = {"case": item.name, "case_id": None, "sha256": item.sha256}
    return _failed(record, WORKER_DIED, NecessityError([problem]))


# --- many cases in worker processes -------------------------------------------------------------


# What json.dumps(record, ensure_ascii=False, sort_keys=True) makes, with one encoder made
# once rather than one a line, and no check for cycles: a record is made of JSON's own values,
# read or built afresh for each case, and never contains itself (12 % of encoding a line).
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False)


def encode(record: Record) -> bytes:
    """Return the JSON line of a record as a batch writes it (keys sorted, UTF-8, newline)."""
    return (_ENCODER.encode(record) + "\n").encode("utf-8")


def _decoded(line: bytes) -> Any:
    """Return `json.loads(line)` for a record's line, read by orjson where it reads the same
    values (in 11 us rather than 24 for a bench record, CPU the main process shares with its
    workers): a line without a run of 19 digits holds no integer past orjson's 64 bits (which
    it would read as a float); NaN and the infinities, which orjson refuses, and whatever else
    it refuses are read by json.loads."""
    if _LONG_DIGITS in line.translate(_DIGITS):
        return json.loads(line)
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


# Every digit a 0, anything else a space: a run of as many zeros as 2**63 has digits may be an
# integer orjson cannot hold.
_DIGITS = bytes(ord("0") if chr(byte) in "0123456789" else ord(" ") for byte in range(256))
_LONG_DIGITS = b"0" * len(str(2**63))


class _Encoded(dict[str, Any]):
    """A record a worker sent as its JSON line, decoded, that keeps the line: writing it then
    costs the main process nothing, which with 2 workers on 2 cores is CPU they need."""

    __slots__ = ("line",)
    line: bytes


Review = Callable[[Item, "str | None", "Library"], Record]

# Records wait for the slowest case before them; this many per worker may be in hand at once,
# which keeps memory flat however long one case takes (a record is a few kB), and lets one
# worker run ahead while the other is descheduled on a busy machine.
WINDOW_PER_JOB = 128
# A worker is handed this many cases in one message and holds up to two chunks, so it never
# waits for the main process between chunks (one message per case and a worker idle for each
# round trip kept 2 workers at 1.07-1.34x of one). Each chunk's records come back in one
# message, and each message wakes the main process, whose every wake-up on cores its workers
# keep busy costs it far more than reading the records (its caches are cold): 32 a chunk
# rather than 16 took 45 ms of CPU off the main process of a 3,000-case batch (15 us a case;
# 64 saved nothing more). The window holds two chunks per worker and as many finished.
CHUNK = 32
# Cases reviewed a step at a time in one process (`records` with one job, `review_items`):
# as many as a worker's chunk. 8 gave less (within the noise of one at a time), 16 to 128
# about the same; the records of a chunk wait for its last case (20 ms of bench cases, 0.5 s
# of founding cases), as a stop does.
IN_PROCESS_CHUNK = CHUNK
# A worker that dies before it is ready (the policies cannot be loaded, say) is replaced at
# most this many times in a row before the batch stops.
MAX_START_FAILURES = 3
POLL_SECONDS = 0.2
GATHER_SECONDS = 0.004

Task = tuple[int, Item, int]  # (index, item, attempt)


# A worker collects its youngest generation of objects after 5,000 more allocations than
# frees (Python's default: 700), and the older ones every 2 (not 10) younger collections. A
# chunk of cases in hand keeps thousands of objects alive, and at 700 nearly every chunk cost
# a collection walking them: 13 us a case of garbage collection, 0.7 us at these thresholds
# (bench cases, 16 a chunk). The older generations collected sooner keep the worker's peak
# memory where it was (51 MB over 30,000 cases); gc.freeze() after the first chunk, measured
# too, saved less (8.6 us a case) and with these thresholds let a worker grow to 141 MB.
WORKER_GC_THRESHOLDS = (5_000, 2, 2)


@contextlib.contextmanager
def _collecting_as_a_worker() -> Iterator[None]:
    """Collect garbage as a worker does (`WORKER_GC_THRESHOLDS`) while a chunk is reviewed in
    this process, the caller's thresholds back before its records are handed out. With a
    chunk in hand, Python's thresholds cost `--jobs 1` 46 us a bench case of garbage
    collection (612 collections over 3,000 cases with `--policy`, where one case at a time
    made 2), these 22 (20 collections): 657 -> 590 us of CPU a case (median of 5 alternated,
    load 5); with no policy named, 529 -> 521."""
    before = gc.get_threshold()
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


# What a worker imports before its first case, imported once by the fork server (see
# `_context`) rather than by each worker: 150 ms of CPU each that `--jobs 1` pays once. The
# main module (`__main__`) is there so that a worker forked from the server does not run the
# parent's script again (the `necessity` script imports the whole CLI, 30 ms).
WORKER_MODULES = (
    "__main__",
    "evaluator.batch.runner",
    "evaluator.api",
    "evaluator.case.cases",
    "evaluator.render.decision",
    "evaluator.render.review",
)


def _context() -> Any:
    """Return the way worker processes start: forked from multiprocessing's fork server.

    Never forked from this process, which may hold engine state (a library caller's compiled
    programs, registered with the engine's C library) that a fork would copy. The fork server
    is a fresh process that only imports `WORKER_MODULES` (no policy, no engine session):
    every worker forked from it starts with them imported, where a spawned worker imported
    them itself. The server lives as long as this process, for every batch it runs.
    """
    context = multiprocessing.get_context("forkserver")
    # Taken when the server starts (the first worker of this process); later calls change
    # nothing, and the list is the same every time.
    context.set_forkserver_preload(list(WORKER_MODULES))
    return context


def start_workers() -> None:
    """Start what worker processes are forked from (`_context`), so that it imports what they
    need (0.2 s) while this process lists the cases to review rather than after; a batch with
    `jobs` > 1 then forks its workers from it at once. Calling it again costs nothing."""
    from multiprocessing import forkserver  # noqa: PLC0415  (only with workers)

    _context()
    # Started with SIGINT blocked, as a worker is (see `_Worker`): what is forked from it
    # starts with Ctrl-C blocked until it ignores it.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _work(conn: Connection, root: str, policy: str | None, review: Review) -> None:
    """A worker process: review the chunks of items sent, until told to stop; the records of a
    chunk are sent once it is done (a death loses the chunk, whose first item is retried alone
    and the others handed out again, see `_Pool`)."""
    # Ctrl-C reaches the whole process group; the main process decides what stops, and when.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The worker's own process: tuning its collector never touches a caller's heap.
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    try:
        library = _library(Path(root))
        conn.send(("ready", None))
        while (sent := conn.recv()) is not None:
            chunk = [_received(part) for part in sent]  # the main process left the files to us
            if review is review_item:  # the chunk together (batch mode): the same records
                done = review_items(chunk, policy, library)
            else:
                done = [review(item, policy, library) for item in chunk]
            # Each record sent as the line the Writer writes: encoded here, in parallel, not in
            # the main process; with its keys but `result`, which is all the main process reads
            # of it unless asked for results (`_Worker.receive`). One message a chunk: one a
            # record cost the main process a poll and two reads per case.
            conn.send(("done", [_sent(record) for record in done]))
    except (EOFError, BrokenPipeError):
        return  # the main process went away
    except Exception as error:  # reported to the main process, which stops
        conn.send(("failed", f"{type(error).__name__}: {error}"))


def _sending(item: Item) -> Item | str:
    """Return what the main process sends of an item: a deferred case file's path alone (a
    string pickles in a tenth of the time an Item takes, CPU the workers need), else the item."""
    return item.path if item.deferred and item.path == item.name else item


def _received(part: Item | str) -> Item:
    """Return the item a worker was sent (`_sending`), read."""
    return _file_item(Path(part)) if isinstance(part, str) else read(part)


def _sent(record: Record) -> tuple[bytes, Record]:
    """Return what a worker sends of a record: its JSON line, and its keys but `result`."""
    return encode(record), {key: value for key, value in record.items() if key != "result"}


class _Worker:
    """A spawned process with its own engine, and the items it holds, in the order it reviews
    them (the first is the one in hand)."""

    def __init__(self, context: Any, root: str, policy: str | None, review: Review) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_work, args=(child, root, policy, review), daemon=True
        )
        # Started with SIGINT blocked, so the child never sees a Ctrl-C before it ignores it;
        # one that arrives meanwhile is delivered here when the mask is restored.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        child.close()  # so that a dead worker's pipe reads as closed
        self.ready = False
        self.broken = False
        self.tasks: collections.deque[Task] = collections.deque()

    @property
    def task(self) -> Task | None:
        """The task in hand, if any."""
        return self.tasks[0] if self.tasks else None

    def send(self, tasks: list[Task]) -> None:
        self.tasks.extend(tasks)
        try:
            self.conn.send([_sending(item) for _, item, _ in tasks])
        except OSError:
            self.broken = True  # it died before it could take them; retried elsewhere

    def receive(self, results: bool) -> list[tuple[int, Record]]:
        """Return the records it finished since last asked, with their indexes; with `results`
        each decoded from its line, else its keys but `result` (its line has it)."""
        done: list[tuple[int, Record]] = []
        try:
            while self.conn.poll():
                kind, payload = self.conn.recv()
                if kind == "ready":
                    self.ready = True
                elif kind == "done":
                    for line, head in payload:
                        record = _Encoded(_decoded(line) if results else head)
                        record.line = line
                        done.append((self.tasks.popleft()[0], record))
                else:
                    raise BatchError(f"a worker process could not start: {payload}")
        except (EOFError, OSError):
            self.broken = True  # it died, perhaps half-way through a message
        return done

    def how_it_died(self) -> str:
        self.process.join(1)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}" if code is not None else "stopped answering"

    def stop(self, *, now: bool) -> None:
        if not now and self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()
        self.process.close()


class _Pool:
    """Worker processes reviewing chunks of items; records come out in input order.

    A worker that dies (killed, out of memory, a crash in the engine's C code) is replaced; the
    item it had in hand is retried once, alone in the fresh worker, and recorded as
    `worker_died` if that dies too; the items it held but had not begun go to the next workers.
    """

    def __init__(
        self,
        jobs: int,
        root: str,
        policy: str | None,
        review: Review,
        stop: Callable[[], bool],
        results: bool = True,
    ) -> None:
        self.context = _context()
        self.args = (root, policy, review)
        self.stop = stop
        self.results = results
        self.window = jobs * WINDOW_PER_JOB
        self.workers = [_Worker(self.context, *self.args) for _ in range(jobs)]
        self.done: dict[int, Record] = {}
        self.again: collections.deque[Task] = collections.deque()  # held by a worker that died
        self.start_failures = 0

    def records(self, todo: Iterable[Item]) -> Iterator[Record]:
        numbered = enumerate(todo)
        next_out = 0
        exhausted = False
        interrupted = False
        try:
            while not (interrupted := self.stop()):
                for worker in self.workers:
                    # A chunk's records come back together once it is done: a worker holds
                    # the next chunk as well, so that it never waits for the main process.
                    if len(worker.tasks) > CHUNK:
                        continue
                    chunk: list[Task] = []
                    while len(chunk) < CHUNK and self.again:
                        chunk.append(self.again.popleft())
                    while (
                        len(chunk) < CHUNK
                        and not exhausted
                        and len(self.done) + self._busy() + len(chunk) < self.window
                    ):
                        task = next(numbered, None)
                        if task is None:
                            exhausted = True
                        else:
                            chunk.append((*task, 1))
                    if chunk:
                        worker.send(chunk)
                busy = [w for w in self.workers if w.tasks]
                if not busy:
                    break
                self._collect(busy)
                while next_out in self.done:
                    yield self.done.pop(next_out)
                    next_out += 1
        finally:
            for worker in self.workers:
                worker.stop(now=interrupted or bool(worker.tasks))

    def _busy(self) -> int:
        return sum(len(w.tasks) for w in self.workers) + len(self.again)

    def _collect(self, busy: list[_Worker]) -> None:
        handles = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(wait(handles, timeout=POLL_SECONDS))
        if ready:
            # Let a few more records arrive before reading: a wake-up per record costs the main
            # process a system call and a context switch, CPU that 2 workers on 2 cores need;
            # each worker still holds half a chunk, far more work than this pause.
            time.sleep(GATHER_SECONDS)
        for worker in busy:
            if not (worker.broken or worker.conn in ready or worker.process.sentinel in ready):
                continue
            self.done.update(worker.receive(self.results))
            if worker.broken or not worker.process.is_alive():
                self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        how = worker.how_it_died()
        if worker.ready:
            self.start_failures = 0
        else:
            self.start_failures += 1
            if self.start_failures >= MAX_START_FAILURES:
                raise BatchError(f"worker processes die as they start ({how})")
        tasks = list(worker.tasks)
        worker.tasks.clear()
        worker.stop(now=True)
        fresh = _Worker(self.context, *self.args)
        self.workers[self.workers.index(worker)] = fresh
        if not tasks:
            return
        (index, item, attempt), rest = tasks[0], tasks[1:]
        # the ones it had not begun are not suspects: first in line for any worker
        self.again.extendleft(reversed(rest))
        if attempt == 1:
            fresh.send([(index, item, 2)])  # alone in a fresh worker: a second death is its own
        else:
            # its record names its bytes' hash, as any other: read here if the worker had it
            self.done[index] = _worker_died(read(item), how)


# --- the batch ----------------------------------------------------------------------------------


@dataclass
class Summary:
    """Counts over a batch: results by determination, failed cases by error, skipped cases."""

    results: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def total(self) -> int:
        """Cases reviewed in this run (skipped ones not counted)."""
        return sum(self.results.values()) + sum(self.errors.values())

    @property
    def invalid(self) -> int:
        return self.errors[INVALID_INPUT]

    @property
    def failed(self) -> int:
        """Cases with no determination for a reason other than their own input."""
        return sum(n for kind, n in self.errors.items() if kind in FAILURES)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def count(self, record: Record) -> None:
        if "error" in record:
            self.errors[str(record["error"])] += 1
        else:
            self.results[str(record["determination"])] += 1

    def text(self) -> str:
        """One line: counts by determination, errors by kind, time and speed."""
        results = ", ".join(f"{n} {d.replace('_', ' ')}" for d, n in sorted(self.results.items()))
        errors = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(self.errors.items()))
        rate = self.total / self.elapsed if self.elapsed > 0 else 0.0
        text = (
            f"{self.total} cases in {self.elapsed:.1f} s ({rate:.1f} cases/s): "
            f"{results or 'no determinations'}; errors: {errors or 'none'}"
        )
        if self.skipped:
            text += f"; {self.skipped} already recorded, skipped"
        return text


def _library(root: Path) -> Library:
    from evaluator.language.policies import Library  # noqa: PLC0415  (see the imports)

    return Library(root)


def records(
    todo: Iterable[Item],
    policy: str | None,
    library: Library | Path,
    jobs: int = 1,
    stop: Callable[[], bool] = lambda: False,
    review: Review = review_item,
    dask: Any = None,
    results: bool = True,
) -> Generator[Record, None, None]:
    """Yield one record per item, in the order given; with `jobs` > 1 from worker processes,
    with `dask` (a distributed Client) from that cluster's workers (batch/dask_cluster.py).

    Without `results`, a record from a worker process has every key but `result`: what counts
    it and names its case. It is written (`Writer`) as the whole line the worker encoded, and
    the main process, sharing the cores with its workers, is spared decoding it (11 us a bench
    case). Ask for results to read them (`result`).

    Stops early, between cases (between chunks with the default review, which reviews a
    chunk of items at a time: `review_items`), once `stop()` is true. `review` reviews one
    item (in the workers it must be a module-level function); the default is `review_item`.

    `library` is a Library, or the folder of one (made here when the cases are reviewed in
    this process): a batch's main process with workers never loads a policy, and is spared
    importing the policy language.
    """
    root = library if isinstance(library, Path) else library.root
    if dask is not None:
        from evaluator.batch import dask_cluster as dask_batch  # noqa: PLC0415  (the optional `dask` extra)

        yield from dask_batch.records(todo, policy, str(root), dask, stop, review)
        return
    if jobs <= 1:
        here = _library(library) if isinstance(library, Path) else library
        if review is not review_item:
            for item in todo:
                if stop():
                    return
                yield review(read(item), policy, here)
            return
        # A few cases at a time, as a worker reviews its chunk (`review_items`: the same
        # records, in less CPU); a stop is seen between chunks.
        remaining = iter(todo)
        while not stop() and (chunk := list(itertools.islice(remaining, IN_PROCESS_CHUNK))):
            with _collecting_as_a_worker():
                reviewed = review_items(chunk, policy, here)
            yield from reviewed
        return
    yield from _Pool(jobs, str(root), policy, review, stop, results).records(todo)


def run(
    todo: Iterable[Item],
    policy: str | None,
    library: Library | Path,
    write: Callable[[Record], None],
    *,
    jobs: int = 1,
    stop: Callable[[], bool] = lambda: False,
    summary: Summary | None = None,
    review: Review = review_item,
    dask: Any = None,
    results: bool = True,
) -> Summary:
    """Review every item, handing each record to `write` in input order as soon as it can;
    without `results`, a worker process's record without its `result` (see `records`).

    Returns the counts (also filled into `summary`, if given, as the run goes: a caller that is
    interrupted still has them).
    """
    summary = summary if summary is not None else Summary()
    # Closed at once if `write` fails, so that the worker processes stop with the batch.
    try:
        with contextlib.closing(
            records(todo, policy, library, jobs, stop, review, dask, results)
        ) as reviewed:
            for record in reviewed:
                write(record)
                summary.count(record)
    finally:
        summary.finished = time.monotonic()
    return summary


# --- writing and resuming -----------------------------------------------------------------------


# A file's lines are synced to disk at most this often while a batch runs, and at its end: an
# fsync costs milliseconds (6.5 ms for 64 records on the benchmark machine, 0.1 ms a case),
# more than reviewing a case. Lines written are the operating system's at once, so only a
# power failure or a crash of the system can lose the last second of them (`--resume` does
# them again); a crash of necessity loses nothing written.
SYNC_SECONDS = 1.0


class Writer:
    """Writes records as whole JSON lines, several at a time, each write flushed; with `sync`,
    synced to disk at least every `sync_seconds` and by `flush`.

    A line is only ever written whole, after the ones before it, so a file cut short (a full
    disk, a killed process) ends with at most one torn line, which `recorded` drops.
    """

    def __init__(
        self,
        stream: IO[bytes],
        name: str,
        *,
        sync: bool,
        every: int = 64,
        seconds: float = 1.0,
        sync_seconds: float = SYNC_SECONDS,
    ) -> None:
        self.stream, self.name, self.sync = stream, name, sync
        self.every, self.seconds, self.sync_seconds = every, seconds, sync_seconds
        self.pending: list[bytes] = []
        self.last = self.synced = time.monotonic()
        self.unsynced = False  # lines written since the last sync
        self.written = 0
        self.failed = False

    def write(self, record: Record) -> None:
        self.pending.append(record.line if isinstance(record, _Encoded) else encode(record))
        if len(self.pending) >= self.every or time.monotonic() - self.last >= self.seconds:
            self._write(final=False)

    def flush(self) -> None:
        """Write what is pending and sync what is written (at the end of a batch, or when it
        stops); raises OutputError, after which nothing more is written."""
        self._write(final=True)

    def _write(self, *, final: bool) -> None:
        if self.failed or not (self.pending or (final and self.unsynced)):
            return  # after a failed write, nothing more: a torn line must stay the last one
        data, count = b"".join(self.pending), len(self.pending)
        self.pending.clear()  # never written twice, even if this write fails half-way
        now = time.monotonic()
        sync = self.sync and (final or now - self.synced >= self.sync_seconds)
        # Ctrl-C waits until the lines are down.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if data:
                self.stream.write(data)
                self.stream.flush()
            if sync:
                os.fsync(self.stream.fileno())
        except OSError as error:
            self.failed = True
            raise OutputError(self.name, error) from error
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self.written += count
        self.last = now
        if sync:
            self.synced, self.unsynced = now, False
        else:
            self.unsynced = self.sync


@dataclass
class Recorded:
    """What an earlier run left in an output file: how often each content hash is there."""

    hashes: Counter[str] = field(default_factory=Counter)
    records: int = 0
    dropped: int = 0  # bytes of a torn last line, now removed


def recorded(path: Path) -> Recorded:
    """Read the records of an earlier run into `path`, to resume it.

    Drops a torn last line (one with no newline: the run was cut short while writing it) by
    truncating the file to the end of the last whole line; changes nothing else. Raises
    BatchError when a whole line is not a record, since then the file is not a batch's output.
    """
    found = Recorded()
    if not path.exists():
        return found
    with path.open("rb+") as file:
        end = 0
        for number, line in enumerate(file, 1):
            if not line.endswith(b"\n"):
                found.dropped = len(line)
                file.truncate(end)
                file.flush()
                os.fsync(file.fileno())
                break
            end += len(line)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict) or "case" not in record:
                raise BatchError(f"{path}:{number}: not a batch record; cannot resume this file")
            found.records += 1
            if isinstance(record.get("sha256"), str):
                found.hashes[record["sha256"]] += 1
    return found


def unrecorded(todo: Iterable[Item], done: Counter[str], summary: Summary) -> Iterator[Item]:
    """Yield the items with no record yet (by content hash), counting the others as skipped.

    Two cases with the same bytes are the same case (same case id, same result): each record
    there accounts for one of them. A `deferred` item is read here when there are records to
    match it against: a case is never reviewed again for want of its hash.
    """
    for listed in todo:
        item = read(listed) if listed.deferred and done else listed
        if item.sha256 is not None and done[item.sha256] > 0:
            done[item.sha256] -= 1
            summary.skipped += 1
            continue
        yield item
