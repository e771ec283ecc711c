"""`necessity fmt`: rewrite policy files in the canonical layout, or check that they are."""

from __future__ import annotations

from pathlib import Path

import click

from evaluator.authoring import fmt
from evaluator.cli.commands import ExitCode
from evaluator.errors import InputError
from evaluator.read import resources
from evaluator.render import decision as render

# Exit 1 means "some file would change" here, as for black and ruff format --check; the code is
# shared with evaluate's not-medically-necessary.
WOULD_CHANGE = ExitCode(1)


@click.command("fmt")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--check", is_flag=True, help="Change nothing; name the files that would change and exit 1."
)
def command(paths: tuple[Path, ...], check: bool) -> None:
    """Rewrite policy files in one canonical layout, keeping the authors' comments.

    Keys in the order of the policy schema (unknown keys after them, in their place), two-space
    indentation with lists indented under their key, lines of at most 100 columns (a flow
    collection that does not fit becomes a block), strings quoted only where needed (with double
    quotes), anchors, aliases, merge keys and the `# yaml-language-server` modeline kept. A
    formatted file holds exactly the same data. A file whose modeline names another schema
    (a policy test suite) is ordered by that schema.

    PATHS are files or folders searched for .yaml and .yml files (tests/ folders are skipped);
    the default is the bundled policies. Prints each file that changed (with --check: that would
    change).

    Exit code: 0 done (with --check: nothing would change), 1 with --check when a file would
    change, 2 a file that cannot be read or is not well-formed YAML (the others are still
    formatted).

    \b
    Examples:
      necessity fmt
      necessity fmt --check
      necessity fmt policies/my-policy/2025.1.yaml
    """
    files = list(fmt.yaml_files(paths or (resources.policies_dir(),)))
    if not files:
        raise click.UsageError("no .yaml or .yml files found under the given paths")
    changed, failed = 0, 0
    for path in files:
        try:
            if fmt.format_file(path, check=check):
                changed += 1
                click.echo(str(path))
        except InputError as error:
            # one unreadable file must not stop the others from being formatted
            failed += 1
            click.echo("\n".join(render.problem_lines(error)), err=True)
    verb = "would be reformatted" if check else "reformatted"
    click.echo(
        f"{changed} of {len(files)} {'file' if len(files) == 1 else 'files'} {verb}"
        + (f", {failed} unreadable" if failed else ""),
        err=True,
    )
    if failed:
        raise click.exceptions.Exit(ExitCode.INVALID_INPUT)
    if check and changed:
        raise click.exceptions.Exit(WOULD_CHANGE)
