"""Issue 10's benchmark: necessity beside plain Python, durable_rules and CLIPS, in one run.

On the same generated cases of the bench policy (benchmarks/policies/bench-fusion) it measures
the plain-Python reference (the ceiling), durable_rules driven directly (the engine's floor),
CLIPS through clipspy (when the `bench` extra is installed), necessity's `api.evaluate` on parsed
cases and its full path from case files to JSON lines; then `necessity batch --jobs 1` against
`--jobs 2`, the peak memory of a batch at two sizes and the cold start of `necessity evaluate` on
the founding case. Every path must give the reference's statuses on every case (exit 1
otherwise). Prints a table with ratios to CLIPS and writes benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/compare.py [--cases N] [--batch-cases N] [--full]

BENCH_CASES and BENCH_FULL=1 (the 100,000-case memory run) set the same from `make bench`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks import benchgen, peers, reference  # noqa: E402
from evaluator import api  # noqa: E402
from evaluator.batch import runner as batch  # noqa: E402
from evaluator.case import cases  # noqa: E402
from evaluator.case.cases import Case  # noqa: E402
from evaluator.decide import records  # noqa: E402
from evaluator.language.policies import Library  # noqa: E402
from evaluator.read import schemas, source  # noqa: E402
from evaluator.render import decision as render  # noqa: E402

POLICIES = ROOT / "benchmarks" / "policies"
POLICY = "bench-fusion"
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
CLI = [sys.executable, "-m", "evaluator"]
EXECUTABLE = Path(sys.executable).parent / "necessity"

# Issue 10's targets: reported, not enforced (a shared machine decides too much of them).
TARGETS = (
    ("api.evaluate", ">= 1.0x CLIPS (aim 3x)"),
    ("full path", ">= 0.5x CLIPS"),
    ("batch --jobs 2", ">= 1.7x --jobs 1"),
    ("memory", "flat to 100,000 cases"),
    ("cold start", "< 250 ms"),
)


@dataclass
class Row:
    """One measured path: cases per second and whether it agreed with the reference."""

    path: str
    cases: int
    seconds: float
    agrees: bool | None = True
    note: str = ""

    @property
    def rate(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0


@dataclass
class Report:
    machine: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    scaling: dict[str, Any] = field(default_factory=dict)
    memory: list[dict[str, Any]] = field(default_factory=list)
    cold: dict[str, Any] = field(default_factory=dict)
    phases: list[tuple[str, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def machine() -> dict[str, str]:
    """Cores, CPU model, Python, engine versions, date and load average of this run."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = []
    for package in ("durable-rules", "clipspy"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "engines": ", ".join(versions),
        "load": load(),
    }


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def expected_statuses(facts: Sequence[reference.Facts]) -> list[dict[str, str]]:
    return [reference.evaluate(f) for f in facts]


def clauses_only(statuses: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in statuses.items() if k in reference.CLAUSES}


# --- in-process paths ---------------------------------------------------------------------------


def measure_reference(facts: Sequence[reference.Facts]) -> Row:
    # the best of three passes: the pass is short and the machine noisy
    seconds = min(timed(lambda: [reference.evaluate(f) for f in facts])[0] for _ in range(3))
    return Row("plain Python, same clauses (the ceiling)", len(facts), seconds)


def measure_peer(
    peer: Any, facts: Sequence[reference.Facts], expected: list[dict[str, str]]
) -> Row:
    peer.evaluate(facts[: peers.BATCH * 2])  # warm-up
    seconds, got = timed(lambda: peer.evaluate(facts))
    agrees = all(g == clauses_only(e) for g, e in zip(got, expected, strict=True))
    return Row(peer.label, len(facts), seconds, agrees)


def parse(documents: Sequence[benchgen.Document]) -> tuple[float, list[Case]]:
    """Read, validate and normalise each document as `necessity` reads a JSON case."""
    texts = [(json.dumps(d), str(d["case_id"])) for d in documents]
    return timed(lambda: [cases.case_from_document(source.loads_json(t, n)) for t, n in texts])


def decided(decision: Any) -> dict[str, str]:
    out = {c.id: c.status.value for c in decision.clauses}
    out["determination"] = decision.determination.value
    return out


def measure_api(parsed: Sequence[Case], expected: list[dict[str, str]]) -> Row:
    policy = Library(POLICIES).get(POLICY)
    for case in parsed[:50]:  # warm-up: compile and register once
        api.evaluate(case, policy)
    seconds, decisions = timed(lambda: [api.evaluate(case, policy) for case in parsed])
    agrees = all(decided(d) == e for d, e in zip(decisions, expected, strict=True))
    return Row("necessity `api.evaluate` on a parsed case", len(parsed), seconds, agrees)


def measure_api_many(parsed: Sequence[Case], expected: list[dict[str, str]]) -> Row:
    """`api.review_many` on chunks of the peers' batch size: batch mode, the cases of a chunk
    in one engine session per policy, as both peers run them (and as `necessity batch` does)."""
    library = Library(POLICIES)
    size = peers.BATCH
    chunks = [parsed[i : i + size] for i in range(0, len(parsed), size)]
    api.review_many(chunks[0], library)  # warm-up: compile and register once
    seconds, reviews = timed(
        lambda: [r for chunk in chunks for r in api.review_many(chunk, library)]
    )
    agrees = all(
        not isinstance(r, Exception) and decided(r.lines[0].decision) == e
        for r, e in zip(reviews, expected, strict=True)
    )
    return Row(
        f"necessity `api.review_many`, {size} parsed cases per call (batch mode)",
        len(parsed),
        seconds,
        agrees,
    )


def from_line(line: bytes) -> dict[str, str]:
    record = json.loads(line)
    if "result" not in record:
        return {"error": str(record.get("error"))}
    result = record["result"]
    out = {c["id"]: c["status"] for c in result["clauses"]}
    out["determination"] = record["determination"]
    return out


def records_agree(path: Path, expected: list[dict[str, str]]) -> bool:
    with path.open("rb") as file:
        got = [from_line(line) for line in file]
    return got == expected


def measure_full_path(folder: Path, expected: list[dict[str, str]], out: Path) -> Row:
    """Case files -> records -> JSON lines in one process, as `necessity batch --jobs 1`."""
    library = Library(POLICIES)
    warm = list(batch.items(batch.sources([folder])))[:50]
    with out.open("wb") as stream:
        batch.run(iter(warm), POLICY, library, batch.Writer(stream, "warm-up", sync=False).write)

    def run() -> None:
        with out.open("wb") as stream:
            writer = batch.Writer(stream, str(out), sync=False)
            batch.run(batch.items(batch.sources([folder])), POLICY, library, writer.write)
            writer.flush()

    seconds, _ = timed(run)
    agrees = records_agree(out, expected)
    return Row("necessity full path, case file -> JSON line", len(expected), seconds, agrees)


def measure_phases(folder: Path) -> list[tuple[str, float]]:
    """CPU microseconds per case of each phase of the full path, as `batch.review_item` runs
    them, each timed over every case file in `folder` (best of three passes), then the whole.

    CPU time of this process, not wall time: it moves less with the machine's other load.
    `api.evaluate` includes the engine and the decision's assembly; `facts_for` and
    the case hash are timed on their own as well (they run inside it).

    A timed pass drops each case's result as a batch does, and the inputs every pass keeps
    (the documents, the parsed cases, the decisions) are frozen out of the garbage collector:
    otherwise each full collection walks thousands of live documents, a cost that a real
    batch, holding one case at a time, never pays (it inflated normalise and api.evaluate).
    The results the next phase needs are built once more, untimed.
    """
    library = Library(POLICIES)
    policy = library.get(POLICY)
    out: list[tuple[str, float]] = []

    def phase(name: str, work: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]:
        gc.collect()
        gc.freeze()
        try:
            best = float("inf")
            for _ in range(3):
                start = time.process_time()
                for each in inputs:
                    work(each)
                best = min(best, time.process_time() - start)
        finally:
            gc.unfreeze()
        out.append((name, best / len(inputs) * 1e6))
        return [work(each) for each in inputs]

    def listed() -> list[batch.Item]:
        return list(batch.items(batch.sources([folder])))

    todo = listed()
    for item in todo[:50]:  # warm-up: compile and register once
        batch.review_item(item, POLICY, library)
    # Listing is one pass over the folder, not a per-case call: timed as a whole.
    phase("list the files, hash their bytes", lambda _: listed(), [None])
    out[-1] = (out[-1][0], out[-1][1] / len(todo))
    # The bytes listing read and hashed, parsed as the batch parses them (`runner._load`); until
    # stop 27 this row read each file again, which no batch does (7 us a case more).
    documents = phase(
        "parse the bytes read (-> document)", lambda i: source.load_bytes(i.content, i.path), todo
    )
    phase("validate (case.schema.json)", lambda d: schemas.validate(d, "case"), documents)
    loaded = phase("normalise (facts, the case)", cases.case_from_document, documents)
    out[-1] = (out[-1][0], out[-1][1] - out[-2][1])  # case_from_document validates too
    phase("  api.facts_for", lambda c: api.facts_for(c, policy), loaded)
    # The hash as `api.evaluate` works it out (`api._seen`): over the dicts `facts_for` made,
    # once per Case object, so on a fresh copy each time. (This row timed `provenance` over
    # `fact_dicts()` until stop 24: two more copies of every fact than the real path makes.)
    seen = [(c, api.facts_for(c, policy)) for c in loaded]
    phase(
        "  records.case_digest (the case hash)",
        lambda x: records.case_digest(copy.copy(x[0]), x[1]),
        seen,
    )
    # A fresh Case object each time: the case hash is kept per object (`records.case_digest`),
    # so a second pass over the same objects would leave it out, as no batch does.
    decisions = phase(
        "api.evaluate (engine, assembly and the two above)",
        lambda c: api.evaluate(copy.copy(c), policy),
        loaded,
    )
    # What `batch --policy` runs since stop 27: each chunk's cases to the engine together.
    chunk = batch.IN_PROCESS_CHUNK
    chunks = [
        [(c, policy) for c in loaded[start : start + chunk]]
        for start in range(0, len(loaded), chunk)
    ]
    phase(
        "api.evaluate_many (the same, a chunk of cases a call, as `batch --policy`)",
        lambda x: api.evaluate_many([(copy.copy(c), p) for c, p in x]),
        chunks,
    )
    out[-1] = (out[-1][0], out[-1][1] * len(chunks) / len(loaded))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    results = phase(
        "render the decision (JSON)", lambda d: render.decision_json(d, stamp), decisions
    )
    lines = [
        {"case": i.name, "case_id": c.case_id, "sha256": i.sha256, "result": r}
        for i, c, r in zip(todo, loaded, results, strict=True)
    ]
    phase("encode the JSON line", batch.encode, lines)

    def whole(_: None) -> None:
        with open(os.devnull, "wb") as stream:
            writer = batch.Writer(stream, os.devnull, sync=False)
            batch.run(batch.items(batch.sources([folder])), POLICY, library, writer.write)
            writer.flush()

    phase("the full path (`batch --jobs 1`, to /dev/null)", whole, [None])
    out[-1] = (out[-1][0], out[-1][1] / len(todo))
    return out


INSIDE = " (inside api.evaluate)"


def phases_markdown(phases: list[tuple[str, float]]) -> list[str]:
    return [
        "",
        "### Where the full path's time goes",
        "",
        "CPU microseconds per case, each phase timed on its own over the same case files (best "
        "of three), each case's result dropped as a batch drops it, the kept inputs frozen out "
        "of the garbage collector; indented rows run inside `api.evaluate`. The full path costs "
        "more than the other rows together without doing more: under callgrind it executes no "
        "more instructions than they do, but a phase timed alone, case after case, keeps its "
        "code and data in the CPU's caches, which the full path's interleaving does not.",
        "",
        "| phase | us per case |",
        "|---|---:|",
        *[
            f"| {name.strip()}{INSIDE if name.startswith(' ') else ''} | {us:,.1f} |"
            for name, us in phases
        ],
    ]


# --- processes ----------------------------------------------------------------------------------


def command() -> list[str]:
    return [str(EXECUTABLE)] if EXECUTABLE.exists() else CLI


def batch_command(inputs: Path, jobs: int, out: Path) -> list[str]:
    return [
        *command(),
        "batch",
        str(inputs),
        "--policy",
        POLICY,
        "--policies-dir",
        str(POLICIES),
        "--jobs",
        str(jobs),
        "--no-progress",
        "-o",
        str(out),
    ]


@dataclass(frozen=True)
class Measured:
    """A finished process: wall seconds, CPU seconds (its own and its workers') and exit code."""

    seconds: float
    cpu: float
    code: int


# Runs a command and prints its wall seconds, the CPU seconds of it and of every process it
# started, and its exit code. The rusage of the command alone misses processes it does not
# reap itself: `batch --jobs` forks its workers from multiprocessing's fork server, which reaps
# them and outlives the command by a moment. As a subreaper (Linux) this probe is handed them
# when the command exits, and waits for every one.
TREE_PROBE = """
import ctypes, os, resource, subprocess, sys, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (AttributeError, OSError):
    pass
start = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
code = process.wait()
seconds = time.perf_counter() - start
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(seconds, usage.ru_utime + usage.ru_stime, code)
"""


def run_measured(argv: list[str]) -> Measured:
    done = subprocess.run(
        [sys.executable, "-c", TREE_PROBE, *argv], capture_output=True, text=True, check=True
    )
    seconds, cpu, code = done.stdout.split()
    return Measured(float(seconds), float(cpu), int(code))


@dataclass(frozen=True)
class Steady:
    """An in-process batch: wall seconds, seconds to the first record, the main process's CPU
    seconds, and the rate from the first case handed out to the last record written."""

    seconds: float
    first: float
    main_cpu: float
    rate: float


def steady_batch(folder: Path, jobs: int, out: Path) -> Steady:
    """Run a batch in this process; its rate is timed from the moment the first case is taken
    from the list (`--jobs 1` begins it, `--jobs 2` sends it in the first chunk) to the last
    record written. Timed from the first record instead, `--jobs 2` left out the work its
    workers did before that record came back (two chunks each, a window of 128 cases a
    worker), which made it look 2.29x `--jobs 1` when the whole process ran 1.74x. The workers
    are started just before the first chunk is sent (from the fork server, running already):
    their loading the policies is counted."""
    library = Library(POLICIES)
    listed = batch.sources([folder])
    # As `necessity batch` reads them: in this process with one, by the workers with two.
    todo = batch.items(listed, read=jobs == 1)
    taken: list[float] = []
    first: list[float] = []

    def handed_out() -> Iterator[batch.Item]:
        for item in todo:
            if not taken:
                taken.append(time.perf_counter())
            yield item

    with out.open("wb") as stream:
        writer = batch.Writer(stream, str(out), sync=False)

        def write(record: batch.Record) -> None:
            if not first:
                first.append(time.perf_counter())
            writer.write(record)

        start, cpu = time.perf_counter(), time.process_time()
        batch.run(handed_out(), POLICY, library, write, jobs=jobs)
        writer.flush()
        end = time.perf_counter()
    return Steady(
        end - start, first[0] - start, time.process_time() - cpu, len(listed) / (end - taken[0])
    )


def measure_scaling(
    folder: Path, expected: list[dict[str, str]], repeat: int, work: Path
) -> dict[str, Any]:
    """`--jobs 1` against `--jobs 2`, alternated `repeat` times (a shared machine changes under
    a long run), each checked against the reference: in this process once cases are handed
    out (`steady_batch`) and `necessity batch` as a whole process (wall and CPU)."""
    steady: dict[int, list[Steady]] = {1: [], 2: []}
    whole: dict[int, list[Measured]] = {1: [], 2: []}
    loads = [load()]
    agrees = True
    steady_batch(folder, 1, work / "warm.jsonl")  # compile and register once in this process
    for _ in range(repeat):
        for jobs in (1, 2):
            out = work / f"steady{jobs}.jsonl"
            steady[jobs].append(steady_batch(folder, jobs, out))
            agrees = agrees and records_agree(out, expected)
            out = work / f"jobs{jobs}.jsonl"
            measured = run_measured(batch_command(folder, jobs, out))
            whole[jobs].append(measured)
            agrees = agrees and measured.code == 0 and records_agree(out, expected)
        loads.append(load())
    rate1 = statistics.median(s.rate for s in steady[1])
    rate2 = statistics.median(s.rate for s in steady[2])
    wall1 = statistics.median(m.seconds for m in whole[1])
    wall2 = statistics.median(m.seconds for m in whole[2])
    return {
        "cases": len(expected),
        "steady": steady,
        "whole": whole,
        "rate_ratio": rate2 / rate1,
        "wall_ratio": wall1 / wall2,
        "loads": loads,
        "agrees": agrees,
    }


# Runs the CLI and, as it exits, writes its own peak RSS (kB) to the file named first. The
# rusage a parent gets from wait4 is no good here: exec records the high-water mark of the
# forked copy of this (large) benchmark process.
MEMORY_PROBE = """
import atexit, resource, sys
from pathlib import Path

def report():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = Path("/proc/self/status")
    if status.exists():  # the high-water mark of this program's own memory, since exec
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    Path(sys.argv[1]).write_text(str(peak))

atexit.register(report)
from evaluator.cli.main import main
main(sys.argv[2:], prog_name="necessity")
"""


def measure_memory(sizes: Sequence[int], work: Path) -> list[dict[str, Any]]:
    """Peak RSS of `necessity batch --jobs 1` over a JSON Lines file of each size."""
    out = []
    for size in sizes:
        lines = benchgen.write_lines(benchgen.generate(size, seed=size), work / f"{size}.jsonl")
        peak = work / "peak"
        argv = batch_command(lines, 1, Path(os.devnull))
        argv = [sys.executable, "-c", MEMORY_PROBE, str(peak), *argv[argv.index("batch") :]]
        run = run_measured(argv)
        rss = int(peak.read_text()) / 1024 if peak.exists() else float("nan")
        out.append({"cases": size, "peak_rss_mb": rss, "seconds": run.seconds, "exit": run.code})
        lines.unlink()
    return out


def measure_cold_start(runs: int) -> dict[str, Any]:
    argv = [*command(), "evaluate", str(FOUNDING)]
    walls = []
    codes = set()
    for _ in range(runs):
        run = run_measured(argv)
        walls.append(run.seconds * 1000)
        codes.add(run.code)
    return {
        "runs": runs,
        "median_ms": statistics.median(walls),
        "min_ms": min(walls),
        "exit": codes,
    }


# --- the report ---------------------------------------------------------------------------------


def ratio(row: Row, clips: Row | None) -> str:
    if row.agrees is None:
        return "-"  # not a path that decides anything
    return f"{row.rate / clips.rate:.3g}" if clips is not None and clips.rate else "n/a"


def busy_note(m: dict[str, str]) -> list[str]:
    cores = int(m["cores"] or 1)
    if max(float(x) for x in m["load"].split(" / ")) <= cores and os.getloadavg()[0] <= cores:
        return []
    return [
        f"The machine was busy: its load average exceeded its {cores} cores (other processes "
        "competed for the CPU). Absolute rates are lower than on an idle machine, paths measured "
        "minutes apart are compared under different loads, and `--jobs 2` could not have two "
        "cores to itself; the CPU per case below says what it would reach with them.",
        "",
    ]


def markdown(report: Report, args: argparse.Namespace) -> str:
    m = report.machine
    clips = next((r for r in report.rows if r.path.startswith("CLIPS")), None)
    lines = [
        "# Benchmark results (issue 10)",
        "",
        "Written by `benchmarks/compare.py` (part of `make bench`); see benchmarks/README.md.",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cores']} cores, {m['cpu']}; {m['platform']}",
        f"- Python {m['python']}; {m['engines']}",
        f"- load average (1 / 5 / 15 min) at the start: {m['load']}; at the end: {load()}",
        f"- cases: {args.cases} generated (seed {benchgen.SEED}) for the engine paths; "
        f"{args.batch_cases} for `batch`",
        "",
        *busy_note(m),
        "| path | cases | cases/s | x CLIPS | same statuses as the reference |",
        "|---|---:|---:|---:|---|",
    ]
    for row in report.rows:
        same = {True: "yes", False: "**NO**", None: "-"}[row.agrees]
        lines.append(
            f"| {row.path} | {row.cases:,} | {row.rate:,.0f} | {ratio(row, clips)} | {same} |"
        )
    for reason in report.skipped:
        lines.append(f"| {reason} | | | | |")
    if report.phases:
        lines += phases_markdown(report.phases)
    if report.scaling:
        lines += scaling_markdown(report.scaling)
    if report.memory:
        lines += ["", "| batch (`--jobs 1`, JSON Lines) | peak RSS | wall s |", "|---|---:|---:|"]
        for mem in report.memory:
            lines.append(
                f"| {mem['cases']:,} cases | {mem['peak_rss_mb']:.0f} MB | {mem['seconds']:.1f} |"
            )
    if report.cold:
        c = report.cold
        lines += [
            "",
            f"Cold start, `necessity evaluate examples/cases/t12-s2-fusion.json` as a whole "
            f"process: median {c['median_ms']:.0f} ms, best {c['min_ms']:.0f} ms "
            f"({c['runs']} runs).",
        ]
    lines += ["", "Targets (issue 10), reported, not enforced:", ""]
    lines += [f"- {what}: {target}" for what, target in TARGETS]
    if report.problems:
        lines += ["", "Problems:", "", *[f"- {p}" for p in report.problems]]
    return "\n".join(lines) + "\n"


def scaling_markdown(s: dict[str, Any]) -> list[str]:
    steady: dict[int, list[Steady]] = s["steady"]
    whole: dict[int, list[Measured]] = s["whole"]
    lines = [
        "",
        f"### `batch --jobs 1` and `--jobs 2` ({s['cases']:,} case files, alternated "
        f"{len(steady[1])} times)",
        "",
        "In this process once cases are handed out (cases/s from the first case taken from the "
        "list, which `--jobs 2` sends in its first chunk as its workers start, to the last "
        "record written: the process's own start-up left out, the workers' loading the "
        "policies and the chunks they review before their first record comes back counted), "
        "and `necessity batch` as a whole process (wall seconds; CPU seconds of the "
        "process and its workers; CPU / wall is how many cores it got):",
        "",
        "| run | --jobs 1 cases/s | --jobs 2 cases/s | ratio | main CPU per case, --jobs 2 "
        "| whole --jobs 1 s (CPU) | whole --jobs 2 s (CPU) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i in range(len(steady[1])):
        one, two = steady[1][i], steady[2][i]
        w1, w2 = whole[1][i], whole[2][i]
        lines.append(
            f"| {i + 1} | {one.rate:,.0f} | {two.rate:,.0f} | {two.rate / one.rate:.2f}x "
            f"| {two.main_cpu / s['cases'] * 1e6:.0f} us "
            f"| {w1.seconds:.2f} ({w1.cpu:.2f}) | {w2.seconds:.2f} ({w2.cpu:.2f}) "
            f"| {w1.seconds / w2.seconds:.2f}x |"
        )
    cpu1 = statistics.median(m.cpu for m in whole[1])
    cpu2 = statistics.median(m.cpu for m in whole[2])
    lines += [
        f"| median | | | **{s['rate_ratio']:.2f}x** | | | | **{s['wall_ratio']:.2f}x** |",
        "",
        f"CPU per case, whole process (start-up included): {cpu1 / s['cases'] * 1000:.2f} ms "
        f"with one process, {cpu2 / s['cases'] * 1000:.2f} ms with 2 workers (the main process "
        f"and both workers): with 2 cores to itself, `--jobs 2` could run at most "
        f"{2 * cpu1 / cpu2:.2f}x `--jobs 1`. A ratio below that is the machine's other load.",
        "",
        f"Load average (1 / 5 / 15 min) before and after each pair: {'; '.join(s['loads'])}. "
        f"Records identical to the reference: {'yes' if s['agrees'] else '**NO**'}.",
    ]
    return lines


def table(report: Report) -> str:
    clips = next((r for r in report.rows if r.path.startswith("CLIPS")), None)
    lines = [f"{'path':<58} {'cases':>7} {'cases/s':>10} {'x CLIPS':>8}  same"]
    for row in report.rows:
        same = {True: "yes", False: "NO", None: "-"}[row.agrees]
        lines.append(
            f"{row.path[:58]:<58} {row.cases:>7} {row.rate:>10,.0f} {ratio(row, clips):>8}  {same}"
        )
    lines += [f"skipped: {reason}" for reason in report.skipped]
    lines += [f"  {name}: {us:,.1f} us per case (CPU)" for name, us in report.phases]
    if report.scaling:
        s = report.scaling
        lines.append(
            f"batch --jobs 2 vs --jobs 1 ({s['cases']} cases, medians of {len(s['loads']) - 1}): "
            f"{s['rate_ratio']:.2f}x once cases are handed out, "
            f"{s['wall_ratio']:.2f}x whole process "
            f"(load {s['loads'][0]} -> {s['loads'][-1]})"
        )
    for mem in report.memory:
        lines.append(f"peak RSS, batch of {mem['cases']:,}: {mem['peak_rss_mb']:.0f} MB")
    if report.cold:
        lines.append(f"cold start: median {report.cold['median_ms']:.0f} ms")
    return "\n".join(lines)


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="necessity-bench-") as folder:
        yield Path(folder)


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    full = os.environ.get("BENCH_FULL", "") not in ("", "0")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        type=int,
        default=int(os.environ["BENCH_CASES"]) if os.environ.get("BENCH_CASES") else None,
        help="cases for the engine paths (BENCH_CASES; 5000, 20000 with --full)",
    )
    parser.add_argument(
        "--batch-cases", type=int, default=3000, help="case files for batch --jobs 1/2 (3000)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="batch --jobs 1/2 alternations (3)")
    parser.add_argument("--cold-runs", type=int, default=11, help="cold-start runs (11)")
    parser.add_argument(
        "--full",
        action="store_true",
        default=full,
        help="peak memory at 100,000 cases instead of 10,000 (BENCH_FULL=1; minutes)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    parser.add_argument(
        "--batch-only",
        action="store_true",
        help="only `batch --jobs 1` against `--jobs 2`, printed (RESULTS.md is not written)",
    )
    args = parser.parse_args(argv)
    if args.cases is None:
        args.cases = 20000 if args.full else 5000
    return args


def batch_only(args: argparse.Namespace) -> int:
    with workspace() as work:
        docs = benchgen.generate(args.batch_cases, seed=benchgen.SEED + 1)
        benchgen.write_files(docs, work / "scale")
        expected = expected_statuses([reference.flatten(d) for d in docs])
        scaling = measure_scaling(work / "scale", expected, args.repeat, work)
    print("\n".join(scaling_markdown(scaling)))
    return 0 if scaling["agrees"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    if args.batch_only:
        return batch_only(args)
    report = Report(machine())
    print(f"machine: {report.machine}", flush=True)
    documents = benchgen.generate(args.cases)
    facts = [reference.flatten(d) for d in documents]
    expected = expected_statuses(facts)

    report.rows.append(measure_reference(facts))
    for name, make in (("durable_rules", peers.DurableRules), ("clips", peers.Clips)):
        reason = peers.available(name)
        if reason is not None:
            print(f"skipped {name}: {reason}", flush=True)
            report.skipped.append(f"{name} skipped: {reason}")
            continue
        report.rows.append(measure_peer(make(), facts, expected))
    parse_seconds, parsed = parse(documents)
    report.rows.append(measure_api(parsed, expected))
    report.rows.append(measure_api_many(parsed, expected))
    report.rows.append(
        Row("(reading a case document: validate, normalise)", len(parsed), parse_seconds, None)
    )
    with workspace() as work:
        folder = work / "cases"
        benchgen.write_files(documents, folder)
        report.rows.append(measure_full_path(folder, expected, work / "full.jsonl"))
        report.phases = measure_phases(folder)
        print(table(report), flush=True)
        scale_docs = benchgen.generate(args.batch_cases, seed=benchgen.SEED + 1)
        scale_folder = work / "scale"
        benchgen.write_files(scale_docs, scale_folder)
        scale_expected = expected_statuses([reference.flatten(d) for d in scale_docs])
        report.scaling = measure_scaling(scale_folder, scale_expected, args.repeat, work)
        report.memory = measure_memory((1000, 100_000 if args.full else 10_000), work)
    report.cold = measure_cold_start(args.cold_runs)

    for row in report.rows:
        if row.agrees is False:
            report.problems.append(f"{row.path}: statuses differ from the reference")
    if report.scaling and not report.scaling["agrees"]:
        report.problems.append("batch records differ from the reference")
    for mem in report.memory:
        if mem["exit"] != 0:
            report.problems.append(f"batch of {mem['cases']} exited with {mem['exit']}")
    if not report.cold["exit"] <= {0, 1, 3}:
        report.problems.append(f"cold start: exit codes {sorted(report.cold['exit'])}")
    print(table(report))
    if not args.no_write:
        RESULTS.write_text(markdown(report, args), encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
