"""Faults at random in batch mode (`Engine.run_many`), over many chunks of bench cases.

Run as a script (tests/test_run_many.py runs it in a subprocess, since a fault could crash
the process): `python -m tests.fault_sweep_many SEED CHUNKS`. The faults are
tests/fault_sweep.py's (a KeyboardInterrupt or a RuntimeError before or after one durable_rules
call or a firing's handler, or a reported hash collision), one for a quarter of the calls, at
any call of the chunk, its cases' reruns alone included; chunks of 1 to 40 cases with
`CASES_PER_BATCH` 7, so a call holds several chunks; few sessions may be left before the
program is registered afresh.

A call either raises (a KeyboardInterrupt: no case of it is decided) or returns, for each case,
exactly what the case derives alone or an exception, and an exception only when the fault
fired; nothing may hang or crash. Prints what happened, then `problems N`; exits 1 when N > 0.
"""

from __future__ import annotations

import collections
import faulthandler
import random
import sys

import durable_rules_engine as dre

from evaluator.engine.durable import Engine, Trace
from tests import fault_sweep
from tests.test_sessions import _derived


def main(argv: list[str]) -> int:
    seed, count = int(argv[0]), int(argv[1])
    faulthandler.dump_traceback_later(240, exit=True)
    runs = fault_sweep._runs("bench", seed)
    engine = Engine.get()
    alone = [_derived(engine.run(program, facts, trace=True)) for program, facts in runs]
    Engine.LEFT_SESSIONS_LIMIT = 40
    Engine.CASES_PER_BATCH = 7
    for name in fault_sweep.CALLS:
        setattr(dre, name, fault_sweep._wrap(name))
    fault_sweep._wrap_handlers()
    program = runs[0][0]
    seen: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    rng = random.Random(seed)
    for _ in range(count):
        indices = [rng.randrange(len(runs)) for _ in range(rng.randint(1, 40))]
        fault = fault_sweep.Fault(rng) if rng.random() < 0.25 else None
        fault_sweep._local.fault = fault
        label = fault_sweep._label(fault)
        try:
            got = engine.run_many(program, [runs[i][1] for i in indices])
        except KeyboardInterrupt:
            seen[f"call raised KeyboardInterrupt ({fault_sweep._label(fault)})"] += 1
            if fault is None or not fault.fired:
                problems.append("a call raised with no fault")
            continue
        finally:
            fault_sweep._local.fault = None
        label = fault_sweep._label(fault)
        for index, result in zip(indices, got, strict=True):
            if isinstance(result, Trace):
                seen[f"decided ({label})"] += 1
                if _derived(result) != alone[index]:
                    problems.append(f"case {index} derived what it does not alone ({label})")
            else:
                seen[f"failed {type(result).__name__} ({label})"] += 1
                if fault is None or not fault.fired:
                    problems.append(f"case {index} failed with no fault: {result!r}")
    return fault_sweep.report(engine, seen, problems)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
