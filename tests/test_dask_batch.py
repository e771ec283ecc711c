"""`necessity batch --dask`: the same records, in the same order, from a LocalCluster of
processes as from one process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator.batch import dask_cluster as dask_batch
from evaluator.cli.main import ExitCode, main

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    # dashboard_address=None still starts the scheduler's HTTP server on 8787, and a warning
    # (an error here) when another process holds that port; ":0" takes any free port.
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def partitions(tmp_path: Path) -> list[Path]:
    # two JSON Lines partitions of the example cases, with a bad line in the second
    lines = [json.dumps(json.loads(path.read_text("utf-8"))) for path in EXAMPLES]
    lines = lines * 3  # more cases than one Dask task takes: order across tasks is tested
    half = len(lines) // 2
    first, second = tmp_path / "part-0.jsonl", tmp_path / "part-1.jsonl"
    first.write_text("\n".join(lines[:half]) + "\n", encoding="utf-8")
    second.write_text("\n".join([*lines[half:-1], '{"case_id": 7}', lines[-1]]) + "\n", "utf-8")
    return [first, second]


def _records(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    for record in records:
        record.get("result", {}).pop("evaluated_at", None)
    return records


def _batch(*args: str | Path) -> Any:
    return CliRunner().invoke(main, ["batch", *map(str, args)])


def test_dask_gives_the_records_of_one_process(
    scheduler: str, partitions: list[Path], tmp_path: Path
) -> None:
    local, clustered = tmp_path / "local.jsonl", tmp_path / "dask.jsonl"
    alone = _batch(*partitions, "-o", local)
    result = _batch(*partitions, "--dask", scheduler, "-o", clustered)
    assert result.exit_code == alone.exit_code == ExitCode.INVALID_INPUT, result.output
    expected = _records(local)
    assert len(expected) == 3 * len(EXAMPLES) + 1
    assert _records(clustered) == expected
    assert sum(1 for r in expected if r.get("error") == "invalid_input") == 1
    assert "cases/s" in result.stderr


def test_an_unreachable_scheduler_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dask_batch, "CONNECT_TIMEOUT", "1s")
    result = _batch(EXAMPLES[0], "--dask", "tcp://127.0.0.1:9", "-o", tmp_path / "out.jsonl")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "cannot reach the Dask scheduler" in result.stderr
    assert "Traceback" not in result.output


def test_dask_and_jobs_together_are_a_usage_error() -> None:
    result = _batch(EXAMPLES[0], "--dask", "tcp://127.0.0.1:9", "--jobs", "2")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "--dask and --jobs" in result.stderr
