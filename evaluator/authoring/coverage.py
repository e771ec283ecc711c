"""Clause-status coverage of policy test suites: what is reachable, and what the tests checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaluator.authoring.testing import TestResult
from evaluator.compile.comparisons import NEVER, lower
from evaluator.errors import Collector, Location
from evaluator.language import dictionary
from evaluator.language.conditions import (
    All,
    AnyOf,
    ClauseIs,
    Compare,
    Condition,
    Count,
    Demonstrated,
    Distinct,
    Every,
    Exists,
    Latest,
    NOf,
    Not,
    PolicyIs,
    Some,
    Truth,
    Undecided,
    WhereItem,
    WhereSameAs,
)
from evaluator.language.model import Policy, Status

F, U, T = Truth.FALSE, Truth.UNKNOWN, Truth.TRUE


def reachable_statuses(policy: Policy) -> dict[str, frozenset[Status]]:
    """Return, for each clause, the statuses some case could give it, worked out statically.

    A clause's statuses follow from the truth values its conditions can take:

    - `not_applicable` when `applies_when` can be false or `waived_by` can be true;
    - `met` when `requires` can be true, `not_met` when it can be false, and its `undocumented`
      status (`not_documented` by default, or `not_met`) when it can be unknown;
    - a `requires` written exactly like `applies_when` (as with a YAML anchor) is only evaluated
      when that is not false, so it cannot be false; one written like `waived_by` cannot be true.

    The values a condition can take, assuming its parts vary independently:

    - a comparison: the outcomes its lowering can produce (`documented` is never false), plus
      its `if_absent` value unless it tests a bound fact (which is always there);
    - `exists`: true or false, and unknown where it tests a field by value that may be
      disputed (x-disputed: conflicting documentation); `clause X is S`: true when X can end
      S, false when X can end otherwise;
    - `not` swaps true and false; `demonstrated` is true or, from false or unknown, false,
      and unknown too where it reads a field whose value may be stated but unsettled
      (x-disputed);
    - `all`, `any` and `n_of`: Kleene combinations of their parts' values;
    - `every`: true (vacuously, over no facts) plus its requirement's values; `some`: false plus
      its requirement's values; `count`: unknown (too few facts documented) plus true and false
      when its requirement can be; each with unknown among its requirement's values when its
      `where` tests a field that may be disputed (x-disputed).

    Independence can over-estimate (parts that share facts) but never hides a reachable status.
    """
    analysis = _Reach(policy)
    return {c.id: analysis.clause(c.id) for c in policy.clauses}


class _Reach:
    def __init__(self, policy: Policy) -> None:
        self.types = dictionary.with_derived(policy.derived)
        self.words = policy.below_threshold_words
        self.clauses = {c.id: c for c in policy.clauses}
        self.done: dict[str, frozenset[Status]] = {}
        self.busy: set[str] = set()

    def clause(self, clause_id: str) -> frozenset[Status]:
        if clause_id in self.done:
            return self.done[clause_id]
        clause = self.clauses.get(clause_id)
        if clause is None or clause_id in self.busy:  # the compiler rejects both
            return frozenset(Status)
        self.busy.add(clause_id)
        applies = self.values(clause.applies_when, {}) if clause.applies_when else {T}
        waiver = self.values(clause.waived_by, {}) if clause.waived_by else {F}
        requires = set(self.values(clause.requires, {}))
        shape = _shape(clause.requires)
        if clause.applies_when is not None and shape == _shape(clause.applies_when):
            requires.discard(F)
        if clause.waived_by is not None and shape == _shape(clause.waived_by):
            requires.discard(T)
        if applies == {F} or waiver == {T}:
            requires.clear()  # never evaluated
        out = {Status.NOT_APPLICABLE} if F in applies or T in waiver else set()
        outcome = {T: Status.MET, F: Status.NOT_MET, U: clause.undocumented}
        out.update(outcome[v] for v in requires)
        self.busy.discard(clause_id)
        self.done[clause_id] = frozenset(out)
        return self.done[clause_id]

    def values(self, cond: Condition, scope: Mapping[str, str]) -> frozenset[Truth]:
        """Return the truth values `cond` can take; `scope` maps bound aliases to fact types."""
        if isinstance(cond, Compare):
            return self.compare(cond, scope)
        if isinstance(cond, Exists):
            # unknown too where it tests a field whose sources may disagree (x-disputed)
            disputed = self.disputed(cond.fact, cond.where)
            return frozenset({T, F, U} if disputed else {T, F})
        if isinstance(cond, Distinct):
            return frozenset({T, F})
        if isinstance(cond, PolicyIs):
            return frozenset({T, F, U})
        if isinstance(cond, ClauseIs):
            statuses = self.clause(cond.clause)
            wanted = Status(cond.status)
            return frozenset({T} if wanted in statuses else set()) | (
                {F} if statuses - {wanted} else set()
            )
        if isinstance(cond, Not):
            return frozenset(Truth(2 - v) for v in self.values(cond.part, scope))
        if isinstance(cond, Demonstrated):
            inner = self.values(cond.part, scope)
            found = ({T} if T in inner else set()) | ({F} if inner - {T} else set())
            if U in inner and dictionary.unsettled_reads(cond.part, self.types, scope):
                found.add(U)  # a value stated but unsettled keeps its unknown (x-disputed)
            return frozenset(found)
        if isinstance(cond, All | AnyOf | NOf):
            return self.combination(cond, scope)
        if isinstance(cond, Undecided):
            return frozenset({U})
        if isinstance(cond, Latest):
            # true or false as the latest facts' requirement can be; unknown always (none, a
            # disagreement on one day, an order not documented)
            inner = self.values(cond.require, {**scope, cond.binding.alias: cond.binding.fact})
            return frozenset({U} | (inner & {T, F}))
        return self.quantifier(cond, scope)

    def combination(self, cond: All | AnyOf | NOf, scope: Mapping[str, str]) -> frozenset[Truth]:
        if isinstance(cond, NOf):
            counts = {(0, 0)}  # (true parts, unknown parts)
            for part in cond.parts:
                options = self.values(part, scope)
                counts = {(t + (v is T), u + (v is U)) for t, u in counts for v in options}
            n = cond.at_least
            return frozenset(T if t >= n else (U if t + u >= n else F) for t, u in counts)
        pick = min if isinstance(cond, All) else max
        found = {T if isinstance(cond, All) else F}  # the identity of an empty combination
        for part in cond.parts:
            options = self.values(part, scope)
            found = {pick(a, b) for a in found for b in options}
        return frozenset(found)

    def disputed(self, fact_type: str, where: tuple[WhereItem, ...]) -> bool:
        """True when `where` tests by value a field whose sources may disagree (x-disputed)."""
        fact = self.types.get(fact_type)
        return fact is not None and any(
            (info := fact.fields.get(item.field)) is not None
            and info.disputed is not None
            and not isinstance(item, WhereSameAs)
            for item in where
        )

    def quantifier(self, cond: Every | Some | Count, scope: Mapping[str, str]) -> frozenset[Truth]:
        inner = self.values(cond.require, {**scope, cond.binding.alias: cond.binding.fact})
        if self.disputed(cond.binding.fact, cond.binding.where):
            inner = inner | {U}  # a fact that may be in scope (`Lowering.gated`)
        if isinstance(cond, Every):
            return frozenset({cond.if_empty} | inner)  # no bound fact: `if_empty`
        if isinstance(cond, Some):
            return frozenset({F} | inner)
        if cond.at_least <= 0:
            return frozenset({T})
        return frozenset({U} | (inner & {T, F}))

    def compare(self, leaf: Compare, scope: Mapping[str, str]) -> frozenset[Truth]:
        bound = scope.get(leaf.fact)
        fact = self.types.get(bound or leaf.fact)
        info = fact.fields.get(leaf.field) if fact else None
        if info is None:
            return frozenset({T, F, U})
        outcomes = lower(leaf, info, self.words, Collector(), lambda _pointer: Location())
        tests = ((T, outcomes.true), (F, outcomes.false), (U, outcomes.unknown))
        found = {value for value, test in tests if test != NEVER}
        if bound is None:
            found.add(leaf.if_absent)  # no matching fact at all
        return frozenset(found)


def _shape(value: Any) -> Any:
    """Return a condition as comparable data without the pointer and note that place it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            *(
                (f.name, _shape(getattr(value, f.name)))
                for f in dataclasses.fields(value)
                if f.name not in ("pointer", "note")
            ),
        )
    if isinstance(value, tuple):
        return tuple(_shape(v) for v in value)
    return value


@dataclass(frozen=True)
class ClauseCoverage:
    """Which statuses of one clause are reachable and which the suites checked."""

    clause: str
    reachable: frozenset[Status]
    exercised: frozenset[Status]

    @property
    def missing(self) -> tuple[Status, ...]:
        return tuple(s for s in Status if s in self.reachable and s not in self.exercised)


@dataclass(frozen=True)
class PolicyCoverage:
    """Coverage of one policy version: per clause, and overall as a percentage."""

    policy: str
    clauses: tuple[ClauseCoverage, ...]

    @property
    def reachable(self) -> int:
        return sum(len(c.reachable) for c in self.clauses)

    @property
    def covered(self) -> int:
        return sum(len(c.reachable & c.exercised) for c in self.clauses)

    @property
    def percent(self) -> float:
        return 100.0 if not self.reachable else 100.0 * self.covered / self.reachable


class Coverage:
    """An observer of results: which clause statuses the tests checked, per policy version.

    A status counts as exercised when a test expects it for the clause and the evaluation gives
    it: a status the engine produced but no test asserted is not tested.
    """

    def __init__(self) -> None:
        self.policies: dict[str, Policy] = {}
        self.seen: dict[str, dict[str, set[Status]]] = {}

    def observe(self, result: TestResult) -> None:
        """Record the checked statuses of one result."""
        self.policies.setdefault(result.policy.ref, result.policy)
        seen = self.seen.setdefault(result.policy.ref, {})
        for check in result.clauses:
            if check.ok:
                seen.setdefault(check.clause, set()).add(check.actual)

    def add_policy(self, policy: Policy) -> None:
        """Count a policy even if no test ran against it (so its coverage shows as 0 %)."""
        self.policies.setdefault(policy.ref, policy)

    def report(self) -> list[PolicyCoverage]:
        """Return the coverage of every policy seen, sorted by policy."""
        out = []
        for ref in sorted(self.policies):
            reach = reachable_statuses(self.policies[ref])
            seen = self.seen.get(ref, {})
            out.append(
                PolicyCoverage(
                    ref,
                    tuple(
                        ClauseCoverage(clause, statuses, frozenset(seen.get(clause, ())))
                        for clause, statuses in reach.items()
                    ),
                )
            )
        return out
