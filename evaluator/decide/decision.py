"""The Decision: clause results with their evidence, the determination and the alternative.

Assembly only reads what the engine derived (clause statuses, node values, derived facts, the
verdict) and explains it; it never decides a clause itself. A missing or contradictory engine
result is an EngineError, never a determination.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from evaluator.compile.program import Node, Program
from evaluator.decide import findings
from evaluator.engine.durable import Emitted, Trace
from evaluator.errors import EngineError, NecessityError
from evaluator.language.conditions import (
    TIME_OPS,
    ClauseIs,
    Compare,
    Condition,
    Count,
    Demonstrated,
    Distinct,
    Every,
    Exists,
    Latest,
    Not,
    Op,
    PolicyIs,
    Some,
    Threshold,
    Truth,
)
from evaluator.language.describe import choice_text, leaf_text, words
from evaluator.language.dictionary import FactType, with_derived
from evaluator.language.model import Clause, Determination, Policy, Reference, Status

if TYPE_CHECKING:
    # only a decision evaluated with `explain` holds one (the module is imported then)
    from evaluator.decide.explain import Explanation

X12_ACTIONS = {
    Determination.MEDICALLY_NECESSARY: "A1",
    Determination.NOT_MEDICALLY_NECESSARY: "A3",
    Determination.INSUFFICIENT_DOCUMENTATION: "A4",
}
_TEMPLATE = re.compile(r"\{([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\}")
# Fields that name a fact best when it is shown as a bound element.
_DISPLAY_FIELDS = ("segment", "name", "kind", "test", "study", "line", "procedure", "date")
_HIDDEN = ("t", "id", "key", "sid", "src")
_KEY_FIELD = re.compile(r"k\d+")
_EMPTY = "none"


@dataclass(frozen=True, slots=True)
class FactView:
    """A fact as evidence: its type, id, the fields that matter and where it came from."""

    type: str
    id: str
    values: tuple[tuple[str, Any], ...]
    source: str | None


@dataclass(frozen=True, slots=True)
class Evidence:
    """One deciding condition: what it asks, for which bound facts, its value and the facts."""

    condition: str
    value: Truth
    binding: tuple[tuple[str, str], ...]
    facts: tuple[FactView, ...]
    # For `clause X is ...`: the clause it reads (a missing document there may change it).
    clause: str | None = None
    # The ids of the facts bound around the condition (`binding` shows them to a reader).
    bound: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClauseResult:
    id: str
    section: str
    section_title: str
    title: str
    status: Status
    evidence: tuple[Evidence, ...]
    citations: tuple[int, ...]
    rationale: str | None
    recommendation: str | None
    documentation: tuple[str, ...]
    # The policy's `finding` for this status, filled from the facts the evidence matched.
    finding: str | None = None


@dataclass(frozen=True, slots=True)
class AlternativeLine:
    """One procedure of the narrower request, on the requested line it modifies."""

    line: str
    procedure: str
    segments: tuple[str, ...]
    # Contiguous constructs, each a range: a skipped segment is never hidden inside one range.
    constructs: tuple[str, ...]
    levels: str
    # (code, units), filled in when the alternative request is built (api).
    cpt: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class AlternativeScope:
    """The narrower request and, once evaluated by the same policy, its own decision."""

    summary: str
    lines: tuple[AlternativeLine, ...]
    decision: Decision | None = None

    @property
    def approvable(self) -> bool:
        """True when the alternative is itself medically necessary (an A6 candidate)."""
        return (
            self.decision is not None
            and self.decision.determination is Determination.MEDICALLY_NECESSARY
        )


@dataclass(frozen=True, slots=True)
class DocumentRequest:
    """One document to ask for, naming every clause it serves (identical requests merged)."""

    clauses: tuple[str, ...]
    document: str

    @property
    def clause(self) -> str:
        return self.clauses[0]


@dataclass(frozen=True, slots=True)
class Decision:
    case_id: str
    determination: Determination
    policy_id: str
    policy_version: str
    policy_title: str
    policy_sha256: str
    clauses: tuple[ClauseResult, ...]
    alternative: AlternativeScope | None
    documentation_requests: tuple[DocumentRequest, ...]
    references: tuple[Reference, ...]
    conflicts: tuple[Mapping[str, str], ...]
    # Hashes that make the decision reproducible (records.provenance); set by api.evaluate.
    provenance: Mapping[str, Any] = field(default_factory=dict)
    # The firing trace, only when asked for (`api.evaluate(..., explain=True)`).
    explanation: Explanation | None = None

    @property
    def x12_action(self) -> str:
        """The X12 278 action: A6 (modified, for physician review) when the request is not
        approvable as asked but its evaluated alternative is medically necessary."""
        if (
            self.determination is not Determination.MEDICALLY_NECESSARY
            and self.alternative is not None
            and self.alternative.approvable
        ):
            return "A6"
        return X12_ACTIONS[self.determination]

    def by_status(self, *statuses: Status) -> list[ClauseResult]:
        return [c for c in self.clauses if c.status in statuses]


_TRUTHS: dict[int, Truth] = {int(t): t for t in Truth}
_KLEENE = frozenset(_TRUTHS)


# The types a node value may have: an int or a Truth, never a bool or a float equal to one.
_INTEGRAL = frozenset({int, Truth})


def _check_values(trace: Trace) -> None:
    """Raise the EngineError naming the node when a value or candidate of the trace is not
    false, unknown or true (a damaged trace: no rule action writes another). Once per trace,
    before anything reads a value, so that `assemble` and `verdict` refuse the same traces and
    no read can take a damaged value for another, skip it quietly or fail as an internal error.
    """
    try:  # the values gathered, then compared as one set (the loop below names the node)
        # By type too: True and 2.0 equal 1 and 2 (and a set keeps whichever came first). A
        # value of any other type than int (a Truth too) is left to the loop below.
        said = {v if type(v := e.fact["v"]) is int else None for e in trace.values.values()}
        if trace.candidates:
            said.update([v if type(v := e.fact["v"]) is int else None for e in trace.candidates])
        if said <= _KLEENE:
            return
    except (KeyError, TypeError):  # no value, or one that cannot be hashed: found below
        pass
    named: list[tuple[Any, Emitted]] = [(node, e) for (node, _), e in trace.values.items()]
    named += [(e.fact.get("n"), e) for e in trace.candidates]
    for node, emitted in named:
        value = emitted.fact.get("v")
        try:
            kleene = type(value) in _INTEGRAL and value in _KLEENE
        except TypeError:
            kleene = False
        if not kleene:
            raise EngineError.single(
                "engine_failed",
                f"the value derived for `{node}` is not false, unknown or true: {value!r}",
            )


# Assembly makes some twenty of these a case. A frozen dataclass's __init__ sets each field with
# object.__setattr__, which looks the field up by name every time; these builders set the
# slots directly, in field order (`_slots` refuses a class whose fields are other than named),
# and give the object the constructor gives (tests/test_assembly_plan.py).
_NEW = object.__new__


def _slots(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """Return the slot setters of every field of a frozen slotted dataclass, in order."""
    if tuple(f.name for f in fields(cls)) != names:
        raise TypeError(f"{cls.__name__} has the fields {fields(cls)}, not {names}")
    return tuple(vars(cls)[name].__set__ for name in names)


_FV_TYPE, _FV_ID, _FV_VALUES, _FV_SOURCE = _slots(FactView, "type", "id", "values", "source")
_EV_CONDITION, _EV_VALUE, _EV_BINDING, _EV_FACTS, _EV_CLAUSE, _EV_BOUND = _slots(
    Evidence, "condition", "value", "binding", "facts", "clause", "bound"
)
(
    _CR_ID,
    _CR_SECTION,
    _CR_SECTION_TITLE,
    _CR_TITLE,
    _CR_STATUS,
    _CR_EVIDENCE,
    _CR_CITATIONS,
    _CR_RATIONALE,
    _CR_RECOMMENDATION,
    _CR_DOCUMENTATION,
    _CR_FINDING,
) = _slots(
    ClauseResult,
    "id",
    "section",
    "section_title",
    "title",
    "status",
    "evidence",
    "citations",
    "rationale",
    "recommendation",
    "documentation",
    "finding",
)

_DECISION = _slots(
    Decision,
    "case_id",
    "determination",
    "policy_id",
    "policy_version",
    "policy_title",
    "policy_sha256",
    "clauses",
    "alternative",
    "documentation_requests",
    "references",
    "conflicts",
    "provenance",
    "explanation",
)


def _decision(*values: Any) -> Decision:
    """Return `Decision(*values)`, every field given."""
    decision: Decision = _NEW(Decision)
    for setter, value in zip(_DECISION, values, strict=True):
        setter(decision, value)
    return decision


def _evidence(
    condition: str,
    value: Truth,
    binding: tuple[tuple[str, str], ...],
    facts: tuple[FactView, ...],
    clause: str | None,
    bound: tuple[str, ...],
) -> Evidence:
    """Return `Evidence(condition, value, binding, facts, clause, bound)`."""
    evidence: Evidence = _NEW(Evidence)
    _EV_CONDITION(evidence, condition)
    _EV_VALUE(evidence, value)
    _EV_BINDING(evidence, binding)
    _EV_FACTS(evidence, facts)
    _EV_CLAUSE(evidence, clause)
    _EV_BOUND(evidence, bound)
    return evidence


# The child values that decide a node, indexed by the node's own value.
_SAME = (frozenset({0}), frozenset({1}), frozenset({2}))
_NEGATED = (frozenset({2}), frozenset({1}), frozenset({0}))
_TRUE_OR_REST = (frozenset({0, 1}), frozenset({0, 1}), frozenset({2}))
_LATEST = (frozenset({0}), frozenset({0, 1, 2}), frozenset({2}))
_NOTHING: Mapping[str, Mapping[str, Any]] = {}
# Each cache of a plan (shown fields by fact shape, bare evidence by bound facts) is bounded:
# hostile cases may vary field names and ids without end.
_CACHE_LIMIT = 4096


# eq=False, repr=False: never compared, hashed or printed (api.Request says why)
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _NodePlan:
    """What evidence needs of one condition node; none of it depends on the case."""

    leaf: bool
    scope: bool
    children: tuple[str, ...]
    deciding: tuple[frozenset[int], frozenset[int], frozenset[int]]
    text: str = ""
    aliases: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    # The other fact a time or side comparison reads: (positions of its alias, its field).
    other: tuple[tuple[int, ...], str] | None = None
    # A comparison may read a derived fact: show it too (an existence test's derived fact is
    # explained by the routes that derived it instead).
    shows_derived: bool = False
    clause: str | None = None
    # For an existence test: the `when` nodes of the rules that derive its fact type.
    routes: tuple[str, ...] = ()
    # A leaf's evidence when it matched no fact and binds none, by value (the same for every
    # case, so one frozen object serves them all).
    bare: tuple[Evidence, ...] = ()


# A text as it reads (a str), or cut at the placeholders a case fills (`_Plan.parts`).
_Text = str | tuple[tuple[str, str, str], ...]
# When a clause's outcome asks for its documentation (`_Outcome.asks`).
_NEVER, _ALWAYS, _IF_IT_COULD_CHANGE = 0, 1, 2


# eq=False, repr=False: never compared, hashed or printed (api.Request says why)
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _Outcome:
    """One status a clause may end in and what assembly reads and shows for it; none of it
    depends on the case."""

    status: Status
    # The node whose value decided the status (its evidence): the requirement, or for not
    # applicable the applicability test, unless `waiver` held.
    decider: str | None
    waiver: str | None
    rationale: _Text | None
    # Not documented asks for documents, not for more treatment.
    recommendation: _Text | None
    finding: str | None
    asks: int

    def deciding(self, values: Mapping[tuple[str, tuple[str, ...]], Emitted]) -> str | None:
        """Return the node whose value decided this outcome (read by `assemble` and `verdict`)."""
        if self.waiver is not None:
            waiver = values.get((self.waiver, ()))
            if waiver is not None and waiver.fact["v"] == Truth.TRUE:
                return self.waiver
            if self.decider is None:  # a clause only a waiver makes not applicable
                if waiver is None:
                    raise _no_value(self.waiver)
                raise EngineError.single(
                    "engine_failed", f"not applicable, but `{self.waiver}` did not hold"
                )
        elif self.decider is None and self.status is Status.NOT_APPLICABLE:
            raise EngineError.single(
                "engine_failed", "not applicable, but nothing could make it so"
            )
        return self.decider


# eq=False, repr=False: never compared, hashed or printed (api.Request says why)
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _ClausePlan:
    clause: Clause
    id: str
    section_title: str
    # The title, with its `{setting.name}` filled in (as every text below).
    title: str
    # Documentation to request, when no entry has placeholders (else None: filled per case).
    documentation: tuple[str, ...] | None
    # The entries as templates, for the case (`{type.field}` left to fill).
    documents: tuple[str, ...]
    # By the status the engine says (its value): what the clause shows for it.
    outcomes: Mapping[str, _Outcome]
    # The clause's own, as its result shows them.
    section: str = ""
    cites: tuple[int, ...] = ()

    def outcome(self, statuses: Mapping[str, Emitted]) -> _Outcome:
        """Return the outcome of the status the engine derived for the clause, else the
        EngineError (none derived, or one no clause can have). The one check of a clause's
        status, for `assemble` and `verdict`."""
        emitted = statuses.get(self.id)
        if emitted is None:
            raise EngineError.single("engine_failed", f"no status was derived for `{self.id}`")
        said = emitted.fact["status"]
        found = self.outcomes.get(said)  # a Status is a str: either finds its outcome
        if found is None:
            raise EngineError.single(
                "engine_failed", f"the status derived for `{self.id}` is not one: {said!r}"
            )
        return found


class _Plan:
    """What assembly needs of a policy and its program that no case changes: clause order,
    section titles, the cited references, each node's words and the fields its evidence shows,
    the clause texts with their `{setting.name}` filled in (the policy is the effective one, so
    a plan overlay's values, never the base's, under a plan: the plan's key covers the
    overlay) and the templates without placeholders. Node plans are worked out when first
    needed."""

    def __init__(self, policy: Policy, program: Program) -> None:
        self.policy = policy
        self.key = policy_key(policy)
        self.nodes = program.nodes
        self.program_clauses = program.clauses
        self.alternative = program.alternative
        self._routes: dict[str, tuple[str, ...]] = {}
        for rule in policy.rules:
            if rule.when is not None:
                self._routes[rule.fact] = (*self._routes.get(rule.fact, ()), f"{rule.id}:when")
        self._texts: dict[str, str | None] = {}
        self._parts: dict[str, tuple[tuple[str, str, str], ...]] = {}
        self.node_plans: dict[str, _NodePlan] = {}
        self.views: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}
        self._bare: dict[tuple[str, Truth, tuple[str, ...]], Evidence] = {}
        titles: dict[str, str] = {}
        for section in policy.sections:
            titles.setdefault(section.id, section.title)
        settings = policy.settings
        self.clauses = tuple(self._clause(c, titles[c.section], settings) for c in policy.clauses)
        alternative = policy.alternative
        self.summary = findings.fill_settings(alternative.summary, settings) if alternative else ""
        cited = {n for c in policy.clauses for n in c.cites}
        self.references = tuple(r for r in policy.references if r.id in cited)
        self._types: Mapping[str, FactType] | None = None

    @property
    def types(self) -> Mapping[str, FactType]:
        if self._types is None:
            self._types = with_derived(self.policy.derived)
        return self._types

    def fixed(self, text: str) -> str | None:
        """Return a template without placeholders as it reads, else None."""
        if text not in self._texts:
            static = _TEMPLATE.search(text) is None
            self._texts[text] = " ".join(text.split()) if static else None
        return self._texts[text]

    def parts(self, text: str) -> tuple[tuple[str, str, str], ...]:
        """Return a template cut at its `{type.field}` placeholders, as `_TEMPLATE.sub` would
        visit them: (text, "", "") for each piece of text, ("", type, field) for each
        placeholder a case fills; a `{setting.name}` the policy lacks (lint) stays as written."""
        found = self._parts.get(text)
        if found is None:
            pieces = _TEMPLATE.split(text)
            out = [(pieces[0], "", "")]
            for i in range(1, len(pieces), 3):
                fact_type, name = pieces[i], pieces[i + 1]
                if fact_type == findings.SETTING:
                    out.append((f"{{{fact_type}.{name}}}", "", ""))
                else:
                    out.append(("", fact_type, name))
                out.append((pieces[i + 2], "", ""))
            found = self._parts[text] = tuple(out)
        return found

    def _clause(
        self, clause: Clause, section_title: str, settings: Mapping[str, Threshold]
    ) -> _ClausePlan:
        documents = tuple(findings.fill_settings(d, settings) for d in clause.documentation)
        nodes = self.program_clauses[clause.id]
        outcomes = {}
        for status, (rationale, recommendation, finding) in _clause_texts(clause, settings).items():
            asks = _NEVER
            if clause.documentation and status is Status.NOT_DOCUMENTED:
                asks = _ALWAYS
            elif clause.documentation and status is Status.NOT_MET:
                asks = _IF_IT_COULD_CHANGE
            applicable = status is not Status.NOT_APPLICABLE
            outcomes[status.value] = _Outcome(
                status,
                nodes.requires if applicable else nodes.applies,
                None if applicable else nodes.waiver or None,
                None if rationale is None else self._text(rationale),
                None if recommendation is None else self._text(recommendation),
                finding,
                asks,
            )
        return _ClausePlan(
            clause,
            clause.id,
            section_title,
            findings.fill_settings(clause.title, settings),
            self._fixed_all(documents),
            documents,
            outcomes,
            clause.section,
            clause.cites,
        )

    def _text(self, text: str) -> _Text:
        fixed = self.fixed(text)
        return self.parts(text) if fixed is None else fixed

    def _fixed_all(self, texts: tuple[str, ...]) -> tuple[str, ...] | None:
        fixed = [self.fixed(t) for t in texts]
        return tuple(f for f in fixed if f is not None) if None not in fixed else None

    def node(self, node_id: str) -> _NodePlan:
        found = self.node_plans.get(node_id)
        if found is None:
            found = self.node_plans[node_id] = self._node(node_id)
        return found

    def _node(self, node_id: str) -> _NodePlan:
        node = self.nodes[node_id]
        cond: Condition = node.condition
        if isinstance(cond, Compare | Exists | ClauseIs | PolicyIs | Distinct):
            return self._leaf(node, cond)
        if isinstance(cond, Every | Some | Count):
            # A count is decided by its true children (true) or all the rest (otherwise).
            deciding = _TRUE_OR_REST if isinstance(cond, Count) else _SAME
            return _NodePlan(False, True, node.children[:1], deciding)
        if isinstance(cond, Latest):
            # Its child is what each fact that may be the latest says; unknown is decided by
            # all of them (they disagree, or one is unknown).
            return _NodePlan(False, True, node.children[:1], _LATEST)
        deciding = _SAME
        if isinstance(cond, Not):
            deciding = _NEGATED
        elif isinstance(cond, Demonstrated):
            deciding = _TRUE_OR_REST
        return _NodePlan(False, False, node.children, deciding)

    def _leaf(
        self, node: Node, cond: Compare | Exists | ClauseIs | PolicyIs | Distinct
    ) -> _NodePlan:
        fields: tuple[str, ...] = ()
        other: tuple[tuple[int, ...], str] | None = None
        if isinstance(cond, Compare):
            fields = (cond.field, cond.minus) if cond.minus else (cond.field,)
            related = cond.of if cond.op in TIME_OPS else None
            if cond.op is Op.SAME_SIDE_AS:
                related = str(cond.operand)
            alias, _, field = (related or "").partition(".")
            if alias == cond.fact:
                fields = (*fields, field)
            elif alias in node.aliases:
                # the last position wins, as in a dict of the bound aliases
                at = tuple(i for i, a in enumerate(node.aliases) if a == alias)
                other = (at[::-1], field)
        aliases = dict(zip(node.aliases, node.facts, strict=False))
        text = leaf_text(cond, aliases=aliases)
        clause = cond.clause if isinstance(cond, ClauseIs) else None
        return _NodePlan(
            leaf=True,
            scope=False,
            children=(),
            deciding=_SAME,
            text=text,
            aliases=node.aliases,
            fields=fields,
            other=other,
            shows_derived=isinstance(cond, Compare),
            clause=clause,
            routes=self._routes.get(cond.fact, ()) if isinstance(cond, Exists) else (),
            bare=tuple(Evidence(text, value, (), (), clause, ()) for value in Truth),
        )

    def bare(self, node_id: str, node: _NodePlan, value: Truth, keys: tuple[str, ...]) -> Evidence:
        """Return the evidence of a leaf that matched no fact and binds none: the same for
        every case (frozen, so one object serves them all)."""
        key = (node_id, value, keys)
        found = self._bare.get(key)
        if found is None:
            if len(self._bare) >= _CACHE_LIMIT:
                self._bare.clear()
            found = self._bare[key] = Evidence(node.text, value, (), (), node.clause, keys)
        return found

    def shown(self, fields: tuple[str, ...], names: tuple[str, ...]) -> tuple[str, ...]:
        """Return, sorted, the fields of a fact with these field names that a reader needs:
        `fields` and their companions, or every plain field when `fields` is empty."""
        key = (fields, names)
        found = self.views.get(key)
        if found is None:
            if len(self.views) >= _CACHE_LIMIT:
                self.views.clear()
            if not fields:
                kept = [n for n in names if n not in _HIDDEN and not _KEY_FIELD.fullmatch(n)]
            else:
                have = set(names)
                kept = [n for n in names if any(_companion(n, f, have) for f in fields)]
            found = self.views[key] = tuple(sorted(kept))
        return found


def _clause_texts(
    clause: Clause, settings: Mapping[str, Threshold]
) -> dict[Status, tuple[str | None, str | None, str | None]]:
    def filled(text: str | None, finding: bool = False) -> str | None:
        return findings.fill_settings(text, settings, finding=finding) if text else None

    return {
        status: (
            filled(clause.rationale.get(status)),
            # Not documented asks for documents, not for more treatment.
            filled(clause.recommendation) if status is Status.NOT_MET else None,
            filled(clause.finding.get(status), finding=True),
        )
        for status in Status
    }


_PLANS: dict[int, _Plan] = {}


def policy_key(policy: Policy) -> str:
    """Return what a policy's program is compiled once for (`api.program_for`) and its plan
    made once for: equal keys, the same content. The content hash covers imported modules and a
    plan overlay, which the file's does not."""
    return f"{policy.ref}#{policy.sha256}#{policy.content_sha256}"


def _plan(policy: Policy, program: Program) -> _Plan:
    """Return the plan of a policy's program, made once per program and policy content (a
    referenced policy is loaded afresh for each case).

    Kept beside the program rather than on it, so that a program stays as compiled (a cache
    may pickle it); the entry goes when the program does."""
    plan = _PLANS.get(id(program))
    if (
        plan is not None
        and plan.nodes is program.nodes
        and (plan.policy is policy or plan.key == policy_key(policy))
    ):
        return plan
    fresh = _Plan(policy, program)
    if plan is None:
        try:
            weakref.finalize(program, _PLANS.pop, id(program), None)
        except TypeError:  # a program that cannot be referenced weakly is planned every time
            return fresh
    _PLANS[id(program)] = fresh
    return fresh


class _Assembler:
    def __init__(self, plan: _Plan, trace: Trace, facts: Iterable[Mapping[str, Any]]) -> None:
        self.plan = plan
        self.node_plans = plan.node_plans
        self.shown = plan.views
        self.policy = plan.policy
        self.trace = trace
        self.values = trace.values
        self.statuses = trace.statuses
        self.facts = {str(f["id"]): f for f in facts}
        self.derived_by_id = {str(e.fact["id"]): e.fact for e in trace.derived}
        # a leaf's other candidate facts, by node and keys (most traces have none)
        self.candidates: dict[tuple[str, tuple[str, ...]], list[Mapping[str, Any]]] = {}
        for emitted in trace.candidates:
            fact = emitted.fact
            self.candidates.setdefault((fact["n"], _keys(fact)), []).append(fact)
        self._all_facts: list[Mapping[str, Any]] | None = None
        self._pool: findings.Pool | None = None
        self._segment_order: Any = None
        self._order: dict[str, int] | None = None
        # (node, its keys but the last) -> (keys, value) of each scoped value; when first needed
        self._by_prefix: dict[tuple[str, tuple[str, ...]], list[tuple[tuple[str, ...], int]]]
        self._by_prefix = {}
        self._indexed = False
        self._names: dict[str, str] = {}
        self._bindings: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[tuple[str, str], ...]]
        self._bindings = {}
        self._pending: set[str] | None = None

    @property
    def all_facts(self) -> list[Mapping[str, Any]]:
        """The case's facts, then the derived ones."""
        if self._all_facts is None:
            self._all_facts = [*self.facts.values(), *(e.fact for e in self.trace.derived)]
        return self._all_facts

    @property
    def segment_order(self) -> Any:
        """Sorts segment names in spinal order (`_segment_order` of `all_facts`), once a case."""
        if self._segment_order is None:
            self._segment_order = _segment_order(self.all_facts)
        return self._segment_order

    @property
    def pool(self) -> findings.Pool:
        """`all_facts` by type, for the templates."""
        if self._pool is None:
            self._pool = findings.Pool(self.all_facts)
        return self._pool

    def scoped(self, child: str, keys: tuple[str, ...]) -> list[tuple[tuple[str, ...], int]]:
        """Return (keys, value) of each value of `child` for one more bound fact than `keys`."""
        if not self._indexed:
            for (node, bound), emitted in self.values.items():
                if bound:
                    entry = (bound, emitted.fact["v"])
                    self._by_prefix.setdefault((node, bound[:-1]), []).append(entry)
            self._indexed = True
        return self._by_prefix.get((child, keys), [])

    def fact_view(self, fact: Mapping[str, Any], fields: tuple[str, ...]) -> FactView:
        """Return the fact with the fields a reader needs (`_Plan.shown`)."""
        names = tuple(fact)
        shown = self.shown.get((fields, names))  # inline `_Plan.shown` when it has the entry
        if shown is None:
            shown = self.plan.shown(fields, names)
        view: FactView = _NEW(FactView)
        _FV_TYPE(view, str(fact["t"]))
        _FV_ID(view, str(fact["id"]))
        _FV_VALUES(view, tuple([(name, fact[name]) for name in shown]))
        _FV_SOURCE(view, fact.get("src"))
        return view

    def binding(
        self, aliases: tuple[str, ...], keys: tuple[str, ...]
    ) -> tuple[tuple[str, str], ...]:
        """Return each alias with the name of the fact bound to it (`_DISPLAY_FIELDS`), once a
        case per aliases and keys: the leaves of one scope share them."""
        found = self._bindings.get((aliases, keys))
        if found is None:
            found = self._bindings[aliases, keys] = self._binding(aliases, keys)
        return found

    def _binding(
        self, aliases: tuple[str, ...], keys: tuple[str, ...]
    ) -> tuple[tuple[str, str], ...]:
        out = []
        for alias, key in zip(aliases, keys, strict=False):
            shown = self._names.get(key)
            if shown is None:
                fact = self.facts.get(key) or self.derived_by_id.get(key, {})
                shown = next((str(fact[f]) for f in _DISPLAY_FIELDS if f in fact), key)
                self._names[key] = shown
            out.append((alias, shown))
        return tuple(out)

    def evidence(self, node_id: str, keys: tuple[str, ...], out: list[Evidence]) -> None:
        """Append the evidence of a node for its bound facts: the leaves whose values decided
        its value, depth first. Raises EngineError when the engine derived no value for it."""
        emitted = self.values.get((node_id, keys))
        if emitted is None:  # inline `_value`: this runs for every node of the evidence
            raise _no_value(node_id)
        self.walk(node_id, keys, emitted.fact, out)

    def walk(
        self, node_id: str, keys: tuple[str, ...], fact: Mapping[str, Any], out: list[Evidence]
    ) -> None:
        """`evidence` of a node whose value fact the caller already looked up (a parent hands
        each deciding child's on: one lookup a node)."""
        value = _TRUTHS[fact["v"]]  # every value is one (`_check_values`)
        node = self.node_plans.get(node_id)
        if node is None:
            node = self.plan.node(node_id)
        if node.leaf:
            out.append(self.leaf(node_id, node, keys, value, fact))
            if node.routes:
                self.derivation(node.routes, keys, value, out)
            return
        wanted = node.deciding[value]
        if node.scope:
            child = node.children[0]
            for bound in sorted([b for b, v in self.scoped(child, keys) if v in wanted]):
                self.evidence(child, bound, out)
            return
        values = self.values
        walk = self.walk
        for child in node.children:
            found = values.get((child, keys))
            if found is not None:
                child_fact = found.fact
                if child_fact["v"] in wanted:
                    walk(child, keys, child_fact, out)

    def derivation(
        self, routes: tuple[str, ...], keys: tuple[str, ...], value: Truth, out: list[Evidence]
    ) -> None:
        """Append why a derived fact exists (the routes that derived it) or not (every route),
        for the same bound facts; nothing for a case fact type."""
        for when in routes:
            route = self.values.get((when, keys))
            if route is None or (value is Truth.TRUE and route.fact["v"] != Truth.TRUE):
                continue
            self.walk(when, keys, route.fact, out)

    def leaf(
        self,
        node_id: str,
        node: _NodePlan,
        keys: tuple[str, ...],
        value: Truth,
        emitted: Mapping[str, Any],
    ) -> Evidence:
        """Return a leaf's evidence: the facts its firing matched (the value's own fact and
        each candidate fact that gave the same value) and, for a time or side comparison, the
        other fact it read."""
        facts = self.facts
        source = None
        matched = emitted.get("f")
        if matched is not None:
            source = facts.get(matched)
            if not source and node.shows_derived:
                source = self.derived_by_id.get(matched)
        candidates = self.candidates.get((node_id, keys)) if self.candidates else None
        if candidates:
            derived = self.derived_by_id if node.shows_derived else _NOTHING
            sources = [source] if source else []
            for cand in candidates:
                if cand["v"] == value and "f" in cand:
                    other_source = facts.get(cand["f"]) or derived.get(cand["f"])
                    if other_source:
                        sources.append(other_source)
            if len(sources) > 1:
                sources = _unique(sources)
            views = tuple([self.fact_view(f, node.fields) for f in sources])
        elif source:  # nearly always: the one fact the value's firing matched
            views = (self.fact_view(source, node.fields),)
        else:
            views = ()
        binding: tuple[tuple[str, str], ...] = ()
        if not keys:
            if not views:  # no other fact either: it is bound by an alias
                return node.bare[value]
        else:
            if node.other is not None:
                at, field = node.other
                other = next((keys[i] for i in at if i < len(keys)), None)
                found = None if other is None else facts.get(other) or self.derived_by_id.get(other)
                if found:
                    views = (*views, self.fact_view(found, (field,)))
            if node.aliases:
                binding = self.binding(node.aliases, keys)
            elif not views:
                return self.plan.bare(node_id, node, value, keys)
        # `_evidence`, inline: one call fewer for every leaf of the evidence
        evidence: Evidence = _NEW(Evidence)
        _EV_CONDITION(evidence, node.text)
        _EV_VALUE(evidence, value)
        _EV_BINDING(evidence, binding)
        _EV_FACTS(evidence, views)
        _EV_CLAUSE(evidence, node.clause)
        _EV_BOUND(evidence, keys)
        return evidence

    def template(self, text: str, *, each: bool = False) -> str:
        """Fill `{type.field}` placeholders; segments as constructs ("L3-L4 and L5-S1") or,
        with `each` (a document to request, made per segment), one by one."""
        fixed = self.plan.fixed(text)
        return self.fill(self.plan.parts(text), each=each) if fixed is None else fixed

    def fill(self, parts: tuple[tuple[str, str, str], ...], *, each: bool = False) -> str:
        """Return a template's parts (`_Plan.parts`) filled from the case's facts."""
        out = []
        for literal, fact_type, name in parts:
            if not fact_type:
                out.append(literal)
                continue
            of_type = self.pool.by_type.get(fact_type, ())
            values = sorted({str(f[name]) for f in of_type if name in f})
            if not values:
                out.append(_EMPTY)
            elif name == "segment":
                if each:
                    named = sorted(values, key=self.segment_order)
                else:
                    named = findings.segment_ranges(values).split(", ")
                out.append(choice_text(list(named), "and"))
            else:
                out.append(", ".join(v.replace("_", " ") for v in values))
        return " ".join("".join(out).split())

    def clause(self, planned: _ClausePlan) -> ClauseResult:
        """Return the ClauseResult of a planned clause with what the case gave it."""
        outcome = planned.outcome(self.statuses)
        decider = outcome.deciding(self.values)
        evidence: tuple[Evidence, ...] = ()
        if decider:
            found: list[Evidence] = []
            self.evidence(decider, (), found)
            evidence = tuple(found)
        asks = outcome.asks
        documentation: tuple[str, ...] = ()
        if asks is _ALWAYS or (asks is _IF_IT_COULD_CHANGE and self.could_change(evidence)):
            documentation = planned.documentation or tuple(
                [self.template(d, each=True) for d in planned.documents]
            )
        finding = outcome.finding
        rationale, recommendation = outcome.rationale, outcome.recommendation
        # The slots set here, in field order (`_slots`), rather than in a builder: six a case.
        result: ClauseResult = _NEW(ClauseResult)
        _CR_ID(result, planned.id)
        _CR_SECTION(result, planned.section)
        _CR_SECTION_TITLE(result, planned.section_title)
        _CR_TITLE(result, planned.title)
        _CR_STATUS(result, outcome.status)
        _CR_EVIDENCE(result, evidence)
        _CR_CITATIONS(result, planned.cites)
        _CR_RATIONALE(result, self.fill(rationale) if isinstance(rationale, tuple) else rationale)
        _CR_RECOMMENDATION(
            result,
            self.fill(recommendation) if isinstance(recommendation, tuple) else recommendation,
        )
        _CR_DOCUMENTATION(result, documentation)
        _CR_FINDING(result, None if finding is None else self.finding(finding, evidence))
        return result

    def finding(self, text: str, evidence: tuple[Evidence, ...]) -> str:
        """Fill a finding template from the facts the deciding evidence matched or bound."""
        ids = [f.id for e in evidence for f in e.facts] + [k for e in evidence for k in e.bound]
        read = [
            fact
            for fact in (self.facts.get(i) or self.derived_by_id.get(i) for i in dict.fromkeys(ids))
            if fact is not None
        ]
        if self._order is None:
            self._order = {str(f["id"]): i for i, f in enumerate(self.all_facts)}
        order = self._order
        read.sort(key=lambda f: order.get(str(f["id"]), len(order)))
        return findings.fill(text, read, self.pool, self.plan.types)

    def could_change(self, evidence: tuple[Evidence, ...]) -> bool:
        """True when a missing document could change a clause that is not met: part of what
        decided it is unknown (a clause whose missing facts count as not met, a derivation
        route nothing decided) or rests on a clause that is itself not documented. (A clause
        not documented always asks for its documents: `_Outcome.asks`.)"""
        for e in evidence:
            if e.value is Truth.UNKNOWN:
                return True
        if self._pending is None:
            self._pending = {
                c for c, s in self.statuses.items() if s.fact["status"] == "not_documented"
            }
        pending = self._pending
        return any(e.clause in pending for e in evidence)

    def alternative(self) -> AlternativeScope | None:
        alt = self.policy.alternative
        if alt is None or self.plan.alternative is None:
            return None
        found = self.values.get((self.plan.alternative, ()))
        if found is None or found.fact["v"] != Truth.TRUE:
            return None
        lines = []
        order = self.segment_order
        # Lines in request order; a line id the request does not hold (none expected) last.
        rank = {
            str(f["line"]): i for i, f in enumerate(self.facts.values()) if f.get("t") == "line"
        }
        for line in alt.lines:
            by_line: dict[str, set[str]] = {}
            for f in self.all_facts:
                if f.get("t") == line.segments and "segment" in f and "line" in f:
                    by_line.setdefault(str(f["line"]), set()).add(str(f["segment"]))
            # a procedure the facts support nowhere is not part of the scope
            for line_id in sorted(by_line, key=lambda x: (rank.get(x, len(rank)), x)):
                segments = sorted(by_line[line_id], key=order)
                constructs = tuple(findings.segment_ranges(segments).split(", "))
                lines.append(
                    AlternativeLine(
                        line_id,
                        line.procedure,
                        tuple(segments),
                        constructs,
                        choice_text(list(constructs), "and"),
                    )
                )
        if not lines:
            return None
        summary = self.template(self.plan.summary) if self.plan.summary else ""
        if not summary or _EMPTY in summary:
            summary = "; ".join(f"{words(x.procedure)} {x.levels}" for x in lines)
            summary = summary[0].upper() + summary[1:] + "."
        return AlternativeScope(summary, tuple(lines))


def _determination(trace: Trace) -> Determination:
    """Return the verdict the engine derived, else the EngineError (never a default)."""
    if trace.verdict is None:
        raise EngineError.single("engine_failed", "the engine derived no determination")
    return trace.verdict


def _value(
    values: Mapping[tuple[str, tuple[str, ...]], Emitted], node_id: str, keys: tuple[str, ...]
) -> Emitted:
    """Return the value the engine derived for a node and its bound facts, else the
    EngineError."""
    emitted = values.get((node_id, keys))
    if emitted is None:
        raise _no_value(node_id)
    return emitted


def _no_value(node_id: str) -> NecessityError:
    return EngineError.single("engine_failed", f"no value was derived for `{node_id}`")


def _companion(name: str, field: str, fact: Container[str]) -> bool:
    """True when `name` shows `field` to a reader: itself, its word, its distances to the
    request (not the rounded-up twin) or, for a duration, its bounds; date ordinals are not."""
    if name in (field, f"{field}_word"):
        return True
    rest = name[len(field) + 1 :] if name.startswith(field + "_") else ""
    if "months_up" in rest:
        return False
    return "before_request" in rest or (rest in ("lo", "hi") and field not in fact)


def _keys(fact: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    i = 1
    while f"k{i}" in fact:
        out.append(str(fact[f"k{i}"]))
        i += 1
    return tuple(out)


def _unique(facts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Return the facts by id (the first of each id), sorted by id."""
    seen: dict[str, Mapping[str, Any]] = {}
    for fact in facts:
        seen.setdefault(str(fact.get("id")), fact)
    return [seen[k] for k in sorted(seen)]


def _segment_order(facts: list[Mapping[str, Any]]) -> Any:
    index = {str(f["segment"]): f.get("segment_index", 0) for f in facts if "segment" in f}
    return lambda name: (index.get(name, 0), name)


def assemble(
    policy: Policy,
    program: Program,
    trace: Trace,
    case_id: str,
    facts: Iterable[Mapping[str, Any]],
    conflicts: Iterable[Mapping[str, str]] = (),
    provenance: Mapping[str, Any] | None = None,
) -> Decision:
    """Return the Decision for what the engine derived (with `provenance`, records.provenance,
    when given).

    Raises EngineError when the engine left a clause without a status or gave no verdict.
    """
    determination = _determination(trace)
    _check_values(trace)
    plan = _plan(policy, program)
    assembler = _Assembler(plan, trace, facts)
    clause = assembler.clause
    clauses = tuple([clause(c) for c in plan.clauses])
    merged: dict[str, list[str]] = {}
    for c in clauses:
        for doc in c.documentation:
            merged.setdefault(doc, [])
            if c.id not in merged[doc]:
                merged[doc].append(c.id)
    requests = (
        tuple([DocumentRequest(tuple(ids), doc) for doc, ids in merged.items()]) if merged else ()
    )
    return _decision(
        case_id,
        determination,
        policy.id,
        policy.version,
        policy.title,
        policy.sha256,
        clauses,
        assembler.alternative(),
        requests,
        plan.references,
        tuple(conflicts),
        {} if provenance is None else provenance,
        None,
    )


def verdict(policy: Policy, program: Program, trace: Trace) -> Determination:
    """Return the determination the engine derived, checked as `assemble` checks it, for a
    caller that reads nothing else (a referenced policy's determination): a verdict, a status
    for every clause and a value for the node that decided each (the evidence `assemble`
    would read), else the EngineError `assemble` raises. Nothing is worded.

    `assemble` reads further values only where the engine derived them (a scope's bound
    values, the children and routes that have one), so these are all its checks.
    """
    determination = _determination(trace)
    _check_values(trace)
    values = trace.values
    statuses = trace.statuses
    for planned in _plan(policy, program).clauses:
        decider = planned.outcome(statuses).deciding(values)
        if decider:
            _value(values, decider, ())
    return determination


__all__ = [
    "ClauseResult",
    "Decision",
    "Evidence",
    "FactView",
    "assemble",
    "policy_key",
    "verdict",
]
