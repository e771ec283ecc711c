"""docs/authoring.md is executable: its files are written and its commands run, in order.

A fenced block whose info string has `file=PATH` is a file the reader writes (PATH relative to
the repository root): plain, it creates or replaces the file; with the word `append`, it is
added to the end; a `diff` block changes the file (lines starting `-` are replaced by the lines
starting `+`; lines starting with a space are context that must match too). A `console` block
holds `$ necessity ...` commands, each followed by the output it prints. A line `...` stands for
any number of lines, `...` inside a line for any text; without `...` at its start or end the
output must start or end there. A trailing `# exit N` comment gives the expected exit code
(default 0). Everything runs in an empty folder, so nothing but the document's own files is used.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.cli.main import main
from evaluator.language.model import Status
from evaluator.language.policies import load_policy

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "authoring.md"
# Section 9 works on a copy of the bundled policies and examples, not in an empty folder.
CODED = "## 9. A new criterion on a new measurement"
GAP = "..."
_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>.*)$")
_EXIT = re.compile(r"#\s*exit\s+(?P<code>\d+)\s*$")


@dataclass(frozen=True)
class WriteFile:
    """A file block: create (or replace), append to, or patch (diff) the file at `path`."""

    line: int
    path: str
    mode: str  # "create", "append" or "diff"
    body: str


@dataclass(frozen=True)
class Command:
    """A `$ necessity ...` line, the output shown under it and its expected exit code."""

    line: int
    argv: list[str]
    expected: list[str]
    exit_code: int


def parse(text: str) -> list[WriteFile | Command]:
    """Return the document's steps in order: file blocks and console commands."""
    steps: list[WriteFile | Command] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        index += 1
        if fence is None:
            continue
        start, indent = index, fence["indent"]
        while index < len(lines) and lines[index] != f"{indent}```":
            index += 1
        if index == len(lines):
            raise AssertionError(f"authoring.md:{start}: unclosed code block")
        body = [line.removeprefix(indent) for line in lines[start:index]]
        index += 1
        words = fence["info"].split()
        language = words[0] if words else ""
        attributes = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        if "file" in attributes:
            mode = "diff" if language == "diff" else "append" if "append" in words else "create"
            steps.append(WriteFile(start, attributes["file"], mode, "\n".join(body) + "\n"))
        elif language == "console":
            steps.extend(_commands(body, start + 1))
    return steps


def _commands(body: list[str], first_line: int) -> list[Command]:
    commands: list[Command] = []
    for offset, line in enumerate(body):
        if line.startswith("$ "):
            exit_match = _EXIT.search(line)
            command = line[2 : exit_match.start()] if exit_match else line[2:]
            argv = shlex.split(command)
            assert argv[0] == "necessity", f"authoring.md:{first_line + offset}: not `necessity`"
            code = int(exit_match["code"]) if exit_match else 0
            commands.append(Command(first_line + offset, argv[1:], [], code))
        elif commands:
            commands[-1].expected.append(line)
        else:
            raise AssertionError(f"authoring.md:{first_line + offset}: output before a `$` line")
    return commands


def patch(text: str, diff: str) -> str:
    """Return `text` with the diff's `-` lines replaced by its `+` lines (context must match)."""
    old, new = [], []
    for line in diff.splitlines():
        marker, rest = line[:1], line[1:]
        if marker in (" ", ""):
            old.append(rest)
            new.append(rest)
        elif marker == "-":
            old.append(rest)
        elif marker == "+":
            new.append(rest)
        else:
            raise AssertionError(f"a diff line must start with ' ', '-' or '+': {line!r}")
    before, after = "\n".join(old) + "\n", "\n".join(new) + "\n"
    found = text.count(before)
    assert found == 1, f"the diff's old lines occur {found} times in the file, not once"
    return text.replace(before, after)


def _line_matches(expected: str, actual: str) -> bool:
    if GAP not in expected:
        return expected.rstrip() == actual.rstrip()
    pattern = ".*".join(re.escape(part) for part in expected.rstrip().split(GAP))
    return re.fullmatch(pattern, actual.rstrip()) is not None


def output_matches(expected: list[str], output: str) -> bool:
    """True when the output shows the expected lines: `...` lines are gaps of any length."""
    actual = output.rstrip("\n").splitlines()
    while expected and not expected[-1].strip():
        expected = expected[:-1]
    segments: list[list[str]] = [[]]
    for line in expected:
        if line.strip() == GAP:
            segments.append([])
        else:
            segments[-1].append(line)
    if segments == [[]]:  # nothing shown and no gap: the command prints nothing
        return not actual
    position = 0
    for number, segment in enumerate(segments):
        last = len(actual) - len(segment)
        if number == len(segments) - 1 and segment:  # no gap after it: it ends the output
            starts: range | list[int] = [last] if last >= position else []
        else:
            starts = range(position, last + 1)
        if number == 0 and segment:  # no gap before it: it starts the output
            starts = [0] if 0 in starts else []
        start = next((i for i in starts if _segment_at(segment, actual, i)), None)
        if start is None:
            return False
        position = start + len(segment)
    return True


def _segment_at(segment: list[str], actual: list[str], start: int) -> bool:
    window = actual[start : start + len(segment)]
    return len(window) == len(segment) and all(map(_line_matches, segment, window))


def _write(root: Path, step: WriteFile) -> None:
    relative = Path(step.path)
    assert not relative.is_absolute(), f"authoring.md:{step.line}: use a relative path"
    assert ".." not in relative.parts, f"authoring.md:{step.line}: path leaves the folder"
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if step.mode == "create":
        target.write_text(step.body, encoding="utf-8")
    elif step.mode == "append":
        target.write_text(target.read_text(encoding="utf-8") + step.body, encoding="utf-8")
    else:
        target.write_text(patch(target.read_text(encoding="utf-8"), step.body), encoding="utf-8")


def _sections() -> tuple[str, str]:
    text = DOC.read_text(encoding="utf-8")
    assert CODED in text, f"authoring.md has no section `{CODED}`"
    first, _, coded = text.partition(CODED)
    # Keep line numbers: the coded part is padded with the lines before it.
    return first, "\n" * first.count("\n") + coded


def test_walkthrough_runs_as_written(tmp_path, monkeypatch):
    run(parse(_sections()[0]), tmp_path, monkeypatch)


def test_bmi_walkthrough_runs_on_a_copy_of_the_bundled_policies(tmp_path, monkeypatch):
    """Issue 11: a criterion on a new measurement is a policy and value-set edit only."""
    shutil.copytree(ROOT / "policies", tmp_path / "my-policies")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    steps = parse(_sections()[1])
    assert {s.path for s in steps if isinstance(s, WriteFile)} == {
        "my-policies/_shared/valuesets/bmi.yaml",
        "my-policies/lumbar-fusion/2025.1.yaml",
        "examples/cases/l4-l5-approvable.json",
    }
    run(steps, tmp_path, monkeypatch)
    # The clause the walkthrough wrote, at its edges (the evaluator is the bundled one).
    policy = load_policy(tmp_path / "my-policies" / "lumbar-fusion" / "2025.1.yaml")
    case = json.loads((tmp_path / "examples" / "cases" / "l4-l5-approvable.json").read_text())

    def bmi_status(*values: tuple[float, str]) -> Status:
        data = copy.deepcopy(case)
        data["observations"] = [
            {
                "code": {"system": "http://loinc.org", "code": "39156-5"},
                "value_quantity": {"value": value, "unit": "kg/m2"},
                "effective": effective,
            }
            for value, effective in values
        ]
        decision = api.evaluate(case_from_data(data, "bmi.json"), policy)
        (result,) = [c for c in decision.clauses if c.id == "LF-BMI"]
        return result.status

    assert bmi_status((39.9, "2025-05-01")) is Status.MET
    assert bmi_status((40, "2025-05-01")) is Status.NOT_MET
    assert bmi_status((35, "2019-05-01"), (45, "2025-05-01")) is Status.NOT_MET
    assert bmi_status() is Status.NOT_DOCUMENTED


def run(steps: list[WriteFile | Command], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for step in steps:
        if isinstance(step, WriteFile):
            _write(tmp_path, step)
            continue
        result = runner.invoke(main, step.argv)
        shown = f"authoring.md:{step.line}: $ necessity {shlex.join(step.argv)}"
        if result.exit_code != step.exit_code:
            pytest.fail(
                f"{shown}\nexit code {result.exit_code}, the document says {step.exit_code}\n"
                f"{result.output}",
                pytrace=False,
            )
        if not output_matches(step.expected, result.output):
            expected = "\n".join(step.expected)
            pytest.fail(
                f"{shown}\nthe document shows:\n{expected}\nthe command printed:\n{result.output}",
                pytrace=False,
            )


def test_walkthrough_shows_a_failure_and_the_fix():
    steps = parse(_sections()[0])
    commands = [s for s in steps if isinstance(s, Command)]
    assert any(c.argv[0] == "lint" and c.exit_code == 1 for c in commands)
    failed_at = next(i for i, s in enumerate(steps) if isinstance(s, Command) and s.exit_code)
    assert any(isinstance(s, WriteFile) and s.mode == "diff" for s in steps[failed_at:])
    assert {"lint", "fmt", "test", "show", "validate", "evaluate"} <= {c.argv[0] for c in commands}


@pytest.mark.parametrize(
    ("expected", "output", "matches"),
    [
        (["a", "b"], "a\nb\n", True),
        (["a", "b"], "a\nb\nc\n", False),
        (["a", "c"], "a\nb\nc\n", False),
        (["a", GAP, "c"], "a\nb\nc\n", True),
        ([GAP, "b"], "a\nb\n", True),
        ([GAP, "b", GAP], "a\nb\nc\n", True),
        (["b", GAP], "a\nb\n", False),
        (["x ... z"], "x y z\n", True),
        (["x ... z"], "x y\n", False),
        (["a", "B"], "a\nb\n", False),
        ([GAP, "b"], "b\nx\nb\n", True),
        ([GAP], "anything\n", True),
        ([], "", True),
        ([], "a\n", False),
    ],
    ids=[
        "exact",
        "extra-line",
        "missing-line",
        "gap-line",
        "leading-gap",
        "gaps-around",
        "anchored-start",
        "gap-in-line",
        "gap-in-line-mismatch",
        "changed-line",
        "last-segment-ends-output",
        "only-a-gap",
        "no-output",
        "unexpected-output",
    ],
)
def test_output_matching(expected, output, matches):
    assert output_matches(expected, output) is matches


def test_patch_replaces_exactly_one_occurrence():
    text = "a: 1\nb: 2\nc: 3\n"
    assert patch(text, " a: 1\n-b: 2\n+b: 20\n") == "a: 1\nb: 20\nc: 3\n"
    with pytest.raises(AssertionError, match="0 times"):
        patch(text, "-b: 3\n+b: 4\n")
