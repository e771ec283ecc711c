"""`necessity evaluate`: evaluate one case against a policy and print the decision."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from evaluator import api, records, render, render_review
from evaluator.cases import load_case
from evaluator.commands import (
    ExitCode,
    decision_log_options,
    format_option,
    policies_dir_option,
)
from evaluator.policies import Library

# A partly approvable request still has lines for physician review; a line no policy governs
# must be pended, not approved.
OVERALL_EXIT = {
    api.Overall.MEDICALLY_NECESSARY: ExitCode.MEDICALLY_NECESSARY,
    api.Overall.PARTIALLY_MEDICALLY_NECESSARY: ExitCode.NOT_MEDICALLY_NECESSARY,
    api.Overall.NOT_MEDICALLY_NECESSARY: ExitCode.NOT_MEDICALLY_NECESSARY,
    api.Overall.INSUFFICIENT_DOCUMENTATION: ExitCode.INSUFFICIENT_DOCUMENTATION,
    api.Overall.NO_POLICY: ExitCode.INSUFFICIENT_DOCUMENTATION,
}


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
@decision_log_options()
def command(
    case: Path,
    policy: str | None,
    output_format: str,
    policies_dir: Path | None,
    decision_log: Path | None,
    mask: bool,
) -> None:
    """Evaluate CASE (a YAML or JSON case file) and print the decision.

    Without --policy every requested service line is reviewed under the policy that governs
    its procedure (the version in force on the request date), with an overall summary; a line
    no policy governs is reported for manual review, never approved. With --policy, that one
    policy's decision on the whole case.

    The exit code is the determination: 0 medically necessary, 1 not medically necessary or
    only partly (a recommendation for physician review), 3 insufficient documentation or a
    line no policy governs; 2 means the input was invalid and 4 that the engine failed.

    \b
    Examples:
      necessity evaluate examples/cases/t12-s2-fusion.json
      necessity evaluate case.json --policy my-policy
      necessity evaluate case.yaml --policy my-policy@2025.1 --format json
      necessity evaluate case.yaml --format markdown > review.md
      necessity evaluate case.json --decision-log decisions.jsonl
    """
    library = Library(policies_dir) if policies_dir is not None else Library()
    loaded = load_case(case)
    evaluated_at = datetime.now(UTC).isoformat(timespec="seconds")
    if policy is None:
        review = api.review_case(loaded, library)
        if decision_log is not None:
            log = render_review.review_json(review, evaluated_at)
            records.log_decision(decision_log, log, evaluated_at, mask)
        _echo(
            output_format,
            lambda: render_review.review_json(review, evaluated_at),
            lambda: render_review.review_markdown(review),
            lambda: render_review.review_text(review),
        )
        raise click.exceptions.Exit(OVERALL_EXIT[review.overall])
    decision = api.evaluate(loaded, api.select_policy(loaded, policy, library))
    if decision_log is not None:
        log = render.decision_json(decision, evaluated_at)
        records.log_decision(decision_log, log, evaluated_at, mask)
    _echo(
        output_format,
        lambda: render.decision_json(decision, evaluated_at),
        lambda: render.decision_markdown(decision),
        lambda: render.decision_text(decision),
    )
    raise click.exceptions.Exit(ExitCode.for_determination(decision.determination))


def _echo(
    output_format: str,
    as_json: Callable[[], dict[str, Any]],
    as_markdown: Callable[[], str],
    as_text: Callable[[], str],
) -> None:
    if output_format == "json":
        click.echo(json.dumps(as_json(), indent=2, ensure_ascii=False))
    else:
        click.echo((as_markdown if output_format == "markdown" else as_text)(), nl=False)
