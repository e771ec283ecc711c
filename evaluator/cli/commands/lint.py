"""`necessity lint`: semantic checks of policy files, reported with codes, severities and lines."""

from __future__ import annotations

from pathlib import Path

import click

from evaluator.authoring import lint
from evaluator.cli.commands import ExitCode, format_option
from evaluator.read import resources

# Exit 1 means "findings at error severity" here; the code is shared with evaluate's not-met.
FINDINGS = ExitCode(1)


@click.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@format_option("text", "json", "sarif")
@click.option(
    "--list-rules", is_flag=True, help="Print every lint code with its severity and exit."
)
def command(paths: tuple[Path, ...], output_format: str, list_rules: bool) -> None:
    """Check policy files for mistakes the schema cannot see.

    PATHS are policy files or folders searched for <id>/<version>.yaml (tests/ folders are
    skipped); the default is the bundled policies. Each finding has a stable code, a severity
    and a location (file:line:column and JSON pointer); `--list-rules` prints the codes.

    Exit code: 0 clean (warnings allowed), 1 a finding at error severity, 2 unreadable input
    (malformed YAML or a schema violation) or a path with no policies.

    \b
    Examples:
      necessity lint
      necessity lint policies/my-policy/2025.1.yaml
      necessity lint policies/ --format sarif > lint.sarif
      necessity lint --list-rules
    """
    if list_rules:
        click.echo(lint.list_rules())
        return
    report = lint.lint_paths(paths or (_bundled_policies(),))
    if output_format == "json":
        click.echo(lint.dumps(report.as_json()))
    elif output_format == "sarif":
        click.echo(lint.dumps(report.sarif()))
    else:
        click.echo(report.text())
    if report.unreadable:
        raise click.exceptions.Exit(ExitCode.INVALID_INPUT)
    if report.failed:
        raise click.exceptions.Exit(FINDINGS)


def _bundled_policies() -> Path:
    # shown relative to the working directory when it is inside it, as a user would type it
    folder = resources.policies_dir()
    try:
        return folder.relative_to(Path.cwd())
    except ValueError:
        return folder
