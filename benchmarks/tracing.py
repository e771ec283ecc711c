"""Benchmark: what `evaluate --explain` costs, and that tracing costs nothing when it is off.

Runs the founding case's three policies through the engine alone (`Engine.run`), untraced and
traced, interleaved so that machine noise hits both alike, then the whole `api.evaluate` with
and without `explain` (trace plus explanation). Prints medians and exits 1 when traced engine
runs cost more than TRACED_MAX_RATIO times untraced ones (benchmarks/README.md).

    .venv/bin/python benchmarks/tracing.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from evaluator import api  # noqa: E402
from evaluator.case import cases  # noqa: E402
from evaluator.engine.durable import Engine  # noqa: E402
from evaluator.language.policies import Library  # noqa: E402

FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
# Traced engine runs may cost at most this much more than untraced ones (README target).
TRACED_MAX_RATIO = 1.5


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args(argv)
    case = cases.load_case(FOUNDING)
    library = Library()
    policies = [api.select_policy(case, p, library) for p in library.ids()]
    programs = [api.program_for(p) for p in policies]
    facts = [f.as_dict() for f in case.facts]
    engine = Engine.get()
    firings = sum(engine.run(p, facts).firings for p in programs)

    def engine_run(trace: bool) -> Callable[[], object]:
        return lambda: [engine.run(p, facts, trace=trace) for p in programs]

    def evaluate(explain: bool) -> Callable[[], object]:
        return lambda: [api.evaluate(case, p, explain=explain) for p in policies]

    rows = {
        "engine, untraced": engine_run(False),
        "engine, traced": engine_run(True),
        "evaluate": evaluate(False),
        "evaluate --explain": evaluate(True),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for fn in rows.values():
        fn()  # warm up
    for _ in range(args.runs):
        for name, fn in rows.items():
            times[name].append(_time(fn))
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"founding case, 3 policies, {firings} firings per run, {args.runs} runs (median ms)")
    for name, value in medians.items():
        print(f"  {name:<22}{value:8.2f} ms")
    ratio = medians["engine, traced"] / medians["engine, untraced"]
    print(f"  traced / untraced engine: {ratio:.2f}x")
    if ratio > TRACED_MAX_RATIO:
        print(f"missed: traced engine runs cost more than {TRACED_MAX_RATIO}x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
