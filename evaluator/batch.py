"""Batch review: many case files in one process, one JSON record per case, written as it goes."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import api, cases, render, render_review, source
from .errors import EngineError, InputError
from .policies import Library


def case_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield the case files named, searching folders (sorted) for .json/.yaml/.yml files."""
    return source.find_files(paths)


@dataclass
class Summary:
    """Counts over a batch: results by determination, and the cases that failed."""

    results: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    engine_errors: int = 0

    @property
    def total(self) -> int:
        return sum(self.results.values()) + self.invalid + self.engine_errors


def review_one(path: Path, policy: str | None, library: Library) -> dict[str, Any]:
    """Return the record of one case: its result, or the located problems that stopped it.

    Never raises for a bad case or an engine failure: the batch goes on and the record says why.
    """
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        case = cases.load_case(path)
        if policy is None:
            review = api.review_case(case, library)
            return {
                "case": str(path),
                "determination": review.overall.value,
                "x12_action": review.x12_action,
                "result": render_review.review_json(review, stamp),
            }
        decision = api.evaluate(case, api.select_policy(case, policy, library))
        return {
            "case": str(path),
            "determination": decision.determination.value,
            "x12_action": decision.x12_action,
            "result": render.decision_json(decision, stamp),
        }
    except InputError as error:
        return {"case": str(path), "error": "invalid_input", "problems": _problems(error)}
    except EngineError as error:
        # An engine failure is never a determination: the record carries no result.
        return {"case": str(path), "error": "engine_error", "problems": _problems(error)}


def _problems(error: InputError | EngineError) -> list[dict[str, object]]:
    return [p.as_dict() for p in error.problems]


_WORKER: dict[str, Any] = {}


def _start_worker(root: str, policy: str | None) -> None:
    # Each worker process has its own engine and library: durable_rules state is global to a
    # process, and C calls hold the GIL, so processes are the way to use more cores.
    _WORKER["library"] = Library(root)
    _WORKER["policy"] = policy


def _review_in_worker(path: Path) -> dict[str, Any]:
    return review_one(path, _WORKER["policy"], _WORKER["library"])


def records(
    paths: Iterable[Path], policy: str | None, library: Library, jobs: int = 1
) -> Iterator[dict[str, Any]]:
    """Yield one record per case, in the order given; with `jobs` > 1 from worker processes."""
    if jobs <= 1:
        for path in paths:
            yield review_one(path, policy, library)
        return
    context = multiprocessing.get_context("spawn")  # never fork a process holding engine state
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_start_worker, initargs=(str(library.root), policy)
    ) as pool:
        yield from pool.map(_review_in_worker, paths, chunksize=4)


def run(
    paths: Iterable[Path],
    policy: str | None,
    library: Library,
    write: Callable[[dict[str, Any]], None],
    jobs: int = 1,
) -> Summary:
    """Review every case, handing each record to `write` as soon as it exists; return counts."""
    summary = Summary()
    for record in records(paths, policy, library, jobs):
        write(record)
        if record.get("error") == "invalid_input":
            summary.invalid += 1
        elif record.get("error") == "engine_error":
            summary.engine_errors += 1
        else:
            summary.results[str(record["determination"])] += 1
    return summary
