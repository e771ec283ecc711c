"""The engine's cost in service lines must grow linearly (issue 7), counted, never timed.

Two counts on the founding case's three kinds of line, at 5 and at 40 lines (the schema allows
50), through the per-line review of every policy. A case requests each motion segment (and each
SI joint) once per procedure kind (`duplicate_segment`), so the many lines are its decompression
and fusion lines in turn, each on a segment of its own, after its SI-joint line once per side:

- rule firings (every one a round trip through Python);
- the facts durable_rules walks in unhashed chains. A rule pattern after the first whose test
  has no equality join keeps every fact it receives in one chain, and the engine compares each
  new fact with all earlier ones there (events.c `handleBetaMessage`): n facts cost n^2/2. The
  count below reads the rendered ruleset and every fact the engine was given or derived, and
  adds n^2/2 per such positive pattern; it must stay below the number of facts. With the stage
  marker first, each rule that binds a fused segment left every segment of every line in such a
  chain: the count grew with the square of the lines (and 400 lines took 15 s). Negated
  patterns (an `every` over no fused segment) cannot lead a rule and are left out of this
  count; they are a few dozen chains.

Wall-clock numbers are in benchmarks/lines.py.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.compile.program import Program
from evaluator.compile.ruleset import render
from evaluator.engine import durable as engine
from evaluator.engine.durable import Trace
from evaluator.language.policies import Library
from evaluator.vocab.levels import LEVELS

FOUNDING = Path(__file__).parent.parent / "examples" / "cases" / "t12-s2-fusion.json"
SMALL, LARGE = 5, 40
# Linear growth from SMALL to LARGE lines is a factor of 8 at most (a fixed part per case makes
# it less); the square of the lines would be 64.
LINEAR = LARGE / SMALL
# Per rule: 4 times the decompression and fusion lines give at most 4 times the firings (the
# square: 16); the two SI-joint lines (one per joint, the most a case holds) stay two.
GROWTH = 4
EVEN_SMALL = 2 + 2 * 2
EVEN_LARGE = 2 + 2 * 2 * GROWTH
SIDES = ("right", "left")
# The motion segments, nearest L4-L5 first: the lines of one kind take one each.
_ALL = [f"{upper}-{lower}" for upper, lower in itertools.pairwise(LEVELS)]
SEGMENTS = sorted(_ALL, key=lambda s: abs(_ALL.index(s) - _ALL.index("L4-L5")))


def lines_case(count: int) -> dict[str, Any]:
    """The founding case with `count` service lines: its SI-joint line on each side, then its
    decompression and fusion lines in turn, each on a motion segment of its own."""
    data: dict[str, Any] = json.loads(FOUNDING.read_text())
    decompression, fusion, joint = data["request"]["lines"]
    lines = [{**joint, "id": f"si-{side}", "side": side, "same_day": False} for side in SIDES]
    for i in range(count - len(SIDES)):
        template, key = (decompression, "decompression") if i % 2 == 0 else (fusion, "fusion")
        line = {**copy.deepcopy(template), "id": f"line-{i}", key: SEGMENTS[i // 2]}
        lines.append(line)
    data["request"]["lines"] = lines[:count]
    data["case_id"] = f"lines-{count}"
    return data


Run = tuple[Program, list[dict[str, Any]], Trace]


def review(count: int, monkeypatch: pytest.MonkeyPatch) -> list[Run]:
    """Review a case of `count` lines; return each engine run's program, facts and trace."""
    runs: list[Run] = []
    original = engine.Engine.run

    def run(self: engine.Engine, program: Program, facts: Any, *, trace: bool = False) -> Trace:
        given = [dict(f) for f in facts]
        del trace  # always traced: the tests count firings per rule
        result = original(self, program, given, trace=True)
        runs.append((program, given, result))
        return result

    with monkeypatch.context() as patch:
        patch.setattr(engine.Engine, "run", run)
        api.review_case(case_from_data(lines_case(count), f"lines-{count}"), Library())
    return runs


def _derived(trace: Trace) -> Iterator[Mapping[str, Any]]:
    yield from (e.fact for e in trace.values.values())
    yield from (e.fact for e in trace.candidates)
    yield from (e.fact for e in trace.derived)
    yield from (e.fact for e in trace.statuses.values())


def _join(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and not next(iter(value)).startswith("$")


def _hashed(expr: Mapping[str, Any]) -> bool:
    """True when the expression has an equality join before any `$or` (what durable_rules
    hashes partial matches on, events.c `getFrameHash`)."""
    parts = expr.get("$and", [expr])
    for part in parts:
        if "$or" in part:
            return False
        key, value = next(iter(part.items()))
        if not key.startswith("$") and _join(value):
            return True
    return False


def _matches(expr: Mapping[str, Any], fact: Mapping[str, Any]) -> bool:
    """The constant tests of a rendered expression on one fact (joins count as passing)."""
    key, value = next(iter(expr.items()))
    if key == "$and":
        return all(_matches(e, fact) for e in value)
    if key == "$or":
        return any(_matches(e, fact) for e in value)
    if key in ("$ex", "$nex"):
        (field,) = value
        return (field in fact) == (key == "$ex")
    if key.startswith("$"):
        return True  # a comparison: counting it as passing can only over-count
    if _join(value):
        return True
    return bool(fact.get(key) == value)


def unhashed_work(runs: list[Run]) -> tuple[int, int]:
    """Return the sum of n^2/2 over every positive rule pattern after the first without an
    equality join (n being the facts that pass its tests), and the number of facts."""
    work = seen = 0
    for program, given, trace in runs:
        facts = [*given, *_derived(trace)]
        facts += [{"t": "stage", "s": s} for s in range(1, program.stages + 1)]
        seen += len(facts)
        for rule in render(program).values():
            for pattern in rule["all"][1:]:
                ((alias, expr),) = pattern.items()
                if alias.endswith("$not") or _hashed(expr):
                    continue
                n = sum(1 for f in facts if _matches(expr, f))
                work += n * n // 2
    return work, seen


@pytest.fixture(scope="module")
def runs() -> dict[int, list[Run]]:
    with pytest.MonkeyPatch.context() as patch:
        return {count: review(count, patch) for count in (SMALL, LARGE)}


def test_firings_grow_linearly_with_lines(runs: dict[int, list[Run]]) -> None:
    firings = {n: sum(trace.firings for _, _, trace in r) for n, r in runs.items()}
    assert firings[LARGE] <= LINEAR * firings[SMALL], firings


@pytest.fixture(scope="module")
def even_runs() -> dict[int, list[Run]]:
    # the decompression and fusion lines grow by the same factor, the SI-joint lines stay two
    with pytest.MonkeyPatch.context() as patch:
        return {count: review(count, patch) for count in (EVEN_SMALL, EVEN_LARGE)}


def test_no_rule_fires_per_pair_of_lines(even_runs: dict[int, list[Run]]) -> None:
    """The total above hides one rule among hundreds: folded, lumbar-decompression's imaging
    clause was one rule over a decompressed segment, a line and a study, and fired once per
    segment and line (245 firings at 20 lines, 980 at 40; 111,329 firings in all at 400 lines
    in benchmarks/lines.py). Each rule's own firings must grow at most linearly.

    Rules are compared run by run (a policy's first run, its second...): lines on segments far
    from the documented disease are not certified as requested, and the narrower alternative
    then reviewed is a run the small case does not make."""
    per_rule: dict[int, dict[tuple[str, int, str], int]] = {}
    for count, run in even_runs.items():
        tally: dict[tuple[str, int, str], int] = {}
        made: dict[str, int] = {}
        for program, _, trace in run:
            policy = program.name.split("#")[0]
            made[policy] = made.get(policy, 0) + 1
            for firing in trace.log or ():
                key = (policy, made[policy], firing.rule)
                tally[key] = tally.get(key, 0) + 1
        per_rule[count] = tally
    grown = {
        rule: (n, per_rule[EVEN_LARGE].get(rule, 0))
        for rule, n in per_rule[EVEN_SMALL].items()
        if per_rule[EVEN_LARGE].get(rule, 0) > GROWTH * n
    }
    assert not grown, grown


def test_no_rule_walks_every_line_for_every_line(runs: dict[int, list[Run]]) -> None:
    """The chains walked cost less than one step per fact the engine saw (linear). Before the
    first fact pattern led each rule: 838,236 steps at 40 lines (6,328 facts), 19,090 at 5
    (1,368 facts); now 504 and 0. Folded rules (evaluator/compile/folding.py) brought a walk back,
    39,314 steps at 40 lines (4,906 facts), until each led with its per-line pattern: now
    1,374 (5,296 facts) and 78 at 5 (1,156 facts); on lines of distinct segments (each
    segment once per procedure kind), 882 (1,922 facts) and 98 at 5 (497 facts)."""
    for count, run in runs.items():
        work, facts = unhashed_work(run)
        assert work <= facts, (count, work, facts)


def test_the_count_sees_an_unjoined_pattern_after_the_marker() -> None:
    """The count itself: a positive pattern with no join after the first is counted, a joined
    one and the first pattern are not."""
    patterns: list[dict[str, Any]] = [
        {"f": {"$and": [{"t": "seg"}]}},
        {"stage": {"$and": [{"t": "stage"}, {"s": 1}]}},
        {"g": {"$and": [{"t": "seg"}]}},
        {"h": {"$and": [{"t": "seg"}, {"key": {"f": "key"}}]}},
    ]
    facts = [{"t": "seg", "id": str(i)} for i in range(10)]
    counted = [
        (alias, sum(1 for f in facts if _matches(expr, f)))
        for pattern in patterns[1:]
        for alias, expr in pattern.items()
        if not _hashed(expr)
    ]
    assert counted == [("stage", 0), ("g", 10)]
