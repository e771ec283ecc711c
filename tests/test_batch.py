"""`necessity batch`: one JSON line per case, in input order, written as it goes; nothing a case
does (bad input, a bug, a dead worker process), no full disk and no Ctrl-C loses a record."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.batch import runner as batch
from evaluator.cli.main import main
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "cases"
BAD = ROOT / "tests" / "fixtures" / "cases" / "unknown-level.json"
NECESSITY = [sys.executable, "-m", "evaluator"]
# Bounds for the tests that run real processes; they finish in seconds when all is well.
TIMEOUT = 180


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    cases = tmp_path / "cases"
    cases.mkdir()
    # Sorted order puts the bad case between two good ones.
    shutil.copy(EXAMPLES / "l4-l5-approvable.json", cases / "a.json")
    shutil.copy(BAD, cases / "b.json")
    shutil.copy(EXAMPLES / "current-smoker.json", cases / "c.json")
    return cases


def many(tmp_path: Path, copies: int) -> Path:
    """A folder of `copies` copies of every example case, each file with its own case id."""
    cases = tmp_path / "many"
    cases.mkdir()
    for n in range(copies):
        for example in sorted(EXAMPLES.glob("*.json")):
            data = json.loads(example.read_text(encoding="utf-8"))
            data["case_id"] = f"{data['case_id']}-{n}"
            (cases / f"{n:03d}-{example.name}").write_text(json.dumps(data), encoding="utf-8")
    return cases


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def names(records: list[dict[str, Any]]) -> list[str]:
    return [Path(str(r["case"])).name for r in records]


def invoke(*args: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(main, ["batch", "--no-progress", *args], input=stdin)


# --- one bad case -------------------------------------------------------------------------------


def test_a_bad_case_is_recorded_and_the_batch_goes_on(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    result = invoke(str(folder), "-o", str(out))
    assert result.exit_code == 2, result.output
    records = lines_of(out)
    assert names(records) == ["a.json", "b.json", "c.json"]
    assert records[0]["determination"] == "medically_necessary"
    assert records[0]["x12_action"] == "A1"
    assert records[0]["case_id"] == "l4-l5-approvable"
    assert len(records[0]["sha256"]) == 64
    assert records[1]["error"] == "invalid_input"
    problem = records[1]["problems"][0]
    assert (problem["code"], problem["line"]) == ("unknown_level", 7)
    assert problem["pointer"].startswith("/request/lines/0/")
    assert records[2]["determination"] == "not_medically_necessary"
    assert "3 cases" in result.output
    assert "Traceback" not in result.output


def test_any_exception_is_that_case_s_record_and_the_batch_goes_on(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug anywhere (here: in reviewing one particular case) is that case's record, not the
    # end of the batch; before, it ended the batch with a traceback after the first record.
    (folder / "b.json").unlink()
    shutil.copy(EXAMPLES / "t12-s2-fusion.json", folder / "b.json")
    # In what a case's review calls, whether one case at a time or a chunk together.
    facts_for = api.facts_for

    def buggy(case: Any, *args: Any) -> Any:
        if case.case_id == "t12-s2-fusion":
            raise ZeroDivisionError("division by zero")
        return facts_for(case, *args)

    monkeypatch.setattr(api, "facts_for", buggy)
    out = tmp_path / "results.jsonl"
    result = invoke(str(folder), "-o", str(out))
    assert result.exit_code == 4, result.output
    records = lines_of(out)
    assert names(records) == ["a.json", "b.json", "c.json"]
    assert "determination" in records[0]
    assert "determination" in records[2]
    failed = records[1]
    assert failed["error"] == "internal_error"
    assert failed["case_id"] == "t12-s2-fusion"
    assert "determination" not in failed
    assert "result" not in failed
    problem = failed["problems"][0]
    assert problem["code"] == "internal_error"
    assert problem["file"] == str(folder / "b.json")
    assert "ZeroDivisionError" in problem["message"]
    assert "no determination" in problem["hint"]
    assert "Traceback" not in result.output
    assert f"{folder / 'b.json'}: internal error (ZeroDivisionError" in result.output
    assert "1 internal error" in result.output


def test_a_case_that_breaks_a_library_reader_is_recorded_in_a_real_process(
    folder: Path, tmp_path: Path
) -> None:
    # An integer of 5,000 digits raised ValueError inside the YAML reader and ended the batch
    # with a traceback, whatever the reader reports for it now.
    text = (EXAMPLES / "current-smoker.json").read_text(encoding="utf-8")
    (folder / "b.json").write_text(text.replace('"age": 67', '"age": ' + "9" * 5000))
    out = tmp_path / "results.jsonl"
    done = subprocess.run(
        [*NECESSITY, "batch", str(folder), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode in {2, 4}, done.stderr
    assert "Traceback" not in done.stderr
    records = lines_of(out)
    assert names(records) == ["a.json", "b.json", "c.json"]
    assert records[1]["error"] in {"invalid_input", "internal_error"}
    assert "determination" in records[2]


def test_records_are_handed_over_in_order_as_they_exist(folder: Path) -> None:
    seen: list[str] = []

    def write(record: dict[str, object]) -> None:
        seen.append(Path(str(record["case"])).name)

    todo = batch.items(batch.sources([folder]))
    summary = batch.run(todo, None, Library(), write)
    assert seen == ["a.json", "b.json", "c.json"]
    assert (summary.total, summary.invalid, summary.failed) == (3, 1, 0)


def test_one_policy_for_every_case(folder: Path) -> None:
    result = invoke(str(folder / "a.json"), "--policy", "lumbar-fusion")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    assert record["result"]["policy"]["id"] == "lumbar-fusion"
    assert record["determination"] == "medically_necessary"


def test_every_example_case_reviews(tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result = invoke(str(EXAMPLES), "-o", str(out))
    assert result.exit_code == 0, result.output
    records = lines_of(out)
    assert len(records) == len(list(EXAMPLES.glob("*.json")))
    assert all("error" not in r for r in records)


# --- worker processes ---------------------------------------------------------------------------


def without_time(record: dict[str, Any]) -> str:
    result = dict(record.get("result") or {})
    result.pop("evaluated_at", None)
    return json.dumps({**record, "result": result}, sort_keys=True)


def test_worker_processes_give_the_same_records_in_the_same_order(folder: Path) -> None:
    one: list[str] = []
    two: list[str] = []
    files = batch.sources([folder])
    batch.run(batch.items(files), None, Library(), lambda r: one.append(without_time(r)))
    batch.run(batch.items(files), None, Library(), lambda r: two.append(without_time(r)), jobs=2)
    assert one == two
    assert len(one) == 3


def written_by_2_workers(
    folder: Path, path: Path, *, results: bool = True
) -> tuple[list[dict[str, Any]], batch.Summary]:
    """Run a batch of `folder` with 2 workers into `path`; return the records handed to the
    writer, and the summary."""
    got: list[dict[str, Any]] = []
    with path.open("wb") as stream:
        writer = batch.Writer(stream, str(path), sync=False)

        def write(record: dict[str, Any]) -> None:
            got.append(record)
            writer.write(record)

        todo = batch.items(batch.sources([folder]))
        summary = batch.run(todo, None, Library(), write, jobs=2, results=results)
        writer.flush()
    return got, summary


def test_a_worker_s_record_is_written_as_the_line_it_encoded(folder: Path, tmp_path: Path) -> None:
    # Workers send each record as its JSON line, so that the main process (which shares the
    # cores with them) does not encode it again: the line written is that record's own line.
    path = tmp_path / "out.jsonl"
    got, _ = written_by_2_workers(folder, path)
    written = path.read_bytes().splitlines(keepends=True)
    assert written == [batch.encode(dict(record)) for record in got]
    assert [json.loads(line) for line in written] == got
    assert [r.get("error") for r in got] == [None, "invalid_input", None]


def test_without_results_a_worker_s_record_is_counted_and_written_whole(
    folder: Path, tmp_path: Path
) -> None:
    # The main process then never decodes a worker's line: a record has every key but
    # `result`, enough to count and name it, and the line written is the worker's whole line.
    path = tmp_path / "out.jsonl"
    got, summary = written_by_2_workers(folder, path, results=False)
    alone: list[str] = []
    batch.run(
        batch.items(batch.sources([folder])),
        None,
        Library(),
        lambda r: alone.append(without_time(r)),
    )
    assert [without_time(json.loads(line)) for line in path.read_bytes().splitlines()] == alone
    assert [dict(r) for r in got] == [
        {k: v for k, v in json.loads(line).items() if k != "result"}
        for line in path.read_bytes().splitlines()
    ]
    assert [r.get("determination") for r in got] == [
        "medically_necessary",
        None,
        "not_medically_necessary",
    ]
    assert got[1]["error"] == "invalid_input"
    assert got[1]["problems"]
    assert (summary.total, summary.invalid) == (3, 1)


def test_batch_jobs_2_writes_the_decision_log(folder: Path, tmp_path: Path) -> None:
    # A decision log is the one reader of a record's result in the command: with workers the
    # main process then decodes their lines (without a log it does not).
    log, out = tmp_path / "log.jsonl", tmp_path / "out.jsonl"
    args = ["batch", str(folder), "--jobs", "2", "--no-progress", "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--decision-log", str(log)])
    assert result.exit_code == 2, result.output  # the bad case: invalid input
    logged = [json.loads(x) for x in log.read_text().splitlines()]
    decided = [r["determination"] for r in lines_of(out) if "result" in r]
    assert [x["determination"] for x in logged] == decided
    assert len(logged) == 2


def test_the_batch_command_imports_no_evaluation_stack_until_a_case_is_reviewed() -> None:
    # With workers the main process never reviews a case: importing the engine, the decision
    # and its rendering there (0.15 s) delayed the workers' start and took CPU they need.
    code = (
        "import sys; import evaluator.cli.commands.batch; "
        "print(sorted(m for m in ('evaluator.api', 'evaluator.engine.durable', "
        "'evaluator.decide.decision', 'evaluator.render.decision') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    )
    assert done.stdout.strip() == "[]"


def review_or_die(item: batch.Item, policy: str | None, library: Library) -> dict[str, Any]:
    """Test-only: the worker reviewing a case named `*die-always*` kills itself (SIGKILL), as
    does the first one reviewing `*die-once*`; everything else is reviewed as usual."""
    if "die-always" in item.name:
        os.kill(os.getpid(), signal.SIGKILL)
    if "die-once" in item.name:
        marker = Path(f"{item.path}.died")
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    return batch.review_item(item, policy, library)


@pytest.mark.parametrize("read", [True, False], ids=["read-here", "read-by-workers"])
def test_a_killed_worker_s_case_is_retried_once_then_recorded(tmp_path: Path, read: bool) -> None:
    cases = tmp_path / "cases"
    cases.mkdir()
    examples = sorted(EXAMPLES.glob("*.json"))[:6]
    order = ["1-a", "2-die-always", "3-b", "4-die-once", "5-c", "6-d"]
    for prefix, example in zip(order, examples, strict=True):
        shutil.copy(example, cases / f"{prefix}-{example.name}")
    files = batch.sources([cases])
    records: list[dict[str, Any]] = []
    summary = batch.run(
        batch.items(files, read=read), None, Library(), records.append, jobs=2, review=review_or_die
    )
    assert [r["case"] for r in records] == [str(p) for p in files]  # in order, none lost
    died = records[1]
    assert died["error"] == "worker_died"
    assert "died twice (killed by SIGKILL)" in died["problems"][0]["message"]
    assert died["problems"][0]["file"] == str(files[1])
    # its bytes' hash, as any record (when the workers read the files, the main process reads it)
    assert died["sha256"] == hashlib.sha256(files[1].read_bytes()).hexdigest()
    assert "determination" not in died
    assert "determination" in records[3]  # its retry, in a fresh worker, reviewed it
    assert all("determination" in r for r in (records[0], records[2], records[4], records[5]))
    assert (summary.total, summary.failed) == (6, 1)


def children(pid: int) -> list[int]:
    """The worker processes of `pid`: forked by the fork server it started (a child running
    multiprocessing's forkserver), or spawned children running multiprocessing's spawn_main."""
    found: list[int] = []
    for child in _child_pids(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            found.append(child)
        elif b"multiprocessing.forkserver" in command:
            found.extend(_child_pids(child))
    return found


def _child_pids(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        with contextlib.suppress(OSError):
            found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def once_records_are_written(
    command: list[str], out: Path, act: Callable[[int], None]
) -> tuple[int, str]:
    """Run `command`, do `act(pid)` once it has written records to `out`; return how it ended."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: line_count(out) > 0, "the first records")
        act(process.pid)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    return process.returncode, stderr


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_kill_9_on_a_worker_loses_no_case(tmp_path: Path) -> None:
    # Before: BrokenProcessPool, a traceback, exit 4 and most cases with no record.
    cases = many(tmp_path, 5)
    total = len(list(cases.iterdir()))
    out = tmp_path / "results.jsonl"

    def kill_a_worker(pid: int) -> None:
        victims = children(pid)
        assert victims, "no worker process found"
        os.kill(victims[0], signal.SIGKILL)

    command = [*NECESSITY, "batch", str(cases), "-j", "2", "-o", str(out)]
    returncode, stderr = once_records_are_written(command, out, kill_a_worker)
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    records = lines_of(out)
    assert [r["case"] for r in records] == [str(p) for p in sorted(cases.iterdir())]
    assert all("determination" in r for r in records)  # the killed worker's case was retried
    assert f"{total} cases in" in stderr


# --- resuming -----------------------------------------------------------------------------------


def test_resume_skips_what_is_recorded_and_drops_a_torn_last_line(tmp_path: Path) -> None:
    cases = many(tmp_path, 1)
    out = tmp_path / "results.jsonl"
    assert invoke(str(cases), "-o", str(out)).exit_code == 0
    full = out.read_bytes().splitlines(keepends=True)
    examples = len(list(EXAMPLES.glob("*.json")))
    assert len(full) == examples
    # The run stopped after 10 records, half-way through writing the 11th (a full disk).
    kept = b"".join(full[:10])
    out.write_bytes(kept + full[10][:50])
    result = invoke(str(cases), "-o", str(out), "--resume")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output
    assert "10 records there" in result.output
    assert "dropped a torn last line (50 bytes)" in result.output
    assert f"{examples - 10} cases in" in result.output
    assert "10 already recorded, skipped" in result.output
    after = out.read_bytes()
    assert after.startswith(kept)  # never rewritten
    records = lines_of(out)
    assert [r["case"] for r in records] == [json.loads(line)["case"] for line in full]
    # Nothing left to do: a second resume writes nothing and changes nothing.
    again = invoke(str(cases), "-o", str(out), "--resume")
    assert again.exit_code == 0, again.output
    assert f"{examples} already recorded, skipped" in again.output
    assert out.read_bytes() == after


def test_resume_goes_by_content_a_changed_case_is_reviewed_again(
    folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    assert invoke(str(folder), "-o", str(out)).exit_code == 2
    shutil.copy(EXAMPLES / "l4-l5-approvable.json", folder / "b.json")  # the bad case, fixed
    result = invoke(str(folder), "-o", str(out), "--resume")
    assert result.exit_code == 0, result.output
    records = lines_of(out)
    assert names(records) == ["a.json", "b.json", "c.json", "b.json"]
    assert records[1]["error"] == "invalid_input"
    assert records[3]["determination"] == "medically_necessary"


def test_resume_refuses_a_file_that_is_not_a_batch_s_output(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    out.write_text('{"case": "x.json"}\nnot a record\n{"case": "y.json"}\n', encoding="utf-8")
    before = out.read_bytes()
    result = invoke(str(folder), "-o", str(out), "--resume")
    assert result.exit_code == 2
    assert f"{out}:2: not a batch record" in result.output
    assert out.read_bytes() == before


def test_resume_needs_an_output_file(folder: Path) -> None:
    result = invoke(str(folder), "--resume")
    assert result.exit_code == 2
    assert "--resume needs --output" in result.output


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_says_what_was_written_and_resume_finishes_the_run(
    tmp_path: Path, jobs: str
) -> None:
    cases = many(tmp_path, 6)
    files = sorted(str(p) for p in cases.iterdir())
    out = tmp_path / "results.jsonl"
    command = [*NECESSITY, "batch", str(cases), "-o", str(out), "--jobs", jobs]
    returncode, stderr = once_records_are_written(
        command, out, lambda pid: os.kill(pid, signal.SIGINT)
    )
    assert returncode == 130, stderr
    assert "Traceback" not in stderr
    written = line_count(out)
    assert 0 < written < len(files), "the run finished before it was interrupted"
    assert f"interrupted: {written} records written to {out}" in stderr
    assert "--resume continues" in stderr
    assert " cases in " in stderr  # the summary
    assert out.read_bytes().endswith(b"\n")
    resumed = subprocess.run(
        [*command, "--resume"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written} already recorded, skipped" in resumed.stderr
    assert [r["case"] for r in lines_of(out)] == files


# --- writing ------------------------------------------------------------------------------------


def test_records_are_written_in_whole_lines_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    path = tmp_path / "out.jsonl"
    with path.open("wb") as stream:
        writer = batch.Writer(stream, str(path), sync=True, every=3, seconds=3600, sync_seconds=0)
        for n in range(7):
            writer.write({"case": f"{n}.json"})
            assert path.read_bytes().count(b"\n") == (n + 1) // 3 * 3
        assert len(synced) == 2
        writer.flush()
        assert len(synced) == 3
    assert writer.written == 7
    assert [r["case"] for r in lines_of(path)] == [f"{n}.json" for n in range(7)]


def test_lines_are_synced_once_a_second_and_at_the_end_not_with_every_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An fsync costs milliseconds, more than a case: syncing every 64 records cost 0.1 ms a case.
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    path = tmp_path / "out.jsonl"
    with path.open("wb") as stream:
        writer = batch.Writer(stream, str(path), sync=True, every=2, seconds=3600)
        for n in range(6):
            writer.write({"case": f"{n}.json"})
        assert path.read_bytes().count(b"\n") == 6  # written (and flushed) as they come
        assert synced == []  # but not synced: less than a second went by
        clock[0] += batch.SYNC_SECONDS
        writer.write({"case": "6.json"})
        writer.write({"case": "7.json"})
        assert len(synced) == 1
        writer.write({"case": "8.json"})
        writer.flush()  # the end: the rest is synced
        assert len(synced) == 2
        writer.flush()  # nothing new: no sync
        assert len(synced) == 2
    assert [r["case"] for r in lines_of(path)] == [f"{n}.json" for n in range(9)]


def test_a_missing_output_folder_is_a_usage_error_before_any_work(folder: Path) -> None:
    result = invoke(str(folder), "-o", "/nonexistent/x.jsonl")
    assert result.exit_code == 2
    assert "folder '/nonexistent' does not exist" in result.output
    assert " cases in " not in result.output  # nothing was reviewed


def test_an_unwritable_output_is_a_usage_error_before_any_work(
    folder: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root may write anyway; sysfs refuses even root
        locked = Path("/sys")
        if not locked.is_dir() or os.access(locked / "x.jsonl", os.W_OK):
            pytest.skip("no folder this user cannot write to")
    result = invoke(str(folder), "-o", str(locked / "x.jsonl"))
    assert result.exit_code == 2
    assert f"cannot write '{locked / 'x.jsonl'}'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_a_message_and_the_summary_not_a_traceback(folder: Path) -> None:
    done = subprocess.run(
        [*NECESSITY, "batch", str(folder), "-o", "/dev/full"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert "error: cannot write /dev/full: no space left on device" in done.stderr
    assert " cases in " in done.stderr
    assert "--resume continues" in done.stderr


def test_closed_standard_output_stops_quietly(tmp_path: Path) -> None:
    cases = many(tmp_path, 2)
    process = subprocess.Popen(
        [*NECESSITY, "batch", str(cases)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # as `| head -1` does, then goes away
        process.stdout.close()
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert json.loads(first)["case"]
    assert process.returncode == 141
    assert stderr == b""


# --- reading cases from streams -----------------------------------------------------------------


def one_line(path: Path) -> bytes:
    return json.dumps(json.loads(path.read_text(encoding="utf-8"))).encode() + b"\n"


def test_standard_input_is_json_lines_one_case_a_line() -> None:
    stdin = (
        one_line(EXAMPLES / "l4-l5-approvable.json")
        + b"\n"  # blank lines are skipped, but counted
        + b'{"case_id": "x",}\n'  # JSON, not YAML: a trailing comma is malformed
        + one_line(EXAMPLES / "current-smoker.json")
        + b'{"case_id": "x"}'  # the last line may lack its newline
    )
    result = invoke("-", stdin=stdin)
    assert result.exit_code == 2, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["case"] for r in records] == ["<stdin>:1", "<stdin>:3", "<stdin>:4", "<stdin>:5"]
    missing = records[3]["problems"][0]
    assert (missing["pointer"], missing["line"]) == ("", 5)  # not line 1 of the stream
    assert records[0]["determination"] == "medically_necessary"
    problem = records[1]["problems"][0]
    assert (problem["file"], problem["line"], problem["column"]) == ("<stdin>", 3, 17)
    assert problem["message"].startswith("malformed json")
    assert records[2]["determination"] == "not_medically_necessary"


def test_a_jsonl_file_holds_one_case_a_line_with_located_problems(tmp_path: Path) -> None:
    bad = json.loads(BAD.read_text(encoding="utf-8"))
    stream = tmp_path / "cases.jsonl"
    stream.write_bytes(
        one_line(EXAMPLES / "current-smoker.json") + json.dumps(bad).encode() + b"\n"
    )
    result = invoke(str(tmp_path))  # found in a folder too
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["case"] for r in records] == [f"{stream}:1", f"{stream}:2"]
    problem = records[1]["problems"][0]
    assert (problem["code"], problem["file"], problem["line"]) == ("unknown_level", str(stream), 2)
    assert records[0]["sha256"] != records[1]["sha256"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_device_is_refused_not_waited_for(folder: Path, tmp_path: Path) -> None:
    # Before, reading a FIFO given as a case hung the batch for ever.
    for name in ("fifo.json", "fifo.jsonl"):
        os.mkfifo(tmp_path / name)
    inputs = [str(tmp_path / "fifo.json"), str(tmp_path / "fifo.jsonl"), "/dev/zero"]
    done = subprocess.run(
        [*NECESSITY, "batch", *inputs, str(folder / "a.json")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["case"] for r in records] == [*inputs, str(folder / "a.json")]
    for record in records[:3]:
        assert record["problems"][0]["code"] == "unreadable_file"
        assert record["problems"][0]["message"].startswith("not a regular file")
    assert records[3]["determination"] == "medically_necessary"


def test_help_documents_exit_codes_stdin_and_resume() -> None:
    result = CliRunner().invoke(main, ["batch", "--help"])
    assert result.exit_code == 0
    for text in ("130", "141", "--resume", "JSON Lines", "`-`", "worker_died", "internal_error"):
        assert text in result.output
