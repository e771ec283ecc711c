"""Value ranges of comparisons, for lint: which `all` can never hold and which `any` always does."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from evaluator.compile.comparisons import UNIT_DAYS
from evaluator.language.conditions import (
    LEVEL_OPS,
    THRESHOLD_OPS,
    TIME_OPS,
    All,
    AnyOf,
    Compare,
    Condition,
    Op,
    Scalar,
    Threshold,
    Truth,
    WhereItem,
)
from evaluator.language.dictionary import FactType
from evaluator.vocab.levels import LevelError, parse_level

Scope = Mapping[str, str]  # alias -> the fact type it is bound to

# Fields whose values are whole numbers: counts, level indexes, and the interval fields (dates
# and durations are stored as whole days or calendar months).
_WHOLE_KINDS = frozenset({"integer", "level", "segment", "date", "duration"})


@dataclass(frozen=True, slots=True)
class Span:
    """An interval of numbers; `lo_in`/`hi_in` say whether the ends belong to it."""

    lo: float
    lo_in: bool
    hi: float
    hi_in: bool

    @property
    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_in and self.hi_in))

    def holds(self, value: Scalar) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True  # text against a number is a type error the compiler reports
        above = value > self.lo or (value == self.lo and self.lo_in)
        below = value < self.hi or (value == self.hi and self.hi_in)
        return above and below

    def whole(self) -> Span:
        """Return the span with its ends moved to the whole numbers inside it (closed)."""
        lo, hi = self.lo, self.hi
        if math.isfinite(lo):
            lo = math.ceil(lo) if self.lo_in else math.floor(lo) + 1
        if math.isfinite(hi):
            hi = math.floor(hi) if self.hi_in else math.ceil(hi) - 1
        return Span(lo, True, hi, True)

    def meet(self, other: Span) -> Span:
        lo, lo_in = max((self.lo, not self.lo_in), (other.lo, not other.lo_in))
        hi, hi_in = min((self.hi, self.hi_in), (other.hi, other.hi_in))
        return Span(lo, not lo_in, hi, hi_in)


FULL = Span(-math.inf, False, math.inf, False)
_SPANS = {
    Op.AT_LEAST: lambda v: Span(v, True, math.inf, False),
    Op.MORE_THAN: lambda v: Span(v, False, math.inf, False),
    Op.AT_MOST: lambda v: Span(-math.inf, False, v, True),
    Op.LESS_THAN: lambda v: Span(-math.inf, False, v, False),
    # spinal order runs cranial to caudal: "above" is a smaller index
    Op.ABOVE: lambda v: Span(-math.inf, False, v, False),
    Op.AT_OR_ABOVE: lambda v: Span(-math.inf, False, v, True),
    Op.BELOW: lambda v: Span(v, False, math.inf, False),
    Op.AT_OR_BELOW: lambda v: Span(v, True, math.inf, False),
}


@dataclass(frozen=True, slots=True)
class Key:
    """What a comparison is about: two comparisons with equal keys constrain the same value."""

    fact: str
    field: str
    where: frozenset[WhereItem]
    measure: str | None
    minus: str | None
    scale: str  # value, days, months or index


@dataclass(frozen=True, slots=True)
class Leaf:
    """A comparison as a constraint: a span of numbers, or values allowed or excluded."""

    node: Compare
    key: Key
    span: Span | None
    values: frozenset[Scalar] | None
    inside: bool  # `values` are the allowed ones (equals, one_of) rather than the excluded ones
    single: bool  # one fact at most: a bound alias, or a type with cardinality one
    whole: bool  # the value is a whole number
    domain: frozenset[Scalar] | None  # every value the field can take, when finite

    @property
    def text(self) -> str:
        operand = self.node.operand
        if isinstance(operand, Threshold):
            shown = f"{operand.value:g} {operand.unit}"
        elif isinstance(operand, tuple):
            shown = "[" + ", ".join(str(v) for v in operand) + "]"
        else:
            shown = str(operand).lower() if isinstance(operand, bool) else str(operand)
        return f"{self.node.fact}.{self.node.field} {self.node.op.value} {shown}"


def leaf_of(node: Compare, scope: Scope, types: Mapping[str, FactType]) -> Leaf | None:
    """Return the constraint a comparison states, or None when it states none lint can use."""
    fact = types.get(scope.get(node.fact, node.fact))
    info = fact.fields.get(node.field) if fact else None
    if fact is None or info is None:
        return None  # the compiler reports unknown names
    scale, span, values, inside = "value", None, None, True
    operand = node.operand
    if node.op in THRESHOLD_OPS:
        assert isinstance(operand, Threshold)
        value = operand.value
        if math.isnan(value):
            return None
        if info.kind in ("date", "duration"):
            if operand.unit in UNIT_DAYS:
                scale, value = "days", value * UNIT_DAYS[operand.unit]
            else:
                scale = operand.unit
        span = _SPANS[node.op](value)
    elif node.op in LEVEL_OPS:
        try:
            index = parse_level(str(operand)).index
        except LevelError:
            return None
        scale, span = "index", _SPANS[node.op](index)
    elif node.op is Op.DOCUMENTED or node.op in TIME_OPS or node.op is Op.SAME_SIDE_AS:
        return None  # two dates or two sides: no range on one field for lint to compare
    else:
        assert operand is not None
        assert not isinstance(operand, Threshold)
        values = frozenset(operand if isinstance(operand, tuple) else (operand,))
        inside = node.op in (Op.EQUALS, Op.ONE_OF)
    whole = info.kind in _WHOLE_KINDS
    domain: frozenset[Scalar] | None = None
    if info.kind == "boolean":
        domain = frozenset({True, False})
    elif info.enum:
        domain = frozenset(info.enum)
    return Leaf(
        node=node,
        key=Key(node.fact, node.field, frozenset(node.where), node.measure, node.minus, scale),
        span=span.whole() if span is not None and whole else span,
        values=values,
        inside=inside,
        single=node.fact in scope or not fact.many,
        whole=whole,
        domain=domain,
    )


def groups(
    node: Condition, scope: Scope, types: Mapping[str, FactType], conjunctive: bool
) -> Iterator[list[Leaf]]:
    """Yield the comparisons of an `all` (conjunctive) or an `any` that share a key, in file
    order, two or more at a time; nested operators of the same kind are flattened."""
    kind = All if conjunctive else AnyOf
    if not isinstance(node, kind):
        return
    parts, leaves = list(node.parts), []
    while parts:
        part = parts.pop(0)
        if isinstance(part, kind):
            parts[:0] = part.parts
        elif isinstance(part, Compare) and (leaf := leaf_of(part, scope, types)):
            leaves.append(leaf)
    by_key: dict[Key, list[Leaf]] = {}
    for leaf in leaves:
        # several facts of a type could each satisfy one part: only one fact can contradict
        if leaf.single or not conjunctive:
            by_key.setdefault(leaf.key, []).append(leaf)
    yield from (group for group in by_key.values() if len(group) > 1)


def never_all(leaves: list[Leaf]) -> bool:
    """Return True when the comparisons (same key) can never all be true of one fact."""
    if all(leaf.node.if_absent is Truth.TRUE for leaf in leaves):
        return False  # an absent fact makes every part true
    span, allowed, excluded = FULL, None, frozenset[Scalar]()
    for leaf in leaves:
        if leaf.span is not None:
            span = span.meet(leaf.span)
        if leaf.values is not None and leaf.inside:
            allowed = leaf.values if allowed is None else allowed & leaf.values
        elif leaf.values is not None:
            excluded |= leaf.values
    if span.empty:
        return True
    if allowed is not None:
        return not any(v not in excluded and span.holds(v) for v in allowed)
    return span.lo == span.hi and span.lo in excluded


def always_any(leaves: list[Leaf]) -> bool:
    """Return True when one of the comparisons (same key) is true of every documented value."""
    spans = [leaf.span for leaf in leaves if leaf.span is not None]
    allowed: set[Scalar] = set()
    for leaf in leaves:
        if leaf.values is not None and leaf.inside:
            allowed |= leaf.values
    points = [Span(v, True, v, True) for v in allowed if isinstance(v, int | float)]
    if spans and _covers([*spans, *points], leaves[0].whole):
        return True
    outs = [leaf.values for leaf in leaves if leaf.values is not None and not leaf.inside]
    if outs:
        common = frozenset.intersection(*outs)
        return all(v in allowed or any(s.holds(v) for s in spans) for v in common)
    domain = leaves[0].domain
    return domain is not None and domain <= allowed


def _covers(spans: list[Span], whole: bool) -> bool:
    # Sweep from -inf: `reach` is how far the spans so far cover without a gap.
    reach, reach_in = -math.inf, True
    for span in sorted(spans, key=lambda s: (s.lo, not s.lo_in)):
        gap = (
            span.lo > reach + 1
            if whole
            else (span.lo > reach or (span.lo == reach and not (reach_in or span.lo_in)))
        )
        if gap:
            return False
        if span.hi > reach:
            reach, reach_in = span.hi, span.hi_in
        elif span.hi == reach:
            reach_in = reach_in or span.hi_in
    return reach == math.inf
