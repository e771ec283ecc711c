"""One module per CLI verb, each exposing `command`; the exit codes and options they share."""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(IntEnum):
    """Process exit codes; `necessity --help` lists them.

    They live here rather than in cli.py so that command modules can use them without importing
    the group that imports them; cli.py re-exports them.
    """

    MEDICALLY_NECESSARY = 0
    NOT_MEDICALLY_NECESSARY = 1
    INVALID_INPUT = 2
    INSUFFICIENT_DOCUMENTATION = 3
    ENGINE_ERROR = 4
    # What a shell reports for a process ended by SIGINT or SIGPIPE (128 + the signal).
    INTERRUPTED = 130
    OUTPUT_CLOSED = 141

    # Aliases for commands that print something other than a determination.
    OK = 0

    @classmethod
    def for_determination(cls, determination: str) -> ExitCode:
        """Return the exit code of a determination (`medically_necessary`, ...)."""
        return cls[determination.upper()]


EXIT_CODE_HELP = {
    ExitCode.MEDICALLY_NECESSARY: "medically necessary (or the command succeeded)",
    ExitCode.NOT_MEDICALLY_NECESSARY: "not medically necessary (for physician review)",
    ExitCode.INVALID_INPUT: "invalid input or usage, or the output cannot be written "
    "(the message says where)",
    ExitCode.INSUFFICIENT_DOCUMENTATION: "insufficient documentation: pend and request documents",
    ExitCode.ENGINE_ERROR: "the engine failed; no determination was made",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); the message says what was written",
    ExitCode.OUTPUT_CLOSED: "the reader of standard output went away (`| head`); no message",
}

_WRITTEN = "necessity.written"


def report_written(describe: Callable[[], str]) -> None:
    """Tell the CLI how to say what the running command has written so far.

    On Ctrl-C or a failed write the CLI prints `describe()` (e.g. "1,200 records in out.jsonl")
    so the user knows what is safe to keep; without it the message says only what failed.
    """
    click.get_current_context().meta[_WRITTEN] = describe


def written(ctx: click.Context) -> str | None:
    """Return what the running command reported it has written, or None."""
    describe = ctx.meta.get(_WRITTEN)
    return describe() if callable(describe) else None


def format_option(*choices: str) -> Callable[[F], F]:
    """Return the `--format` option offering `choices`; the first is the default."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="Output format; JSON is the stable contract for other tools.",
    )


def policies_dir_option() -> Callable[[F], F]:
    """Return the `--policies-dir` option; without it the bundled policies are used."""
    return click.option(
        "--policies-dir",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        default=None,
        metavar="DIR",
        help="Folder of policies laid out as <id>/<version>.yaml (default: the bundled ones).",
    )


def jobs_option(what: str) -> Callable[[F], F]:
    """Return the `--jobs` option of the commands that review many cases in worker processes."""
    return click.option(
        "--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True, help=what
    )


def progress_option() -> Callable[[F], F]:
    """Return `--progress/--no-progress`; by default a bar is shown when stderr is a terminal."""
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show a progress bar on standard error (default: when it is a terminal).",
    )


def decision_log_options() -> Callable[[F], F]:
    """Return `--decision-log FILE` and `--mask/--no-mask`, shared by evaluate and batch."""

    def apply(function: F) -> F:
        function = click.option(
            "--mask/--no-mask",
            default=True,
            show_default=True,
            help="In the decision log, replace fields the case schema marks identifying "
            "(x-identifying) by a keyed hash (key: $NECESSITY_MASK_KEY, else FILE.key).",
        )(function)
        return click.option(
            "--decision-log",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            metavar="FILE",
            help="Append one JSON line per decision (id, time, policy and hashes, case hash, "
            "determination, failed clauses); safe with concurrent writers.",
        )(function)

    return apply


def output_file(_ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Click callback for an output FILE option: its folder must exist (a usage error, exit 2,
    before any work is done, rather than a failed write at the end)."""
    if value is not None and str(value) != "-":
        folder = value.parent
        if not folder.is_dir():
            raise click.BadParameter(
                f"folder `{folder}` does not exist; create it first", param=param
            )
    return value
