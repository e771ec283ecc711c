"""Tests for evaluator.compile.comparisons: the lowering table, run through the engine.

Each comparison leaf is lowered to three engine tests (true, false, unknown). They must be
mutually exclusive (two would derive two values for one node: the engine raises EngineError)
and exhaustive (none would leave the clause without a status). Small policies are compiled once
per module and run on facts written by hand; a pure-Python Kleene oracle says what each clause
must end as.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import Program
from evaluator.engine.durable import Engine
from evaluator.language.conditions import Truth
from evaluator.language.policies import load_policy
from evaluator.vocab.levels import parse_level

HERE = Path(__file__).parent
T, U, F = Truth.TRUE, Truth.UNKNOWN, Truth.FALSE
STATUS_TRUTH = {"met": T, "not_met": F, "not_documented": U}
THRESHOLD_OPS = ("at_least", "more_than", "at_most", "less_than")
PASSES: dict[str, Callable[[float, float], bool]] = {
    "at_least": operator.ge,
    "more_than": operator.gt,
    "at_most": operator.le,
    "less_than": operator.lt,
}
BELOW_WORDS = ("mild", "very subtle")
OTHER_WORDS = ("moderate", "severe", "straightening")
BASE_FACTS = [
    {"t": "case", "id": "case:1", "case_id": "c1"},
    {"t": "request", "id": "request:1"},
]


# --- the policy and the runner ------------------------------------------------------------------


def clause_id(*parts: str) -> str:
    return "-".join(p.upper().replace("_", "") for p in ("t", *parts))


def threshold(op: str, value: float, unit: str) -> dict[str, Any]:
    return {op: {"value": value, "unit": unit}}


def leaves() -> dict[str, dict[str, Any]]:
    """Every leaf under test, by the clause id that requires it."""
    out: dict[str, dict[str, Any]] = {}
    for op in THRESHOLD_OPS:
        # A point measurement with qualitative words (ng/mL), an integer count, a difference.
        out[clause_id("cot", op)] = {
            "fact": "nicotine",
            "field": "cotinine",
            **threshold(op, 10, "ng/mL"),
        }
        out[clause_id("visits", op)] = {
            "fact": "physical_therapy",
            "field": "visits",
            **threshold(op, 12, "count"),
        }
        out[clause_id("pill", op)] = {
            "fact": "alignment",
            "field": "pelvic_incidence",
            "minus": "lumbar_lordosis",
            **threshold(op, 20, "deg"),
        }
        # Intervals: a duration in days (from weeks), month and day distances from a date.
        out[clause_id("dur", op)] = {
            "fact": "physical_therapy",
            "field": "duration",
            **threshold(op, 6, "weeks"),
        }
        out[clause_id("months", op)] = {
            "fact": "conservative_care",
            "field": "start",
            "measure": "time_before_request",
            **threshold(op, 3, "months"),
        }
        out[clause_id("days", op)] = {
            "fact": "conservative_care",
            "field": "start",
            "measure": "time_before_request",
            **threshold(op, 42, "days"),
        }
        # Several facts of a `many` type: OR over them, if_absent when there are none.
        out[clause_id("trans", op)] = {
            "fact": "dynamic_study",
            "field": "translation",
            **threshold(op, 3, "mm"),
        }
        out[clause_id("transf", op)] = {
            "fact": "dynamic_study",
            "field": "translation",
            "if_absent": "false",
            **threshold(op, 3, "mm"),
        }
    out[clause_id("cot", "documented")] = {
        "fact": "nicotine",
        "field": "cotinine",
        "documented": True,
    }
    out[clause_id("start", "documented")] = {
        "fact": "conservative_care",
        "field": "start",
        "documented": True,
    }
    out[clause_id("status", "equals")] = {"fact": "nicotine", "field": "status", "equals": "never"}
    out[clause_id("status", "not_equals")] = {
        "fact": "nicotine",
        "field": "status",
        "not_equals": "current",
    }
    out[clause_id("status", "one_of")] = {
        "fact": "nicotine",
        "field": "status",
        "one_of": ["never", "former"],
    }
    out[clause_id("status", "not_one_of")] = {
        "fact": "nicotine",
        "field": "status",
        "not_one_of": ["never", "former"],
    }
    for op in ("above", "at_or_above", "below", "at_or_below"):
        out[clause_id("upper", op)] = {"fact": "line", "field": "upper", op: "L3"}
    return out


LEAVES = leaves()


def policy_document(requires: dict[str, dict[str, Any]]) -> dict[str, Any]:
    clauses = [
        {"id": cid, "title": cid, "requires": cond, "cites": [1], "recommendation": "r"}
        for cid, cond in requires.items()
    ]
    return {
        "id": "comparisons",
        "version": "1",
        "title": "comparisons",
        "status": "active",
        "effective": {"from": "2025-01-01"},
        "procedures": [{"procedure": "lumbar_fusion"}],
        "settings": {"qualitative_words": {"below_threshold": list(BELOW_WORDS)}},
        "references": [{"id": 1, "citation": "c"}],
        "sections": [{"id": "s", "title": "S", "clauses": clauses}],
    }


class Compiled:
    """A compiled policy whose repr is short: Hypothesis prints a failing example's arguments
    (fixtures included), and a Program prints as hundreds of kilobytes. (Not a dataclass:
    Hypothesis prints a dataclass field by field, whatever its __repr__.)"""

    def __init__(self, program: Program) -> None:
        self.program = program

    def __repr__(self) -> str:
        return f"Compiled({self.program.name})"


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    # JSON is YAML: the policy file is written as JSON under the library layout.
    path = tmp_path_factory.mktemp("lib") / "policies" / "comparisons" / "1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(policy_document(LEAVES), indent=1))
    compiled = compile_policy(load_policy(path))
    Engine.get().prepare(compiled)
    return Compiled(compiled)


def statuses(compiled: Compiled, facts: list[dict[str, Any]]) -> dict[str, Truth]:
    trace = Engine.get().run(compiled.program, [*BASE_FACTS, *facts])
    missing = sorted(set(LEAVES) - set(trace.statuses))
    assert not missing, f"no outcome matched (not exhaustive): {missing}"
    return {cid: STATUS_TRUTH[e.fact["status"]] for cid, e in trace.statuses.items()}


# --- the oracle ---------------------------------------------------------------------------------


def point(op: str, value: float | None, limit: float) -> Truth:
    if value is None:
        return U
    return T if PASSES[op](value, limit) else F


def interval(op: str, bounds: tuple[int, int] | None, limit: float) -> Truth:
    """True iff both bounds pass, false iff both fail, else unknown; missing is unknown."""
    if bounds is None:
        return U
    passed = [PASSES[op](b, limit) for b in bounds]
    return T if all(passed) else F if not any(passed) else U


def measured(
    op: str, value: float | None, word: str | None, limit: float, qualitative: bool = True
) -> Truth:
    """A measurement stated as a number, or as a word in place of the number (which decides
    only for a size measurement marked x-qualitative, e.g. a translation in mm)."""
    if value is not None:
        return point(op, value, limit)
    if qualitative and word in BELOW_WORDS:
        return T if op in ("at_most", "less_than") else F
    return U


def kleene_or(values: list[Truth], if_absent: Truth = U) -> Truth:
    return max(values) if values else if_absent


def equality(op: str, value: str | None) -> Truth:
    if value is None:
        return U
    inside = value in ("never", "former") if "one_of" in op else value == "never"
    if op == "not_equals":
        inside = value == "current"
    return T if inside != op.startswith("not_") else F


def level(op: str, index: int | None) -> Truth:
    # Spinal order runs cranial to caudal: "above" means a smaller index.
    if index is None:
        return U
    limit = parse_level("L3").index
    test = {
        "above": operator.lt,
        "at_or_above": operator.le,
        "below": operator.gt,
        "at_or_below": operator.ge,
    }[op]
    return T if test(index, limit) else F


# --- strategies ---------------------------------------------------------------------------------


# Numbers near each threshold, on and off the edge, with at most two decimals (the engine keeps
# four: ruleset.number).
def near(limit: int) -> st.SearchStrategy[float]:
    return st.one_of(
        st.integers(limit - 3, limit + 3),
        st.integers((limit - 3) * 100, (limit + 3) * 100).map(lambda n: n / 100),
    )


def bounds(limit: int, spread: int = 4) -> st.SearchStrategy[tuple[int, int] | None]:
    pair = st.tuples(st.integers(limit - spread, limit + spread), st.integers(0, spread))
    return st.none() | pair.map(lambda p: (p[0], p[0] + p[1]))


words = st.sampled_from((*BELOW_WORDS, *OTHER_WORDS))


def stated(limit: int) -> st.SearchStrategy[tuple[float | None, str | None]]:
    """A measurement: a number, a word in its place, or nothing."""
    nothing = st.none()
    return st.tuples(near(limit), nothing) | st.tuples(nothing, words) | st.tuples(nothing, nothing)


def rounded_up(months: tuple[int, int] | None, up: tuple[bool, bool]) -> tuple[int, int] | None:
    """Whole months rounded up: each bound the same (an exact month) or one more."""
    if months is None:
        return None
    lo, hi = months[0] + up[0], months[1] + up[1]
    return (min(lo, hi), max(lo, hi))


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    months = draw(bounds(3))
    return {
        "nicotine": draw(st.booleans()),
        "cotinine": draw(stated(10)),
        "status": draw(st.none() | st.sampled_from(("never", "former", "current"))),
        "pt": draw(st.booleans()),
        "visits": draw(st.none() | st.integers(9, 15)),
        "duration": draw(bounds(42, 10)),
        "care": draw(st.booleans()),
        "months": months,
        "months_up": rounded_up(months, draw(st.tuples(st.booleans(), st.booleans()))),
        "days": draw(bounds(42, 10)),
        "alignment": draw(st.booleans()),
        "pi": draw(st.none() | near(50)),
        "ll": draw(st.none() | near(30)),
        "studies": draw(st.lists(stated(3), max_size=3)),
        "upper": draw(st.none() | st.integers(15, 26)),
        "line": draw(st.booleans()),
    }


def facts_of(s: dict[str, Any]) -> list[dict[str, Any]]:
    def fact(kind: str, n: int = 1, **fields: Any) -> dict[str, Any]:
        return {
            "t": kind,
            "id": f"{kind}:{n}",
            **{k: v for k, v in fields.items() if v is not None},
        }

    def spread(name: str, pair: tuple[int, int] | None) -> dict[str, int]:
        return {} if pair is None else {f"{name}_lo": pair[0], f"{name}_hi": pair[1]}

    out = []
    if s["nicotine"]:
        number, word = s["cotinine"]
        out.append(fact("nicotine", cotinine=number, cotinine_word=word, status=s["status"]))
    if s["pt"]:
        out.append(
            fact("physical_therapy", visits=s["visits"], **spread("duration", s["duration"]))
        )
    if s["care"]:
        fields = {
            **spread("start", s["months"] and (0, 0)),  # the date itself; only its presence counts
            **spread("start_months_before_request", s["months"]),
            **spread("start_months_up_before_request", s["months_up"]),
            **spread("start_days_before_request", s["days"]),
        }
        if s["months"] is None:
            fields = {}  # an undocumented date has none of its fields
        out.append(fact("conservative_care", **fields))
    if s["alignment"]:
        out.append(fact("alignment", pelvic_incidence=s["pi"], lumbar_lordosis=s["ll"]))
    for i, (number, word) in enumerate(s["studies"], start=1):
        out.append(fact("dynamic_study", i, translation=number, translation_word=word))
    if s["line"]:
        out.append(fact("line", upper_index=s["upper"], upper=s["upper"] and "L1"))
    return out


def oracle(s: dict[str, Any]) -> dict[str, Truth]:
    """What every clause must end as, computed without the engine."""
    nic = s["nicotine"]
    number, word = s["cotinine"] if nic else (None, None)
    care = s["care"] and s["months"] is not None
    out: dict[str, Truth] = {}
    for op in THRESHOLD_OPS:
        # cotinine is no size: a word in its place decides nothing
        out[clause_id("cot", op)] = measured(op, number, word, 10, qualitative=False)
        out[clause_id("visits", op)] = point(op, s["visits"] if s["pt"] else None, 12)
        pi, ll = (s["pi"], s["ll"]) if s["alignment"] else (None, None)
        out[clause_id("pill", op)] = U if pi is None or ll is None else point(op, pi - ll, 20)
        out[clause_id("dur", op)] = interval(op, s["duration"] if s["pt"] else None, 42)
        # months rounded down decide at_least/less_than, rounded up at_most/more_than
        months = s["months"] if op in ("at_least", "less_than") else s["months_up"]
        out[clause_id("months", op)] = interval(op, months if care else None, 3)
        out[clause_id("days", op)] = interval(op, s["days"] if care else None, 42)
        per_study = [measured(op, n, w, 3) for n, w in s["studies"]]
        out[clause_id("trans", op)] = kleene_or(per_study)
        out[clause_id("transf", op)] = kleene_or(per_study, F)
    out[clause_id("cot", "documented")] = T if number is not None else U
    out[clause_id("start", "documented")] = T if care else U
    for op in ("equals", "not_equals", "one_of", "not_one_of"):
        out[clause_id("status", op)] = equality(op, s["status"] if nic else None)
    for op in ("above", "at_or_above", "below", "at_or_below"):
        out[clause_id("upper", op)] = level(op, s["upper"] if s["line"] else None)
    return out


# --- examples at the edges ----------------------------------------------------------------------

NOTHING: dict[str, Any] = {
    "nicotine": False,
    "cotinine": (None, None),
    "status": None,
    "pt": False,
    "visits": None,
    "duration": None,
    "care": False,
    "months": None,
    "months_up": None,
    "days": None,
    "alignment": False,
    "pi": None,
    "ll": None,
    "studies": [],
    "upper": None,
    "line": False,
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**NOTHING, **changes}


POINT_EDGES = [
    ("at_least", 10, T),
    ("at_least", 9.99, F),
    ("more_than", 10, F),
    ("more_than", 10.01, T),
    ("at_most", 10, T),
    ("at_most", 10.01, F),
    ("less_than", 10, F),
    ("less_than", 9.99, T),
]
INTERVAL_EDGES = [
    ("at_least", (3, 3), T),
    ("at_least", (3, 4), T),
    ("at_least", (2, 3), U),
    ("at_least", (1, 2), F),
    ("more_than", (3, 4), U),
    ("more_than", (4, 5), T),
    ("at_most", (2, 3), T),
    ("at_most", (3, 4), U),
    ("at_most", (4, 4), F),
    ("less_than", (2, 3), U),
    ("less_than", (1, 2), T),
    ("less_than", (3, 3), F),
]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    POINT_EDGES,
    ids=[f"{op}-{value}-{truth.name.lower()}" for op, value, truth in POINT_EDGES],
)
def test_point_edges(program, op, value, expected):
    found = statuses(program, facts_of(with_(nicotine=True, cotinine=(value, None))))
    assert found[clause_id("cot", op)] is expected


@pytest.mark.parametrize(
    ("op", "bounds", "expected"),
    INTERVAL_EDGES,
    ids=[f"{op}-{lo}..{hi}-{truth.name.lower()}" for op, (lo, hi), truth in INTERVAL_EDGES],
)
def test_interval_edges(program, op, bounds, expected):
    scenario = with_(care=True, months=bounds, months_up=bounds, days=(90, 90))
    assert statuses(program, facts_of(scenario))[clause_id("months", op)] is expected


def test_months_round_down_for_at_least_and_up_for_at_most(program):
    # Three months and a day: three whole months have passed (rounded down), but it took four
    # to reach the request (rounded up), so "at most 3 months" is false.
    found = statuses(program, facts_of(with_(care=True, months=(3, 3), months_up=(4, 4))))
    assert {op: found[clause_id("months", op)] for op in THRESHOLD_OPS} == {
        "at_least": T,
        "less_than": F,
        "at_most": F,
        "more_than": T,
    }


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("mild", {"at_least": F, "more_than": F, "at_most": T, "less_than": T}),
        ("very subtle", {"at_least": F, "more_than": F, "at_most": T, "less_than": T}),
        ("severe", dict.fromkeys(THRESHOLD_OPS, U)),
        (None, dict.fromkeys(THRESHOLD_OPS, U)),
    ],
    ids=["mild", "very-subtle", "severe", "no-word"],
)
def test_word_in_place_of_a_number(program, word, expected):
    # translation (mm) is a size measurement (x-qualitative): the policy's words decide it.
    found = statuses(program, facts_of(with_(studies=[(None, word)])))
    assert {op: found[clause_id("trans", op)] for op in THRESHOLD_OPS} == expected


@pytest.mark.parametrize("word", ["mild", "very subtle", "severe"], ids=str)
def test_a_word_for_a_measurement_that_is_no_size_decides_nothing(program, word):
    # "mild" strength or cotinine says nothing about the number: no word may decide them.
    found = statuses(program, facts_of(with_(nicotine=True, cotinine=(None, word))))
    assert {op: found[clause_id("cot", op)] for op in THRESHOLD_OPS} == dict.fromkeys(
        THRESHOLD_OPS, U
    )


@pytest.mark.parametrize("op", THRESHOLD_OPS, ids=str)
def test_missing_fact_and_missing_field_are_unknown(program, op):
    for scenario in (NOTHING, with_(nicotine=True, pt=True, care=True, alignment=True)):
        found = statuses(program, facts_of(scenario))
        for leaf in ("cot", "visits", "pill", "dur", "months", "days", "trans"):
            assert found[clause_id(leaf, op)] is U, leaf
        assert found[clause_id("transf", op)] is F


def test_not_equals_on_a_missing_field_is_unknown_not_true(program):
    # The engine's `$neq` is false on a missing attribute (durable-rules.md trap 6).
    found = statuses(program, facts_of(with_(nicotine=True)))
    assert found[clause_id("status", "not_equals")] is U
    assert found[clause_id("status", "not_one_of")] is U


# --- the property -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios())
@example(scenario=NOTHING)
@example(scenario=with_(nicotine=True, cotinine=(10, "mild"), status="former"))
def test_outcomes_are_exclusive_exhaustive_and_match_the_oracle(program, scenario):
    found = statuses(program, facts_of(scenario))
    expected = oracle(scenario)
    wrong = {c: (found[c].name, expected[c].name) for c in expected if found[c] is not expected[c]}
    assert not wrong, f"clause: (engine, oracle) for {scenario}"
