"""`necessity evaluate --profile` and evaluator/cli/profiling.py."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from evaluator import api
from evaluator.cli import profiling
from evaluator.cli.main import ExitCode, main
from evaluator.engine.durable import Engine
from evaluator.read import schemas, source

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["evaluate", str(FOUNDING), *args])
    return result.exit_code, result.stdout, result.stderr


def test_profile_times_every_phase_on_stderr_and_changes_nothing_else() -> None:
    code, out, err = _run()
    profiled_code, profiled_out, profiled_err = _run("--profile")
    assert (profiled_code, profiled_out) == (code, out)
    # pended overall: the founding decompression line is pended (issue 8)
    assert code == ExitCode.INSUFFICIENT_DOCUMENTATION
    assert err == ""
    for phase in (*profiling.PHASES, "other", "total"):
        assert re.search(rf"^  {phase} +-?[0-9]+\.[0-9] ms", profiled_err, re.MULTILINE), phase
    # the founding case runs three policies (and one they refer to) and renders once
    engine = re.search(r"^  engine .*\(([0-9]+) calls\)", profiled_err, re.MULTILINE)
    assert engine is not None
    assert int(engine[1]) >= 3
    assert re.search(r"^  render .*\(1 call\)", profiled_err, re.MULTILINE)


def test_profile_with_one_policy_and_json() -> None:
    code, out, err = _run("--profile", "--policy", "lumbar-fusion", "--format", "json")
    assert code in (ExitCode.MEDICALLY_NECESSARY, ExitCode.NOT_MEDICALLY_NECESSARY)
    assert out.startswith("{")
    assert "  engine" in err


def test_profile_of_an_invalid_case_still_reports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"case_id": 1}', encoding="utf-8")
    result = CliRunner().invoke(main, ["evaluate", str(bad), "--profile"])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "  validate" in result.stderr
    assert "Traceback" not in result.stderr


def _hooked() -> tuple[object, ...]:
    return (
        source.load,
        schemas.SchemaSet.validate,
        Engine.run,
        vars(api)["assemble"],
        api._evaluate,
    )


def test_every_hook_is_restored() -> None:
    before = _hooked()
    with profiling.profiled() as timer:
        assert source.load is not before[0]
        with timer.phase("render"), timer.phase("engine"):
            pass
    assert _hooked() == before
    assert timer.calls["render"] == timer.calls["engine"] == 1
    assert timer.seconds["render"] >= 0
