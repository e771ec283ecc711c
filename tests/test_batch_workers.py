"""`batch --jobs N` (issue 10, stop 22): the workers read and hash the case files (the main
process lists them and sends their paths), they are forked from a fork server that imported
what they need once, and the main process imports neither the evaluation stack nor the policy
language. Every record stays the one a batch in one process gives: the tests compare them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evaluator.batch import runner as batch
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "cases"
BAD = ROOT / "tests" / "fixtures" / "cases" / "unknown-level.json"
TIMEOUT = 180


def _stampless(record: dict[str, Any]) -> str:
    result = dict(record.get("result") or {})
    result.pop("evaluated_at", None)
    return json.dumps({**record, "result": result}, sort_keys=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    """Case files of every kind a batch meets: good, bad JSON, a schema error, a FIFO, and
    one listed that is gone before it is read."""
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(EXAMPLES / "l4-l5-approvable.json", cases / "a.json")
    (cases / "b.json").write_text("{not json", encoding="utf-8")
    shutil.copy(BAD, cases / "c.json")
    os.mkfifo(cases / "d.json")
    shutil.copy(EXAMPLES / "current-smoker.json", cases / "e.json")
    shutil.copy(EXAMPLES / "current-smoker.json", cases / "f-vanishes.json")
    return batch.sources([cases])


def _records(todo: Any, jobs: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    batch.run(todo, None, Library(), got.append, jobs=jobs)
    return got


def test_workers_read_the_files_and_give_the_records_the_main_process_reading_them_gives(
    inputs: list[Path],
) -> None:
    listed = list(batch.items(inputs, read=False))
    # nothing read in the main process: no hash, no bytes, no problem yet (not even the FIFO's)
    assert all(i.deferred and i.sha256 is None and i.content is None for i in listed)
    assert all(i.problem is None for i in listed)
    inputs[-1].unlink()  # listed, then gone before a worker reads it
    by_workers = _records(iter(listed), jobs=2)
    read_here = _records(batch.items(inputs), jobs=1)
    assert [_stampless(r) for r in by_workers] == [_stampless(r) for r in read_here]
    hashes = [r["sha256"] for r in by_workers]
    assert hashes[:3] == [_sha256(p) for p in inputs[:3]]
    assert hashes[4] == _sha256(inputs[4])
    assert hashes[3] is None  # the FIFO is never opened
    assert hashes[5] is None  # the file gone
    kinds = [(r.get("error"), r.get("problems", [{}])[0].get("code")) for r in by_workers]
    assert kinds == [
        (None, None),
        ("invalid_input", "malformed_yaml"),
        ("invalid_input", kinds[2][1]),
        ("invalid_input", "unreadable_file"),
        (None, None),
        ("invalid_input", "file_not_found"),
    ]


def test_an_item_left_unread_is_read_before_it_is_reviewed(inputs: list[Path]) -> None:
    # A record is never made of an unread item: it would have no hash (resume would review the
    # case again) and the loader would read the file a second time.
    library = Library()
    listed = list(batch.items(inputs[:3], read=False))
    alone = [batch.review_item(item, None, library) for item in listed]
    together = batch.review_items(listed, None, library)
    expected = [_sha256(p) for p in inputs[:3]]
    assert [r["sha256"] for r in alone] == expected
    assert [r["sha256"] for r in together] == expected
    assert [r["sha256"] for r in _records(iter(listed), jobs=1)] == expected


def test_resume_reads_an_unread_item_to_match_it_and_only_then(inputs: list[Path]) -> None:
    listed = list(batch.items(inputs[:3], read=False))
    summary = batch.Summary()
    done = Counter({_sha256(inputs[1]): 1})
    left = list(batch.unrecorded(iter(listed), done, summary))
    assert [i.name for i in left] == [str(inputs[0]), str(inputs[2])]
    assert summary.skipped == 1
    # with nothing recorded there is nothing to match: the items stay for the workers to read
    untouched = list(batch.unrecorded(iter(listed), Counter(), batch.Summary()))
    assert all(i.deferred for i in untouched)


def where_forked(item: batch.Item, _policy: str | None, _library: Library) -> dict[str, Any]:
    """Test-only review: which process made this worker, and what it had imported already."""
    return {
        "case": item.name,
        "parent": os.getppid(),
        "preloaded": "evaluator.api" in sys.modules,
        "determination": "none",
    }


def test_workers_are_forked_from_a_server_that_imported_the_evaluation_stack(
    inputs: list[Path],
) -> None:
    # Not spawned by this process (each importing the stack itself, 0.15 s of CPU a worker),
    # nor forked from it (it may hold engine state).
    got: list[dict[str, Any]] = []
    todo = batch.items(inputs[:2], read=False)
    batch.run(todo, None, Library(), got.append, jobs=2, review=where_forked)
    assert [r["case"] for r in got] == [str(p) for p in inputs[:2]]
    assert all(r["parent"] != os.getpid() for r in got)
    assert all(r["preloaded"] for r in got)


def test_the_main_process_of_a_batch_with_workers_loads_no_policy(tmp_path: Path) -> None:
    # It lists the cases and writes the workers' lines: importing the evaluation stack (0.15 s)
    # or the policy language (0.05 s) took CPU the workers need.
    cases = tmp_path / "cases"
    cases.mkdir()
    for name in ("a.json", "b.json", "c.json"):
        shutil.copy(EXAMPLES / "l4-l5-approvable.json", cases / name)
    out = tmp_path / "out.jsonl"
    code = (
        "import sys\n"
        "from evaluator.cli.main import main\n"
        "if __name__ == '__main__':\n"
        f"    try: main(['batch', {str(cases)!r}, '-j', '2', '-o', {str(out)!r}])\n"
        "    except SystemExit: pass\n"
        "    print(sorted(m for m in ('evaluator.api', 'evaluator.engine.durable',\n"
        "        'evaluator.render.decision', 'evaluator.language.policies',\n"
        "        'evaluator.language.model', 'evaluator.case.cases') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["determination"] for r in records] == ["medically_necessary"] * 3
    assert [r["sha256"] for r in records] == [
        _sha256(cases / n) for n in ("a.json", "b.json", "c.json")
    ]
