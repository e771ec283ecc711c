"""Every hostile file under tests/hostile/ produces the outcome its sidecar documents.

The sidecar convention (tests/hostile/README.md) lets anyone add a hostile file without editing
a shared list: a file `X` and `X.expect.yaml` beside it, or only the sidecar when `make` says
what to create at test time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from evaluator.cli.main import ExitCode, main
from evaluator.read.source import LIMITS

HOSTILE = Path(__file__).parent / "hostile"
ROOT = HOSTILE.parent.parent
SIDECAR = ".expect.yaml"
EXPECT_SCHEMA = json.loads((HOSTILE / "expect.schema.json").read_text(encoding="utf-8"))
EXAMPLE = ROOT / "examples" / "cases" / "urgent-cauda-equina.json"  # medically necessary
SIDECARS = sorted(HOSTILE.rglob("*" + SIDECAR))


def _expectation(sidecar: Path) -> dict[str, Any]:
    data = YAML(typ="safe").load(sidecar.read_text(encoding="utf-8"))
    jsonschema.validate(data, EXPECT_SCHEMA)
    return dict(data)


def _make(kind: str, path: Path) -> None:
    """Create what a sidecar's `make` names at `path` (a file, or a folder holding one)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "large-file":
        path.write_bytes(b" " * (LIMITS.max_bytes + 1))
    elif kind == "example-case":
        path.write_bytes(EXAMPLE.read_bytes())
    elif kind == "example-policy":
        path.write_bytes((ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml").read_bytes())
    elif kind == "trailing-comma":
        path.write_text('{"case_id": "x",}\n', encoding="utf-8")
    else:
        path.mkdir()
        (path / "good.json").write_bytes(EXAMPLE.read_bytes())
        if kind == "folder-with-fifo":
            os.mkfifo(path / "pipe.json")
        elif kind == "folder-with-broken-link":
            (path / "gone.json").symlink_to(path / "nowhere.json")
        elif kind == "folder-with-link-loop":
            (path / "loop.json").symlink_to(path / "loop.json")
        elif kind == "policies-with-fifo":
            (path / "lumbar-fusion").mkdir()
            policy = ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml"
            (path / "lumbar-fusion" / "2025.1.yaml").write_bytes(policy.read_bytes())
            os.mkfifo(path / "lumbar-fusion" / "2026.1.yaml")


def _needs_process(expect: dict[str, Any]) -> bool:
    # CliRunner runs in this process: a FIFO, a device, real stdin/stdout need a real one
    return any(key in expect for key in ("device", "stdin", "stdout")) or expect.get("make") in (
        "fifo",
        "folder-with-fifo",
        "policies-with-fifo",
    )


def _run_process(args: list[str], expect: dict[str, Any], stdin: Path | None) -> tuple[int, str]:
    command = [sys.executable, "-m", "evaluator", *args]
    timeout = float(expect.get("timeout", 60))
    stdin_file = stdin.open("rb") if stdin is not None else subprocess.DEVNULL
    try:
        if expect.get("stdout") == "closed":
            # the reader goes away at once, as `| head -c0` would
            proc = subprocess.Popen(
                command, stdin=stdin_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
            )
            assert proc.stdout is not None
            proc.stdout.close()
            _, err = proc.communicate(timeout=timeout)
            return proc.returncode, err.decode("utf-8", "replace")
        if expect.get("stdout") == "/dev/full":
            with open("/dev/full", "wb") as full:
                done = subprocess.run(
                    command,
                    stdin=stdin_file,
                    stdout=full,
                    stderr=subprocess.PIPE,
                    timeout=timeout,
                    cwd=ROOT,
                    check=False,
                )
            return done.returncode, done.stderr.decode("utf-8", "replace")
        done = subprocess.run(
            command, stdin=stdin_file, capture_output=True, timeout=timeout, cwd=ROOT, check=False
        )
        return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")
    finally:
        if stdin is not None and not isinstance(stdin_file, int):
            stdin_file.close()


def _codes(path: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["validate", "--format", "json", str(path)])
    problems: list[dict[str, Any]] = []
    for checked in json.loads(result.stdout)["files"]:
        problems += checked["problems"]
    return problems


@pytest.mark.parametrize(
    "sidecar", SIDECARS, ids=[str(s.relative_to(HOSTILE))[: -len(SIDECAR)] for s in SIDECARS]
)
def test_hostile_file_has_its_documented_outcome(sidecar: Path, tmp_path: Path) -> None:
    expect = _expectation(sidecar)
    name = sidecar.name[: -len(SIDECAR)]
    if "device" in expect:
        path = Path(expect["device"])
    elif "make" in expect:
        path = tmp_path / name
        _make(expect["make"], path)
    else:
        path = sidecar.with_name(name)
        assert path.exists(), f"{sidecar} has no file beside it and no `make`"
    args = [
        a.replace("{file}", str(path)).replace("{dir}", str(path.parent)) for a in expect["command"]
    ]
    stdin = Path(expect["stdin"].replace("{file}", str(path))) if "stdin" in expect else None
    if _needs_process(expect):
        exit_code, output = _run_process(args, expect, stdin)
    else:
        result = CliRunner().invoke(main, args, prog_name="necessity")
        exit_code, output = result.exit_code, result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert exit_code == expect["exit"], output
    for fragment in [expect.get("message", ""), *expect.get("output_contains", [])]:
        assert fragment in output, output
    if "pointer" in expect:
        assert f"({expect['pointer']})" in output, output
    if "line" in expect:
        assert f":{expect['line']}:" in output, output
    if "code" in expect:
        problems = _codes(path)
        assert any(p["code"] == expect["code"] for p in problems), problems
        for problem in problems:
            if problem["code"] == expect["code"]:
                assert problem["pointer"] == expect.get("pointer", problem["pointer"])
                assert problem["line"] == expect.get("line", problem["line"])


def test_every_hostile_file_has_a_sidecar() -> None:
    files = [
        p
        for p in HOSTILE.rglob("*")
        if p.is_file()
        and not p.name.endswith(SIDECAR)
        and p.name not in ("README.md", "expect.schema.json")
    ]
    missing = [str(p) for p in files if not p.with_name(p.name + SIDECAR).exists()]
    assert not missing


def _wait_until_reading_stdin(pid: int) -> None:
    # A SIGINT during the imports would hit Python, not the command: wait for the read(0, ...)
    # system call (Linux: /proc/<pid>/syscall starts "0 0x0"), or a generous sleep elsewhere.
    syscall = Path(f"/proc/{pid}/syscall")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if syscall.read_text().startswith("0 0x0 "):
                time.sleep(0.2)  # inside the command, blocked on standard input
                return
        except OSError:
            time.sleep(5)
            return
        time.sleep(0.1)


def test_ctrl_c_exits_130_and_says_what_was_written() -> None:
    # `evaluate -` waits on standard input, inside the command: a SIGINT there is the user's
    proc = subprocess.Popen(
        [sys.executable, "-m", "evaluator", "evaluate", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        _wait_until_reading_stdin(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode("utf-8", "replace")
    assert proc.returncode == ExitCode.INTERRUPTED, text
    assert "Traceback" not in text
    assert "interrupted: no decision was printed" in text


def test_ctrl_c_during_policy_tests_says_how_many_ran() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "evaluator", "test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # the first test has run
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode("utf-8", "replace")
    assert proc.returncode == ExitCode.INTERRUPTED, text
    assert "Traceback" not in text
    assert "tests ran; no report or JUnit file written" in text
