"""Benchmark: evaluation throughput and latency, compile and registration time, peak memory.

Runs in one process, as a batch reviewer would: every shipped policy is compiled and registered
once, then the example cases are reviewed (all service lines, each by the policy in force that
governs it) N times. Prints a table (or JSON with --json) and exits 1 when a target in
benchmarks/README.md is missed.

    .venv/bin/python benchmarks/run.py [--cases N] [--json] [--per-node]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from evaluator import api  # noqa: E402
from evaluator.case import cases  # noqa: E402
from evaluator.case.cases import Case  # noqa: E402
from evaluator.compile import compiler, program_cache  # noqa: E402
from evaluator.compile.compiler import compile_policy  # noqa: E402
from evaluator.engine.durable import Engine, Trace  # noqa: E402
from evaluator.language.policies import Library  # noqa: E402

EXAMPLES = ROOT / "examples" / "cases"
FOUNDING = EXAMPLES / "t12-s2-fusion.json"

# The targets, as stated in benchmarks/README.md (keep the two in step).
TARGETS = {
    "founding_cases_per_second": (">=", 20.0),
    "founding_p95_ms": ("<=", 100.0),
    "examples_cases_per_second": (">=", 20.0),
    "examples_p95_ms": ("<=", 100.0),
    "compile_seconds_max": ("<=", 2.0),
    "register_seconds_max": ("<=", 1.0),
    "peak_rss_mb": ("<=", 500.0),
}


@dataclass(frozen=True)
class Workload:
    name: str
    cases: int
    seconds: float
    cases_per_second: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    # Engine rule firings per case (every line, alternative and referenced policy): each one
    # a round trip into Python (docs/architecture.md, folding).
    firings_per_case: float


@dataclass(frozen=True)
class PolicyCost:
    policy: str
    rules: int
    stages: int
    first_compile_seconds: float
    compile_seconds: float
    register_seconds: float


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def prepare(library: Library) -> list[PolicyCost]:
    """Compile (timed: the first time, then best of 3) and register every shipped policy once.

    The first compile in the process also reads the fact dictionary from the schemas.
    """
    costs = []
    for policy in library.all():
        compile_times = []
        for _ in range(4):
            start = time.perf_counter()
            compile_policy(policy)
            compile_times.append(time.perf_counter() - start)
        # api.program_for compiles once more and registers the ruleset: the engine's own limit
        # check, the first registration in this process.
        start = time.perf_counter()
        program = api.program_for(policy)
        registered = time.perf_counter() - start - min(compile_times)
        costs.append(
            PolicyCost(
                policy.ref,
                len(program.rules),
                program.stages,
                compile_times[0],
                min(compile_times[1:]),
                registered,
            )
        )
    return costs


def measure(
    name: str, review: Callable[[Case], object], workload: Sequence[Case], n: int
) -> Workload:
    for case in workload:  # warm-up: first use of each path, not counted
        review(case)
    latencies = []
    started = time.perf_counter()
    for case in itertools.islice(itertools.cycle(workload), n):
        start = time.perf_counter()
        review(case)
        latencies.append(time.perf_counter() - start)
    seconds = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return Workload(
        name,
        n,
        seconds,
        n / seconds,
        statistics.median(ms),
        percentile(ms, 0.95),
        max(ms),
        firings_per_case(review, workload),
    )


def firings_per_case(review: Callable[[Case], object], workload: Sequence[Case]) -> float:
    """Count the engine's firings over one untimed pass of the workload."""
    counted = 0
    original = Engine.run

    def run(self: Engine, *args: Any, **kwargs: Any) -> Trace:
        nonlocal counted
        trace = original(self, *args, **kwargs)
        counted += trace.firings
        return trace

    Engine.run = run  # type: ignore[method-assign]
    try:
        for case in workload:
            review(case)
    finally:
        Engine.run = original  # type: ignore[method-assign]
    return counted / len(workload)


def check(results: dict[str, float]) -> list[str]:
    missed = []
    for key, (relation, target) in TARGETS.items():
        value = results[key]
        ok = value >= target if relation == ">=" else value <= target
        if not ok:
            missed.append(f"{key} = {value:.1f}, target {relation} {target:g}")
    return missed


def table(costs: list[PolicyCost], workloads: list[Workload], load_ms: float, rss: float) -> str:
    lines = ["policy                        rules  stages  compile s (first, best)  register s"]
    for c in costs:
        compiled = f"{c.first_compile_seconds:.3f}, {c.compile_seconds:.3f}"
        lines.append(
            f"{c.policy:<28}  {c.rules:>5}  {c.stages:>6}  {compiled:>23}"
            f"  {c.register_seconds:>10.4f}"
        )
    lines += ["", "workload      cases   cases/s   p50 ms   p95 ms   max ms  firings/case"]
    for w in workloads:
        lines.append(
            f"{w.name:<12}  {w.cases:>5}  {w.cases_per_second:>8.1f}  {w.p50_ms:>7.2f}"
            f"  {w.p95_ms:>7.2f}  {w.max_ms:>7.2f}  {w.firings_per_case:>12.1f}"
        )
    lines += [
        "",
        f"loading a case file (read, validate, normalise): {load_ms:.2f} ms, not counted above",
        f"peak RSS: {rss:.1f} MB",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per workload (2000)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--per-node",
        action="store_true",
        help="compile without folding (the per-node lowering), to compare on one machine",
    )
    args = parser.parse_args(argv)
    global compile_policy  # noqa: PLW0603
    if args.per_node:
        compile_policy = functools.partial(compile_policy, fold=False)
        # api.program_for compiles through the compiler module, and only when the program
        # cache misses: the per-node programs are neither read from it nor written to it
        compiler.compile_policy = compile_policy
        program_cache.key = lambda policy: None  # noqa: ARG005

    library = Library()
    costs = prepare(library)
    paths = sorted(EXAMPLES.glob("*.json"))
    examples = [cases.load_case(p) for p in paths]
    start = time.perf_counter()  # a second pass: schemas and caches are warm
    for path in paths:
        cases.load_case(path)
    load_ms = (time.perf_counter() - start) * 1000 / len(paths)
    founding = next(c for c, p in zip(examples, paths, strict=True) if p == FOUNDING)

    def review(case: Case) -> object:
        return api.review_case(case, library)

    workloads = [
        measure("founding", review, [founding], args.cases),
        measure(f"examples/{len(examples)}", review, examples, args.cases),
    ]
    rss = peak_rss_mb()
    results = {
        "founding_cases_per_second": workloads[0].cases_per_second,
        "founding_p95_ms": workloads[0].p95_ms,
        "examples_cases_per_second": workloads[1].cases_per_second,
        "examples_p95_ms": workloads[1].p95_ms,
        "compile_seconds_max": max(c.compile_seconds for c in costs),
        "register_seconds_max": max(c.register_seconds for c in costs),
        "peak_rss_mb": rss,
    }
    missed = check(results)
    if args.json:
        report: dict[str, Any] = {
            "policies": [asdict(c) for c in costs],
            "workloads": [asdict(w) for w in workloads],
            "case_load_ms": load_ms,
            "peak_rss_mb": rss,
            "targets": {k: {"relation": r, "value": v} for k, (r, v) in TARGETS.items()},
            "results": results,
            "missed": missed,
        }
        print(json.dumps(report, indent=2))
    else:
        print(table(costs, workloads, load_ms, rss))
        print()
        print("targets met" if not missed else "targets missed:\n  " + "\n  ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
