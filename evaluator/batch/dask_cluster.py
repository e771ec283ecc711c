"""Batch review on a dask.distributed cluster (`necessity batch --dask SCHEDULER`).

The main process reads the inputs (case files and JSON Lines partitions) as `batch` does and
sends chunks of cases to the cluster; each Dask worker process keeps one policy library (and
so one compiled program per policy) for every chunk it reviews, so no policy is ever sent with
a case. Records come back in input order and are written by the main process, exactly as with
`--jobs`. Needs the `dask` extra (`pip install 'necessity[dask]'`) here and on the workers,
with the same policies folder at the same path (the bundled policies, by default).
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from evaluator.batch import runner as batch
from evaluator.errors import Location, NecessityError, Problem, SourceError

if TYPE_CHECKING:  # imported where reviewed, not in a batch's main process (see runner)
    from evaluator.language.policies import Library

__all__ = ["CHUNK", "client_for", "records"]

# Cases per Dask task: large enough that the scheduler's per-task cost (about a millisecond)
# is small beside the review, small enough to spread over the workers and stream in order.
CHUNK = 64
# Tasks in flight per worker thread: keeps every worker busy and the main process's memory flat.
TASKS_PER_THREAD = 4

# How long to try to reach the scheduler before giving up.
CONNECT_TIMEOUT = "20s"

_LIBRARIES: dict[str, Library] = {}  # one per worker process and policies folder


def review_chunk(
    items: list[batch.Item], policy: str | None, root: str, review: batch.Review
) -> list[batch.Record]:
    """Run on a Dask worker: the records of a chunk of cases, in order."""
    library = _LIBRARIES.get(root)
    if library is None:
        from evaluator.language.policies import Library  # noqa: PLC0415  (see the imports)

        library = _LIBRARIES[root] = Library(root)
    return [review(item, policy, library) for item in items]


def client_for(scheduler: str) -> Any:
    """Return a distributed Client connected to `scheduler` (an address such as
    tcp://host:8786, or a scheduler file's path). Raises SourceError if the `dask` extra is
    missing or the scheduler cannot be reached."""
    try:
        from distributed import Client  # noqa: PLC0415  (optional extra)
    except ImportError as error:
        raise SourceError.single(
            "dask_unavailable",
            f"--dask needs the dask extra ({error.name} is not installed)",
            Location("--dask"),
            "pip install 'necessity[dask]'",
        ) from None
    try:
        if scheduler.endswith(".json"):
            return Client(  # type: ignore[no-untyped-call]
                scheduler_file=scheduler, timeout=CONNECT_TIMEOUT
            )
        return Client(scheduler, timeout=CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as error:
        raise SourceError.single(
            "dask_unreachable",
            f"cannot reach the Dask scheduler {scheduler}: {error}",
            Location("--dask"),
            "give the address the scheduler prints (tcp://host:8786) or its scheduler file",
        ) from None


def records(
    todo: Iterable[batch.Item],
    policy: str | None,
    root: str,
    client: Any,
    stop: Callable[[], bool] = lambda: False,
    review: batch.Review = batch.review_item,
) -> Iterator[batch.Record]:
    """Yield one record per item, in the order given, reviewed on the cluster of `client`.

    A chunk whose task fails (its worker died more often than the cluster allows) gives a
    `worker_died` record for each of its cases; the batch goes on.
    """
    threads = max(1, sum(client.nthreads().values()))
    window = threads * TASKS_PER_THREAD
    pending: collections.deque[tuple[list[batch.Item], Any]] = collections.deque()
    chunks = _chunks(iter(todo))
    try:
        while not stop():
            while len(pending) < window and (chunk := next(chunks, None)) is not None:
                future = client.submit(review_chunk, chunk, policy, root, review, pure=False)
                pending.append((chunk, future))
            if not pending:
                return
            chunk, future = pending.popleft()
            yield from _results(chunk, future)
    finally:
        for _, future in pending:
            future.cancel()


def _chunks(items: Iterator[batch.Item]) -> Iterator[list[batch.Item]]:
    while chunk := list(itertools.islice(items, CHUNK)):
        yield chunk


def _results(chunk: list[batch.Item], future: Any) -> list[batch.Record]:
    try:
        result: list[batch.Record] = future.result()
    except Exception as error:  # KilledWorker, a lost worker: records for the chunk's cases
        how = f"{type(error).__name__}: {error}"[: batch.MAX_MESSAGE]
        return [_died(item, how) for item in chunk]
    return result


def _died(item: batch.Item, how: str) -> batch.Record:
    where = Location(item.stream, item.line) if item.stream is not None else Location(item.name)
    problem = Problem(
        batch.WORKER_DIED,
        f"the Dask task reviewing this case failed ({how})",
        where,
        "no determination was made for this case; review it alone to see why",
    )
    record: batch.Record = {"case": item.name, "case_id": None, "sha256": item.sha256}
    record["error"] = batch.WORKER_DIED
    record["problems"] = [p.as_dict() for p in NecessityError([problem]).problems]
    return record
