"""The compiled form of a policy: stratified rules whose tests and actions are plain data.

This intermediate form sits between the policy model and durable_rules: the compiler writes it,
`ruleset.py` renders it in durable_rules' JSON, and `engine.py` runs the actions it names. Keeping
it engine-neutral is what lets the engine be swapped (ansible-rulebook's lesson).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from evaluator.language.conditions import Condition, Scalar, Truth
from evaluator.language.model import Determination, FromField, Status

# Reserved fact types and fields used by compiled rules; case and derived facts never use them.
STAGE = "stage"
CAND = "cand"
VAL = "val"
STATUS = "status"
VERDICT = "verdict"
CASE = "case"
# Another policy's determination, given to a session by the API (`{policy: id, is: ...}`).
POLICY_RESULT = "policy_result"
# Two bound facts' dates copied into one fact, so that the time between them is arithmetic on
# fields of one fact (a comparison across two facts would be a non-equality join, which crashes
# durable_rules: trap 17).
PAIR = "pair"
# Joins between facts use this copy of `id`: durable_rules 2.0.28 fails to join on `id` itself
# when the two facts were asserted in different calls (reproduced in tests/test_engine.py).
KEY = "key"


@dataclass(frozen=True, slots=True)
class Eq:
    field: str
    value: Scalar


@dataclass(frozen=True, slots=True)
class Ne:
    """The field is present and differs from the value."""

    field: str
    value: Scalar


@dataclass(frozen=True, slots=True)
class Cmp:
    """`field <op> value` with op one of <, <=, >, >=; false when the field is absent."""

    op: str
    field: str
    value: float


@dataclass(frozen=True, slots=True)
class CmpField:
    """`field <op> other + offset` within one fact."""

    op: str
    field: str
    other: str
    offset: float


@dataclass(frozen=True, slots=True)
class Present:
    field: str


@dataclass(frozen=True, slots=True)
class Absent:
    field: str


@dataclass(frozen=True, slots=True)
class Join:
    """The field equals `other` of the fact matched by `alias` earlier in the rule."""

    field: str
    alias: str
    other: str


@dataclass(frozen=True, slots=True)
class AllOf:
    tests: tuple[Test, ...]


@dataclass(frozen=True, slots=True)
class AnyTest:
    tests: tuple[Test, ...]


Test: TypeAlias = Eq | Ne | Cmp | CmpField | Present | Absent | Join | AllOf | AnyTest


@dataclass(frozen=True, slots=True)
class Pattern:
    """One fact the rule matches (or, when `negated`, requires not to exist)."""

    alias: str
    test: Test
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Record:
    """A condition node's value that a folded status rule's patterns establish, kept for
    evidence without a round trip: `source` names the alias of the fact that decided it and,
    with `candidate`, that fact is one candidate of a leaf over a type that occurs several
    times (docs/architecture.md, folding)."""

    node: str
    value: Truth
    source: str | None = None
    candidate: bool = False


@dataclass(frozen=True, slots=True)
class EmitValue:
    """Assert the truth value of a condition node for the bound facts `keys` (their ids).

    `kind` is CAND for one candidate fact's value (combined by OR in the next stage) or VAL for
    the node's final value; `source` names the alias of the case fact that decided it.
    """

    kind: str
    node: str
    value: Truth
    keys: tuple[str, ...]
    source: str | None = None
    # Folded rules only: the descendants' values their patterns establish (see `Record`).
    records: tuple[Record, ...] = ()


@dataclass(frozen=True, slots=True)
class EmitFact:
    """Assert a derived fact; `copy` lists the physical fields copied per FromField."""

    rule: str
    fact: str
    values: Mapping[str, Scalar | FromField]
    copy: Mapping[str, tuple[str, ...]]
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmitPair:
    """Assert a PAIR fact for `node` and the bound facts `keys`: each name in `fields` gets the
    value of (alias, engine field) of the matched facts, when that fact has it."""

    node: str
    keys: tuple[str, ...]
    fields: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class EmitStatus:
    clause: str
    status: Status
    # Folded rules only: the node values their patterns establish (see `Record`).
    records: tuple[Record, ...] = ()
    # False when no rule of the program reads this status (`compiler._unread`): the engine
    # keeps it for the decision without asserting it back, one message fewer per case.
    asserted: bool = True


@dataclass(frozen=True, slots=True)
class EmitVerdict:
    determination: Determination


@dataclass(frozen=True, slots=True)
class EmitMissing:
    """Fail the evaluation: `node` got no value (or a candidate fact `source` got none) for the
    bound facts `keys`. The compiler adds one such rule per node so that the engine itself finds
    what the combination rules would otherwise skip."""

    node: str
    keys: tuple[str, ...]
    aliases: tuple[str, ...]
    source: str | None = None


Action: TypeAlias = EmitValue | EmitFact | EmitPair | EmitStatus | EmitVerdict | EmitMissing


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    stage: int
    patterns: tuple[Pattern, ...]
    action: Action
    origin: str
    # Fire once `count` distinct matches exist (durable_rules batches them); None: every match.
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Node:
    """A condition node as compiled: its id, the condition, its children and scope depth."""

    id: str
    condition: Condition
    children: tuple[str, ...]
    depth: int
    aliases: tuple[str, ...]
    # The fact type bound to each alias, so evidence can say "the fused segment", not `seg`.
    facts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClauseNodes:
    applies: str | None
    waiver: str | None
    requires: str


@dataclass(frozen=True)
class Program:
    """A compiled policy: rules by stage plus what decision assembly needs to read results."""

    name: str
    stages: int
    rules: tuple[Rule, ...]
    nodes: Mapping[str, Node]
    clauses: Mapping[str, ClauseNodes]
    alternative: str | None
    derived_fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Ids of the policies whose determinations this one reads; evaluated first by the API.
    references: tuple[str, ...] = ()
    # Every clause -> the node an engine error names when the clause got no status: the
    # engine checks these once a case has run every stage (statuses no rule reads are not
    # asserted, so no rule could look for a missing one; see `EmitStatus.asserted`).
    required: Mapping[str, str] = field(default_factory=dict)

    def rule(self, name: str) -> Rule:
        return self._by_name[name]

    @property
    def _by_name(self) -> dict[str, Rule]:
        cache: dict[str, Rule] | None = self.__dict__.get("_rules_by_name")
        if cache is None:
            cache = {r.name: r for r in self.rules}
            object.__setattr__(self, "_rules_by_name", cache)
        return cache
