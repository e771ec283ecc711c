"""An engine error or a Ctrl-C at any point of a session's life never crashes the process.

durable_rules' `delete_state` aborts or segfaults on a session that has not received its facts
and every stage (durable-rules.md trap 20), so such a session is left in place. Each fault is
injected in a fresh subprocess, in the process's first session, so a crash shows as exit code
134/139 rather than a dead test runner; the process then evaluates the case again to show the
engine still works.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CASE = ROOT / "examples" / "cases" / "t12-s2-fusion.json"

_SCRIPT = textwrap.dedent(
    """
    import sys
    from evaluator import api
    from evaluator.engine import durable as engine
    from evaluator.cli.main import main
    from evaluator.errors import EngineError

    point, arg, kind, case = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    Session = engine._Session

    def fault():
        if kind == "interrupt":
            raise KeyboardInterrupt
        raise EngineError.single("engine_failed", "injected")

    def wrap(name, when):
        original = getattr(Session, name)
        calls = [0]

        def patched(self, *args):
            calls[0] += 1
            if when(calls[0], args, before=True):
                fault()
            result = original(self, *args)
            if when(calls[0], args, before=False):
                fault()
            return result

        setattr(Session, name, patched)
        return lambda: setattr(Session, name, original)

    def wrap_firings(when):
        # every firing runs its rule's handler from the program's plans (engine `_plans`)
        original = engine._plans
        calls = [0]

        def wrapped(handler):
            def fire(session, matched):
                calls[0] += 1
                if when(calls[0]):
                    fault()
                handler(session, matched)

            return fire

        def plans(program):
            found = original(program)
            stages = {
                stage: {name: wrapped(handler) for name, handler in handlers.items()}
                for stage, handlers in found.stages.items()
            }
            return engine._Plans(found.rules, stages)

        engine._plans = plans
        return lambda: setattr(engine, "_plans", original)

    undo = {
        "none": lambda: (lambda: None),
        "before_facts": lambda: wrap("assert_batch", lambda n, a, before: n == 1 and before),
        "after_facts": lambda: wrap("assert_batch", lambda n, a, before: n == 1 and not before),
        "before_stage": lambda: wrap("assert_stage", lambda n, a, before: a[0] == arg and before),
        "after_stage": lambda: wrap(
            "assert_stage", lambda n, a, before: a[0] == arg and not before
        ),
        "action": lambda: wrap_firings(lambda n: n == arg),
    }[point]()
    if kind == "cli":
        main(["evaluate", case])  # exits with the CLI's code
    try:
        api.review_path(case)
    except (EngineError, KeyboardInterrupt) as error:
        print("raised", type(error).__name__)
    undo()
    print(",".join(line.determination for line in api.review_path(case).lines))
    """
)


def _run(point: str, arg: int, kind: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, point, str(arg), kind, str(CASE)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def undisturbed() -> str:
    result = _run("none", 0, "error")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


POINTS = [
    ("before_facts", 0),
    ("after_facts", 0),
    ("before_stage", 1),
    ("after_stage", 1),
    ("before_stage", 2),
    ("after_stage", 5),
    ("action", 1),
    ("action", 40),
]


@pytest.mark.parametrize("kind", ["error", "interrupt"])
@pytest.mark.parametrize(("point", "arg"), POINTS, ids=[f"{p}-{a}" for p, a in POINTS])
def test_a_fault_in_a_session_never_crashes(undisturbed, point, arg, kind):
    result = _run(point, arg, kind)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = "KeyboardInterrupt" if kind == "interrupt" else "EngineError"
    first, *_, last = result.stdout.strip().splitlines()
    assert first == f"raised {expected}"
    # the engine still decides the next case in the same process, as it would have
    assert last == undisturbed


@pytest.mark.parametrize(("point", "arg"), [("after_facts", 0), ("before_stage", 1)])
def test_an_engine_error_before_stage_one_exits_4(point, arg):
    result = _run(point, arg, "cli")
    assert result.returncode == 4, (result.returncode, result.stderr[-2000:])


_MANY_FAULTS = textwrap.dedent(
    """
    import sys
    from evaluator import api
    from evaluator.engine import durable as engine
    from evaluator.errors import EngineError

    case, count = sys.argv[1], int(sys.argv[2])
    Session = engine._Session
    original = Session.assert_stage

    def failing(self, stage):
        raise EngineError.single("engine_failed", "injected")

    Session.assert_stage = failing
    failed = 0
    for _ in range(count):
        try:
            api.review_path(case)
        except EngineError:
            failed += 1
    Session.assert_stage = original
    print(failed, ",".join(line.determination for line in api.review_path(case).lines))
    """
)


def test_more_engine_errors_than_the_engine_has_sessions_do_not_crash_the_process():
    # Every failed session is left in place (above), and durable_rules holds at most 1,024
    # sessions per ruleset (trap 8: the 1,025th raises MemoryError and the process crashes).
    # The engine must register a fresh copy of the ruleset before the old one fills up.
    done = subprocess.run(
        [sys.executable, "-c", _MANY_FAULTS, str(CASE), "1100"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    failed, determinations = done.stdout.split()
    assert failed == "1100"
    baseline = subprocess.run(
        [sys.executable, "-c", _MANY_FAULTS, str(CASE), "0"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert determinations == baseline.stdout.split()[1]


@pytest.mark.parametrize(("suite", "cases"), [("bench", 1500), ("examples", 300)])
def test_random_faults_in_every_engine_call_never_change_another_case(suite, cases):
    """tests/fault_sweep.py: a seeded quarter of the cases get a Ctrl-C, an error or a reported
    collision in one durable_rules call or firing, sessions are released between some and
    registered afresh often; every case raises or derives what it derives alone, a faulted case
    never returns a trace it should not, and nothing hangs or crashes. Deterministic (one
    thread, seed 21)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.fault_sweep", suite, "21", str(cases)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert done.stdout.strip().endswith("problems 0")
    # the faults did fire: cases raised, and cases decided after others had raised
    assert "raised KeyboardInterrupt" in done.stdout
    assert "raised EngineError" in done.stdout
