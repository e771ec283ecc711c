"""`necessity test`: run policy test suites, show expected vs actual, measure clause coverage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from evaluator.authoring import testing
from evaluator.authoring.coverage import Coverage, PolicyCoverage
from evaluator.cli.commands import (
    ExitCode,
    format_option,
    output_file,
    policies_dir_option,
    report_written,
)
from evaluator.errors import InputError, Problem
from evaluator.language.model import Status
from evaluator.language.policies import Library
from evaluator.render import decision as render

# `necessity test` exits 1 when a test fails: the same number as "not medically necessary".
TESTS_FAILED = ExitCode.NOT_MEDICALLY_NECESSARY
_COVERAGE_MARKS = {True: "x", False: "."}  # exercised / reachable but not exercised


@click.command("test")
@click.argument("names", nargs=-1, metavar="[POLICY...]")
@click.option(
    "--coverage",
    "with_coverage",
    is_flag=True,
    help="Report which reachable clause statuses the tests checked, per policy.",
)
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    default=None,
    metavar="PCT",
    help="With --coverage: exit 1 when any policy covers less than PCT % of its reachable "
    "clause statuses (CI uses 100).",
)
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=output_file,
    metavar="FILE",
    help="Also write the results as JUnit XML to FILE (for CI); an unreadable suite is "
    "written there as a test with an error.",
)
@format_option("text", "json")
@policies_dir_option()
def command(
    names: tuple[str, ...],
    with_coverage: bool,
    fail_under: float | None,
    junit_file: Path | None,
    output_format: str,
    policies_dir: Path | None,
) -> None:
    """Run the test suites of policies (policies/<id>/tests/*.yaml).

    POLICY is a policy id (its suites run against the version each suite names, else the newest
    active one), ID@VERSION (its suites run against that version), or a suite file or folder.
    Without POLICY, every policy that has a tests/ folder. Prints `PASS` or `FAIL` per test, then
    for each failure the differing statuses side by side with the deciding evidence, then a
    summary. Exit code 0 when every test passes, 1 when any fails, 2 for an unreadable suite,
    case or policy.

    \b
    Examples:
      necessity test
      necessity test my-policy --coverage
      necessity test --coverage --fail-under 100
      necessity test policies/my-policy/tests/examples.yaml --junit results.xml
    """
    library = Library(policies_dir) if policies_dir is not None else Library()
    try:
        suites = _load(library, names)
    except InputError as error:
        if junit_file is not None:
            # CI reads the JUnit file: it must say why no test ran
            testing.junit_errors(error.problems).write(
                junit_file, encoding="utf-8", xml_declaration=True
            )
        raise
    if not any(suite.tests for suite in suites):
        raise click.UsageError("no policy tests found (suites live in policies/<id>/tests/)")
    coverage = Coverage()
    progress = _Progress(echo=output_format == "text")
    observers: list[testing.Observer] = [coverage, progress]
    total = sum(len(suite.tests) for suite in suites)
    report_written(lambda: f"{progress.done} of {total} tests ran; no report or JUnit file written")
    started = time.perf_counter()
    results = testing.run(suites, observers)
    seconds = time.perf_counter() - started
    report = coverage.report() if with_coverage or fail_under is not None else None
    if junit_file is not None:
        testing.junit_xml(results, failure_text).write(
            junit_file, encoding="utf-8", xml_declaration=True
        )
    if output_format == "json":
        click.echo(json.dumps(results_json(results, report), indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(summary_lines(results, report, seconds)))
    failed = any(not r.passed for r in results)
    short = [p for p in report or () if fail_under is not None and p.percent < fail_under]
    for policy in short:
        click.echo(
            f"coverage of {policy.policy} is {policy.percent:.1f} %, under --fail-under "
            f"{fail_under:g} %",
            err=True,
        )
    raise click.exceptions.Exit(TESTS_FAILED if failed or short else ExitCode.OK)


def _load(library: Library, names: Sequence[str]) -> list[testing.Suite]:
    # Every unreadable suite is reported at once, as `validate` does, not only the first.
    suites: list[testing.Suite] = []
    problems: list[Problem] = []
    for path, version in testing.find_suites(library, names):
        try:
            suites.append(testing.load_suite(path, library, version))
        except InputError as error:
            problems.extend(error.problems)
    if problems:
        raise InputError(problems)
    return suites


class _Progress:
    """Counts the tests as they finish and, with `echo`, prints one line per test, as
    pytest -v does."""

    def __init__(self, *, echo: bool) -> None:
        self.echo = echo
        self.done = 0

    def observe(self, result: testing.TestResult) -> None:
        self.done += 1
        if self.echo:
            click.echo(f"{'PASS' if result.passed else 'FAIL'} {test_id(result)}")


def _shown(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def test_id(result: testing.TestResult) -> str:
    """Return `suite-file::test-name`, the suite relative to the working folder if inside it."""
    return f"{_shown(result.suite)}::{result.test.name}"


def _alternative_text(alternative: Any) -> str:
    if alternative is None:
        return "none"
    return ", ".join(
        f"{procedure} {levels or '(none)'}" for procedure, levels in alternative.items()
    )


def failure_text(result: testing.TestResult) -> str:
    """Return what differed: a side-by-side table and the deciding evidence of each clause."""
    location = result.test.location
    rows = [("", "", "expected", "actual")]
    if not result.determination_ok:
        rows.append(
            ("!", "determination", result.test.expect.determination, result.decision.determination)
        )
    rows += [("!", c.clause, c.expected, c.actual) for c in result.clauses if not c.ok]
    if not result.alternative_ok:
        rows.append(
            (
                "!",
                "alternative",
                _alternative_text(result.test.expect.alternative),
                _alternative_text(result.alternative),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(3)]
    lines = [
        f"  {_shown(location.file or result.suite)}:{location.line or 0} ({result.policy.ref})"
    ]
    lines += [
        f"  {mark:<{widths[0]}} {name:<{widths[1]}}  {want!s:<{widths[2]}}  {got}".rstrip()
        for mark, name, want, got in rows
    ]
    for check in result.clauses:
        if check.ok:
            continue
        lines.append(f"  deciding evidence for {check.clause} ({check.actual}):")
        found = render.evidence_lines(check.result)
        for line in found[: render.MAX_EVIDENCE_LINES]:
            text = f"    {line.answer}: {line.condition}"
            if line.binding:
                text += f" [{line.binding}]"
            if line.documented:
                text += f"; documented: {line.documented}"
            lines.append(text)
        if len(found) > render.MAX_EVIDENCE_LINES:
            lines.append(f"    ... and {len(found) - render.MAX_EVIDENCE_LINES} more")
        if not found:
            lines.append("    (no evidence: the clause was decided without a condition)")
    return "\n".join(lines)


def coverage_lines(report: Iterable[PolicyCoverage]) -> list[str]:
    """Return the coverage table of each policy: x exercised, . a gap, - unreachable."""
    lines = []
    for policy in report:
        lines.append(
            f"coverage of {policy.policy}: {policy.covered}/{policy.reachable} reachable "
            f"clause statuses exercised ({policy.percent:.0f} %)"
        )
        width = max([len("clause"), *(len(c.clause) for c in policy.clauses)])
        lines.append(f"  {'clause':<{width}}  " + "  ".join(s.value for s in Status))
        for clause in policy.clauses:
            cells = [
                (_COVERAGE_MARKS[s in clause.exercised] if s in clause.reachable else "-").center(
                    len(s.value)
                )
                for s in Status
            ]
            lines.append(f"  {clause.clause:<{width}}  {'  '.join(cells)}".rstrip())
        gaps = [f"{c.clause}: {', '.join(c.missing)}" for c in policy.clauses if c.missing]
        lines.append("  gaps: none" if not gaps else "  gaps:")
        lines += [f"    {gap}" for gap in gaps]
    if lines:
        lines.append("  (x exercised, . reachable but not exercised, - unreachable)")
    return lines


def summary_lines(
    results: Sequence[testing.TestResult], report: list[PolicyCoverage] | None, seconds: float
) -> list[str]:
    """Return the failure details, the coverage (if measured) and the `N passed` line."""
    failed = [r for r in results if not r.passed]
    lines = []
    if failed:
        lines += ["", "FAILURES"]
        for result in failed:
            lines += ["", f"FAIL {test_id(result)}", failure_text(result)]
    if report is not None:
        lines += ["", *coverage_lines(report)]
    lines += ["", f"{len(results) - len(failed)} passed, {len(failed)} failed in {seconds:.2f}s"]
    return lines


def results_json(
    results: Sequence[testing.TestResult], report: list[PolicyCoverage] | None
) -> dict[str, Any]:
    """Return the results (and coverage, when measured) as JSON-ready data."""
    data: dict[str, Any] = {
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
        "tests": [
            {
                "id": test_id(r),
                "suite": r.suite,
                "line": r.test.location.line,
                "name": r.test.name,
                "policy": r.policy.ref,
                "passed": r.passed,
                "determination": {
                    "expected": r.test.expect.determination,
                    "actual": r.decision.determination,
                    "ok": r.determination_ok,
                },
                "clauses": [
                    {"clause": c.clause, "expected": c.expected, "actual": c.actual, "ok": c.ok}
                    for c in r.clauses
                ],
                "alternative": {
                    "checked": r.test.expect.check_alternative,
                    "expected": _plain(r.test.expect.alternative),
                    "actual": _plain(r.alternative),
                    "ok": r.alternative_ok,
                },
                "seconds": round(r.seconds, 4),
            }
            for r in results
        ],
    }
    if report is not None:
        data["coverage"] = [
            {
                "policy": p.policy,
                "reachable": p.reachable,
                "covered": p.covered,
                "percent": round(p.percent, 1),
                "clauses": [
                    {
                        "clause": c.clause,
                        "reachable": [s for s in Status if s in c.reachable],
                        "exercised": [s for s in Status if s in c.exercised],
                        "missing": list(c.missing),
                    }
                    for c in p.clauses
                ],
            }
            for p in report
        ]
    return data


def _plain(mapping: Any) -> dict[str, str] | None:
    return None if mapping is None else dict(mapping)
