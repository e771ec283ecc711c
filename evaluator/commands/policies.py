"""`necessity policies`: list the policy versions in the library."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evaluator import api, render
from evaluator.commands import format_option, policies_dir_option
from evaluator.policies import Library


@click.command("policies")
@format_option("text", "json")
@policies_dir_option()
def command(output_format: str, policies_dir: Path | None) -> None:
    """List the policy versions in the library.

    For each: id, version, title, status, effective dates, procedures with their CPT codes, and
    the start of the file's SHA-256 (the full hash is in the JSON).

    \b
    Examples:
      necessity policies
      necessity policies --format json
      necessity policies --policies-dir ./my-policies
    """
    library = Library(policies_dir) if policies_dir is not None else None
    found = api.list_policies(library)
    if output_format == "json":
        click.echo(json.dumps(render.policies_json(found), indent=2, ensure_ascii=False))
    else:
        click.echo(render.policies_text(found), nl=False)
