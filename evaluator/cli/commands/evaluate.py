"""`necessity evaluate`: evaluate one case against a policy and print the decision."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from evaluator import api
from evaluator.cli import profiling
from evaluator.cli.commands import (
    ExitCode,
    decision_log_options,
    format_option,
    policies_dir_option,
    report_written,
)
from evaluator.decide import records
from evaluator.decide.decision import Decision
from evaluator.language.policies import Library
from evaluator.render import decision as render
from evaluator.render import review as render_review

if TYPE_CHECKING:
    from evaluator.render import notice

# A partly approvable request still has lines for physician review; a line no policy governs
# must be pended, not approved.
OVERALL_EXIT = {
    api.Overall.MEDICALLY_NECESSARY: ExitCode.MEDICALLY_NECESSARY,
    api.Overall.PARTIALLY_MEDICALLY_NECESSARY: ExitCode.NOT_MEDICALLY_NECESSARY,
    api.Overall.MODIFIED: ExitCode.NOT_MEDICALLY_NECESSARY,
    api.Overall.NOT_MEDICALLY_NECESSARY: ExitCode.NOT_MEDICALLY_NECESSARY,
    api.Overall.INSUFFICIENT_DOCUMENTATION: ExitCode.INSUFFICIENT_DOCUMENTATION,
    api.Overall.NO_POLICY: ExitCode.INSUFFICIENT_DOCUMENTATION,
}


@click.command("evaluate")
@click.argument("case", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--policy",
    metavar="ID[@VERSION]",
    help="Policy to apply; without a version, the active version in force on the request "
    "date. Default: the policy governing the requested procedures.",
)
@format_option("text", "json", "markdown", "html")
@click.option(
    "--explain",
    is_flag=True,
    help="Also show why: every rule firing in order, and the chain from each failed clause, "
    "the determination and the alternative back to the case facts and their documents (text "
    "or JSON only).",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Also print on stderr the time spent in each phase (read, validate, facts, policies, "
    "engine, assemble, render).",
)
@policies_dir_option()
@decision_log_options()
def command(
    case: Path,
    policy: str | None,
    output_format: str,
    explain: bool,
    profile: bool,
    policies_dir: Path | None,
    decision_log: Path | None,
    mask: bool,
) -> None:
    """Evaluate CASE (a YAML or JSON case file, or a FHIR R4 PAS request Bundle; `-` reads
    standard input) and print the decision.

    --format markdown or html writes the notice a reviewer sends to the requesting physician
    (HTML: one standalone file that prints on A4 and Letter); text is the reviewer's own report
    and JSON the stable contract (schemas/decision.schema.json).

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
      necessity evaluate case.yaml --format html > notice.html
      necessity evaluate case.json --decision-log decisions.jsonl
      necessity evaluate examples/cases/t12-s2-fusion.json --explain
      necessity evaluate examples/fhir/t12-s2-fusion-bundle.json
      cat case.json | necessity evaluate -
      necessity evaluate examples/cases/t12-s2-fusion.json --profile > /dev/null
    """
    report_written(lambda: "no decision was printed")
    if explain and output_format in ("markdown", "html"):
        raise click.UsageError(
            "--explain shows the engine's trace in text or JSON; use --format text or json"
        )
    options = (case, policy, output_format, explain, policies_dir, decision_log, mask)
    if not profile:
        raise click.exceptions.Exit(_evaluate(*options, render_phase=contextlib.nullcontext))
    with profiling.profiled() as timer:
        try:
            code = _evaluate(*options, render_phase=lambda: timer.phase("render"))
        finally:
            for line in timer.lines():
                click.echo(line, err=True)
    raise click.exceptions.Exit(code)


def _evaluate(
    case: Path,
    policy: str | None,
    output_format: str,
    explain: bool,
    policies_dir: Path | None,
    decision_log: Path | None,
    mask: bool,
    *,
    render_phase: Callable[[], AbstractContextManager[None]],
) -> ExitCode:
    # the bundled policies do not change while a process runs: the process's one Library of
    # them, which the api also reads referenced policies from (one read and build of each)
    library = Library(policies_dir) if policies_dir is not None else Library.shared()
    request = api.load_request(case)
    for where, message in request.unmapped:
        click.echo(f"warning: {case}: {where}: {message} (not used in the review)", err=True)
    loaded = request.case
    evaluated_at = datetime.now(UTC).isoformat(timespec="seconds")
    if policy is None:
        review = api.review_case(loaded, library, explain=explain)
        if decision_log is not None:
            log = render_review.review_json(review, evaluated_at)
            records.log_decision(decision_log, log, evaluated_at, mask)
        with render_phase():
            _echo(
                output_format,
                lambda: render_review.review_json(review, evaluated_at),
                lambda: _review_notice(review),
                lambda: (
                    render_review.review_text(review)
                    + _explained(
                        (", ".join(m.line.id for m in members), first.decision)
                        for members, first in render_review.groups(review)
                    )
                ),
            )
        return OVERALL_EXIT[review.overall]
    decision = api.evaluate(loaded, api.select_policy(loaded, policy, library), explain=explain)
    if decision_log is not None:
        log = render.decision_json(decision, evaluated_at)
        records.log_decision(decision_log, log, evaluated_at, mask)
    with render_phase():
        _echo(
            output_format,
            lambda: render.decision_json(decision, evaluated_at),
            lambda: _decision_notice(decision, loaded.request_date.text),
            lambda: render.decision_text(decision) + _explained([(decision.policy_id, decision)]),
        )
    return ExitCode.for_determination(decision.determination)


def _explained(parts: Iterable[tuple[str, Decision | None]]) -> str:
    """Return the explanation of each decision that has one, under a banner naming its part."""
    out = ""
    for name, decision in parts:
        if decision is not None and decision.explanation is not None:
            from evaluator.decide.explain import explanation_text  # noqa: PLC0415  (api._decide)

            banner = f"EXPLANATION: {name}"
            out += f"\n{'=' * 92}\n{banner}\n{'=' * 92}\n\n"
            out += explanation_text(decision.explanation)
    return out


def _review_notice(review: api.CaseReview) -> list[notice.Block]:
    from evaluator.render import notice  # noqa: PLC0415  (see _echo)

    return notice.review_notice(review)


def _decision_notice(decision: Decision, request_date: str) -> list[notice.Block]:
    from evaluator.render import notice  # noqa: PLC0415  (see _echo)

    return notice.decision_notice(decision, request_date)


def _echo(
    output_format: str,
    as_json: Callable[[], dict[str, Any]],
    as_notice: Callable[[], list[notice.Block]],
    as_text: Callable[[], str],
) -> None:
    # The notice (markdown, html) is imported only when asked for: it and its html module
    # cost a cold start of the other formats a few milliseconds.
    if output_format in ("markdown", "html"):
        from evaluator.render import notice  # noqa: PLC0415

        marked_up = notice.to_markdown if output_format == "markdown" else notice.to_html
        click.echo(marked_up(as_notice()), nl=False)
    elif output_format == "json":
        click.echo(json.dumps(as_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(as_text(), nl=False)
