"""What a cold `necessity evaluate` of a valid case imports (its speed is in benchmarks/)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"

# Imported only to explain an invalid document, to parse or rewrite YAML (the policies' is
# cached), or for another output format.
_DEFERRED = (
    "jsonschema",
    "referencing",
    "ruamel",
    "evaluator.render.notice",
    "evaluator.authoring.fmt",
)

_SCRIPT = """
import json, sys
from evaluator.cli.main import main
try:
    main(["evaluate", sys.argv[1]], prog_name="necessity")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(cache: Path, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NECESSITY_CACHE_DIR": str(cache)},
        check=False,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_a_valid_case_imports_no_explaining_validator_or_notice(tmp_path: Path) -> None:
    first = _modules_after(tmp_path, str(FOUNDING))  # parses the policies, fills the cache
    assert "ruamel.yaml" in first
    modules = _modules_after(tmp_path, str(FOUNDING))
    assert "evaluator.api" in modules  # it did evaluate
    assert {m for m in modules if m.split(".")[0] in _DEFERRED or m in _DEFERRED} == set()


def test_an_invalid_case_still_gets_located_messages(tmp_path: Path) -> None:
    case = json.loads(FOUNDING.read_text(encoding="utf-8"))
    case["request"]["date"] = "2025-13-40"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(case, indent=2), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "evaluate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert f"{path}:" in done.stderr
    assert "/request/date" in done.stderr
    assert "Traceback" not in done.stderr


_AS_PROGRAM = """
import atexit, gc, sys
from pathlib import Path
from evaluator.cli.main import main
marker = Path(sys.argv[1])
atexit.register(lambda: marker.write_text(str(gc.get_threshold()[0]), encoding="utf-8"))
sys.argv = ["necessity", *sys.argv[2:]]
main()
print("never reached")
"""


@pytest.mark.parametrize("command", ["evaluate", "validate"])
def test_a_program_exits_with_its_output_whole_and_its_exit_handlers_run(
    tmp_path: Path, command: str
) -> None:
    """`evaluate` run as a program ends without freeing every object (cli/main.py
    `_exit_now`): its output is whole, its exit code kept and the exit handlers run; another
    command, or the group called with arguments from a program, ends as before."""
    marker = tmp_path / "atexit-ran"
    args = [command, str(FOUNDING)] + (["--format", "json"] if command == "evaluate" else [])
    done = subprocess.run(
        [sys.executable, "-c", _AS_PROGRAM, str(marker), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    expected = CliRunner().invoke(main, args)
    assert done.returncode == expected.exit_code
    assert done.stderr == ""
    if command == "evaluate":
        first = json.loads(done.stdout)
        second = json.loads(expected.stdout)
        first.pop("evaluated_at", None)
        second.pop("evaluated_at", None)
        assert first == second
    else:
        assert done.stdout == expected.stdout
    assert "never reached" not in done.stdout
    # the collector's threshold is raised for the short command only
    default = str(gc.get_threshold()[0])  # this process's is the interpreter's default
    assert marker.read_text(encoding="utf-8") == ("100000" if command == "evaluate" else default)
