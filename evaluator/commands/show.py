"""`necessity show`: a policy as the criteria document a clinical reviewer reads."""

from __future__ import annotations

from pathlib import Path

import click

from evaluator import show
from evaluator.commands import format_option, policies_dir_option
from evaluator.policies import Library, PolicyRef


@click.command("show")
@click.argument("policy", metavar="POLICY[@VERSION]")
@format_option("markdown", "text")
@policies_dir_option()
def command(policy: str, output_format: str, policies_dir: Path | None) -> None:
    """Print a policy as the criteria document a clinical reviewer reads.

    Title, version, status and dates; procedures and CPT codes; settings with their units; then
    each clause: its requirement in plain language generated from its condition (thresholds with
    their edge and unit), what an undecided requirement means, the documents requested, the
    recommendation and its references; the facts the policy derives and how; the alternative;
    and the numbered references. The Markdown is what a plan publishes (CMS requires coverage
    criteria to be public). Without @VERSION, the newest active version.

    Exit code: 0, or 2 for an unknown policy or version.

    \b
    Examples:
      necessity show my-policy
      necessity show my-policy@2025.1 --format text
      necessity show my-policy > my-policy.md
    """
    library = Library(policies_dir) if policies_dir is not None else Library()
    found = library.get(PolicyRef.parse(policy))
    text = show.policy_markdown(found) if output_format == "markdown" else show.policy_text(found)
    click.echo(text, nl=False)
