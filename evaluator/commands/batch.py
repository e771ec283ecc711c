"""`necessity batch`: review many cases, one JSON line per case, written as each finishes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

import click

from evaluator import batch, records
from evaluator.commands import ExitCode, decision_log_options, policies_dir_option
from evaluator.policies import Library


@click.command("batch", short_help="Review many cases in one process, one JSON line per case.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--policy",
    metavar="ID[@VERSION]",
    help="Apply one policy to every case; default: review every service line by its policy.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write the JSON Lines here (default: standard output).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes; records still come out in the order of the files.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on standard error (default: when it is a terminal).",
)
@policies_dir_option()
@decision_log_options()
def command(
    paths: tuple[Path, ...],
    policy: str | None,
    output: Path | None,
    jobs: int,
    progress: bool | None,
    policies_dir: Path | None,
    decision_log: Path | None,
    mask: bool,
) -> None:
    """Review every case in PATHS (files, or folders searched for .json/.yaml) in one process.

    Each case gives one JSON line, written and flushed as soon as it is done, so nothing
    already written is lost when a later case fails: `{"case", "determination",
    "x12_action", "result"}` (result as `necessity evaluate --format json`), or for a bad case
    `{"case", "error": "invalid_input", "problems": [...]}` with file, line and JSON pointer.
    A summary goes to standard error. Exit code 0 when every case was reviewed, 2 when any
    case was invalid, 4 when the engine failed on any.

    \b
    Examples:
      necessity batch examples/cases -o results.jsonl
      necessity batch a.json b.yaml --policy my-policy
      necessity batch cases/ --jobs 2 -o results.jsonl
    """
    library = Library(policies_dir) if policies_dir is not None else Library()
    files = list(batch.case_files(paths))
    show = sys.stderr.isatty() if progress is None else progress
    sink: IO[str] = output.open("w", encoding="utf-8") if output else sys.stdout

    def write(record: dict[str, Any]) -> None:
        sink.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        sink.flush()
        if decision_log is not None and "result" in record:
            result = record["result"]
            records.log_decision(decision_log, result, result.get("evaluated_at"), mask)

    try:
        if show:
            with click.progressbar(files, label="reviewing", file=sys.stderr) as bar:
                summary = batch.run(bar, policy, library, write, jobs)
        else:
            summary = batch.run(files, policy, library, write, jobs)
    finally:
        if output:
            sink.close()
    counts = ", ".join(f"{n} {d.replace('_', ' ')}" for d, n in sorted(summary.results.items()))
    click.echo(
        f"{summary.total} cases: {counts or 'none reviewed'}; {summary.invalid} invalid, "
        f"{summary.engine_errors} engine errors",
        err=True,
    )
    if summary.engine_errors:
        raise click.exceptions.Exit(ExitCode.ENGINE_ERROR)
    raise click.exceptions.Exit(ExitCode.INVALID_INPUT if summary.invalid else ExitCode.OK)
