"""Lowering of one comparison leaf to three engine tests: when it is true, false and unknown.

Behaviour as a table: each operator maps to one small function per field shape (a point value,
an interval with bounds, a spinal-level index). Negation is pushed down to the comparisons here,
because durable_rules has no unary NOT; a missing attribute makes every engine comparison false,
so "unknown" is always spelled out with Absent.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from evaluator.compile.program import Absent, AllOf, AnyTest, Cmp, CmpField, Eq, Ne, Present, Test
from evaluator.errors import Collector, Location
from evaluator.language.conditions import (
    TIME_ANCHORS,
    TIME_OPS,
    Compare,
    Op,
    Scalar,
    Threshold,
    Truth,
)
from evaluator.language.dictionary import FieldInfo
from evaluator.vocab.dates import MONTH_SLOTS
from evaluator.vocab.levels import LevelError, parse_level

NEVER = AnyTest(())  # matches nothing: the outcome is impossible for this operator


@dataclass(frozen=True, slots=True)
class Outcomes:
    """The three tests for one leaf; a fact matches at most one of them."""

    true: Test
    false: Test
    unknown: Test


# Each threshold operator: (test that passes, test that fails) on a point value.
_POINT = {
    Op.AT_LEAST: (">=", "<"),
    Op.MORE_THAN: (">", "<="),
    Op.AT_MOST: ("<=", ">"),
    Op.LESS_THAN: ("<", ">="),
}
# On an interval [lo, hi] a comparison is true when both bounds pass, false when both fail:
# (bound that must pass, bound that must fail) for each operator.
_INTERVAL_BOUND = {
    Op.AT_LEAST: ("lo", "hi"),
    Op.MORE_THAN: ("lo", "hi"),
    Op.AT_MOST: ("hi", "lo"),
    Op.LESS_THAN: ("hi", "lo"),
}
UNIT_DAYS = {"days": 1, "weeks": 7}
# Operators whose truth a below-threshold word decides: "very subtle" is below any threshold.
_BELOW_MEANS_TRUE = frozenset({Op.AT_MOST, Op.LESS_THAN})


def _point(op: Op, name: str, value: float) -> tuple[Test, Test]:
    yes, no = _POINT[op]
    return Cmp(yes, name, value), Cmp(no, name, value)


def _interval(op: Op, name: str, value: float) -> Outcomes:
    yes, no = _POINT[op]
    pass_bound, fail_bound = _INTERVAL_BOUND[op]
    true = Cmp(yes, f"{name}_{pass_bound}", value)
    false = Cmp(no, f"{name}_{fail_bound}", value)
    # Neither both-pass nor both-fail: the bounds straddle the threshold.
    unknown = AllOf(
        (Cmp(no, f"{name}_{pass_bound}", value), Cmp(yes, f"{name}_{fail_bound}", value))
    )
    return Outcomes(true, false, AnyTest((unknown, Absent(f"{name}_lo"))))


def lower(
    leaf: Compare,
    info: FieldInfo,
    words: tuple[str, ...],
    problems: Collector,
    locate: Callable[[str], Location],
    pair: bool = False,
) -> Outcomes:
    """Return the tests for a comparison on a field described by `info`; report misuse.

    `pair`: a time comparison whose `of` is another bound fact; its tests are then on the pair
    fact that lowering builds from the two (fields `a_*` and `b_*`).
    """
    op, name = leaf.op, leaf.field
    if op is Op.DOCUMENTED:
        present = f"{name}_lo" if info.kind in ("date", "duration") else name
        return Outcomes(Present(present), NEVER, Absent(present))
    if op in (Op.EQUALS, Op.NOT_EQUALS, Op.ONE_OF, Op.NOT_ONE_OF):
        return _equality(leaf, info, problems, locate)
    if op in (Op.ABOVE, Op.AT_OR_ABOVE, Op.BELOW, Op.AT_OR_BELOW):
        return _level(leaf, info, problems, locate)
    if op is Op.SAME_SIDE_AS:
        return _sides(leaf, info, problems, locate)
    if op in TIME_OPS:
        return _time(leaf, info, problems, locate, pair)
    assert isinstance(leaf.operand, Threshold)
    threshold = leaf.operand
    if info.kind == "date":
        if leaf.measure != "time_before_request":
            problems.add(
                "date_needs_measure",
                f"a threshold on the date `{name}` needs `measure: time_before_request`",
                locate(f"{leaf.pointer}/{leaf.op.value}"),
            )
            return Outcomes(NEVER, NEVER, NEVER)
        if threshold.unit == "months":
            # Whole months rounded down decide "at least" / "less than"; "at most" / "more than"
            # need them rounded up, or 12 months and a day would count as 12.
            months = "months" if op in (Op.AT_LEAST, Op.LESS_THAN) else "months_up"
            return _interval(op, f"{name}_{months}_before_request", threshold.value)
        if threshold.unit in UNIT_DAYS:
            days = threshold.value * UNIT_DAYS[threshold.unit]
            return _interval(op, f"{name}_days_before_request", days)
        problems.add(
            "unit_mismatch",
            _unit_message(leaf, threshold, "months, weeks or days"),
            locate(f"{leaf.pointer}/{leaf.op.value}"),
        )
        return Outcomes(NEVER, NEVER, NEVER)
    if info.kind == "duration":
        if threshold.unit not in UNIT_DAYS:
            problems.add(
                "unit_mismatch",
                _unit_message(leaf, threshold, "weeks or days"),
                locate(f"{leaf.pointer}/{leaf.op.value}"),
            )
            return Outcomes(NEVER, NEVER, NEVER)
        return _interval(op, name, threshold.value * UNIT_DAYS[threshold.unit])
    if info.kind not in ("measurement", "integer", "number"):
        problems.add(
            "not_numeric",
            f"`{name}` is a {info.kind} field, not a number",
            locate(f"{leaf.pointer}/{leaf.op.value}"),
        )
        return Outcomes(NEVER, NEVER, NEVER)
    if threshold.unit != info.unit:
        problems.add(
            "unit_mismatch",
            _unit_message(leaf, threshold, f"`{info.unit}`"),
            locate(f"{leaf.pointer}/{leaf.op.value}"),
        )
    if leaf.minus is not None:
        yes, no = _POINT[op]
        both = (Present(name), Present(leaf.minus))
        return Outcomes(
            AllOf((*both, CmpField(yes, name, leaf.minus, threshold.value))),
            AllOf((*both, CmpField(no, name, leaf.minus, threshold.value))),
            AnyTest((Absent(name), Absent(leaf.minus))),
        )
    true, false = _point(op, name, threshold.value)
    if info.kind != "measurement" or not words or not info.qualitative:
        return Outcomes(true, false, Absent(name))
    # A stated word in place of the number (domain convention 8).
    word = f"{name}_word"
    below = AllOf((Absent(name), AnyTest(tuple(Eq(word, w) for w in words))))
    not_below = AllOf(
        (Absent(name), AnyTest((Absent(word), AllOf(tuple(Ne(word, w) for w in words)))))
    )
    if op in _BELOW_MEANS_TRUE:
        return Outcomes(AnyTest((true, below)), false, not_below)
    return Outcomes(true, AnyTest((false, below)), not_below)


def _unit_message(leaf: Compare, threshold: Threshold, expected: str) -> str:
    return (
        f"threshold unit `{threshold.unit}` does not fit `{leaf.fact}.{leaf.field}` "
        f"(expected {expected})"
    )


def _equality(
    leaf: Compare, info: FieldInfo, problems: Collector, locate: Callable[[str], Location]
) -> Outcomes:
    name = leaf.field
    values: tuple[Scalar, ...] = (
        leaf.operand if isinstance(leaf.operand, tuple) else (leaf.operand,)  # type: ignore[assignment]
    )
    for value in values:
        check_value(leaf.fact, info, value, problems, locate(f"{leaf.pointer}/{leaf.op.value}"))
    same = AnyTest(tuple(Eq(name, v) for v in values)) if len(values) > 1 else Eq(name, values[0])
    differs = AllOf((Present(name), *(Ne(name, v) for v in values)))
    if leaf.op in (Op.EQUALS, Op.ONE_OF):
        return Outcomes(same, differs, Absent(name))
    return Outcomes(differs, same, Absent(name))


def _level(
    leaf: Compare, info: FieldInfo, problems: Collector, locate: Callable[[str], Location]
) -> Outcomes:
    if info.kind not in ("level", "segment"):
        problems.add(
            "not_a_level",
            f"`{leaf.fact}.{leaf.field}` is not a spinal-level field",
            locate(f"{leaf.pointer}/{leaf.op.value}"),
        )
        return Outcomes(NEVER, NEVER, NEVER)
    try:
        index = parse_level(str(leaf.operand)).index
    except LevelError as error:
        problems.add("unknown_level", str(error), locate(f"{leaf.pointer}/{leaf.op.value}"))
        return Outcomes(NEVER, NEVER, NEVER)
    # Spinal order runs cranial to caudal, so "above" means a smaller index.
    yes, no = {
        Op.ABOVE: ("<", ">="),
        Op.AT_OR_ABOVE: ("<=", ">"),
        Op.BELOW: (">", "<="),
        Op.AT_OR_BELOW: (">=", "<"),
    }[leaf.op]
    field = f"{leaf.field}_index"
    return Outcomes(Cmp(yes, field, index), Cmp(no, field, index), Absent(field))


def check_value(
    fact: str, info: FieldInfo, value: Scalar, problems: Collector, location: Location
) -> None:
    """Report a literal that can never equal the field (wrong type or not in its enum)."""
    if info.enum and value not in info.enum:
        allowed = ", ".join(f"`{v}`" for v in info.enum)
        close = difflib.get_close_matches(str(value), info.enum, n=1)
        problems.add(
            "unknown_value",
            f"`{value}` is not a value of `{fact}.{info.name}` (one of {allowed})",
            location,
            f"did you mean `{close[0]}`?" if close else None,
        )
    elif info.kind == "boolean" and not isinstance(value, bool):
        problems.add(
            "wrong_type", f"`{fact}.{info.name}` is true or false, not `{value}`", location
        )
    elif info.kind in ("string", "level", "segment") and not isinstance(value, str):
        problems.add("wrong_type", f"`{fact}.{info.name}` is text, not `{value}`", location)


# -- laterality ----------------------------------------------------------------------------------

SIDES = ("left", "right", "bilateral")
# (this fact's side, the other fact's side) pairs that share a side, bilateral counting as both,
# and those that do not. One rule per pair: plain equality tests, which durable_rules hashes
# (`$or` alternatives on a fact type that many rules test overflow its matching stack, error
# 303), and no pair is in two rules, so a rule fires once per binding.
_SAME_SIDE = tuple(
    ((mine,), (theirs,))
    for mine in SIDES
    for theirs in SIDES
    if "bilateral" in (mine, theirs) or mine == theirs
)
_OTHER_SIDE = ((("left",), ("right",)), (("right",), ("left",)))


def _one_of(field: str, values: tuple[str, ...]) -> Test:
    return (
        Eq(field, values[0]) if len(values) == 1 else AnyTest(tuple(Eq(field, v) for v in values))
    )


def side_pairs(field: str, other: str) -> dict[Truth, tuple[tuple[Test | None, Test | None], ...]]:
    """Return, per value of `same_side_as`, the (this fact, other fact) tests giving it (None:
    no test on that fact).

    Every test is on one fact, so the engine needs no join between the two facts beyond the
    bindings themselves (a non-equality join crashes durable_rules, trap 17).
    """
    return {
        Truth.TRUE: tuple((_one_of(field, a), _one_of(other, b)) for a, b in _SAME_SIDE),
        Truth.FALSE: tuple((_one_of(field, a), _one_of(other, b)) for a, b in _OTHER_SIDE),
        Truth.UNKNOWN: ((Absent(field), None), (None, Absent(other))),
    }


def is_side(info: FieldInfo) -> bool:
    """True for a field whose values are sides (left, right, bilateral)."""
    return bool(info.enum) and set(info.enum) <= set(SIDES)


def _sides(
    leaf: Compare, info: FieldInfo, problems: Collector, locate: Callable[[str], Location]
) -> Outcomes:
    if not is_side(info):
        problems.add(
            "not_a_side",
            f"`{leaf.fact}.{leaf.field}` is not a side field (left, right, bilateral)",
            locate(f"{leaf.pointer}/same_side_as"),
        )
        return Outcomes(NEVER, NEVER, NEVER)
    # The tests on this fact alone; lowering adds the other fact's (side_pairs).
    field = leaf.field
    return Outcomes(Present(field), AnyTest((Eq(field, "left"), Eq(field, "right"))), Absent(field))


# -- time between two dates ----------------------------------------------------------------------


def negate(test: Test) -> Test:
    """Return the test that holds exactly when `test` fails on facts with every field present."""
    flip = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
    if isinstance(test, Cmp):
        return Cmp(flip[test.op], test.field, test.value)
    if isinstance(test, CmpField):
        return CmpField(flip[test.op], test.field, test.other, test.offset)
    if isinstance(test, AllOf):
        return AnyTest(tuple(negate(t) for t in test.tests))
    if isinstance(test, AnyTest):
        return AllOf(tuple(negate(t) for t in test.tests))
    raise TypeError(f"cannot negate {test!r}")


@dataclass(frozen=True, slots=True)
class TimeFields:
    """Where the bounds of `second - first` live for one time comparison.

    `anchor` set: the first date's precomputed distances to the request or service date
    (facts.py), so every test is on the compared fact. Otherwise both dates' fields are on one
    fact (the compared fact itself, or the pair fact lowering builds from two bound facts) and
    the tests subtract one field from another within it.
    """

    first: str
    second: str
    anchor: str | None = None

    def days(self, bound: str, op: str, value: float) -> Test:
        # second - first over every day each may be: lowest (second_lo - first_hi), highest
        # (second_hi - first_lo).
        if self.anchor:
            return Cmp(op, f"{self.first}_days_before_{self.anchor}_{bound}", value)
        mine = "hi" if bound == "lo" else "lo"
        return CmpField(op, f"{self.second}_{bound}", f"{self.first}_{mine}", value)

    def whole_months(
        self, bound: str, op: str, value: float, backward: bool = False
    ) -> Test | None:
        """Whole calendar months from first to second (from second to first when backward)."""
        if self.anchor:
            if backward:
                return None
            return Cmp(op, f"{self.first}_months_before_{self.anchor}_{bound}", value)
        start, end = (self.second, self.first) if backward else (self.first, self.second)
        mine = "hi" if bound == "lo" else "lo"
        return CmpField(op, f"{end}_mend_{bound}", f"{start}_mday_{mine}", MONTH_SLOTS * value)

    def months_up(self, bound: str, op: str, value: float) -> Test:
        """Months from first to second rounded up (dates.months_to_reach)."""
        if self.anchor:
            return Cmp(op, f"{self.first}_months_up_before_{self.anchor}_{bound}", value)
        mine = "hi" if bound == "lo" else "lo"
        return CmpField(
            op, f"{self.second}_mday_{bound}", f"{self.first}_mday_{mine}", MONTH_SLOTS * value
        )

    def present(self) -> tuple[str, ...]:
        if self.anchor:
            return (f"{self.first}_days_before_{self.anchor}_lo",)
        return (f"{self.first}_lo", f"{self.second}_lo")


PAIR_FIRST, PAIR_SECOND = "a", "b"


def time_fields(leaf: Compare, pair: bool) -> TimeFields:
    """Return where a time comparison's bounds live: `pair` when `of` is another bound fact."""
    of = leaf.of or "request"
    if of in TIME_ANCHORS:
        return TimeFields(leaf.field, "", of)
    if pair:
        return TimeFields(PAIR_FIRST, PAIR_SECOND)
    return TimeFields(leaf.field, of.partition(".")[2])


def _time(
    leaf: Compare,
    info: FieldInfo,
    problems: Collector,
    locate: Callable[[str], Location],
    pair: bool = False,
) -> Outcomes:
    at = locate(f"{leaf.pointer}/{leaf.op.value}")
    assert isinstance(leaf.operand, Threshold)
    threshold = leaf.operand
    if info.kind != "date":
        problems.add("not_a_date", f"`{leaf.fact}.{leaf.field}` is not a date field", at)
        return Outcomes(NEVER, NEVER, NEVER)
    where = time_fields(leaf, pair)
    months = threshold.unit == "months"
    if not months and threshold.unit not in UNIT_DAYS:
        problems.add("unit_mismatch", _unit_message(leaf, threshold, "months, weeks or days"), at)
        return Outcomes(NEVER, NEVER, NEVER)
    n = threshold.value if months else threshold.value * UNIT_DAYS[threshold.unit]
    outcome = _relation(leaf.op, where, n, months)
    if outcome is None:
        problems.add(
            "unit_mismatch",
            f"`{leaf.op.value}` in months is measured between two facts' dates, not against the "
            f"{leaf.of} date (use days or weeks)",
            at,
        )
        return Outcomes(NEVER, NEVER, NEVER)
    true, false = outcome
    unknown = AnyTest((*(Absent(f) for f in where.present()), AllOf((negate(true), negate(false)))))
    if where.anchor is None:
        # Two dates (of the compared fact itself, or of two bound facts through their pair):
        # the engine may match a field test with either date absent, so each outcome needs both
        # present (as `minus` does), or one without a date derives false beside unknown (an
        # engine error, which for a pair came and went with the policy's rule layout: stop 24).
        # Absent is unknown, never false.
        both = tuple(Present(f) for f in where.present())
        true, false = AllOf((*both, true)), AllOf((*both, false))
    return Outcomes(true, false, unknown)


def _relation(op: Op, w: TimeFields, n: float, months: bool) -> tuple[Test, Test] | None:
    """Return (true, false) for `first <op> n before/after second`: true when every day the two
    dates may be passes, false when none does (month-only dates are intervals)."""
    if op is Op.BEFORE or op is Op.AFTER:
        backward = op is Op.AFTER
        if months:
            low = w.whole_months("lo", ">=", n, backward)
            high = w.whole_months("hi", "<", n, backward)
            return None if low is None or high is None else (low, high)
        if backward:  # first - second >= n, i.e. second - first <= -n
            return w.days("hi", "<=", -n), w.days("lo", ">", -n)
        return w.days("lo", ">=", n), w.days("hi", "<", n)
    if op is Op.WITHIN:
        if months:
            return (
                AllOf((w.days("lo", ">=", 0), w.months_up("hi", "<=", n))),
                AnyTest((w.days("hi", "<", 0), w.months_up("lo", ">", n))),
            )
        return (
            AllOf((w.days("lo", ">=", 0), w.days("hi", "<=", n))),
            AnyTest((w.days("hi", "<", 0), w.days("lo", ">", n))),
        )
    before = _relation(Op.BEFORE, w, n, months)
    after = _relation(Op.AFTER, w, n, months)
    if before is None or after is None:
        return None
    return AnyTest((before[0], after[0])), AllOf((before[1], after[1]))
