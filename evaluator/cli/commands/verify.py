"""`necessity verify`: replay a recorded decision and say whether it is reproduced."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evaluator.audit import verify
from evaluator.cli.commands import ExitCode
from evaluator.errors import PolicyNotFoundError


@click.command("verify", short_help="Replay a recorded JSON decision and compare.")
@click.argument("decision", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--case",
    "case",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The case file the decision was made on.",
)
@click.option(
    "--policies-dir",
    default=None,
    metavar="DIR|git:REV[:DIR]",
    help="Where the policy versions are: a folder, or the `policies` folder (or DIR) at a git "
    "revision, read with git without a checkout. Default: the bundled policies.",
)
def command(decision: Path, case: Path, policies_dir: str | None) -> None:
    """Re-evaluate CASE under the policy version DECISION names and compare the two decisions.

    DECISION is the JSON of `necessity evaluate --format json` (one policy or a per-line
    review). Everything is compared but the evaluation time; the provenance block holds the
    hashes of the policy file and its content, the schemas and the case facts, so a policy file
    edited in place without a new version shows up as a difference.

    Exit code 0 when the replay is identical, 1 when it differs (the differences are listed as
    JSON pointers), 2 when the version the decision names is not available (or bad input).

    \b
    Examples:
      necessity verify decision.json --case case.json
      necessity verify decision.json --case case.json --policies-dir git:v1.2
      necessity verify decision.json --case case.json --policies-dir ./archive/policies
    """
    try:
        result = verify.verify_file(decision, case, policies_dir)
    except PolicyNotFoundError as error:
        click.echo(f"not verifiable: {error}", err=True)
        raise click.exceptions.Exit(ExitCode.INVALID_INPUT) from None
    if result.identical:
        click.echo(f"identical: {decision} is reproduced by replaying {case}")
        raise click.exceptions.Exit(ExitCode.OK)
    click.echo(f"different: {len(result.differences)} value(s) differ on replay")
    for diff in result.differences:
        click.echo(f"  {diff.pointer}")
        click.echo(f"    recorded: {json.dumps(diff.recorded, ensure_ascii=False)}")
        click.echo(f"    replayed: {json.dumps(diff.replayed, ensure_ascii=False)}")
    raise click.exceptions.Exit(1)
