"""Why the engine decided: its firings in order and, per failed clause, the chain of facts.

Built only from what a traced run recorded (`Engine.run(..., trace=True)`): each firing's rule,
the ids of the facts it matched and the facts it asserted. Nothing here evaluates a condition;
a fact is explained by the firing that asserted it, down to the case facts and their documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evaluator.compile.program import (
    CAND,
    AllOf,
    EmitFact,
    EmitStatus,
    EmitValue,
    Eq,
    Program,
    Rule,
    Test,
)
from evaluator.engine.durable import Firing, Trace
from evaluator.errors import EngineError
from evaluator.language.conditions import Truth
from evaluator.language.describe import head_text, words
from evaluator.language.model import Policy, Status

_TRUTH_WORDS = {Truth.TRUE: "true", Truth.FALSE: "false", Truth.UNKNOWN: "unknown"}
# Engine bookkeeping, never shown: the session, the join key, interval and distance twins.
_HIDDEN = {"t", "id", "key", "sid", "src", "n", "v", "f"}
_FAILED = (Status.NOT_MET, Status.NOT_DOCUMENTED)


@dataclass(frozen=True, slots=True)
class FactRef:
    """A fact as the explanation shows it: id, type, a one-line description and its document."""

    id: str
    type: str
    text: str
    source: str | None


@dataclass(frozen=True, slots=True)
class Step:
    """One firing: its position, rule, the matched facts and what it asserted or decided."""

    number: int
    rule: str
    origin: str
    matched: tuple[tuple[str, FactRef], ...]
    asserted: tuple[FactRef, ...]
    verdict: str | None
    # What the rule required to be absent (its negated patterns), e.g. `unstable segment`.
    absent: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainNode:
    """A fact and, when the engine derived it, the firing that did and the facts it matched.

    `repeat` marks a fact already explained higher up the same chain set (not expanded again);
    `absent` names what the deriving rules required to be absent (a negation has no fact).
    """

    fact: FactRef
    step: int | None
    children: tuple[ChainNode, ...]
    repeat: bool = False
    absent: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chain:
    """What one chain explains (`clause`, `determination` or `alternative`) and its tree."""

    kind: str
    subject: str
    root: ChainNode


@dataclass(frozen=True, slots=True)
class Explanation:
    steps: tuple[Step, ...]
    chains: tuple[Chain, ...]


class _Builder:
    def __init__(self, program: Program, trace: Trace, facts: Iterable[Mapping[str, Any]]):
        if trace.log is None:
            raise EngineError.single("engine_failed", "the run was not traced")
        self.program = program
        self.trace = trace
        self.log = trace.log
        self.facts: dict[str, Mapping[str, Any]] = {str(f["id"]): f for f in facts}
        self.asserted_by: dict[str, int] = {}
        # Every firing that asserted a fact or would have (the engine keeps the first of equal
        # results): an `every` is false because of each false member, not only the first.
        self.supported_by: dict[str, list[int]] = {}
        derived = {(e.rule, tuple(e.matched.values())): e.fact for e in trace.derived}
        for number, firing in enumerate(self.log, 1):
            for fact in firing.asserted:
                self.facts[str(fact["id"])] = fact
                self.asserted_by.setdefault(str(fact["id"]), number)
            target = self.target(firing, derived)
            if target is not None:
                self.supported_by.setdefault(target, []).append(number)

    def target(
        self, firing: Firing, derived: Mapping[tuple[str, tuple[str, ...]], Mapping[str, Any]]
    ) -> str | None:
        """Return the id of the fact a firing asserted or confirmed, read from its action."""
        if firing.asserted:
            return str(firing.asserted[0]["id"])
        action = self.program.rule(firing.rule).action
        found: Any = None
        if isinstance(action, EmitValue) and action.kind != CAND:
            keys = tuple(firing.matched.get(k, "") for k in action.keys)
            found = self.trace.values.get((action.node, keys))
            if found is not None and found.fact["v"] != int(action.value):
                found = None
        elif isinstance(action, EmitStatus):
            found = self.trace.statuses.get(action.clause)
        elif isinstance(action, EmitFact):
            fact = derived.get((firing.rule, tuple(firing.matched.values())))
            return str(fact["id"]) if fact else None
        return str(found.fact["id"]) if found is not None else None

    def ref(self, fact_id: str) -> FactRef:
        fact = self.facts.get(fact_id)
        if fact is None:  # a stage marker or a fact the engine never saw
            return FactRef(fact_id, "unknown", fact_id, None)
        kind = str(fact["t"])
        src = fact.get("src")
        return FactRef(fact_id, kind, self.text(fact), str(src) if src else None)

    def text(self, fact: Mapping[str, Any]) -> str:
        kind = str(fact["t"])
        if kind in ("val", CAND):
            node = self.program.nodes.get(str(fact["n"]))
            aliases = dict(zip(node.aliases, node.facts, strict=False)) if node else {}
            what = head_text(node.condition, aliases=aliases).rstrip(":") if node else fact["n"]
            keys = [str(fact[k]) for k in sorted(fact) if k[:1] == "k" and k[1:].isdigit()]
            bound = f" for {', '.join(keys)}" if keys else ""
            prefix = "candidate " if kind == CAND else ""
            return f"{prefix}{fact['n']}{bound}: {what} = {_TRUTH_WORDS[Truth(fact['v'])]}"
        if kind == "status":
            return f"clause {fact['clause']} is {words(str(fact['status']))}"
        shown = ", ".join(
            f"{name} {_scalar(value)}"
            for name, value in fact.items()
            if name not in _HIDDEN and not _twin(name)
        )
        return f"{words(kind)} ({shown})" if shown else words(kind)

    def steps(self) -> tuple[Step, ...]:
        return tuple(self.step(n, f) for n, f in enumerate(self.log, 1))

    def step(self, number: int, firing: Firing) -> Step:
        rule = self.program.rule(firing.rule)
        return Step(
            number=number,
            rule=firing.rule,
            origin=rule.origin,
            matched=tuple((alias, self.ref(i)) for alias, i in firing.matched.items()),
            asserted=tuple(self.ref(str(f["id"])) for f in firing.asserted),
            verdict=firing.verdict.value if firing.verdict else None,
            absent=_absent(rule),
        )

    def node(self, fact_id: str, seen: set[str]) -> ChainNode:
        ref = self.ref(fact_id)
        number = self.asserted_by.get(fact_id)
        if fact_id in seen:
            return ChainNode(ref, number, (), repeat=number is not None)
        seen.add(fact_id)
        if number is None:
            return ChainNode(ref, None, ())
        firings = [self.log[n - 1] for n in self.supported_by.get(fact_id, [number])]
        matched = dict.fromkeys(
            i
            for firing in firings
            for alias, i in firing.matched.items()
            if alias != "case" and i != fact_id
        )
        absent = tuple(
            dict.fromkeys(a for f in firings for a in _absent(self.program.rule(f.rule)))
        )
        return ChainNode(ref, number, tuple(self.node(i, seen) for i in matched), absent=absent)

    def chains(self, policy: Policy, summary: str | None) -> tuple[Chain, ...]:
        trace = self.trace
        seen: set[str] = set()
        out: list[Chain] = []
        for clause in policy.clauses:
            emitted = trace.statuses.get(clause.id)
            if emitted is not None and Status(emitted.fact["status"]) in _FAILED:
                out.append(Chain("clause", clause.id, self.node(str(emitted.fact["id"]), seen)))
        verdicts = [(n, f) for n, f in enumerate(self.log, 1) if f.verdict is not None]
        if verdicts:
            decided = verdicts[0][1].verdict
            assert decided is not None
            children = tuple(
                self.node(i, seen)
                for _, firing in verdicts
                for alias, i in firing.matched.items()
                if alias != "case"
            )
            fact = FactRef("determination", "determination", words(decided.value), None)
            root = ChainNode(fact, verdicts[0][0], children)
            out.append(Chain("determination", decided.value, root))
        alt = self.program.alternative
        emitted_alt = trace.values.get((alt, ())) if alt else None
        if policy.alternative and emitted_alt and Truth(emitted_alt.fact["v"]) is Truth.TRUE:
            # The scope offered: the facts of each line's type, each from its own firings.
            kinds = {line.segments for line in policy.alternative.lines}
            scope = tuple(
                self.node(str(e.fact["id"]), seen) for e in trace.derived if e.fact["t"] in kinds
            )
            when = self.node(str(emitted_alt.fact["id"]), seen)
            fact = FactRef("alternative", "alternative", summary or "the alternative", None)
            out.append(Chain("alternative", str(alt), ChainNode(fact, None, (when, *scope))))
        return tuple(out)


def _type_of(test: Test) -> tuple[str, str]:
    """Return the type test of a pattern and, for a condition value, its node."""
    tests = _flat(test)
    found = {t.field: str(t.value) for t in tests if isinstance(t, Eq) and t.field in ("t", "n")}
    return found.get("t", "fact"), found.get("n", "")


def _flat(test: Test) -> list[Test]:
    # Folded rules nest a leaf's test inside its fact's (folding.py).
    return [t for part in test.tests for t in _flat(part)] if isinstance(test, AllOf) else [test]


def _absent(rule: Rule) -> tuple[str, ...]:
    out = []
    for pattern in rule.patterns:
        if pattern.negated:
            kind, node = _type_of(pattern.test)
            out.append(f"value of {node}" if node else words(kind))
    return tuple(out)


def _twin(name: str) -> bool:
    # Interval bounds and distances are derived from a field the reader already sees.
    return any(part in name for part in ("_lo", "_hi", "_index", "_before_request"))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def explain(
    policy: Policy,
    program: Program,
    trace: Trace,
    facts: Iterable[Mapping[str, Any]],
    alternative: str | None = None,
) -> Explanation:
    """Return the firing trace and the chains of a traced run; `alternative` is the decision's
    alternative in words (its summary), shown at the top of the alternative's chain.

    Raises EngineError when the run was not traced.
    """
    builder = _Builder(program, trace, facts)
    return Explanation(builder.steps(), builder.chains(policy, alternative))


# ---- renderings ---------------------------------------------------------------------------------


def _ref_json(ref: FactRef) -> dict[str, Any]:
    return {"id": ref.id, "type": ref.type, "text": ref.text, "source": ref.source}


def _node_json(node: ChainNode) -> dict[str, Any]:
    return _ref_json(node.fact) | {
        "step": node.step,
        "repeat": node.repeat,
        "absent": list(node.absent),
        "from": [_node_json(c) for c in node.children],
    }


def explanation_json(explanation: Explanation) -> dict[str, Any]:
    """Return the `explanation` object of the decision JSON (schemas/decision.schema.json)."""
    return {
        "firings": [
            {
                "step": s.number,
                "rule": s.rule,
                "origin": s.origin,
                "matched": [{"alias": a} | _ref_json(r) for a, r in s.matched],
                "asserted": [_ref_json(r) for r in s.asserted],
                "absent": list(s.absent),
                "determination": s.verdict,
            }
            for s in explanation.steps
        ],
        "chains": [
            {"kind": c.kind, "subject": c.subject, "tree": _node_json(c.root)}
            for c in explanation.chains
        ],
    }


def _source(ref: FactRef) -> str:
    return f"  [document: {ref.source}]" if ref.source else ""


def _tree(node: ChainNode, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    step = f"  <- step {node.step}" if node.step is not None else ""
    if node.repeat:
        out.append(f"{pad}- {node.fact.text}  (explained above, step {node.step})")
        return
    out.append(f"{pad}- {node.fact.text}{step}{_source(node.fact)}")
    if node.absent:
        out.append(f"{pad}    (no {', no '.join(node.absent)} matched)")
    for child in node.children:
        _tree(child, depth + 1, out)


def explanation_text(explanation: Explanation) -> str:
    """Return the trace as text: the chains first (why), then every firing in order (how)."""
    out = ["WHY: FROM EACH FAILED CLAUSE BACK TO THE DOCUMENTS", ""]
    titles = {"clause": "Clause", "determination": "Determination", "alternative": "Alternative"}
    for chain in explanation.chains:
        out.append(f"{titles[chain.kind]} {chain.subject}")
        _tree(chain.root, 1, out)
        out.append("")
    out.extend([f"FIRINGS IN ORDER ({len(explanation.steps)})", ""])
    for s in explanation.steps:
        out.append(f"{s.number:>4}. rule {s.rule} ({s.origin})")
        for alias, ref in s.matched:
            out.append(f"        matched {alias}: {ref.text}{_source(ref)}")
        for kind in s.absent:
            out.append(f"        absent: {kind}")
        for ref in s.asserted:
            out.append(f"        asserted: {ref.text}")
        if s.verdict:
            out.append(f"        determination: {words(s.verdict)}")
    return "\n".join(out).rstrip("\n") + "\n"


__all__ = [
    "Chain",
    "ChainNode",
    "Explanation",
    "FactRef",
    "Step",
    "explain",
    "explanation_json",
    "explanation_text",
]
