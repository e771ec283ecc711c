"""The condition language: one frozen dataclass per operator, parsed from schema-valid data.

Conditions are data with a closed set of operators; nothing in a policy is ever executed. Each
node keeps the JSON pointer it was read from, so compile errors can name the line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, TypeAlias

Scalar: TypeAlias = str | int | float | bool


class Truth(IntEnum):
    """Kleene truth values, ordered so that AND is min and OR is max."""

    FALSE = 0
    UNKNOWN = 1
    TRUE = 2


TRUTH_WORDS = {"false": Truth.FALSE, "unknown": Truth.UNKNOWN, "true": Truth.TRUE}


class Op(StrEnum):
    """Comparison operators; `tests/test_conditions.py` checks they equal the schema's."""

    AT_LEAST = "at_least"
    MORE_THAN = "more_than"
    AT_MOST = "at_most"
    LESS_THAN = "less_than"
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    ONE_OF = "one_of"
    NOT_ONE_OF = "not_one_of"
    ABOVE = "above"
    AT_OR_ABOVE = "at_or_above"
    BELOW = "below"
    AT_OR_BELOW = "at_or_below"
    DOCUMENTED = "documented"
    # Time between two dates (`of` names the second); thresholds in days, weeks or months.
    WITHIN = "within"
    BEFORE = "before"
    AFTER = "after"
    APART = "apart"
    # Laterality: the sides overlap (bilateral counts as both).
    SAME_SIDE_AS = "same_side_as"


THRESHOLD_OPS = frozenset({Op.AT_LEAST, Op.MORE_THAN, Op.AT_MOST, Op.LESS_THAN})
LEVEL_OPS = frozenset({Op.ABOVE, Op.AT_OR_ABOVE, Op.BELOW, Op.AT_OR_BELOW})
TIME_OPS = frozenset({Op.WITHIN, Op.BEFORE, Op.AFTER, Op.APART})
# The second date of a time comparison: the request's date, its planned date of service, or a
# date field of a bound fact (`alias.field`).
TIME_ANCHORS = ("request", "service")
# Words an author reads without a symbol table; the symbol is for renderings and diffs.
OP_SYMBOLS = {
    Op.AT_LEAST: ">=",
    Op.MORE_THAN: ">",
    Op.AT_MOST: "<=",
    Op.LESS_THAN: "<",
    Op.EQUALS: "=",
    Op.NOT_EQUALS: "!=",
    Op.ONE_OF: "in",
    Op.NOT_ONE_OF: "not in",
    Op.ABOVE: "above",
    Op.AT_OR_ABOVE: "at or above",
    Op.BELOW: "below",
    Op.AT_OR_BELOW: "at or below",
    Op.DOCUMENTED: "documented",
    Op.WITHIN: "within",
    Op.BEFORE: "before",
    Op.AFTER: "after",
    Op.APART: "apart",
    Op.SAME_SIDE_AS: "same side as",
}


@dataclass(frozen=True, slots=True)
class Threshold:
    """A number with its unit; `setting` names the policy setting it came from, if any."""

    value: float
    unit: str
    setting: str | None = None


@dataclass(frozen=True, slots=True)
class WhereEq:
    field: str
    value: Scalar


@dataclass(frozen=True, slots=True)
class WhereOneOf:
    field: str
    values: tuple[Scalar, ...]
    # the value set the codes were expanded from (`in_value_set`), for renderings
    value_set: str | None = None


@dataclass(frozen=True, slots=True)
class WhereSameAs:
    """A join: the field equals `alias.other` of a fact bound further out."""

    field: str
    alias: str
    other: str


WhereItem: TypeAlias = WhereEq | WhereOneOf | WhereSameAs


@dataclass(frozen=True, slots=True)
class Binding:
    """Binds each fact of a type (filtered by `where`) to `alias`."""

    fact: str
    alias: str
    where: tuple[WhereItem, ...]
    pointer: str


@dataclass(frozen=True, slots=True)
class Compare:
    fact: str
    field: str
    op: Op
    operand: Threshold | Scalar | tuple[Scalar, ...] | None
    where: tuple[WhereItem, ...]
    pointer: str
    measure: str | None = None
    minus: str | None = None
    if_absent: Truth = Truth.UNKNOWN
    note: str | None = None
    # The second date of a time comparison (TIME_ANCHORS or `alias.field`).
    of: str | None = None


@dataclass(frozen=True, slots=True)
class Exists:
    fact: str
    where: tuple[WhereItem, ...]
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ClauseIs:
    clause: str
    status: str
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyIs:
    """True when another policy's determination for the same line is `determination`.

    The API evaluates the referenced policy (the version in force) first, through the same
    engine, and gives its determination to this policy's session as a fact.
    """

    policy: str
    determination: str
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Distinct:
    """True when the facts bound to `aliases` are different facts, false when two are the same
    fact (two-valued: every bound fact is known)."""

    aliases: tuple[str, ...]
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class All:
    parts: tuple[Condition, ...]
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Condition, ...]
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Not:
    part: Condition
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class NOf:
    at_least: int
    parts: tuple[Condition, ...]
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Demonstrated:
    part: Condition
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Every:
    """Kleene AND of `require` over the bound facts; `if_empty` when there are none (an empty
    scope never satisfies "every" unless the author says so)."""

    binding: Binding
    require: Condition
    pointer: str
    note: str | None = None
    if_empty: Truth = Truth.UNKNOWN


@dataclass(frozen=True, slots=True)
class Some:
    binding: Binding
    require: Condition
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Count:
    """At least `at_least` facts of the bound type meet `require` (Kleene by counting)."""

    binding: Binding
    require: Condition
    at_least: int
    pointer: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Latest:
    """The facts of the latest date decide: true when every fact that may be the latest (by
    its date field `by`) meets `require`, false when every one fails it, otherwise unknown
    (domain rule 9: two of one day that disagree, or an undated one that may be the latest,
    are conflicting documentation; none at all is not documented).

    `expansion` is the same condition in the other operators (`latest_expansion`), which the
    walkers descend into (the facts, fields and dates it reads); the compiler lowers `latest`
    itself (lowering.py `Lowering.latest`) and renderings read the fields above.
    """

    binding: Binding
    by: str
    require: Condition
    pointer: str
    expansion: Condition
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Undecided:
    """Unknown, always: what `latest` adds where the facts of its latest date disagree. Never
    written by an author (no schema entry); only `latest_expansion` makes one."""

    pointer: str
    note: str | None = None


Condition: TypeAlias = (
    Compare
    | Exists
    | ClauseIs
    | PolicyIs
    | Distinct
    | All
    | AnyOf
    | Not
    | NOf
    | Demonstrated
    | Every
    | Some
    | Count
    | Latest
    | Undecided
)
# Nodes only the parser makes, never a policy's own key.
INTERNAL = (Undecided,)

# The operator keys a condition object may have, in the order parse_condition tries them.
CONDITION_KEYS = (
    "all",
    "any",
    "not",
    "n_of",
    "demonstrated",
    "every",
    "some",
    "count",
    "latest",
    "exists",
    "clause",
    "policy",
    "distinct",
)


def parse_where(data: Mapping[str, Any] | None) -> tuple[WhereItem, ...]:
    """Return the where-filters of schema-valid data, in file order."""
    items: list[WhereItem] = []
    for field, value in (data or {}).items():
        if isinstance(value, Mapping) and "one_of" in value:
            items.append(WhereOneOf(field, tuple(value["one_of"]), value.get("value_set")))
        elif isinstance(value, Mapping) and "same_as" in value:
            alias, _, other = str(value["same_as"]).partition(".")
            items.append(WhereSameAs(field, alias, other))
        else:
            items.append(WhereEq(field, value))
    return tuple(items)


def parse_binding(data: Mapping[str, Any], pointer: str) -> Binding:
    """Return the Binding of schema-valid `{fact, as, where}` data."""
    return Binding(data["fact"], data["as"], parse_where(data.get("where")), pointer)


def _threshold(data: Mapping[str, Any], settings: Mapping[str, Threshold]) -> Threshold:
    if "setting" in data:
        # An unknown setting is reported by the compiler with its location; keep a marker.
        found = settings.get(data["setting"])
        if found is None:
            return Threshold(float("nan"), "", data["setting"])
        return Threshold(found.value, found.unit, data["setting"])
    return Threshold(data["value"], data["unit"])


def parse_condition(
    data: Mapping[str, Any], pointer: str, settings: Mapping[str, Threshold]
) -> Condition:
    """Return the Condition tree of schema-valid data; `pointer` locates it in its file."""
    note = data.get("note")

    def sub(key: str) -> Condition:
        return parse_condition(data[key], f"{pointer}/{key}", settings)

    def subs(items: Sequence[Any], base: str) -> tuple[Condition, ...]:
        return tuple(parse_condition(item, f"{base}/{i}", settings) for i, item in enumerate(items))

    if "all" in data:
        return All(subs(data["all"], f"{pointer}/all"), pointer, note)
    if "any" in data:
        return AnyOf(subs(data["any"], f"{pointer}/any"), pointer, note)
    if "not" in data:
        return Not(sub("not"), pointer, note)
    if "demonstrated" in data:
        return Demonstrated(sub("demonstrated"), pointer, note)
    if "n_of" in data:
        body = data["n_of"]
        return NOf(body["at_least"], subs(body["of"], f"{pointer}/n_of/of"), pointer, note)
    if "every" in data:
        body = data["every"]
        binding = parse_binding(body, f"{pointer}/every")
        require = parse_condition(body["require"], f"{pointer}/every/require", settings)
        if_empty = TRUTH_WORDS[body.get("if_empty", "unknown")]
        return Every(binding, require, pointer, note, if_empty)
    if "some" in data:
        body = data["some"]
        binding = parse_binding(body, f"{pointer}/some")
        require = parse_condition(body["require"], f"{pointer}/some/require", settings)
        return Some(binding, require, pointer, note)
    if "count" in data:
        body = data["count"]
        binding = parse_binding(body, f"{pointer}/count")
        require = parse_condition(body["require"], f"{pointer}/count/require", settings)
        return Count(binding, require, body["at_least"], pointer, note)
    if "latest" in data:
        body = data["latest"]
        binding = parse_binding(body, f"{pointer}/latest")
        require = parse_condition(body["require"], f"{pointer}/latest/require", settings)
        expansion = latest_expansion(binding, body["by"], require, f"{pointer}/latest")
        return Latest(binding, body["by"], require, pointer, expansion, note)
    if "exists" in data:
        body = data["exists"]
        return Exists(body["fact"], parse_where(body.get("where")), pointer, note)
    if "clause" in data:
        return ClauseIs(data["clause"], data["is"], pointer, note)
    if "policy" in data:
        return PolicyIs(data["policy"], data["is"], pointer, note)
    if "distinct" in data:
        return Distinct(tuple(data["distinct"]), pointer, note)
    op = next(o for o in Op if o.value in data)
    raw = data[op.value]
    operand: Threshold | Scalar | tuple[Scalar, ...] | None
    if op in THRESHOLD_OPS or op in TIME_OPS:
        operand = _threshold(raw, settings)
    elif op in (Op.ONE_OF, Op.NOT_ONE_OF):
        operand = tuple(raw)
    elif op is Op.DOCUMENTED:
        operand = None
    else:
        operand = raw
    return Compare(
        fact=data["fact"],
        field=data["field"],
        op=op,
        operand=operand,
        where=parse_where(data.get("where")),
        pointer=pointer,
        measure=data.get("measure"),
        minus=data.get("minus"),
        if_absent=TRUTH_WORDS[data.get("if_absent", "unknown")],
        note=note,
        of=data.get("of"),
    )


def latest_expansion(binding: Binding, by: str, require: Condition, pointer: str) -> Condition:
    """Return `latest` in the other operators, Kleene throughout, for the walkers (the facts,
    fields and dates it reads):

        every fact: (a later-dated fact of the scope exists) or require        (E)
        or: (some fact: no later-dated fact and require) and undecided         (S and U)

    E is true when every fact that may be the latest meets `require`; where it is not, S says
    whether one of them does, so that a day whose facts disagree is unknown, never the
    favourable one. The compiler lowers `latest` itself (`Lowering.latest`), reading "later"
    two-valued (a rival surely dated after the fact), and so differs from this form in one
    case only: where facts of uncertain order all fail `require` and none is surely the
    latest, it is false, as the operator says, where this form leaves it unknown. `demonstrated`
    would say that here, but read under `not` it draws the lint `negated_demonstrated` for a
    collapse the lowering makes in the fail-closed direction (an undated rival supersedes
    nothing). The rival is bound as `<as>__later` (an author's own name for it is reported as
    `alias_reused`)."""
    alias = binding.alias
    rival, after = latest_rival(binding, by, pointer)
    later = Some(rival, All((Distinct((alias, rival.alias), pointer), after), pointer), pointer)
    every = Every(binding, AnyOf((later, require), pointer), pointer)
    some = Some(binding, All((Not(later, pointer), require), pointer), pointer)
    return AnyOf((every, All((some, Undecided(pointer)), pointer)), pointer)


def latest_rival(binding: Binding, by: str, pointer: str) -> tuple[Binding, Compare]:
    """Return the rival `latest` binds beside its fact, and the comparison "the rival is dated
    at least a day after the fact"."""
    rival = Binding(binding.fact, f"{binding.alias}__later", binding.where, binding.pointer)
    after = Compare(
        rival.alias,
        by,
        Op.AFTER,
        Threshold(1, "days"),
        (),
        f"{pointer}/by",
        of=f"{binding.alias}.{by}",
    )
    return rival, after


def children(condition: Condition) -> tuple[Condition, ...]:
    """Return the direct sub-conditions of a node (none for leaves); a `latest` node's one
    child is its expansion."""
    if isinstance(condition, All | AnyOf | NOf):
        return condition.parts
    if isinstance(condition, Not | Demonstrated):
        return (condition.part,)
    if isinstance(condition, Every | Some | Count):
        return (condition.require,)
    if isinstance(condition, Latest):
        return (condition.expansion,)
    return ()


def written(condition: Condition) -> tuple[Condition, ...]:
    """Return the sub-conditions as the author wrote them: a `latest` node's `require` rather
    than its expansion (for renderings and diffs)."""
    return (condition.require,) if isinstance(condition, Latest) else children(condition)


def walk(condition: Condition) -> list[Condition]:
    """Return every node of the tree, parents before children."""
    out = [condition]
    for child in children(condition):
        out.extend(walk(child))
    return out
