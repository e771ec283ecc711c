"""`necessity diff`: what changed between two policy versions, and whether it decides."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evaluator.audit import diff, render_diff
from evaluator.cli.commands import ExitCode, format_option, policies_dir_option
from evaluator.language.policies import Library


@click.command("diff", short_help="Semantic diff of two policy versions, with witness cases.")
@click.argument("old", metavar="A")
@click.argument("new", metavar="B")
@format_option("text", "json", "markdown")
@policies_dir_option()
def command(old: str, new: str, output_format: str, policies_dir: Path | None) -> None:
    """Compare policy versions A and B by ids, not text.

    A and B are ID@VERSION, a policy file, or git:REV:path (the file at a git revision, read
    with git without a checkout). Clauses, derivation rules, settings, references, procedures
    and metadata are reported added, removed or changed; a changed condition shows the changed
    leaf in words. Moving, reordering, reformatting, anchors and comments make no difference.

    For every changed clause the diff says whether the change can alter a decision: a witness
    case (facts on which the two versions end the clause differently, found from the test-suite
    cases and their thresholds and evaluated under both versions before it is printed), or
    decision-neutral.

    Exit code 0 when A and B are the same, 1 when they differ, 2 on trouble (unreadable input).

    \b
    Examples:
      necessity diff my-policy@2024.1 my-policy@2025.1
      necessity diff git:HEAD~1:policies/my-policy/2025.1.yaml policies/my-policy/2025.1.yaml
      necessity diff my-policy@2025.1 my-policy@2026.1 --format markdown > change.md
    """
    library = Library(policies_dir) if policies_dir is not None else Library()
    result = diff.diff(old, new, library)
    if output_format == "json":
        click.echo(json.dumps(render_diff.diff_json(result), indent=2, ensure_ascii=False))
    elif output_format == "markdown":
        click.echo(render_diff.diff_markdown(result), nl=False)
    else:
        click.echo(render_diff.diff_text(result), nl=False)
    raise click.exceptions.Exit(ExitCode.OK if result.identical else 1)
