"""Faults at random in every durable_rules call and firing, over many cases (stop 21 review).

Run as a script (tests/test_session_faults.py runs it in a subprocess, since a fault could
crash the process): `python -m tests.fault_sweep SUITE SEED CASES [THREADS]`. SUITE is `bench`
(the bench policy: its cases share sessions) or `examples` (the shipped examples: a session per
case). A quarter of the cases get one fault: a KeyboardInterrupt or a RuntimeError raised
before or after one of `assert_facts`, `start_action_for_state`, `complete_and_start_action`,
`delete_state` or a firing's handler, or an `assert_facts` that reports a fact it saw (a 32-bit
hash collision, trap 4); `Engine.release` runs between some cases; few sessions may be left
before the program is registered afresh, so that happens often. With one thread the sweep is
deterministic (the seed picks the cases and faults).

Every case must either raise or derive exactly what it derives alone (its traced run); a case
whose fault fired must raise (a RuntimeError in `delete_state`, which runs once the case is
decided, and a collision, which reruns the case alone, excepted); a case with no fault must
not raise; nothing may hang (faulthandler exits with a traceback) or crash (the exit code).
Prints what happened, then `problems N`; exits 1 when N > 0.
"""

from __future__ import annotations

import collections
import faulthandler
import random
import sys
import threading
from collections.abc import Mapping
from typing import Any

import durable_rules_engine as dre

from benchmarks import benchgen, compare
from evaluator import api
from evaluator.engine import durable as engine
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.policies import Library
from tests.test_sessions import _derived, _judged, in_threads

CALLS = ["assert_facts", "start_action_for_state", "complete_and_start_action", "delete_state"]


class Fault:
    """One case's fault: where, before or after the call, what is raised, at which call."""

    def __init__(self, rng: random.Random) -> None:
        self.target = rng.choice([*CALLS, "handler", "collide"])
        self.before = rng.random() < 0.5
        self.kind: type[BaseException] = rng.choice([KeyboardInterrupt, RuntimeError])
        self.at = rng.randint(1, 6)
        self.calls = 0
        self.fired = False

    def due(self, target: str) -> bool:
        if self.fired or self.target != target:
            return False
        self.calls += 1
        self.fired = self.calls == self.at
        return self.fired

    def raised_by_design(self) -> bool:
        """Whether the case may return a trace although the fault fired."""
        return self.target == "collide" or (
            self.target == "delete_state" and self.kind is RuntimeError
        )


_local = threading.local()


def _current() -> Fault | None:
    found: Fault | None = getattr(_local, "fault", None)
    return found


def _wrap(name: str) -> Any:
    real = getattr(dre, name)

    def call(*args: Any) -> Any:
        fault = _current()
        if fault is not None and name == "assert_facts" and fault.due("collide"):
            return 2  # "already observed": the engine took the batch for one it had
        if fault is None or not fault.due(name):
            return real(*args)
        if fault.before:
            raise fault.kind(f"injected before {name}")
        real(*args)
        raise fault.kind(f"injected after {name}")

    return call


def _wrap_handlers() -> None:
    real_plans = engine._plans

    def wrapped(handler: Any) -> Any:
        def fire(session: Any, matched: Any) -> None:
            fault = _current()
            if fault is not None and fault.due("handler"):
                if not fault.before:
                    handler(session, matched)
                raise fault.kind("injected in a handler")
            handler(session, matched)

        return fire

    def plans(program: Any) -> Any:
        found = real_plans(program)
        stages = {s: {n: wrapped(h) for n, h in hs.items()} for s, hs in found.stages.items()}
        return engine._Plans(found.rules, stages)

    engine._plans = plans


def _label(fault: Fault | None) -> str:
    return fault.target if fault is not None and fault.fired else "no fault"


def _runs(suite: str, seed: int) -> list[tuple[Any, list[dict[str, Any]]]]:
    if suite == "bench":
        policy = Library(compare.POLICIES).get(compare.POLICY)
        program = api.program_for(policy)
        _, parsed = compare.parse(benchgen.generate(60, seed))
        return [(program, api.facts_for(case, policy)) for case in parsed]
    return _judged()


def main(argv: list[str]) -> int:
    suite, seed, count = argv[0], int(argv[1]), int(argv[2])
    threads = int(argv[3]) if len(argv) > 3 else 1
    faulthandler.dump_traceback_later(int(argv[4]) if len(argv) > 4 else 240, exit=True)
    runs = _runs(suite, seed)
    engine_ = Engine.get()
    alone = [_derived(engine_.run(program, facts, trace=True)) for program, facts in runs]
    # registered afresh every few dozen sessions left, rather than every thousand
    Engine.LEFT_SESSIONS_LIMIT = 40
    for name in CALLS:
        setattr(dre, name, _wrap(name))
    _wrap_handlers()
    seen: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    lock = threading.Lock()

    def sweep(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        for _ in range(count):
            index = rng.randrange(len(runs))
            program, facts = runs[index]
            fault = Fault(rng) if rng.random() < 0.25 else None
            release = rng.random() < 0.02
            _local.fault = fault
            try:
                if release:
                    engine_.release()
                got = engine_.run(program, facts)
            except (KeyboardInterrupt, RuntimeError, EngineError) as error:
                with lock:
                    seen[f"raised {type(error).__name__} ({_label(fault)})"] += 1
                    if fault is None or not fault.fired:
                        problems.append(f"case {index} raised with no fault: {error!r}")
                continue
            finally:
                _local.fault = None
            with lock:
                seen[f"decided ({_label(fault)})"] += 1
                if fault is not None and fault.fired and not fault.raised_by_design():
                    problems.append(f"case {index} decided after its fault {vars(fault)}")
                if _derived(got) != alone[index]:
                    problems.append(f"case {index} derived what it does not alone")

    if threads == 1:
        sweep(0)
    else:
        numbers = iter(range(threads))
        problems += [
            f"a thread raised {e!r}" for e in in_threads(lambda: sweep(next(numbers)), threads)
        ]
    return report(engine_, seen, problems)


def report(engine_: Engine, seen: Mapping[str, int], problems: list[str]) -> int:
    """Release the engine's sessions, print what happened, and return the exit code."""
    engine_.release()
    for line, number in sorted(seen.items()):
        print(f"{number:6d} {line}")
    print("registered", dict(engine_._generations))
    for problem in problems[:20]:
        print(problem)
    print(f"problems {len(problems)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
