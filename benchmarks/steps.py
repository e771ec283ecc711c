"""CPU per case of each step of `api.evaluate` and of a batch record, case by case (issue 10).

    .venv/bin/python benchmarks/steps.py [--cases N] [--rounds R] [--json]

On N generated cases of the bench policy, each case goes through the steps one after the
other, as `api.evaluate` and `necessity batch` run them: the facts the policy sees
(`api.facts_for`, and the case's hash the provenance reads), the engine (`Engine.run`), the
decision's assembly (`api._decide`: `decision.assemble` and the provenance), the rendered JSON
(`render.decision_json`) and the record's JSON line (`batch.encode`). Each step is timed with
`time.process_time` around it alone, so what it reads is as warm as in a real run, with the
clock's own cost taken off; the garbage collector is frozen after set-up and collects nothing
while timing (compare.py's phase rows keep thousands of documents alive, which inflates them),
and no profiler is attached (cProfile about triples the cost of small Python calls: it showed
assembly at 110-120 us a case where it costs 35-45). The best of R rounds is reported.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks import benchgen  # noqa: E402
from benchmarks.compare import POLICIES, POLICY, parse  # noqa: E402
from evaluator import api  # noqa: E402
from evaluator.batch import runner as batch  # noqa: E402
from evaluator.case.cases import Case  # noqa: E402
from evaluator.decide import records  # noqa: E402
from evaluator.engine.durable import Engine  # noqa: E402
from evaluator.language.model import Policy  # noqa: E402
from evaluator.language.policies import Library  # noqa: E402
from evaluator.render import decision as render  # noqa: E402

STEPS = ("facts_for", "case hash", "engine", "assembly", "render", "encode", "all six")


def clock_cost() -> float:
    """Return the CPU seconds one empty `process_time` interval reads, to take off each step."""
    clock = time.process_time
    rounds = 20_000
    start = clock()
    for _ in range(rounds):
        clock()
        clock()
    return (clock() - start) / rounds / 2


def one_round(parsed: list[Case], policy: Policy, stamp: str) -> dict[str, float]:
    """Return the CPU microseconds per case of each step over every case."""
    clock = time.process_time
    engine = Engine.get()
    spent = dict.fromkeys(STEPS, 0.0)
    for case in parsed:
        fresh = copy.copy(case)  # a new Case object: its hash is worked out again
        t0 = clock()
        effective, seen = api.with_plan(fresh, policy), api.facts_for(fresh, policy)
        t1 = clock()
        records.case_digest(fresh, seen)
        t2 = clock()
        program, facts = api._given(fresh, effective, seen, ())
        trace = engine.run(program, facts)
        t3 = clock()
        decision = api._decide(
            fresh, effective, program, facts, trace, explain=False, alternative=True
        )
        t4 = clock()
        result = render.decision_json(decision, stamp)
        t5 = clock()
        batch.encode({"case": "c.json", "case_id": fresh.case_id, "sha256": "", "result": result})
        t6 = clock()
        took = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t6 - t0)
        for step, seconds in zip(STEPS, took, strict=True):
            spent[step] += seconds
    return spent


def measure(cases: int, rounds: int) -> dict[str, float]:
    _, parsed = parse(benchgen.generate(cases))
    policy = Library(POLICIES).get(POLICY)
    for case in parsed[:50]:  # warm-up: compile and register once
        api.evaluate(case, policy)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        overhead = clock_cost()
        best: dict[str, float] = {}
        for _ in range(rounds):
            spent = one_round(parsed, policy, stamp)
            for step, seconds in spent.items():
                intervals = 6 if step == "all six" else 1
                us = (seconds / len(parsed) - overhead * intervals) * 1e6
                best[step] = min(best.get(step, us), us)
    finally:
        gc.enable()
        gc.unfreeze()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    best = measure(args.cases, args.rounds)
    if args.json:
        print(json.dumps({k: round(v, 1) for k, v in best.items()}, indent=2))
        return 0
    print(f"CPU us per case, best of {args.rounds} rounds of {args.cases} bench cases")
    print("\n".join(f"{step:<10} {best[step]:8.1f}" for step in STEPS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
