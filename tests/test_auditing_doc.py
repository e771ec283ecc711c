"""docs/auditing.md: every `$ necessity ...` command runs and exits as the guide says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator.cli.main import main

ROOT = Path(__file__).parent.parent
GUIDE = ROOT / "docs" / "auditing.md"
COMMAND = re.compile(r"^\$ necessity (?P<args>.+)\n# exit (?P<code>\d)$", re.MULTILINE)


def commands() -> list[tuple[str, int]]:
    return [(m["args"], int(m["code"])) for m in COMMAND.finditer(GUIDE.read_text())]


def test_the_guide_has_commands() -> None:
    verbs = {args.split()[0] for args, _ in commands()}
    assert verbs == {"policies", "diff", "impact", "evaluate", "verify", "batch"}


def test_every_command_runs_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run in order from a scratch copy of the layout, so files the guide writes land there.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    monkeypatch.chdir(tmp_path)
    for args, code in commands():
        words = shlex.split(args)
        out = None
        if ">" in words:
            at = words.index(">")
            out, words = Path(words[at + 1]), words[:at]
        result = CliRunner().invoke(main, words, prog_name="necessity")
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output
        if out is not None:
            out.write_text(result.stdout, encoding="utf-8")
