"""`necessity impact`: which past cases a policy change moves, and how."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from evaluator.audit import diff, impact, render_impact
from evaluator.cli.commands import format_option, jobs_option, policies_dir_option, progress_option
from evaluator.language.policies import Library


@click.command("impact", short_help="Evaluate cases under two policy versions; report changes.")
@click.argument("old", metavar="A")
@click.argument("new", metavar="B")
@click.option(
    "--cases",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Case files, folders of them, or JSON Lines files (one case per line); repeatable.",
)
@jobs_option("Worker processes, as for `necessity batch`.")
@progress_option()
@format_option("text", "json", "markdown")
@policies_dir_option()
def command(
    old: str,
    new: str,
    paths: tuple[Path, ...],
    jobs: int,
    progress: bool | None,
    output_format: str,
    policies_dir: Path | None,
) -> None:
    """Evaluate every case under policy versions A and B and report what changes.

    A and B are named as for `necessity diff` (ID@VERSION, a file, or git:REV:path). Reported:
    the determinations that flip and which way, for each changed case the clauses whose status
    changed with the deciding evidence, and totals by clause. Cases none of whose lines either
    version governs are skipped. --format markdown gives a summary to attach to a change
    ticket.

    Exit code 0 when no case changes, 1 when some do, 2 on bad input.

    \b
    Examples:
      necessity impact my-policy@2024.1 my-policy@2025.1 --cases examples/cases
      necessity impact git:HEAD~1:policies/x/1.yaml policies/x/1.yaml --cases past.jsonl
      necessity impact my-policy@2025.1 my-policy@2026.1 --cases archive/ -j 2 --format markdown
    """
    library = Library(policies_dir) if policies_dir is not None else Library()
    before, after = diff.load(old, library), diff.load(new, library)
    show = sys.stderr.isatty() if progress is None else progress
    if show:
        with click.progressbar(length=1, label="evaluating", file=sys.stderr) as bar:

            def total(n: int) -> None:
                bar.length = max(n, 1)  # known once the folders are searched

            report = impact.impact(before, after, paths, jobs, bar.update, total)
    else:
        report = impact.impact(before, after, paths, jobs)
    if output_format == "json":
        click.echo(json.dumps(render_impact.impact_json(report), indent=2, ensure_ascii=False))
    elif output_format == "markdown":
        click.echo(render_impact.impact_markdown(report), nl=False)
    else:
        click.echo(render_impact.impact_text(report), nl=False)
    raise click.exceptions.Exit(1 if report.changed else 0)
