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

from .conditions import Compare, Op, Scalar, Threshold
from .dictionary import FieldInfo
from .errors import Collector, Location
from .levels import LevelError, parse_level
from .program import Absent, AllOf, AnyTest, Cmp, CmpField, Eq, Ne, Present, Test

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
) -> Outcomes:
    """Return the tests for a comparison on a field described by `info`; report misuse."""
    op, name = leaf.op, leaf.field
    if op is Op.DOCUMENTED:
        present = f"{name}_lo" if info.kind in ("date", "duration") else name
        return Outcomes(Present(present), NEVER, Absent(present))
    if op in (Op.EQUALS, Op.NOT_EQUALS, Op.ONE_OF, Op.NOT_ONE_OF):
        return _equality(leaf, info, problems, locate)
    if op in (Op.ABOVE, Op.AT_OR_ABOVE, Op.BELOW, Op.AT_OR_BELOW):
        return _level(leaf, info, problems, locate)
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
