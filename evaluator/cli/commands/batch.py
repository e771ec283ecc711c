"""`necessity batch`: review many cases, one JSON line per case, in input order, as they finish."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

import click

from evaluator.batch import dask_cluster as dask_batch
from evaluator.batch import runner as batch
from evaluator.cli.commands import (
    ExitCode,
    decision_log_options,
    jobs_option,
    policies_dir_option,
    progress_option,
)
from evaluator.read import resources

# Beyond the shared exit codes: the shell's numbers for a run stopped by a signal.
INTERRUPTED = 130  # 128 + SIGINT
TERMINATED = 143  # 128 + SIGTERM
PIPE_CLOSED = 141  # 128 + SIGPIPE, what other tools report when `| head` stops reading


@click.command("batch", short_help="Review many cases, one JSON line per case.")
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
    "--resume",
    is_flag=True,
    help="Continue an interrupted run: append to --output, skipping cases already in it.",
)
@jobs_option("Worker processes; records still come out in the order of the input.")
@click.option(
    "--dask",
    metavar="SCHEDULER",
    default=None,
    help="Review on an existing dask.distributed cluster: its scheduler's address "
    "(tcp://host:8786) or scheduler file (.json). Needs `pip install 'necessity[dask]'` here "
    "and on the workers; records still come out in the order of the input.",
)
@progress_option()
@policies_dir_option()
@decision_log_options()
def command(
    paths: tuple[Path, ...],
    policy: str | None,
    output: Path | None,
    resume: bool,
    jobs: int,
    dask: str | None,
    progress: bool | None,
    policies_dir: Path | None,
    decision_log: Path | None,
    mask: bool,
) -> None:
    """Review every case in PATHS, one JSON line per case, in the order given.

    PATHS are case files (.json, .yaml), JSON Lines files (.jsonl: one case document per
    line), folders (searched, sorted, for both) or `-`: JSON Lines read from standard input.
    A case from a JSON Lines stream is named `<file>:<line>` (`<stdin>:<line>`).

    Each case gives one record, whatever happens to it: `{"case", "case_id", "sha256",
    "determination", "x12_action", "result"}` (result as `necessity evaluate --format json`),
    or, with no determination, `{"case", "case_id", "sha256", "error", "problems"}` where
    error is `invalid_input`, `engine_error`, `internal_error` or `worker_died` and each
    problem has a code, message, file, line and JSON pointer. A bad case never stops the
    batch; with --jobs, a worker process that dies is replaced and its case tried once more.
    Records are written in whole lines, flushed every few records and synced to disk at least
    once a second.

    --resume appends to --output, skipping every case whose content (sha256 of its bytes,
    which fixes its case id) is already recorded there; a torn last line left by a full disk
    or a killed run is dropped first. A summary (counts by determination and error, time,
    cases per second) goes to standard error, also after errors and Ctrl-C.

    \b
    Exit codes:
      0    every case has a determination (whatever it is)
      2    usage error, or some case was invalid input (its record says where)
      4    some case has no determination for another reason (engine error, internal
           error, or its worker process died twice), or the batch stopped early
           because the output could not be written
      130  interrupted (Ctrl-C; 143 for SIGTERM): the records written are kept,
           and the same command with --resume continues
      141  standard output was closed (as by `| head`): stops quietly

    \b
    Examples:
      necessity batch examples/cases -o results.jsonl
      necessity batch examples/cases -o results.jsonl --resume   # after Ctrl-C
      necessity batch a.json b.yaml --policy my-policy
      necessity batch cases/ --jobs 2 -o results.jsonl
      necessity batch part-*.jsonl --dask tcp://scheduler:8786 -o results.jsonl
      necessity batch cases/ -o results.jsonl --decision-log decisions.jsonl
      jq -c . cases/*.json | necessity batch - > results.jsonl
    """
    if resume and output is None:
        raise click.UsageError("--resume needs --output: the file of the run to continue")
    if sum(1 for p in paths if str(p) == batch.STDIN) > 1:
        raise click.UsageError("`-` (standard input) can be given once")
    if output is not None and not output.parent.is_dir():
        raise click.BadParameter(
            f"folder {str(output.parent)!r} does not exist", param_hint="'--output' / '-o'"
        )
    if dask is not None and jobs > 1:
        raise click.UsageError("--dask and --jobs: the cluster's workers do the work")
    # The folder, not a Library: the runner makes one where cases are reviewed (with workers,
    # this process never loads a policy and is spared importing the policy language).
    library = policies_dir if policies_dir is not None else resources.policies_dir()
    client = _cluster(dask, jobs)
    inputs = batch.sources(paths)
    done = _resume(output) if resume and output is not None else batch.Recorded()
    stream, name = _open(output, resume)
    # A file is written (and synced) a batch of records at a time; a pipe or terminal gets each
    # record as it comes.
    sync = _is_file(stream)
    writer = batch.Writer(stream, name, sync=sync, every=64 if sync else 1)
    summary = batch.Summary()
    show = sys.stderr.isatty() if progress is None else progress
    count = _count(inputs)
    if count is not None:
        jobs = max(1, min(jobs, count))  # no idle workers to start
    # With worker processes, they read the case files: this process only lists them.
    cases = batch.items(inputs, _stdin(inputs), read=jobs <= 1 or client is not None)
    todo = batch.unrecorded(cases, done.hashes, summary)
    try:
        with _bar(show, count) as bar, _signals() as caught:
            log = _logger(decision_log, mask)
            code = _run(todo, policy, library, jobs, writer, log, summary, bar, caught, client)
    finally:
        if client is not None:
            client.close()
        if output is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if code == PIPE_CLOSED:
        raise click.exceptions.Exit(code)
    click.echo(f"batch: {summary.text()}", err=True)
    if code == ExitCode.ENGINE_ERROR and output is not None:
        click.echo(
            f"  hint: {writer.written} records were written to {output}; once the problem is "
            "fixed, the same command with --resume continues",
            err=True,
        )
    if caught.number is not None:
        where = str(output) if output else "standard output"
        again = "; the same command with --resume continues" if output else ""
        click.echo(f"interrupted: {writer.written} records written to {where}{again}", err=True)
        raise click.exceptions.Exit(TERMINATED if caught.number == signal.SIGTERM else INTERRUPTED)
    if code == ExitCode.OK and summary.failed:
        code = ExitCode.ENGINE_ERROR
    elif code == ExitCode.OK and summary.invalid:
        code = ExitCode.INVALID_INPUT
    raise click.exceptions.Exit(code)


def _cluster(dask: str | None, jobs: int) -> Any:
    """Return the Dask client, if one was asked for; with worker processes instead, start what
    they are forked from, so that they get ready while this process lists the cases."""
    if dask is not None:
        return dask_batch.client_for(dask)
    if jobs > 1:
        batch.start_workers()
    return None


def _run(
    todo: Iterator[batch.Item],
    policy: str | None,
    library: Path,
    jobs: int,
    writer: batch.Writer,
    log: Callable[[dict[str, Any]], None] | None,
    summary: batch.Summary,
    bar: Any,
    caught: _Caught,
    client: Any = None,
) -> int:
    """Run the batch; return ExitCode.ENGINE_ERROR if it stopped early, PIPE_CLOSED or OK."""

    def write(record: dict[str, Any]) -> None:
        writer.write(record)
        if log is not None:
            log(record)
        if record.get("error") in (batch.INTERNAL_ERROR, batch.WORKER_DIED):
            problem = record["problems"][0]
            click.echo(
                f"error: {record['case']}: {problem['message']} (recorded; the batch goes on)",
                err=True,
            )
        if bar is not None:
            # The summary counts this record once `write` returns; skipped cases count too.
            bar.update(summary.total + summary.skipped + 1 - bar.pos)

    try:
        batch.run(
            todo,
            policy,
            library,
            write,
            jobs=jobs,
            stop=caught.is_set,
            summary=summary,
            dask=client,
            # Only a decision log reads a record's result: with workers, the main process
            # writes the line a worker encoded and never decodes it.
            results=log is not None,
        )
        writer.flush()
    except batch.OutputError as error:
        if writer.name == "standard output" and isinstance(error.error, BrokenPipeError):
            _quiet_stdout()
            return PIPE_CLOSED
        click.echo(f"error: {error}", err=True)
        return ExitCode.ENGINE_ERROR
    except batch.BatchError as error:
        click.echo(f"error: {error}", err=True)
        return ExitCode.ENGINE_ERROR
    except KeyboardInterrupt:
        caught.number = caught.number or signal.SIGINT  # a second Ctrl-C: stop now
    finally:
        with contextlib.suppress(batch.OutputError):
            writer.flush()
    return ExitCode.OK


def _logger(path: Path | None, mask: bool) -> Callable[[dict[str, Any]], None] | None:
    """Return what appends a record's decision to the decision log, if one was asked for."""
    if path is None:
        return None
    # Imported only for a log: with worker processes, this process never decides a case and
    # is spared the decision stack's imports (CPU its workers need as they start).
    from evaluator.decide import records  # noqa: PLC0415

    def log(record: dict[str, Any]) -> None:
        if "result" not in record:
            return
        result = record["result"]
        try:
            records.log_decision(path, result, result.get("evaluated_at"), mask)
        except OSError as error:
            raise batch.OutputError(str(path), error) from error

    return log


def _resume(output: Path) -> batch.Recorded:
    try:
        done = batch.recorded(output)
    except (batch.BatchError, OSError) as error:
        raise click.ClickException(_reason(error, output)) from None
    text = f"resuming {output}: {done.records} records there"
    if done.dropped:
        text += f"; dropped a torn last line ({done.dropped} bytes) left by the run cut short"
    click.echo(text, err=True)
    return done


def _reason(error: Exception, path: Path) -> str:
    if isinstance(error, OSError):
        return f"cannot resume {path}: {(error.strerror or type(error).__name__).lower()}"
    return str(error)


def _open(output: Path | None, resume: bool) -> tuple[IO[bytes], str]:
    """Open the output before any work, so that an unwritable one is a usage error."""
    if output is None:
        return sys.stdout.buffer, "standard output"
    try:
        return output.open("ab" if resume else "wb"), str(output)
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise click.BadParameter(
            f"cannot write {str(output)!r}: {reason}", param_hint="'--output' / '-o'"
        ) from None


def _is_file(stream: IO[bytes]) -> bool:
    # Syncing is for files on disk; a pipe or terminal cannot be synced.
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _stdin(inputs: list[Path]) -> IO[bytes] | None:
    if not any(str(p) == batch.STDIN for p in inputs):
        return None
    if sys.stdin.isatty():
        click.echo("reading cases from standard input, one JSON document a line", err=True)
    return sys.stdin.buffer


def _count(inputs: list[Path]) -> int | None:
    """The number of cases, for the progress bar; None when standard input is among them."""
    total = 0
    for path in inputs:
        if str(path) == batch.STDIN:
            return None
        if path.suffix.lower() != batch.LINES_SUFFIX:
            total += 1
            continue
        if not path.is_file() or batch.is_special(path):
            total += 1  # its record says what is wrong with it
            continue
        with contextlib.suppress(OSError), path.open("rb") as file:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
    return total


@contextlib.contextmanager
def _bar(show: bool, length: int | None) -> Iterator[Any]:
    if not show or length is None:
        yield None
        return
    with click.progressbar(length=length, label="reviewing", file=sys.stderr) as bar:
        yield bar


class _Caught:
    """The first SIGINT or SIGTERM, noted; the batch stops between cases."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.number: int | None = None

    def is_set(self) -> bool:
        return self.event.is_set()

    def handle(self, number: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt  # asked twice: stop now
        self.number = number
        self.event.set()


@contextlib.contextmanager
def _signals() -> Iterator[_Caught]:
    caught = _Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    before = {n: signal.signal(n, caught.handle) for n in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def _quiet_stdout() -> None:
    # Whoever read standard output has gone; point it at /dev/null so that Python's own final
    # flush does not complain about the closed pipe.
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
