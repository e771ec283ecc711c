"""`necessity show`: a policy as the criteria document a clinical reviewer reads."""

from __future__ import annotations

from pathlib import Path

import click

from evaluator import api
from evaluator.authoring import show
from evaluator.cli.commands import format_option, policies_dir_option
from evaluator.language.policies import Library, PolicyRef


@click.command("show")
@click.argument("policy", metavar="POLICY[@VERSION]")
@format_option("markdown", "text")
@policies_dir_option()
@click.option(
    "--plan",
    "plan",
    metavar="PLAN",
    help="Show the effective policy under a plan overlay (<id>/plans/PLAN.yaml): the base "
    "policy with the plan's settings and waivers, and what the plan changed.",
)
def command(policy: str, output_format: str, policies_dir: Path | None, plan: str | None) -> None:
    """Print a policy as the criteria document a clinical reviewer reads.

    Title, version, status and dates; procedures and CPT codes; settings with their units; then
    each clause: its requirement in plain language generated from its condition (thresholds with
    their edge and unit), what an undecided requirement means, the documents requested, the
    recommendation and its references; the facts the policy derives and how; the alternative;
    and the numbered references. The Markdown is what a plan publishes (CMS requires coverage
    criteria to be public). Without @VERSION, the newest active version (with --plan, the
    version the plan is written for, if it names one).

    Exit code: 0, or 2 for an unknown policy or version.

    \b
    Examples:
      necessity show my-policy
      necessity show my-policy@2025.1 --format text
      necessity show my-policy > my-policy.md
      necessity show my-policy --plan my-plan --format text
    """
    library = Library(policies_dir) if policies_dir is not None else Library()
    ref = PolicyRef.parse(policy)
    found = library.get(ref) if plan is None else api.planned_policy(library, ref, plan)
    text = show.policy_markdown(found) if output_format == "markdown" else show.policy_text(found)
    click.echo(text, nl=False)
