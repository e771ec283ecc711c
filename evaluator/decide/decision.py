"""The Decision: clause results with their evidence, the determination and the alternative.

Assembly only reads what the engine derived (clause statuses, node values, derived facts, the
verdict) and explains it; it never decides a clause itself. A missing or contradictory engine
result is an EngineError, never a determination.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evaluator.compile.program import Program
from evaluator.decide import findings
from evaluator.decide.explain import Explanation
from evaluator.engine.durable import Trace
from evaluator.errors import EngineError
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
    Not,
    Op,
    PolicyIs,
    Some,
    Truth,
)
from evaluator.language.describe import choice_text, leaf_text, words
from evaluator.language.dictionary import with_derived
from evaluator.language.model import Determination, Policy, Reference, Status
from evaluator.vocab.levels import format_segments

X12_ACTIONS = {
    Determination.MEDICALLY_NECESSARY: "A1",
    Determination.NOT_MEDICALLY_NECESSARY: "A3",
    Determination.INSUFFICIENT_DOCUMENTATION: "A4",
}
_TEMPLATE = re.compile(r"\{([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\}")
# Fields that name a fact best when it is shown as a bound element.
_DISPLAY_FIELDS = ("segment", "name", "kind", "test", "study", "line", "procedure", "date")
_HIDDEN = ("t", "id", "key", "sid", "src")
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


# Program is frozen; this table is a cache beside it, not part of its value.
_LEAF_TEXTS = "_leaf_texts"


def _leaf_text(program: Program, node_id: str) -> str:
    """Return the words of a leaf node, worked out once per compiled policy: they depend on
    the condition alone, and every case that shows the leaf as evidence needs them."""
    texts: dict[str, str] | None = program.__dict__.get(_LEAF_TEXTS)
    if texts is None:
        texts = {}
        object.__setattr__(program, _LEAF_TEXTS, texts)
    text = texts.get(node_id)
    if text is None:
        node = program.nodes[node_id]
        aliases = dict(zip(node.aliases, node.facts, strict=False))
        text = texts[node_id] = leaf_text(node.condition, aliases=aliases)
    return text


class _Assembler:
    def __init__(
        self, policy: Policy, program: Program, trace: Trace, facts: Iterable[Mapping[str, Any]]
    ) -> None:
        self.policy = policy
        self.program = program
        self.types = with_derived(policy.derived)
        self.trace = trace
        self.facts = {str(f["id"]): f for f in facts}
        self.all_facts = [*self.facts.values(), *(e.fact for e in trace.derived)]
        self.derived_by_id = {str(e.fact["id"]): e.fact for e in trace.derived}
        self.candidates: dict[tuple[str, tuple[str, ...]], list[Mapping[str, Any]]] = {}
        for emitted in trace.candidates:
            fact = emitted.fact
            self.candidates.setdefault((fact["n"], _keys(fact)), []).append(fact)
        self.values_by_prefix: dict[tuple[str, tuple[str, ...]], list[Mapping[str, Any]]] = {}
        for (node, keys), emitted in trace.values.items():
            if keys:
                self.values_by_prefix.setdefault((node, keys[:-1]), []).append(emitted.fact)

    def fact_view(self, fact: Mapping[str, Any], fields: tuple[str, ...]) -> FactView:
        """Return the fact with the fields a reader needs: `fields` and their companions, or
        every plain field when `fields` is empty."""

        def wanted(name: str) -> bool:
            if not fields:
                return name not in _HIDDEN and not re.fullmatch(r"k\d+", name)
            return any(_companion(name, field, fact) for field in fields)

        shown = tuple(sorted((k, v) for k, v in fact.items() if wanted(k)))
        return FactView(str(fact["t"]), str(fact["id"]), shown, fact.get("src"))

    def binding(self, node: str, keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        aliases = self.program.nodes[node].aliases
        out = []
        for alias, key in zip(aliases, keys, strict=False):
            fact = self.facts.get(key) or self.derived_by_id.get(key, {})
            shown = next((str(fact[f]) for f in _DISPLAY_FIELDS if f in fact), key)
            out.append((alias, shown))
        return tuple(out)

    def evidence(self, node_id: str, keys: tuple[str, ...]) -> list[Evidence]:
        value = self.trace.value(node_id, keys)
        if value is None:
            raise EngineError.single("engine_failed", f"no value was derived for `{node_id}`")
        node = self.program.nodes[node_id]
        cond: Condition = node.condition
        if isinstance(cond, Compare | Exists | ClauseIs | PolicyIs | Distinct):
            deciding = [self.leaf(node_id, cond, keys, value)]
            if isinstance(cond, Exists):
                deciding.extend(self.derivation(cond.fact, keys, value))
            return deciding
        if isinstance(cond, Every | Some | Count):
            child = node.children[0]
            # A count is decided by its true children (true) or all the rest (otherwise).
            wanted_children = (
                {value}
                if not isinstance(cond, Count)
                else {Truth.TRUE}
                if value is Truth.TRUE
                else {Truth.FALSE, Truth.UNKNOWN}
            )
            found = [
                f
                for f in self.values_by_prefix.get((child, keys), [])
                if Truth(f["v"]) in wanted_children
            ]
            out: list[Evidence] = []
            for fact in sorted(found, key=_keys):
                out.extend(self.evidence(child, _keys(fact)))
            return out
        wanted = {value}
        if isinstance(cond, Not):
            wanted = {Truth(2 - value)}
        elif isinstance(cond, Demonstrated):
            wanted = {Truth.TRUE} if value is Truth.TRUE else {Truth.FALSE, Truth.UNKNOWN}
        out = []
        for child in node.children:
            if self.trace.value(child, keys) in wanted:
                out.extend(self.evidence(child, keys))
        return out

    def derivation(self, fact_type: str, keys: tuple[str, ...], value: Truth) -> list[Evidence]:
        """Return why a derived fact exists (the routes that derived it) or not (every route),
        for the same bound facts; nothing for a case fact type."""
        out: list[Evidence] = []
        for rule in self.policy.rules:
            if rule.fact != fact_type or rule.when is None:
                continue
            when = f"{rule.id}:when"
            route = self.trace.value(when, keys)
            if route is None or (value is Truth.TRUE and route is not Truth.TRUE):
                continue
            out.extend(self.evidence(when, keys))
        return out

    def leaf(
        self,
        node_id: str,
        cond: Compare | Exists | ClauseIs | PolicyIs | Distinct,
        keys: tuple[str, ...],
        value: Truth,
    ) -> Evidence:
        fields: tuple[str, ...] = ()
        node = self.program.nodes[node_id]
        bound = dict(zip(node.aliases, keys, strict=False))
        # The other fact a time or side comparison reads: (its id, its field).
        other: tuple[str, str] | None = None
        if isinstance(cond, Compare):
            fields = (cond.field, cond.minus) if cond.minus else (cond.field,)
            related = cond.of if cond.op in TIME_OPS else None
            if cond.op is Op.SAME_SIDE_AS:
                related = str(cond.operand)
            alias, _, field = (related or "").partition(".")
            if alias == cond.fact:
                fields = (*fields, field)
            elif alias in bound:
                other = (bound[alias], field)
        sources: list[Mapping[str, Any]] = []
        emitted = self.trace.values[(node_id, keys)].fact
        # A comparison may read a derived fact: show it too (an existence test's derived fact
        # is explained by the routes that derived it instead).
        derived = self.derived_by_id if isinstance(cond, Compare) else {}
        if "f" in emitted:
            sources.append(self.facts.get(emitted["f"]) or derived.get(emitted["f"], {}))
        for cand in self.candidates.get((node_id, keys), []):
            if Truth(cand["v"]) == value and "f" in cand:
                sources.append(self.facts.get(cand["f"]) or derived.get(cand["f"], {}))
        views = tuple(self.fact_view(f, fields) for f in _unique(s for s in sources if s))
        if other is not None:
            found = self.facts.get(other[0]) or self.derived_by_id.get(other[0])
            if found:
                views = (*views, self.fact_view(found, (other[1],)))
        return Evidence(
            _leaf_text(self.program, node_id),
            value,
            self.binding(node_id, keys),
            views,
            cond.clause if isinstance(cond, ClauseIs) else None,
            keys,
        )

    def template(self, text: str, *, each: bool = False) -> str:
        """Fill `{type.field}` placeholders; segments as constructs ("L3-L4 and L5-S1") or,
        with `each` (a document to request, made per segment), one by one."""

        def replace(match: re.Match[str]) -> str:
            fact_type, field = match.group(1), match.group(2)
            values = sorted(
                {str(f[field]) for f in self.all_facts if f.get("t") == fact_type and field in f}
            )
            if not values:
                return _EMPTY
            if field == "segment":
                order = _segment_order(self.all_facts)
                named = sorted(values, key=order) if each else format_segments(values).split(", ")
                return choice_text(list(named), "and")
            return ", ".join(v.replace("_", " ") for v in values)

        return " ".join(_TEMPLATE.sub(replace, text).split())

    def clause(self, clause_id: str) -> ClauseResult:
        clause = next(c for c in self.policy.clauses if c.id == clause_id)
        emitted = self.trace.statuses.get(clause_id)
        if emitted is None:
            raise EngineError.single("engine_failed", f"no status was derived for `{clause_id}`")
        status = Status(emitted.fact["status"])
        nodes = self.program.clauses[clause_id]
        if status is Status.NOT_APPLICABLE:
            decider = (
                nodes.waiver
                if nodes.waiver and self.trace.value(nodes.waiver) is Truth.TRUE
                else nodes.applies
            )
        else:
            decider = nodes.requires
        evidence = tuple(self.evidence(decider, ())) if decider else ()
        rationale = clause.rationale.get(status)
        finding = clause.finding.get(status)
        return ClauseResult(
            id=clause.id,
            section=clause.section,
            section_title=next(x.title for x in self.policy.sections if x.id == clause.section),
            title=clause.title,
            status=status,
            evidence=evidence,
            citations=clause.cites,
            rationale=self.template(rationale) if rationale else None,
            # Not documented asks for documents, not for more treatment.
            recommendation=(
                self.template(clause.recommendation) if status is Status.NOT_MET else None
            ),
            documentation=tuple(self.template(d, each=True) for d in clause.documentation)
            if self.could_change(status, evidence)
            else (),
            finding=self.finding(finding, evidence) if finding else None,
        )

    def finding(self, text: str, evidence: tuple[Evidence, ...]) -> str:
        """Fill a finding template from the facts the deciding evidence matched or bound."""
        ids = [f.id for e in evidence for f in e.facts] + [k for e in evidence for k in e.bound]
        read = [
            fact
            for fact in (self.facts.get(i) or self.derived_by_id.get(i) for i in dict.fromkeys(ids))
            if fact is not None
        ]
        order = {str(f["id"]): i for i, f in enumerate(self.all_facts)}
        read.sort(key=lambda f: order.get(str(f["id"]), len(order)))
        return findings.fill(text, read, self.all_facts, self.types)

    def could_change(self, status: Status, evidence: tuple[Evidence, ...]) -> bool:
        """True when a missing document could change the clause's status: it is not
        documented, or it is not met while part of what decided it is unknown (a clause whose
        missing facts count as not met, a derivation route nothing decided) or rests on a
        clause that is itself not documented."""
        if status is Status.NOT_DOCUMENTED:
            return True
        if status is not Status.NOT_MET:
            return False
        if any(e.value is Truth.UNKNOWN for e in evidence):
            return True
        pending = {
            c for c, s in self.trace.statuses.items() if s.fact["status"] == "not_documented"
        }
        return any(e.clause in pending for e in evidence)

    def alternative(self) -> AlternativeScope | None:
        alt = self.policy.alternative
        if alt is None or self.program.alternative is None:
            return None
        if self.trace.value(self.program.alternative) is not Truth.TRUE:
            return None
        lines = []
        order = _segment_order(self.all_facts)
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
                constructs = tuple(format_segments(segments).split(", "))
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
        summary = self.template(alt.summary) if alt.summary else ""
        if not summary or _EMPTY in summary:
            summary = "; ".join(f"{words(x.procedure)} {x.levels}" for x in lines)
            summary = summary[0].upper() + summary[1:] + "."
        return AlternativeScope(summary, tuple(lines))


def _companion(name: str, field: str, fact: Mapping[str, Any]) -> bool:
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
) -> Decision:
    """Return the Decision for what the engine derived.

    Raises EngineError when the engine left a clause without a status or gave no verdict.
    """
    if trace.verdict is None:
        raise EngineError.single("engine_failed", "the engine derived no determination")
    assembler = _Assembler(policy, program, trace, facts)
    clauses = tuple(assembler.clause(c.id) for c in policy.clauses)
    merged: dict[str, list[str]] = {}
    for c in clauses:
        for doc in c.documentation:
            merged.setdefault(doc, [])
            if c.id not in merged[doc]:
                merged[doc].append(c.id)
    requests = tuple(DocumentRequest(tuple(ids), doc) for doc, ids in merged.items())
    cited = {n for c in policy.clauses for n in c.cites}
    return Decision(
        case_id=case_id,
        determination=trace.verdict,
        policy_id=policy.id,
        policy_version=policy.version,
        policy_title=policy.title,
        policy_sha256=policy.sha256,
        clauses=clauses,
        alternative=assembler.alternative(),
        documentation_requests=requests,
        references=tuple(r for r in policy.references if r.id in cited),
        conflicts=tuple(conflicts),
    )


__all__ = ["ClauseResult", "Decision", "Evidence", "FactView", "assemble"]
