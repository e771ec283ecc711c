"""Benchmark: cold start, `necessity evaluate` on the founding case as a whole process.

Runs the installed command N times (default 15) one after another, each a new process, and
reports the median and minimum wall and CPU time (the CPU time of a process is less disturbed
by other work on a shared machine than its wall time) with the load average before and after,
which says how far to trust the wall times. The caches a user has after the first run (parsed
policy YAML, rendered rulesets: evaluator/read/disk_cache.py) live in a fresh folder that one
unmeasured run fills; that first run's time is reported too. Exits 1 when the median wall time
misses the target in benchmarks/README.md.

Wall and even CPU times move with the machine's other load, so it also reports what moves
less: the median time per phase of `necessity evaluate --profile` (time after the imports)
and the time spent importing modules (`python -X importtime`: the total, and the largest
top-level imports), each over a few more processes with the same warm caches. With
`--instructions` it also counts the instructions one warm process executes (valgrind's
callgrind, about 20 s; within a percent from run to run whatever the load): the measure to
compare two versions by on a busy machine.

    .venv/bin/python benchmarks/cold_start.py [--runs N] [--json] [--instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
# The target, as stated in benchmarks/README.md (keep the two in step).
TARGET_MEDIAN_MS = 250.0


def _command() -> list[str]:
    installed = Path(sys.executable).with_name("necessity")
    if installed.exists():
        return [str(installed), "evaluate", str(FOUNDING)]
    return [sys.executable, "-m", "evaluator", "evaluate", str(FOUNDING)]


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Return the wall and CPU milliseconds of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=False)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1, 3):  # a determination; anything else is a failure
        sys.exit(f"cold start: {' '.join(command)} exited {done.returncode}: {done.stderr!r}")
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
    return wall, cpu


_PHASE = re.compile(r"^\s+(\w+)\s+([\d.]+) ms")
_IMPORT = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (.*)$")


def _phases(command: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    """Median ms per phase of `evaluate --profile` (its report on standard error)."""
    seen: dict[str, list[float]] = {}
    for _ in range(runs):
        done = subprocess.run(
            [*command, "--profile"], env=env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        for line in done.stderr.splitlines():
            match = _PHASE.match(line)
            if match:
                seen.setdefault(match.group(1), []).append(float(match.group(2)))
    return {name: round(statistics.median(times), 1) for name, times in seen.items()}


def _imports(env: dict[str, str], runs: int) -> dict[str, object]:
    """Median total import time (the sum of every module's own time) and the median of the
    largest top-level imports, in ms, from `python -X importtime`."""
    command = [sys.executable, "-X", "importtime", "-m", "evaluator", "evaluate", str(FOUNDING)]
    totals: list[float] = []
    top: dict[str, list[float]] = {}
    # The program cache's key names the engine's file, whose path differs through another
    # interpreter path (a symlinked venv): this command fills its own entries first, unmeasured.
    subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=False)
    for _ in range(runs):
        done = subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        total = 0
        for line in done.stderr.splitlines():
            match = _IMPORT.match(line)
            if not match:
                continue
            total += int(match.group(1))
            name = match.group(3)
            if not name.startswith(" "):
                top.setdefault(name, []).append(int(match.group(2)) / 1000)
        totals.append(total / 1000)
    largest = sorted(
        ((name, round(statistics.median(times), 1)) for name, times in top.items()),
        key=lambda item: -item[1],
    )[:6]
    return {"median_total_ms": round(statistics.median(totals), 1), "largest": dict(largest)}


_COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(command: list[str], env: dict[str, str]) -> int | None:
    """Instructions one process of `command` executes (callgrind), or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    with tempfile.TemporaryDirectory(prefix="necessity-callgrind-") as folder:
        done = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={folder}/out", *command],
            env={**env, "PYTHONHASHSEED": "0"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    match = _COLLECTED.search(done.stderr)
    return int(match.group(1)) if match else None


def measure(runs: int, detail_runs: int = 5, *, instructions: bool = False) -> dict[str, object]:
    command = _command()
    with tempfile.TemporaryDirectory(prefix="necessity-cold-") as cache:
        # As installed: bytecode is written and read (a developer's shell may turn that off),
        # and the caches start empty, in a folder of their own.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["NECESSITY_CACHE_DIR"] = cache
        _run(command, {**env, "NECESSITY_CACHE_DIR": "off"})  # writes the .pyc files
        load_before = os.getloadavg()
        first_wall, first_cpu = _run(command, env)  # parses and renders, fills the cache
        walls, cpus = zip(*(_run(command, env) for _ in range(runs)), strict=True)
        load_after = os.getloadavg()
        phases = _phases(command, env, detail_runs)
        imports = _imports(env, detail_runs)
        counted = _instructions(command, env) if instructions else None
    return {
        "command": " ".join(Path(part).name if part == command[0] else part for part in command),
        "runs": runs,
        "median_wall_ms": round(statistics.median(walls), 1),
        "min_wall_ms": round(min(walls), 1),
        "median_cpu_ms": round(statistics.median(cpus), 1),
        "min_cpu_ms": round(min(cpus), 1),
        "empty_cache_wall_ms": round(first_wall, 1),
        "empty_cache_cpu_ms": round(first_cpu, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "target_median_wall_ms": TARGET_MEDIAN_MS,
        "phases_median_ms": phases,
        "imports": imports,
        "instructions": counted,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="measured runs (15)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count the instructions of one process (valgrind callgrind, ~20 s)",
    )
    args = parser.parse_args(argv)
    result = measure(args.runs, instructions=args.instructions)
    missed = float(str(result["median_wall_ms"])) > TARGET_MEDIAN_MS
    if args.json:
        print(json.dumps({**result, "missed": missed}, indent=2))
    else:
        print(f"cold start: {result['command']} ({result['runs']} runs, warm caches)")
        for key in ("median_wall_ms", "min_wall_ms", "median_cpu_ms", "min_cpu_ms"):
            print(f"  {key:<22}{result[key]:>8}")
        print(
            f"  {'empty caches, wall/CPU':<22}{result['empty_cache_wall_ms']:>8} / "
            f"{result['empty_cache_cpu_ms']} ms"
        )
        print(
            f"  load average before {result['load_average_before']}, after "
            f"{result['load_average_after']} ({result['cpus']} CPUs)"
        )
        phases = result["phases_median_ms"]
        assert isinstance(phases, dict)
        print("  per phase after the imports (median of 5, evaluate --profile):")
        print("    " + ", ".join(f"{name} {ms}" for name, ms in phases.items()))
        imports = result["imports"]
        assert isinstance(imports, dict)
        print(f"  imports (median of 5, -X importtime): {imports['median_total_ms']} ms; largest:")
        print("    " + ", ".join(f"{name} {ms}" for name, ms in imports["largest"].items()))
        if result["instructions"] is not None:
            print(f"  instructions (callgrind, one process): {result['instructions']:,}")
        print(
            "target met" if not missed else f"target missed: median wall > {TARGET_MEDIAN_MS:g} ms"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
