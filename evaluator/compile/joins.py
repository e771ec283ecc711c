"""Joins on a field a schema-valid case may omit: refused when the policy is compiled.

A join `where: {F: {same_as: alias.G}}` becomes a durable_rules join on G of the fact bound to
`alias`. When that fact has no G, the engine's positive join never matches and a negated one
("no fact whose F equals alias.G") holds whatever facts the case has (tests/test_joins.py
reproduces both). The language gives the same value (a join with an absent side relates no
fact: the range is empty), so the engine and the reference interpreter agree; but for a case
it reads "not documented" as "there is no such fact": `not exists unstable_segment at the
segment` is true, an `every` over the segment's findings takes its `if_empty`, and a clause
can come out met for a request that never said where the segment is: a wrong approval.

Testing in the rendered rules that G exists (stop 16, reverted) does not close it: the test
drops the binding only from the rules that join on G, so the empty-range rule and its
fail-closed guard no longer fire for it, while a folded `every`'s true rule, which reads "no
false child, no unknown child, no empty-range value", still binds it and fires (fuzz seed 312
gave true where the reference interpreter says unknown). So the compiler does not accept such
a join at all: `same_as: alias.G` is allowed only when every fact `alias` can bind carries G:

- a case fact type: the fields its definition in schemas/facts.schema.json lists as `required`
  (facts.py gives them for every schema-valid case; tests/test_joins.py checks every case the
  repository holds), and `id`;
- a derived type: a field that every rule deriving the type sets, to a constant or from a
  field its source fact is sure to carry (carried by the source's type, filtered by a `where`
  of its binding, read by a join of another binding, or tested `documented: true` by the
  rule's `when`, alone or in a top-level `all`).

The other side of a join (F, on the fact being matched) needs nothing: a fact without F is not
related, as with any `where` test on a field it lacks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache

from evaluator.errors import Collector
from evaluator.language import dictionary
from evaluator.language.conditions import (
    All,
    Binding,
    Compare,
    Condition,
    Count,
    Every,
    Exists,
    Op,
    Some,
    WhereEq,
    WhereItem,
    WhereOneOf,
    WhereSameAs,
    children,
)
from evaluator.language.dictionary import FactType
from evaluator.language.model import DeriveRule, FromField, Policy
from evaluator.read import schemas

# Fields every fact carries, whatever its type (the engine's `t`, the case-unique `id`).
ALWAYS = frozenset({"t", "id"})


@dataclass(frozen=True, slots=True)
class JoinSite:
    """One `same_as` join: the bound fact's type and field it reads, and where it is written."""

    alias: str
    fact: str  # the type `alias` binds
    field: str  # the field of the bound fact the join reads
    pointer: str


@cache
def required_fields() -> Mapping[str, frozenset[str]]:
    """Return, per case fact type, the fields its schema definition requires (plus `ALWAYS`)."""
    defs = schemas.load_schema(dictionary.FACTS_SCHEMA)["$defs"]
    return {name: ALWAYS | frozenset(spec.get("required", ())) for name, spec in defs.items()}


def carried_fields(policy: Policy, types: Mapping[str, FactType]) -> dict[str, frozenset[str]]:
    """Return, per fact type (case and derived), the fields every fact of it carries.

    Derived types are solved as a least fixed point: a field counts only once every rule
    deriving the type is shown to set it, so a type derived from itself never vouches for
    itself.
    """
    carried = dict(required_fields())
    derived = [name for name, t in types.items() if t.derived]
    for name in derived:
        carried[name] = ALWAYS
    producers: dict[str, list[DeriveRule]] = {name: [] for name in derived}
    for rule in policy.rules:
        if rule.fact in producers:
            producers[rule.fact].append(rule)
    changed = True
    while changed:
        changed = False
        for name in derived:
            rules = producers[name]
            sets = [_rule_sets(rule, carried, types) for rule in rules]
            found = (ALWAYS | frozenset.intersection(*sets)) if sets else ALWAYS
            if found != carried[name]:
                carried[name] = found
                changed = True
    return carried


def _rule_sets(
    rule: DeriveRule, carried: Mapping[str, frozenset[str]], types: Mapping[str, FactType]
) -> frozenset[str]:
    """The fields each fact `rule` derives is sure to carry."""
    bound = {b.alias: b.fact for b in rule.bindings}
    present: dict[str, set[str]] = {
        b.alias: set(carried.get(b.fact, ALWAYS)) for b in rule.bindings
    }
    for binding in rule.bindings:
        for item in binding.where:
            # a fact passing a where test has the field; a positive join needs both sides
            present[binding.alias].add(item.field)
            if isinstance(item, WhereSameAs) and item.alias in present:
                present[item.alias].add(item.other)
    for alias, field in _documented(rule.when):
        info = types[bound[alias]].fields.get(field) if bound.get(alias) in types else None
        # a documented duration has only its bounds (`F_lo`, `F_hi`), never `F` itself
        if info is not None and info.kind != "duration":
            present[alias].add(field)
    sets = set()
    for name, value in rule.values.items():
        if not isinstance(value, FromField):
            sets.add(name)  # a constant
        elif value.alias in bound and value.field in present[value.alias]:
            sets.add(name)
    return frozenset(sets)


def _documented(when: Condition | None) -> Iterator[tuple[str, str]]:
    """(alias, field) pairs that `when` being true shows documented."""
    if isinstance(when, All):
        for part in when.parts:
            yield from _documented(part)
    elif isinstance(when, Compare) and when.op is Op.DOCUMENTED:  # `documented: true` only
        yield when.fact, when.field


def join_sites(policy: Policy, types: Mapping[str, FactType]) -> Iterator[JoinSite]:
    """Every `same_as` join of the policy whose bound alias names a known fact type."""
    for clause in policy.clauses:
        for root in (clause.applies_when, clause.waived_by, clause.requires):
            if root is not None:
                yield from _walk(root, {}, types)
    for rule in policy.rules:
        scope: dict[str, str] = {}
        for binding in rule.bindings:
            yield from _where(binding.where, binding.pointer, scope, types)
            scope = {**scope, binding.alias: binding.fact}
        if rule.when is not None:
            yield from _walk(rule.when, scope, types)
    if policy.alternative is not None:
        yield from _walk(policy.alternative.when, {}, types)


def _walk(
    node: Condition, scope: Mapping[str, str], types: Mapping[str, FactType]
) -> Iterator[JoinSite]:
    if isinstance(node, Every | Some | Count):
        binding: Binding = node.binding
        yield from _where(binding.where, binding.pointer, scope, types)
        scope = {**scope, binding.alias: binding.fact}  # what its `require` reads
    elif isinstance(node, Compare):
        yield from _where(node.where, node.pointer, scope, types)
    elif isinstance(node, Exists):
        yield from _where(node.where, f"{node.pointer}/exists", scope, types)
    for child in children(node):  # the language's own walk: a new connective is not missed
        yield from _walk(child, scope, types)


def _where(
    items: tuple[WhereItem, ...],
    pointer: str,
    scope: Mapping[str, str],
    types: Mapping[str, FactType],
) -> Iterator[JoinSite]:
    for item in items:
        if isinstance(item, WhereEq | WhereOneOf):
            continue
        fact = scope.get(item.alias)
        if fact is not None and fact in types:  # else reported by the compiler
            yield JoinSite(item.alias, fact, item.other, f"{pointer}/where/{item.field}")


def check(policy: Policy, types: Mapping[str, FactType], problems: Collector) -> None:
    """Add an `optional_join` problem for every join on a field its bound fact may lack."""
    carried = carried_fields(policy, types)
    for site in join_sites(policy, types):
        sure = carried.get(site.fact, ALWAYS)
        if site.field in sure or site.field not in types[site.fact].fields:
            continue  # an unknown field is reported by the compiler
        fields = ", ".join(f"`{f}`" for f in sorted(sure - ALWAYS))
        instead = (
            f"join on a field every `{site.fact}` carries ({fields})"
            if fields
            else f"no field of `{site.fact}` is sure to be there: join on a fact derived from "
            f"it by a rule whose `when` tests `{site.field}` `documented: true`"
        )
        problems.add(
            "optional_join",
            f"`{site.alias}.{site.field}` may be missing: a `{site.fact}` fact need not carry "
            f"`{site.field}`, and a join on it cannot tell a missing `{site.field}` from no "
            f"related fact (a negation over it would hold for any case); {instead}",
            policy.locate(site.pointer),
        )
