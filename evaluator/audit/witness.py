"""Witness cases: facts on which two policy versions give a clause different statuses.

A witness is searched, never assumed: candidates are the cases of the policies' own test suites
and those cases with the compared fields of the changed conditions moved to each side of every
threshold either version uses (and to every value a vocabulary names). Each candidate is run
through the engine under both versions; the first that tells them apart is shrunk, one fact at a
time, while it still does, and is returned with both outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaluator import api
from evaluator.compile.comparisons import SIDES
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.conditions import Compare, Condition, Op, Threshold, walk
from evaluator.language.model import Determination, Policy, Status

Facts = tuple[Mapping[str, Any], ...]
# Facts a case always has: shrinking keeps them so a witness stays a case.
_FRAME = frozenset({"case", "request", "line"})
ABSENT = "absent"  # the status a clause "has" in a version without it


@dataclass(frozen=True)
class Outcome:
    determination: Determination
    statuses: Mapping[str, str]


@dataclass(frozen=True)
class Witness:
    """Facts, and what each version decides on them."""

    clause: str
    facts: Facts
    old: Outcome
    new: Outcome

    def as_json(self) -> dict[str, Any]:
        return {
            "clause": self.clause,
            "old": {
                "status": self.old.statuses.get(self.clause, ABSENT),
                "determination": self.old.determination.value,
            },
            "new": {
                "status": self.new.statuses.get(self.clause, ABSENT),
                "determination": self.new.determination.value,
            },
            "facts": [
                {k: v for k, v in f.items() if k != "src" and not _derived_field(k)}
                for f in self.facts
            ],
        }


def _derived_field(name: str) -> bool:
    # Interval bounds and distances are computed from the stated field; show the stated one.
    return name.endswith(("_lo", "_hi", "_index"))


def outcome(policy: Policy, facts: Iterable[Mapping[str, Any]]) -> Outcome:
    """Run the engine on facts under a policy; return the determination and every status.

    Raises EngineError when the engine derives no verdict or leaves a clause without a status.
    """
    listed = [dict(f) for f in facts]
    key = (policy.ref, policy.sha256, repr(listed))
    if key not in _OUTCOMES:
        trace = Engine.get().run(api.program_for(policy), listed)
        statuses = {}
        for clause in policy.clauses:
            emitted = trace.statuses.get(clause.id)
            if emitted is None or trace.verdict is None:
                raise EngineError.single(
                    "engine_failed", f"no status was derived for `{clause.id}`"
                )
            statuses[clause.id] = str(emitted.fact["status"])
        if len(_OUTCOMES) > _CACHE:
            _OUTCOMES.clear()
        _OUTCOMES[key] = Outcome(trace.verdict, statuses)  # type: ignore[arg-type]
    return _OUTCOMES[key]


# Shrinking and the two search passes meet the same candidates again.
_OUTCOMES: dict[tuple[str, str, str], Outcome] = {}
_CACHE = 4096


def differs(clause: str, old: Outcome, new: Outcome) -> bool:
    """True when the clause ends differently; a clause only one version has differs when it
    fails there (it can then change the determination)."""
    a, b = old.statuses.get(clause, ABSENT), new.statuses.get(clause, ABSENT)
    if ABSENT in (a, b):
        present = b if a == ABSENT else a
        return present in (Status.NOT_MET, Status.NOT_DOCUMENTED)
    return a != b


def leaves(conditions: Iterable[Condition | None]) -> list[Compare]:
    """Return every comparison in the conditions."""
    return [n for c in conditions if c is not None for n in walk(c) if isinstance(n, Compare)]


def _candidates(leaf: Compare, thresholds: Sequence[float]) -> list[Any]:
    operand = leaf.operand
    if leaf.op is Op.SAME_SIDE_AS:
        return list(SIDES)  # the operand names the other fact's side, not a value
    if isinstance(operand, Threshold):
        step = 1.0 if float(operand.value).is_integer() else 0.1
        values = {round(t + d, 6) for t in thresholds for d in (-step, 0.0, step)}
        return sorted(values)
    if isinstance(operand, tuple):
        return list(operand)
    if isinstance(operand, bool):
        return [operand, not operand]
    if operand is not None:
        return [operand]
    return []


def mutations(base: Facts, compares: Sequence[Compare]) -> Iterator[Facts]:
    """Yield the base with one compared field moved across each threshold or vocabulary value.

    Only plain fields are moved (an interval or a measure is left as the case states it).
    """
    thresholds: dict[tuple[str, str], list[float]] = {}
    for leaf in compares:
        if isinstance(leaf.operand, Threshold):
            thresholds.setdefault((leaf.fact, leaf.field), []).append(float(leaf.operand.value))
    seen: set[tuple[str, str, str]] = set()
    for leaf in compares:
        if leaf.measure is not None or leaf.minus is not None:
            continue
        for value in _candidates(leaf, thresholds.get((leaf.fact, leaf.field), [])):
            for i, fact in enumerate(base):
                if fact.get("t") != leaf.fact or f"{leaf.field}_lo" in fact:
                    continue
                key = (str(fact["id"]), leaf.field, repr(value))
                if key in seen or fact.get(leaf.field) == value:
                    continue
                seen.add(key)
                changed = {k: v for k, v in fact.items() if k != f"{leaf.field}_word"}
                changed[leaf.field] = value
                yield (*base[:i], changed, *base[i + 1 :])


def shrink(clause: str, old: Policy, new: Policy, facts: Facts) -> Witness:
    """Remove facts (first whole types, then one at a time) while the clause still tells the
    versions apart."""

    def still(trial: Facts) -> bool:
        try:
            return differs(clause, outcome(old, trial), outcome(new, trial))
        except EngineError:
            return False

    current = facts
    for kind in sorted({str(f.get("t")) for f in facts} - _FRAME):
        trial = tuple(f for f in current if f.get("t") != kind)
        if still(trial):
            current = trial
    changed = True
    while changed:
        changed = False
        i = 0
        while i < len(current):
            trial = (*current[:i], *current[i + 1 :])
            if current[i].get("t") not in _FRAME and still(trial):
                current, changed = trial, True
            else:
                i += 1
    return Witness(clause, current, outcome(old, current), outcome(new, current))


def find_all(
    clauses: Sequence[str],
    old: Policy,
    new: Policy,
    bases: Sequence[Facts],
    compares: Sequence[Compare],
) -> dict[str, Witness]:
    """Return a verified, shrunk witness for each clause that has one among the candidates.

    Each candidate is evaluated once under each version for all clauses; the search stops when
    every clause has its witness.
    """
    wanted = list(dict.fromkeys(clauses))
    first: dict[str, Facts] = {}

    def candidates() -> Iterator[Facts]:
        yield from bases
        for base in bases:
            yield from mutations(base, compares)

    for facts in candidates():
        try:
            a, b = outcome(old, facts), outcome(new, facts)
        except EngineError:
            continue
        for clause in wanted:
            if clause not in first and differs(clause, a, b):
                first[clause] = facts
        if len(first) == len(wanted):
            break
    return {clause: shrink(clause, old, new, facts) for clause, facts in first.items()}
