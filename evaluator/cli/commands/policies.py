"""`necessity policies`: list the policy versions in the library."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evaluator import api
from evaluator.audit import render_history
from evaluator.cli.commands import format_option, policies_dir_option
from evaluator.language.policies import Library
from evaluator.render import decision as render


@click.command("policies")
@format_option("text", "json")
@click.option(
    "--history",
    metavar="ID",
    default=None,
    help="List the versions of one policy, newest first, with windows and changelogs.",
)
@policies_dir_option()
def command(output_format: str, history: str | None, policies_dir: Path | None) -> None:
    """List the policy versions in the library.

    For each: id, version, title, status, effective dates, procedures with their CPT codes, and
    the start of the file's SHA-256 (the full hash is in the JSON). With --history, one
    policy's versions: status, effective window, the version each supersedes, and the
    changelog (what changed, why, and the references that support it).

    \b
    Examples:
      necessity policies
      necessity policies --format json
      necessity policies --policies-dir ./my-policies
      necessity policies --history my-policy
    """
    library = Library(policies_dir) if policies_dir is not None else None
    if history is not None:
        versions = api.policy_history(history, library)
        if output_format == "json":
            click.echo(json.dumps(render_history.history_json(versions), indent=2))
        else:
            click.echo(render_history.history_text(versions), nl=False)
        return
    found = api.list_policies(library)
    if output_format == "json":
        click.echo(json.dumps(render.policies_json(found), indent=2, ensure_ascii=False))
    else:
        click.echo(render.policies_text(found), nl=False)
