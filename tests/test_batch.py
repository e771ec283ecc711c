"""`necessity batch`: one JSON line per case, written as it goes; bad cases never stop the batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator import batch
from evaluator.cli import main
from evaluator.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "cases"
BAD = ROOT / "tests" / "fixtures" / "cases" / "unknown-level.json"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    cases = tmp_path / "cases"
    cases.mkdir()
    # Sorted order puts the bad case between two good ones.
    shutil.copy(EXAMPLES / "l4-l5-approvable.json", cases / "a.json")
    shutil.copy(BAD, cases / "b.json")
    shutil.copy(EXAMPLES / "current-smoker.json", cases / "c.json")
    return cases


def test_a_bad_case_is_recorded_and_the_batch_goes_on(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    result = CliRunner().invoke(main, ["batch", str(folder), "-o", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [Path(r["case"]).name for r in records] == ["a.json", "b.json", "c.json"]
    assert records[0]["determination"] == "medically_necessary"
    assert records[0]["x12_action"] == "A1"
    assert records[1]["error"] == "invalid_input"
    problem = records[1]["problems"][0]
    assert (problem["code"], problem["line"]) == ("unknown_level", 7)
    assert problem["pointer"].startswith("/request/lines/0/")
    assert records[2]["determination"] == "not_medically_necessary"
    assert "3 cases" in result.output
    assert "Traceback" not in result.output


def test_records_are_written_before_a_later_case_fails(folder: Path) -> None:
    seen: list[str] = []

    def write(record: dict[str, object]) -> None:
        # By the time the bad case is reviewed, the first record has been handed over.
        seen.append(Path(str(record["case"])).name)

    summary = batch.run(batch.case_files([folder]), None, Library(), write)
    assert seen == ["a.json", "b.json", "c.json"]
    assert (summary.total, summary.invalid, summary.engine_errors) == (3, 1, 0)


def test_one_policy_for_every_case(folder: Path) -> None:
    result = CliRunner().invoke(
        main, ["batch", str(folder / "a.json"), "--policy", "lumbar-fusion", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.splitlines()[0])
    assert record["result"]["policy"]["id"] == "lumbar-fusion"
    assert record["determination"] == "medically_necessary"


def test_every_example_case_reviews(tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result = CliRunner().invoke(main, ["batch", str(EXAMPLES), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(list(EXAMPLES.glob("*.json")))
    assert all("error" not in json.loads(line) for line in lines)


def test_worker_processes_give_the_same_records_in_the_same_order(folder: Path) -> None:
    def without_time(record: dict[str, object]) -> str:
        result = dict(record.get("result") or {})  # type: ignore[call-overload]
        result.pop("evaluated_at", None)
        return json.dumps({**record, "result": result}, sort_keys=True)

    one: list[str] = []
    two: list[str] = []
    files = list(batch.case_files([folder]))
    batch.run(files, None, Library(), lambda r: one.append(without_time(r)))
    batch.run(files, None, Library(), lambda r: two.append(without_time(r)), jobs=2)
    assert one == two
    assert len(one) == 3
