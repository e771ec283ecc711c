"""The `necessity` command group: the one place where exceptions become messages and exit codes."""

from __future__ import annotations

import atexit
import errno
import gc
import importlib
import os
import sys
from typing import Any

import click

from evaluator.cli.commands import EXIT_CODE_HELP, ExitCode, written
from evaluator.errors import EngineError, InputError

# One module per verb (evaluator/cli/commands/<verb>.py, exposing `command`): add new ones here.
# A command's module is imported only when that command runs (or help lists it): importing
# every one for every command cost a cold start about 100 ms.
COMMAND_MODULES: tuple[str, ...] = (
    "evaluate",
    "batch",
    "validate",
    "policies",
    "test",
    "fmt",
    "show",
    "lint",
    "verify",
    "diff",
    "impact",
    "serve",
)


def _load(name: str) -> click.Command:
    command = importlib.import_module(f"evaluator.cli.commands.{name}").command
    assert isinstance(command, click.Command)
    return command


def _version() -> str:
    from importlib import metadata  # noqa: PLC0415  (40 ms: only for --version)

    try:
        return metadata.version("necessity")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"necessity, version {_version()}")
        ctx.exit()


def _fail(lines: list[str], code: ExitCode) -> click.exceptions.Exit:
    for line in lines:
        click.echo(line, err=True)
    return click.exceptions.Exit(code)


# An OSError with one of these numbers is the user's environment (a full disk, a read-only or
# missing folder), not a bug: a message and exit 2. Any other OSError is reported as a bug.
_ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EIO,
    }
)


def _flush_stdout() -> None:
    # Output is buffered: a full disk or a closed pipe shows only when it is flushed, which
    # must happen here, inside the handler, rather than at interpreter exit as a traceback.
    sys.stdout.flush()


def _silence_stdout() -> None:
    # The reader is gone: point stdout at /dev/null so the interpreter's own flush at exit
    # does not print "Exception ignored ... BrokenPipeError".
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (CliRunner)
        pass


# Commands that, run as a program, evaluate one request and end: the process builds what it
# needs once and frees nothing before it exits. For them the cyclic garbage collector runs
# rarely (it ran 80 times in a cold `evaluate`, about 10 ms, while refcounting frees nearly
# everything), and the process ends without freeing every object one by one (about 20 ms),
# once its output is flushed and the exit handlers have run (`_exit_now`).
SHORT_COMMANDS = frozenset({"evaluate"})
_SHORT_GC_THRESHOLD = 100_000


def _exit_now(done: SystemExit) -> None:
    """End the process now with `done`'s code, as the interpreter would but for freeing every
    object; return (for the interpreter's own exit) when that cannot be done faithfully."""
    code = 0 if done.code is None else done.code
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if not isinstance(code, int) or run_exit_handlers is None:
        return  # a message for the interpreter to print, or a Python without the hook
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # a closed or broken stream: the interpreter's exit reports it as before
    run_exit_handlers()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


class NecessityGroup(click.Group):
    """A group that turns the product's exceptions into messages and exit codes, and imports
    each command's module only when it is needed."""

    # Set when the group runs as the process's program (its own command line), not inside
    # another program (CliRunner, a test calling `main([...])`), which must go on running.
    _as_program = False
    _short = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        own_command_line = not args and kwargs.get("args") is None
        if not own_command_line:
            return super().__call__(*args, **kwargs)
        self._as_program = True
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as done:
            if self._short:
                _exit_now(done)
            raise

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if self._as_program and args and args[0] in SHORT_COMMANDS:
            # before the command's module is imported: imports are a third of its life
            self._short = True
            gc.set_threshold(_SHORT_GC_THRESHOLD)
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002
        return list(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        return _load(cmd_name) if cmd_name in COMMAND_MODULES else None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                _flush_stdout()
        except InputError as error:
            from evaluator.render import decision as render  # noqa: PLC0415  (only on failure: see COMMAND_MODULES)

            raise _fail(render.problem_lines(error), ExitCode.INVALID_INPUT) from None
        except EngineError as error:
            from evaluator.render import decision as render  # noqa: PLC0415

            raise _fail(
                render.problem_lines(error, "engine error"), ExitCode.ENGINE_ERROR
            ) from None
        except click.ClickException as error:
            # Click gives its own non-usage errors exit code 1, which here means a determination.
            if error.exit_code != ExitCode.NOT_MEDICALLY_NECESSARY:
                raise
            error.show()
            raise click.exceptions.Exit(ExitCode.INVALID_INPUT) from None
        except click.exceptions.Exit:
            raise
        except (KeyboardInterrupt, click.exceptions.Abort):
            # 1 would read as "not medically necessary"; 130 is what shells report for Ctrl-C
            so_far = written(ctx)
            message = f"interrupted: {so_far}" if so_far else "interrupted"
            raise _fail([message], ExitCode.INTERRUPTED) from None
        except BrokenPipeError:
            # `necessity ... | head`: the reader has what it wanted; exit quietly as Unix tools do
            _silence_stdout()
            raise click.exceptions.Exit(ExitCode.OUTPUT_CLOSED) from None
        except OSError as error:
            if error.errno not in _ENVIRONMENT_ERRNOS:
                raise _bug(error) from None
            reason = (error.strerror or type(error).__name__).lower()
            # no file name: the write to standard output failed, at a flush
            where = error.filename if error.filename else "cannot write the output"
            lines = [f"error: {where}: {reason}"]
            so_far = written(ctx)
            if so_far:
                lines.append(f"  {so_far}")
            raise _fail(lines, ExitCode.INVALID_INPUT) from None
        except Exception as error:  # a bug must never exit 0, 1 or 3: those are determinations
            raise _bug(error) from None


def _bug(error: Exception) -> click.exceptions.Exit:
    import traceback  # noqa: PLC0415  (4 ms: only for a bug)

    lines = traceback.format_exc().rstrip().splitlines()
    lines.append(f"internal error: {type(error).__name__}: {error}")
    lines.append("  hint: this is a bug in necessity; no determination was made")
    return _fail(lines, ExitCode.ENGINE_ERROR)


_CODES = "\n".join(f"  {int(code):<3}  {text}" for code, text in EXIT_CODE_HELP.items())


@click.group(
    cls=NecessityGroup,
    help=f"""Evaluate medical-necessity criteria written as policy files.

An adverse result is a recommendation for physician review, not a denial.

\b
Exit codes:
{_CODES}

\b
Examples:
  necessity evaluate case.json --policy my-policy
  necessity batch examples/cases -o results.jsonl
  necessity validate policies/ examples/
  necessity policies --format json
  necessity serve --port 8080
""",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and exit.",
)
def main() -> None:
    """Evaluate medical-necessity criteria written as policy files."""


__all__ = ["COMMAND_MODULES", "ExitCode", "main"]
