"""Round trips the compiled programs ask of the engine: rules, stages, messages and firings.

    .venv/bin/python benchmarks/firings.py [--cases N] [--json]

For the bench policy (on N generated cases) and for every shipped example (each policy's
examples as `tests/cases` names them), it reports the rules per stage and per action, the
stages (one `assert_facts` call each, plus the case facts), the messages per case (the facts
the engine is given: the case's own, the stage markers, the derived facts some rule reads) and
the firings per case by action (each one a round trip from the engine into Python). Counts,
not times: stable on a shared machine (issue 10).

Messages are what durable_rules' C time follows (stop 23, bench policy, callgrind): each one
is parsed into a fixed 7 KB object, copied into the session's message pool (which grows by
realloc, copying every message already there) and walked through the alpha network; one that
only the catch-all rule reads costs about 29,000 instructions, the bench's average 51,000.
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
from evaluator.engine import durable  # noqa: E402
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


# The messages of one program's runs, by kind (`messages`).
Messages = dict[str, Counter[str]]


@contextmanager
def traced(log: list[tuple[Program, Trace]], messages: Messages) -> Iterator[None]:
    """Record every (program, trace) the engine runs, with its firing log, and count the
    messages each program's runs give the engine, by kind."""
    engine = Engine.get()
    run = engine.run
    give = durable._Session._assert

    def wrapped(program: Program, facts: Iterable[Mapping[str, Any]], **_: Any) -> Trace:
        trace = run(program, facts, trace=True)
        log.append((program, trace))
        return trace

    def counted(session: durable._Session, batch: list[dict[str, Any]], what: str) -> None:
        count = messages.setdefault(session.program.name, Counter())
        first = any(f.get("t") == "stage" and f.get("s") == 1 for f in batch)
        for fact in batch:
            kind = "marker" if fact.get("t") == "stage" else "case" if first else "derived"
            count[kind] += 1
        give(session, batch, what)

    engine.run = wrapped  # type: ignore[method-assign]
    durable._Session._assert = counted  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        del engine.run
        durable._Session._assert = give  # type: ignore[method-assign]


def firings(log: list[tuple[Program, Trace]], messages: Messages, name: str) -> dict[str, Any]:
    """Messages and firings per case of the runs of the program `name` (its own, not the
    policies it references or its alternative's)."""
    runs = [(p, t) for p, t in log if p.name == name]
    by_action: Counter[str] = Counter()
    for program, trace in runs:
        for firing in trace.log or ():
            by_action[type(program.rule(firing.rule).action).__name__] += 1
    count = max(len(runs), 1)
    given = messages.get(name, Counter())
    return {
        "runs": len(runs),
        "messages_per_case": round(sum(given.values()) / count, 2),
        "messages_by_kind": {k: round(v / count, 2) for k, v in sorted(given.items())},
        "firings_per_case": round(sum(by_action.values()) / count, 2),
        "by_action": {k: round(v / count, 2) for k, v in sorted(by_action.items())},
    }


def bench(cases: int) -> dict[str, Any]:
    policy = Library(POLICIES).get(POLICY)
    program = compiler.compile_policy(policy)
    _, parsed = parse(benchgen.generate(cases))
    facts = sum(len(api.facts_for(c, policy)) for c in parsed) / len(parsed)
    log: list[tuple[Program, Trace]] = []
    messages: Messages = {}
    with traced(log, messages):
        for case in parsed:
            Engine.get().run(program, api.facts_for(case, policy))
    return {"policy": POLICY, **shape(program), "facts_per_case": round(facts, 2)} | firings(
        log, messages, program.name
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
    messages: Messages = {}
    with traced(log, messages):
        for ref, case_paths in sorted(by_policy.items()):
            for case in case_paths:
                api.evaluate_path(ROOT / case, ref)
    out = []
    for name in sorted({p.name for p, _ in log}):
        program = next(p for p, _ in log if p.name == name)
        row = firings(log, messages, name)
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
    head = (
        f"{'program':40} {'rules':>5} {'stages':>6}  {'per stage':30} {'messages/case':>13}"
        f" {'firings/case':>12}"
    )
    print(f"{head}  by action")
    for row in rows:
        print(
            f"{row['policy']:40} {row['rules']:5} {row['stages']:6}  "
            f"{'/'.join(map(str, row['per_stage'])):30} {row['messages_per_case']:13} "
            f"{row['firings_per_case']:12}  {row['by_action']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
