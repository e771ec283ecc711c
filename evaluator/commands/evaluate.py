"""`necessity evaluate`: evaluate one case against a policy and print the decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from evaluator import api, render
from evaluator.cases import load_case
from evaluator.commands import ExitCode, format_option, policies_dir_option
from evaluator.policies import Library


@click.command("evaluate")
@click.argument("case", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--policy",
    metavar="ID[@VERSION]",
    help="Policy to apply; without a version, the active version in force on the request "
    "date. Default: the policy governing the requested procedures.",
)
@format_option("text", "json", "markdown")
@policies_dir_option()
def command(case: Path, policy: str | None, output_format: str, policies_dir: Path | None) -> None:
    """Evaluate CASE (a YAML or JSON case file) and print the decision.

    The exit code is the determination: 0 medically necessary, 1 not medically necessary
    (a recommendation for physician review), 3 insufficient documentation; 2 means the
    input was invalid and 4 that the engine failed.

    \b
    Examples:
      necessity evaluate examples/cases/t12-s2-fusion.json --policy lumbar-fusion
      necessity evaluate case.yaml --policy lumbar-fusion@2025.1 --format json
      necessity evaluate case.yaml --format markdown > review.md
    """
    library = Library(policies_dir) if policies_dir is not None else Library()
    loaded = load_case(case)
    chosen = api.select_policy(loaded, policy, library)
    decision = api.evaluate(loaded, chosen)
    others = [line.id for line in loaded.lines if not api.governs(chosen, line)]
    if policy is None and others:
        # A multi-line request: the policy chosen for one line says nothing about the others.
        click.echo(
            f"note: no --policy given; chose `{chosen.ref}`, which does not govern line(s) "
            f"{', '.join(f'`{o}`' for o in others)}; name the policy for those with --policy",
            err=True,
        )
    if output_format == "json":
        evaluated_at = datetime.now(UTC).isoformat(timespec="seconds")
        data = render.decision_json(decision, evaluated_at)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif output_format == "markdown":
        click.echo(render.decision_markdown(decision), nl=False)
    else:
        click.echo(render.decision_text(decision), nl=False)
    raise click.exceptions.Exit(ExitCode.for_determination(decision.determination))
