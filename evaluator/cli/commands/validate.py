"""`necessity validate`: check policy and case files against their schemas, with locations."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evaluator import api
from evaluator.cli.commands import ExitCode, format_option
from evaluator.render import decision as render


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@format_option("text", "json")
def command(paths: tuple[Path, ...], output_format: str) -> None:
    """Validate policy and case files against their schemas.

    Folders are searched for .yaml, .yml and .json files; `-` reads one file from standard
    input (JSON when it starts with `{` or `[`, else YAML). A policy is also compiled, so every
    problem evaluation would meet is reported. Prints `ok  <path> (<kind>)` for each valid file
    and every located problem of the others. Exit code 0 when all are valid, 2 when any is not.

    \b
    Examples:
      necessity validate policies/ examples/
      necessity validate my-case.yaml
      cat my-case.json | necessity validate -
      necessity validate policies/my-policy/2025.1.yaml --format json
    """
    results = api.validate_paths(paths)
    if not results:
        raise click.UsageError("no .yaml, .yml or .json files found under the given paths")
    invalid = [r for r in results if r.error is not None]
    if output_format == "json":
        data = {
            "valid": not invalid,
            "files": [
                {
                    "path": r.path,
                    "kind": r.kind,
                    "valid": r.error is None,
                    "problems": [p.as_dict() for p in r.error.problems] if r.error else [],
                }
                for r in results
            ],
        }
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        for r in results:
            if r.error is None:
                click.echo(f"ok  {r.path} ({r.kind})")
            else:
                click.echo("\n".join(render.problem_lines(r.error)))
        noun = "file" if len(results) == 1 else "files"
        summary = f"{len(results)} {noun} checked: {len(results) - len(invalid)} valid"
        click.echo(f"{summary}, {len(invalid)} invalid" if invalid else summary)
    raise click.exceptions.Exit(ExitCode.INVALID_INPUT if invalid else ExitCode.OK)
