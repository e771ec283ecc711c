"""Round trips the compiled programs ask of the engine: rules, stages and firings per case.

    .venv/bin/python benchmarks/firings.py [--cases N] [--json]

For the bench policy (on N generated cases) and for every shipped example (each policy's
examples as `tests/cases` names them), it reports the rules per stage and per action, the
stages (one `assert_facts` call each, plus the case facts) and the firings per case by action
(each one a round trip from the engine into Python). Counts, not times: stable on a shared
machine (issue 10).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from benchmarks import benchgen  # noqa: E402
from benchmarks.compare import POLICIES, POLICY, parse  # noqa: E402
from evaluator import api  # noqa: E402
from evaluator.compile import compiler  # noqa: E402
from evaluator.compile.program import Program  # noqa: E402
from evaluator.engine.durable import Engine, Trace  # noqa: E402
from evaluator.language.policies import Library  # noqa: E402
from evaluator.read import source  # noqa: E402


def shape(program: Program) -> dict[str, Any]:
    """Rules per stage and per action of a program."""
    return {
        "rules": len(program.rules),
        "stages": program.stages,
        "per_stage": [
            sum(r.stage == s for r in program.rules) for s in range(1, program.stages + 1)
        ],
        "actions": dict(sorted(Counter(type(r.action).__name__ for r in program.rules).items())),
    }


@contextmanager
def traced(log: list[tuple[Program, Trace]]) -> Iterator[None]:
    """Record every (program, trace) the engine runs, with its firing log."""
    engine = Engine.get()
    run = engine.run

    def wrapped(program: Program, facts: Iterable[Mapping[str, Any]], **_: Any) -> Trace:
        trace = run(program, facts, trace=True)
        log.append((program, trace))
        return trace

    engine.run = wrapped  # type: ignore[method-assign]
    try:
        yield
    finally:
        del engine.run


def firings(log: list[tuple[Program, Trace]], name: str) -> dict[str, Any]:
    """Firings per case of the runs of the program `name` (its own, not the policies it
    references or its alternative's)."""
    runs = [(p, t) for p, t in log if p.name == name]
    by_action: Counter[str] = Counter()
    for program, trace in runs:
        for firing in trace.log or ():
            by_action[type(program.rule(firing.rule).action).__name__] += 1
    count = max(len(runs), 1)
    return {
        "runs": len(runs),
        "firings_per_case": round(sum(by_action.values()) / count, 2),
        "by_action": {k: round(v / count, 2) for k, v in sorted(by_action.items())},
    }


def bench(cases: int) -> dict[str, Any]:
    policy = Library(POLICIES).get(POLICY)
    program = compiler.compile_policy(policy)
    _, parsed = parse(benchgen.generate(cases))
    facts = sum(len(api.facts_for(c, policy)) for c in parsed) / len(parsed)
    log: list[tuple[Program, Trace]] = []
    with traced(log):
        for case in parsed:
            Engine.get().run(program, api.facts_for(case, policy))
    return {"policy": POLICY, **shape(program), "facts_per_case": round(facts, 2)} | firings(
        log, program.name
    )


def examples() -> list[dict[str, Any]]:
    """Each shipped policy on its examples (the cases `tests/cases` runs it on): every run of
    its program counts, the alternative's and a referring policy's included."""
    by_policy: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests" / "cases").glob("*.yaml")):
        spec = source.load(path).data
        if isinstance(spec, dict) and "case" in spec and "error" not in spec:
            by_policy.setdefault(str(spec["policy"]), []).append(str(spec["case"]))
    log: list[tuple[Program, Trace]] = []
    with traced(log):
        for ref, case_paths in sorted(by_policy.items()):
            for case in case_paths:
                api.evaluate_path(ROOT / case, ref)
    out = []
    for name in sorted({p.name for p, _ in log}):
        program = next(p for p, _ in log if p.name == name)
        row = firings(log, name)
        total = sum(t.firings for p, t in log if p.name == name)
        out.append({"policy": _short(name), **shape(program), **row, "firings": total})
    return out


def _short(name: str) -> str:
    """A program's policy and version, with its content hash's start (a plan overlay)."""
    return f"{name.split('#', maxsplit=1)[0]}#{name.rsplit('-', 1)[-1][:6]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [bench(args.cases), *examples()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = f"{'program':40} {'rules':>5} {'stages':>6}  {'per stage':30} {'firings/case':>12}"
    print(f"{head}  by action")
    for row in rows:
        print(
            f"{row['policy']:40} {row['rules']:5} {row['stages']:6}  "
            f"{'/'.join(map(str, row['per_stage'])):30} {row['firings_per_case']:12}  "
            f"{row['by_action']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
