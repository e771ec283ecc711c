"""The fact dictionary: fact types and fields from facts.schema.json, plus a policy's derived types.

Policies are written against this dictionary; the compiler and lint check names, kinds, units and
enum values against it. It is read from the schema, never restated in code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

from evaluator.language.conditions import (
    Binding,
    Compare,
    Condition,
    Count,
    Every,
    Exists,
    Some,
    WhereItem,
    WhereSameAs,
    children,
)
from evaluator.language.model import DerivedType
from evaluator.read import schemas

FACTS_SCHEMA = "facts"
# A plain integer field with no declared unit counts things (visits, grades).
DEFAULT_UNIT = "count"
# Fields every fact has; policies may filter on them but not compare thresholds.
COMMON_FIELDS = ("id", "src")


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FieldInfo:
    name: str
    kind: str  # string, boolean, integer, number, date, duration, level, segment, measurement
    enum: tuple[str, ...] = ()
    unit: str | None = None
    description: str = ""
    # A size word ("very subtle") may stand for this measurement (domain convention 8); on
    # other measurements (a strength grade, a relief percentage) a word decides nothing.
    qualitative: bool = False
    # The field a fact carries (true) when this field's sources disagree and it is left
    # absent (x-disputed): a `where` on the field reads such a fact as unknown, not as one
    # without the value (domain rule 9: conflicting documentation is not documented).
    disputed: str | None = None


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FactType:
    name: str
    many: bool
    fields: Mapping[str, FieldInfo]
    description: str = ""
    derived: bool = False
    # x-as-of-source: values a document dated (possibly) after the request states are left
    # out, so they read as not documented (lint `negated_demonstrated` relies on it).
    as_of_source: bool = False


def _field(name: str, spec: Mapping[str, Any]) -> FieldInfo:
    kind = spec.get("x-kind") or spec.get("type", "string")
    unit = spec.get("x-unit")
    if unit is None and kind in ("integer", "number", "duration"):
        unit = "days" if kind == "duration" else DEFAULT_UNIT
    return FieldInfo(
        name,
        kind,
        tuple(spec.get("enum", ())),
        unit,
        spec.get("description", ""),
        bool(spec.get("x-qualitative", False)),
        spec.get("x-disputed"),
    )


@cache
def case_fact_types() -> Mapping[str, FactType]:
    """Return the fact types a normalised case can hold, by name."""
    schema = schemas.load_schema(FACTS_SCHEMA)
    types = {}
    for name, spec in schema["$defs"].items():
        fields = {f: _field(f, s) for f, s in spec.get("properties", {}).items()}
        for common in COMMON_FIELDS:
            fields.setdefault(common, FieldInfo(common, "string"))
        types[name] = FactType(
            name,
            spec.get("x-cardinality", "many") == "many",
            MappingProxyType(fields),
            spec.get("description", ""),
            as_of_source=bool(spec.get("x-as-of-source")),
        )
    return MappingProxyType(types)


def with_derived(derived: Mapping[str, DerivedType]) -> Mapping[str, FactType]:
    """Return the case fact types plus a policy's derived types (always `many`)."""
    types = dict(case_fact_types())
    for name, d in derived.items():
        fields = {f: FieldInfo(f, kind) for f, kind in d.fields.items()}
        for common in COMMON_FIELDS:
            fields.setdefault(common, FieldInfo(common, "string"))
        types[name] = FactType(name, True, MappingProxyType(fields), d.description, derived=True)
    return MappingProxyType(types)


def physical_fields(info: FieldInfo) -> tuple[str, ...]:
    """Return the engine fields a logical field becomes (docs/architecture.md, Facts)."""
    n = info.name
    if info.kind == "date":
        return (
            n,
            f"{n}_lo",
            f"{n}_hi",
            *(f"{n}_{p}_{b}" for p in ("mday", "mend") for b in ("lo", "hi")),
            *(
                f"{n}_{u}_before_{anchor}_{b}"
                for anchor in ("request", "service")
                for u in ("days", "months", "months_up")
                for b in ("lo", "hi")
            ),
        )
    if info.kind == "duration":
        return (f"{n}_lo", f"{n}_hi")
    if info.kind in ("level", "segment"):
        return (n, f"{n}_index")
    if info.kind == "measurement":
        return (n, f"{n}_word")
    return (n,)


@dataclass(frozen=True, slots=True)
class UnsettledRead:
    """A field a condition reads whose value the record may state without settling it: its
    sources disagree, or the one stating it is dated only possibly after the request. The
    fact then carries the field's x-disputed marker instead of the value."""

    fact: str
    field: str
    marker: str
    # The reading's other `where` items that still narrow the facts: joins only to names bound
    # outside the condition, no test on an unsettled field (a fact carrying the marker has no
    # value there). Dropping one widens the reading, which only keeps more conditions unknown.
    where: tuple[WhereItem, ...]


def unsettled_reads(
    cond: Condition, types: Mapping[str, FactType], outside: Mapping[str, str]
) -> tuple[UnsettledRead, ...]:
    """Return the reads of fields with an x-disputed marker under `cond`; `outside` maps the
    names bound around `cond` to their fact types."""
    found: dict[UnsettledRead, None] = {}

    def marker(fact: str, name: str | None) -> str | None:
        info = types[fact].fields.get(name or "") if fact in types else None
        return None if info is None else info.disputed

    def narrowing(fact: str, where: tuple[WhereItem, ...]) -> tuple[WhereItem, ...]:
        kept: list[WhereItem] = []
        for item in where:
            if isinstance(item, WhereSameAs):
                if item.alias in outside:
                    kept.append(item)
            elif not marker(fact, item.field):
                kept.append(item)
        return tuple(kept)

    def tested(fact: str, where: tuple[WhereItem, ...]) -> None:
        for item in where:
            if not isinstance(item, WhereSameAs) and (m := marker(fact, item.field)):
                found[UnsettledRead(fact, item.field, m, narrowing(fact, where))] = None

    def visit(node: Condition, bound: Mapping[str, Binding | str]) -> None:
        if isinstance(node, Compare):
            binding = bound.get(node.fact)
            if binding is None:
                fact, where = node.fact, node.where
                tested(fact, where)
            elif isinstance(binding, Binding):  # bound inside: its scope's facts
                fact, where = binding.fact, binding.where
            else:  # bound outside: any fact of its type (wider, never narrower)
                fact, where = binding, ()
            other = (node.of or "").partition(".")
            fields = [(fact, node.field), (fact, node.minus)]
            if isinstance(ob := bound.get(other[0]), Binding | str):
                fields.append((ob if isinstance(ob, str) else ob.fact, other[2]))
            for name, field_name in fields:
                if (m := marker(name, field_name)) and field_name:
                    narrow = narrowing(name, where) if name == fact else ()
                    found[UnsettledRead(name, field_name, m, narrow)] = None
        elif isinstance(node, Exists):
            tested(node.fact, node.where)
        elif isinstance(node, Every | Some | Count):
            tested(node.binding.fact, node.binding.where)
            visit(node.require, {**bound, node.binding.alias: node.binding})
        else:
            for child in children(node):
                visit(child, bound)

    visit(cond, dict(outside))
    return tuple(found)
