"""Benchmark: what one durable_rules session costs per program, empty and on real cases.

durable_rules allocates and zeroes state for every beta node (one per rule pattern), every
connector and every action of a ruleset when it creates a session (state.c `createStateNode`,
8 KB of hash index per beta node), and every `assert_facts` call has a fixed cost: a program's
shape (patterns, stages) sets a floor under every case it evaluates. This prints, per program
the examples and the bench cases use: its rules, patterns (the beta nodes), stages, and the CPU
microseconds (time.process_time, never wall time: the machine is shared) of an engine run with
no case facts and of the recorded real runs (the examples' sessions, the bench cases').
With --unshaped, each program's counterpart compiled without `compile/shaping.py` is measured
beside it, the two alternating, so that a change of load hits both.

    .venv/bin/python benchmarks/sessions.py [--runs 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks import benchgen, compare  # noqa: E402
from evaluator import api  # noqa: E402
from evaluator.case import cases  # noqa: E402
from evaluator.compile.compiler import compile_policy  # noqa: E402
from evaluator.compile.program import Program  # noqa: E402
from evaluator.engine.durable import Engine  # noqa: E402
from evaluator.errors import EngineError  # noqa: E402
from evaluator.language.model import Policy  # noqa: E402
from evaluator.language.policies import Library  # noqa: E402

EXAMPLES = ROOT / "examples" / "cases"

Recorded = dict[str, tuple[Program, list[list[Mapping[str, Any]]]]]


def record(work: Callable[[], object], policies: dict[str, Policy]) -> Recorded:
    """Run `work` and return, per program name, the program and the facts of every engine run;
    `policies` gets the policy of each program."""
    engine = Engine.get()
    seen: Recorded = {}
    original = engine.run
    program_for = api.program_for

    def compiled(policy: Policy) -> Program:
        program = program_for(policy)
        policies[program.name] = policy
        return program

    def run(program: Program, facts: Iterable[Mapping[str, Any]], **kw: Any) -> Any:
        listed = list(facts)
        seen.setdefault(program.name, (program, []))[1].append(listed)
        return original(program, listed, **kw)

    engine.run = run  # type: ignore[method-assign]
    api.program_for = compiled
    try:
        work()
    finally:
        del engine.run
        api.program_for = program_for
    return seen


def cpu_us(program: Program, runs: list[list[Mapping[str, Any]]], total: int) -> float:
    """CPU microseconds per engine run, over `total` runs cycling through `runs`."""
    engine = Engine.get()
    n = 0
    start = time.process_time()
    while n < total:
        for facts in runs:
            # an empty case gets no status: the run still did all of the engine's work
            with contextlib.suppress(EngineError):
                engine.run(program, facts)
            n += 1
    return (time.process_time() - start) / n * 1e6


def shape(program: Program) -> dict[str, int]:
    patterns = sum(len(r.patterns) for r in program.rules)
    return {"rules": len(program.rules), "patterns": patterns, "stages": program.stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="engine runs per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements, the best kept")
    parser.add_argument("--bench-cases", type=int, default=200)
    parser.add_argument(
        "--unshaped", action="store_true", help="also each program compiled without shaping"
    )
    args = parser.parse_args(argv)

    library = Library()
    policies: dict[str, Policy] = {}
    examples = [cases.load_case(p) for p in sorted(EXAMPLES.glob("*.json"))]
    recorded = record(lambda: [api.review_case(c, library) for c in examples], policies)
    _, parsed = compare.parse(benchgen.generate(args.bench_cases))
    bench = Library(compare.POLICIES).get(compare.POLICY)
    recorded.update(record(lambda: [api.evaluate(c, bench) for c in parsed], policies))

    print(
        f"{'program':<48} {'rules':>5} {'patt':>5} {'stg':>3} {'empty us':>9} "
        f"{'real us':>9} {'runs':>5}"
    )
    for name, (program, runs) in sorted(recorded.items()):
        shown = [program]
        if args.unshaped:
            shown.append(compile_policy(policies[name], shaped=False))
        best: dict[str, list[float]] = {p.name: [math.inf, math.inf] for p in shown}
        for each in shown:
            for _ in range(50):  # warm: registration, caches, malloc arenas
                Engine.get().run(each, runs[0])
        for _ in range(args.repeat):
            for each in shown:  # alternating: the same load for both
                found = best[each.name]
                found[0] = min(found[0], cpu_us(each, [[]], args.runs))
                found[1] = min(found[1], cpu_us(each, runs, args.runs))
        for each in shown:
            s = shape(each)
            empty, real = best[each.name]
            print(
                f"{each.name[:48]:<48} {s['rules']:>5} {s['patterns']:>5} {s['stages']:>3} "
                f"{empty:>9.1f} {real:>9.1f} {len(runs):>5}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
