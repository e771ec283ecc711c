"""`necessity impact`: past cases under two versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from evaluator import api
from evaluator.audit import impact
from evaluator.case import cases
from evaluator.cli.main import main
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "cases"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="necessity")


def _expected() -> dict[str, tuple[str, str, dict[str, tuple[str, str]]]]:
    """Evaluate each fusion case directly under both versions (the oracle for the report)."""
    library = Library()
    old, new = library.get("lumbar-fusion@2024.1"), library.get("lumbar-fusion@2025.1")
    found = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        case = cases.load_case(path)
        if not any(api.governs(new, line) for line in case.lines):
            continue
        a, b = api.evaluate(case, old), api.evaluate(case, new)
        sa = {c.id: c.status.value for c in a.clauses}
        sb = {c.id: c.status.value for c in b.clauses}
        moved = {}
        for key in {*sa, *sb}:
            x, y = sa.get(key, "absent"), sb.get(key, "absent")
            failing = {"not_met", "not_documented"}
            if x != y and ("absent" not in (x, y) or {x, y} & failing):
                moved[key] = (x, y)
        if moved or a.determination != b.determination:
            found[case.case_id] = (a.determination.value, b.determination.value, moved)
    return found


@pytest.fixture(scope="module")
def report() -> impact.Report:
    library = Library()
    return impact.impact(
        library.get("lumbar-fusion@2024.1"), library.get("lumbar-fusion@2025.1"), [EXAMPLES]
    )


def test_every_changed_case_is_reported(report: impact.Report) -> None:
    expected = _expected()
    got = {
        c.case_id: (c.old, c.new, {m.clause: (m.old, m.new) for m in c.clauses})
        for c in report.changed
    }
    assert got == expected
    assert "t12-s2-fusion" in got  # the founding case
    assert got["dynamic-instability"][:2] == ("medically_necessary", "not_medically_necessary")
    assert not report.errors


def test_totals_and_evidence(report: impact.Report) -> None:
    # dynamic-instability, pt-5-weeks-6-days, and the two examples of the clauses added to
    # 2025.1 in place (odi-below-30, imaging-older-than-12-months)
    assert report.flips() == {("medically_necessary", "not_medically_necessary"): 4}
    # dynamic-instability (3 mm), and imaging-older-than-12-months: its 2024 MRI's slip is not
    # relied on under 2025.1 (stop 22), where 2024.1 has no recency criterion
    assert report.by_clause()["LF-INSTABILITY", "met", "not_met"] == 2
    moved = next(c for c in report.changed if c.case_id == "dynamic-instability")
    instability = next(m for m in moved.clauses if m.clause == "LF-INSTABILITY")
    assert any("translation is at least 3 mm" in e for e in instability.evidence)
    assert len(report.skipped) == len(list(EXAMPLES.glob("*.json"))) - len(report.cases)


def test_cli_markdown_json_jobs_and_json_lines(tmp_path: Path) -> None:
    lines = tmp_path / "past.jsonl"
    picked = ["t12-s2-fusion.json", "dynamic-instability.json", "l4-l5-approvable.json"]
    lines.write_text(
        "".join(json.dumps(json.loads((EXAMPLES / n).read_text())) + "\n" for n in picked)
    )
    args = ("impact", "lumbar-fusion@2024.1", "lumbar-fusion@2025.1", "--cases", lines)
    result = run(*args, "--format", "json", "--jobs", "2")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["cases"] == 3
    assert {r["case_id"] for r in data["results"] if r["flipped"]} == {"dynamic-instability"}
    markdown = run(*args, "--format", "markdown")
    assert markdown.stdout.startswith(
        "# Impact of `lumbar-fusion@2024.1` -> `lumbar-fusion@2025.1`"
    )
    assert "| medically necessary | not medically necessary | 1 |" in markdown.stdout
    progress = run(*args, "--progress")
    assert "evaluating" in progress.stderr
    same = run("impact", "lumbar-fusion@2025.1", "lumbar-fusion@2025.1", "--cases", lines)
    assert same.exit_code == 0
