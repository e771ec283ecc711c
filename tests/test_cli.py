"""Tests for the `necessity` CLI: exit codes, located error messages, formats, help text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import jsonschema
import pytest
from click.testing import CliRunner, Result

from evaluator import api
from evaluator.cli.main import COMMAND_MODULES, ExitCode, main
from evaluator.errors import EngineError

ROOT = Path(__file__).parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
FIXTURES = Path(__file__).parent / "fixtures" / "cases"
SCHEMA = json.loads((ROOT / "schemas" / "decision.schema.json").read_text(encoding="utf-8"))


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="necessity")


def assert_clean_error(result: Result) -> None:
    assert result.exit_code == ExitCode.INVALID_INPUT, result.output
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_exit_codes_are_the_documented_numbers() -> None:
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("MEDICALLY_NECESSARY", 0),
        ("NOT_MEDICALLY_NECESSARY", 1),
        ("INVALID_INPUT", 2),
        ("INSUFFICIENT_DOCUMENTATION", 3),
        ("ENGINE_ERROR", 4),
        ("INTERRUPTED", 130),
        ("OUTPUT_CLOSED", 141),
    ]


def test_founding_case_is_not_medically_necessary() -> None:
    result = run("evaluate", FOUNDING, "--policy", "lumbar-fusion")
    assert result.exit_code == ExitCode.NOT_MEDICALLY_NECESSARY
    first = result.stdout.splitlines()[0]
    assert first.startswith("Determination:")
    assert "NOT MEDICALLY NECESSARY" in first
    assert "A3" in result.stdout


def test_founding_case_as_json_parses_and_validates() -> None:
    result = run("evaluate", FOUNDING, "--policy", "lumbar-fusion", "--format", "json")
    assert result.exit_code == ExitCode.NOT_MEDICALLY_NECESSARY
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert data["determination"] == "not_medically_necessary"
    assert data["evaluated_at"]


def test_founding_case_as_markdown() -> None:
    result = run("evaluate", FOUNDING, "--policy", "lumbar-fusion", "--format", "markdown")
    assert result.exit_code == ExitCode.NOT_MEDICALLY_NECESSARY
    assert result.stdout.startswith("# Medical necessity review notice")
    assert "Does not meet the criteria: recommended for physician review" in result.stdout


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("l4-l5-approvable.json", ExitCode.MEDICALLY_NECESSARY),
        ("missing-documentation-only.json", ExitCode.INSUFFICIENT_DOCUMENTATION),
    ],
    ids=["approvable", "pended"],
)
def test_exit_code_follows_the_determination(case: str, code: ExitCode) -> None:
    result = run("evaluate", ROOT / "examples" / "cases" / case, "--policy", "lumbar-fusion")
    assert result.exit_code == code, result.output


def test_unknown_policy_is_one_line_naming_it() -> None:
    result = run("evaluate", FOUNDING, "--policy", "no-such-policy")
    assert_clean_error(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "`no-such-policy`" in lines[0]


def test_unknown_version() -> None:
    result = run("evaluate", FOUNDING, "--policy", "lumbar-fusion@1999.1")
    assert_clean_error(result)
    assert "`1999.1`" in result.stderr
    assert "2025.1" in result.stderr


def test_unknown_level_is_located() -> None:
    result = run("evaluate", FIXTURES / "unknown-level.json", "--policy", "lumbar-fusion")
    assert_clean_error(result)
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ")
    assert "unknown-level.json:7:" in first
    assert "(/request/lines/0/fusion)" in first
    assert '"L6"' in first
    assert "(/imaging/0/findings/2/level)" in result.stderr


def test_impossible_date_is_located() -> None:
    result = run("evaluate", FIXTURES / "impossible-date.yaml", "--policy", "lumbar-fusion")
    assert_clean_error(result)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ")
    assert "impossible-date.yaml:10:3 (/conservative_care/start): " in lines[0]
    assert "2025-02-30" in lines[0]
    assert lines[1].startswith("  hint: ")


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("broken.json", '{"case_id": "x"\n  "request": {}\n}\n', "broken.json:2:3: malformed"),
        ("broken.yaml", "case_id: x\nrequest: [unclosed\n", "broken.yaml:3:1: malformed"),
    ],
    ids=["json", "yaml"],
)
def test_malformed_file_gives_line_and_column(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = run("evaluate", path, "--policy", "lumbar-fusion")
    assert_clean_error(result)
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {path}:")
    line_col = first[len(f"error: {path}:") :].split(" ")[0].rstrip(":").split(":")
    assert all(part.isdigit() for part in line_col), first
    assert len(line_col) == 2
    assert where in first


def test_schema_violation_gives_the_pointer(tmp_path: Path) -> None:
    data = json.loads(FOUNDING.read_text(encoding="utf-8"))
    data["request"]["urgency"] = "whenever"
    path = tmp_path / "bad-urgency.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    result = run("evaluate", path, "--policy", "lumbar-fusion")
    assert_clean_error(result)
    assert "(/request/urgency)" in result.stderr
    assert "bad-urgency.json:" in result.stderr


def test_missing_case_file() -> None:
    result = run("evaluate", ROOT / "no-such-case.json", "--policy", "lumbar-fusion")
    assert_clean_error(result)
    assert "no-such-case.json: no such file" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["evaluate"], ["evaluate", str(FOUNDING), "--format", "xml"], ["no-such-verb"]],
    ids=["missing-argument", "bad-choice", "unknown-command"],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "Traceback" not in result.output


def test_engine_error_exits_4_without_a_determination(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object, **_options: object) -> None:
        raise EngineError.single("engine_failed", "no status was derived for `LF-URGENT`")

    monkeypatch.setattr(api, "evaluate", fail)
    result = run("evaluate", FOUNDING, "--policy", "lumbar-fusion")
    assert result.exit_code == ExitCode.ENGINE_ERROR
    assert result.stdout == ""
    assert result.stderr == "engine error: no status was derived for `LF-URGENT`\n"


def test_a_bug_exits_4_not_as_a_determination(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object, **_options: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(api, "evaluate", fail)
    result = run("evaluate", FOUNDING, "--policy", "lumbar-fusion")
    assert result.exit_code == ExitCode.ENGINE_ERROR
    assert "internal error: KeyError" in result.stderr


def test_validate_examples_and_policies() -> None:
    result = run("validate", ROOT / "examples", ROOT / "policies")
    assert result.exit_code == ExitCode.OK, result.output
    assert f"ok  {FOUNDING} (case)" in result.stdout
    assert f"ok  {ROOT / 'policies' / 'lumbar-fusion' / '2025.1.yaml'} (policy)" in result.stdout


def test_validate_reports_every_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"case_id": ', encoding="utf-8")
    result = run("validate", FOUNDING, bad, FIXTURES / "unknown-level.json")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert f"ok  {FOUNDING} (case)" in result.stdout
    assert f"error: {bad}:1:" in result.stdout
    assert "unknown-level.json:7:" in result.stdout
    assert "3 files checked: 1 valid, 2 invalid" in result.stdout


def test_validate_as_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[", encoding="utf-8")
    result = run("validate", FOUNDING, bad, "--format", "json")
    assert result.exit_code == ExitCode.INVALID_INPUT
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert [f["valid"] for f in data["files"]] == [True, False]
    assert data["files"][1]["problems"][0]["line"] == 1


def test_policies_json_lists_lumbar_fusion() -> None:
    result = run("policies", "--format", "json")
    assert result.exit_code == ExitCode.OK, result.output
    versions = {(p["id"], p["version"]) for p in json.loads(result.stdout)["policies"]}
    assert ("lumbar-fusion", "2025.1") in versions


def test_policies_dir_option(tmp_path: Path) -> None:
    result = run("policies", "--policies-dir", tmp_path)
    assert result.exit_code == ExitCode.OK
    assert result.stdout == "no policies found\n"
    result = run("evaluate", FOUNDING, "--policy", "lumbar-fusion", "--policies-dir", tmp_path)
    assert_clean_error(result)
    assert "`lumbar-fusion`" in result.stderr


def test_python_dash_m_runs_the_cli() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: necessity ")
    assert "Exit codes:" in done.stdout
    for code in ExitCode:
        assert f"  {int(code)}  " in done.stdout


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_every_command_has_help_with_an_example(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command)
    assert command.help
    assert "Examples:" in command.help
    assert f"necessity {name}" in command.help
    result = run(name, "--help")
    assert result.exit_code == 0
    assert f"necessity {name}" in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("necessity, version ")


@pytest.mark.parametrize(
    "case",
    sorted((ROOT / "examples" / "cases").glob("*.json")),
    ids=lambda p: p.stem,
)
def test_per_line_review_json_validates(case: Path) -> None:
    # Without --policy every service line is reviewed: the `review` form of the schema.
    result = run("evaluate", str(case), "--format", "json")
    assert result.exit_code in (0, 1, 3), result.output
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert data["overall"]["determination"]
    assert len(data["lines"]) >= 1


def test_founding_case_reviews_three_lines() -> None:
    result = run("evaluate", FOUNDING, "--format", "json")
    # The decompression line is pended (symptom correlation not documented), so the request is.
    assert result.exit_code == ExitCode.INSUFFICIENT_DOCUMENTATION
    data = json.loads(result.stdout)
    assert data["overall"] == {"determination": "insufficient_documentation", "x12_action": "A4"}
    lines = {line["line"]: line for line in data["lines"]}
    assert {k: (v["policy"]["id"], v["determination"]) for k, v in lines.items()} == {
        "decompression": ("lumbar-decompression", "insufficient_documentation"),
        "fusion": ("lumbar-fusion", "not_medically_necessary"),
        "si-fusion": ("si-joint-fusion", "not_medically_necessary"),
    }
    alternative = {x["procedure"]: x["levels"] for x in lines["fusion"]["alternative"]["lines"]}
    assert alternative == {"lumbar_decompression": "L1-S1", "lumbar_fusion": "L3-S1"}


def test_a_command_imports_only_its_own_module() -> None:
    # cold start: `evaluate` must not pay for importing every other command (and its libraries)
    code = (
        "import sys; from evaluator.cli.main import main; "
        "main(['evaluate', '--help'], standalone_mode=False); "
        "print(sorted(m for m in sys.modules if m.startswith('evaluator.cli.commands.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip().splitlines()[-1] == "['evaluator.cli.commands.evaluate']"


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run("evaluat")
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "No such command 'evaluat'" in result.stderr
