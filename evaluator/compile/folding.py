"""Folding: a clause's condition trees compiled into its status rules' own patterns.

The per-node lowering (`lowering.py`) derives a value fact for every condition node, one round
trip from the engine into Python and back each. Folding instead writes, per clause, rules whose
patterns match the case facts directly and encode the three-valued truth table: exactly one
rule matches a case and its action asserts the clause status, so a clause costs one firing
(more only when a leaf over a fact type that occurs several times has several deciding facts).

How: the clause's leaves (comparisons, `exists`, `clause ... is`, `policy ... is` at the root
scope) each take one of a few *variants* (a fact passing the true, false or unknown test, or
no fact), and the compiler enumerates every combination, computes the status it gives with
the language's Kleene semantics and, as decision assembly will read it, the evidence path: the
nodes whose values explain the status. Combinations with the same status and evidence are
merged coordinate by coordinate into boxes (a set of variants per leaf); each box becomes
rules whose patterns admit exactly its variants. Boxes are disjoint, so one rule fires. Each
rule carries the node values of its evidence path (`Record`), which the engine keeps as it
fires: evidence is read from what the firing matched, nothing is re-decided.

An `every` or `some` is a leaf too: its children are lowered per binding as before (or
folded themselves) and the folded rules read the quantifier's value from their value facts
(`_quantified`). A subtree folding cannot take (`count`, an N-of-M that the lowering refuses,
an operator this module does not know) stays a node lowered as before, and the folded rules
read its value fact like a leaf. A clause with too many rules falls back to the per-node
lowering altogether (`MAX_RULES_PER_CLAUSE`). Terms are simplified before they become rules
(`_simplify`: a condition written twice is read by one pattern, leaves over the same facts
agree on whether there is one, equal terms are one rule).

Fail closed: a leaf whose fact passes none of its tests matches no box that constrains the
leaf, so the clause gets no status, and the engine reports that as an engine error once the
case ran (`Program.required`). A leaf read through a negated test ("no fact passing the true
test", as a leaf over a type that occurs several times always is) could take such a fact for
absent: its rule that
finds a fact passing none of its tests fails the evaluation (`_check_tests`, `_negating`). A
quantifier's child without a value, and an empty range without its `if_empty` value, are
engine errors too (`Lowering.require_value`, `Lowering.quantified`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from evaluator.case.facts import LINE_PARTS
from evaluator.compile.comparisons import NEVER
from evaluator.compile.lowering import MAX_N_OF_COMBINATIONS, Lowering, Scope
from evaluator.compile.program import (
    KEY,
    POLICY_RESULT,
    STATUS,
    VAL,
    Absent,
    Action,
    AllOf,
    AnyTest,
    ClauseNodes,
    Cmp,
    EmitMissing,
    EmitStatus,
    EmitValue,
    Eq,
    Join,
    Ne,
    Node,
    Pattern,
    Present,
    Record,
    Test,
)
from evaluator.errors import Collector
from evaluator.language.conditions import (
    All,
    AnyOf,
    ClauseIs,
    Compare,
    Condition,
    Demonstrated,
    Every,
    Exists,
    NOf,
    Not,
    PolicyIs,
    Some,
    Truth,
)
from evaluator.language.model import Clause, Status

F, U, T = Truth.FALSE, Truth.UNKNOWN, Truth.TRUE
# Variant names: a fact passing the true / false / unknown test, or no fact at all.
_ABSENT = "A"
_BY_TRUTH = {T: "T", F: "F", U: "U"}
# Rules one clause may fold into; past it the clause keeps the per-node lowering. More rules
# cost matching time on every fact; on the shipped policies 48 folds all but the clauses whose
# unknown outcome multiplies (see docs/architecture.md).
MAX_RULES_PER_CLAUSE = 48
# Leaf kinds whose value the folded patterns read from value facts (three variants, no fact).
_QUANTIFIERS = frozenset({"every", "some"})
_VALUED = frozenset({"value", *_QUANTIFIERS})
# Tests one pattern of simplified terms may hold (`_simplify`) when the terms as they come
# hold fewer: half the engine's 32 expressions in one join node (error 113).
_WIDEST = 16
# Fact types a case has one or more of per service line.
PER_LINE = frozenset({"line", *LINE_PARTS})
# Facts one rule may join, the stage marker included (error 304; ruleset.MAX_PATTERNS).
_MAX_PATTERNS = 16


@dataclass(frozen=True)
class _Leaf:
    """One leaf of a folded tree: its node, kind and the tests of each variant.

    kind: `single` (a fact type that occurs once: a comparison, another policy's result),
    `many` (a comparison over a type that occurs several times: its value is the Kleene OR
    over the facts), `exists`, `value` (a node lowered as before, read through its value fact),
    `every` / `some` (a quantifier whose children are lowered as before and whose own value the
    folded patterns read from its children's value facts: `_quantified`).
    """

    node: str
    kind: str
    base: Test
    tests: tuple[tuple[str, Test], ...]  # variant -> test of a present fact
    absent: Truth | None  # the value when no fact matches `base`; None: no absent variant
    stage_of: Callable[[], int]
    sourced: bool = True  # whether a present fact is the leaf's evidence (`f`)
    # A comparison on a bound fact tests the anchor pattern itself (`bound` kind): its alias.
    anchor: str | None = None

    @property
    def domain(self) -> tuple[str, ...]:
        if self.kind in _VALUED:
            return ("T", "F", "U")
        present = tuple(v for v, _ in self.tests)
        return (*present, _ABSENT) if self.absent is not None else present

    def truth(self, variant: str) -> Truth:
        if variant == _ABSENT:
            assert self.absent is not None
            return self.absent
        return {"T": T, "F": F, "U": U}[variant]

    def test(self, variant: str) -> Test:
        return dict(self.tests)[variant]


@dataclass(frozen=True)
class _Tree:
    """A clause's trees flattened: every node's condition and children, and its leaves."""

    conditions: dict[str, Condition]
    children: dict[str, tuple[str, ...]]
    leaves: list[_Leaf]
    opaque: dict[str, Condition]  # nodes lowered as before, by id
    scope: Scope = field(default_factory=Scope)
    # Leaves whose folded patterns read "no fact passing this test" (`_negating`): a fact
    # passing none of their tests needs its own rule to fail the evaluation.
    checked: set[int] = field(default_factory=set)
    # A `demonstrated` reading a field with an x-disputed marker -> the leaf saying whether
    # a fact it reads carries the marker (`Lowering.unsettled_test`), which keeps its unknown.
    unsettled: dict[str, str] = field(default_factory=dict)


class Folder:
    """Folds the clauses of one compilation; `lowering` gives the checks, strata and emit."""

    def __init__(
        self,
        lowering: Lowering,
        keep: frozenset[str] = frozenset(),
    ) -> None:
        self.low = lowering
        # Clauses and nodes (by id) left to the per-node lowering (`compiler._folded`).
        self.keep = keep
        # What was folded, by the origin its rules carry: a clause id or a node id.
        self.folded: list[str] = []

    # -- the tree ----------------------------------------------------------------------------

    def _walk(self, cond: Condition, node: str, tree: _Tree) -> bool:
        """Add `node` and its subtree to `tree`; False when the subtree cannot be folded."""
        low = self.low
        tree.conditions[node] = cond
        parts: tuple[Condition, ...] = ()
        if isinstance(cond, All | AnyOf):
            parts = cond.parts
        elif isinstance(cond, NOf):
            # What the lowering refuses (and reports) stays with the lowering.
            if cond.at_least > len(cond.parts) or _too_many_n_of(cond):
                return self._opaque(cond, node, tree)
            parts = cond.parts
        elif isinstance(cond, Not | Demonstrated):
            if isinstance(cond, Demonstrated):
                self._unsettled(cond, node, tree)
            parts = (cond.part,)
        elif isinstance(cond, Compare):
            return self._compare(cond, node, tree)
        elif isinstance(cond, Exists):
            fact = low.fact_type(cond.fact, cond.pointer)
            if fact is None:
                return False
            low.check_where(fact, cond.where, tree.scope, cond.pointer)
            if low.disputed(fact, cond.where):
                # three-valued on a disputed field: the lowering derives its value
                return self._opaque(cond, node, tree)
            base = low.fact_test(fact.name, cond.where)
            stage = _fact_stage(low, fact.name, cond.pointer)
            tree.leaves.append(_Leaf(node, "exists", base, (("T", base),), F, stage))
            tree.children[node] = ()
            return True
        elif isinstance(cond, ClauseIs):
            if cond.clause not in low.clauses:
                return False
            base = AllOf((Eq("t", STATUS), Eq("clause", cond.clause), Eq("status", cond.status)))
            clause = cond.clause

            def clause_stage() -> int:
                return low.stage_of_clause(clause, cond.pointer)

            tree.leaves.append(
                _Leaf(node, "exists", base, (("T", base),), F, clause_stage, sourced=False)
            )
            tree.children[node] = ()
            return True
        elif isinstance(cond, Every | Some):
            return self._quantifier(cond, node, tree)
        elif isinstance(cond, PolicyIs):
            if cond.policy == low.policy.id:
                return False
            base = AllOf((Eq("t", POLICY_RESULT), Eq("policy", cond.policy)))
            tests = (
                ("T", AllOf((base, Eq("determination", cond.determination)))),
                ("F", AllOf((base, Ne("determination", cond.determination)))),
            )
            tree.leaves.append(_Leaf(node, "single", base, tests, U, lambda: 0))
            tree.children[node] = ()
            return True
        else:
            return self._opaque(cond, node, tree)
        kids = tuple(f"{node}/{i}" for i in range(len(parts)))
        tree.children[node] = kids
        return all(self._walk(p, k, tree) for p, k in zip(parts, kids, strict=True))

    def _unsettled(self, cond: Demonstrated, node: str, tree: _Tree) -> None:
        """Add the leaf saying whether a fact `cond` reads carries a field's x-disputed
        marker, when it reads such a field: an existence test without evidence of its own."""
        found = self.low.unsettled_test(cond, tree.scope)
        if found is None:
            return
        marked, facts = found
        low = self.low

        def stage() -> int:
            return max(low.stage_of_fact(f, cond.pointer) for f in facts)

        leaf = f"{node}/unsettled"
        tree.unsettled[node] = leaf
        tree.leaves.append(_Leaf(leaf, "exists", marked, (("T", marked),), F, stage, False))

    def _compare(self, cond: Compare, node: str, tree: _Tree) -> bool:
        low = self.low
        if low.needs_values(cond):
            # Two facts' sides or dates: the per-node lowering derives its value (pair facts,
            # one rule per pair of sides), which the folded pattern reads.
            return self._opaque(cond, node, tree)
        found = low.compare_tests(cond, tree.scope)
        if found is None:
            return False
        fact, outcomes = found
        bound = tree.scope.find(cond.fact)
        if bound is not None:
            # The bound fact itself: exactly one fact, tested on its anchor pattern.
            anchor = tree.scope.keys[tree.scope.bindings.index(bound)]
            tests = tuple(
                (name, test)
                for name, test in (
                    ("T", outcomes.true),
                    ("F", outcomes.false),
                    ("U", outcomes.unknown),
                )
                if test != NEVER
            )
            leaf = _Leaf(node, "bound", AllOf(()), tests, None, lambda: 0, anchor=anchor)
            tree.leaves.append(leaf)
            tree.children[node] = ()
            return True
        if low.disputed(fact, cond.where):
            # three-valued on a disputed field: the lowering derives its value
            return self._opaque(cond, node, tree)
        base = low.fact_test(fact.name, cond.where)
        tests = tuple(
            (name, AllOf((base, test)))
            for name, test in (("T", outcomes.true), ("F", outcomes.false), ("U", outcomes.unknown))
            if test != NEVER
        )
        kind = "many" if fact.many else "single"
        stage = _fact_stage(low, fact.name, cond.pointer)
        tree.leaves.append(_Leaf(node, kind, base, tests, cond.if_absent, stage))
        tree.children[node] = ()
        return True

    def _quantifier(self, cond: Every | Some, node: str, tree: _Tree) -> bool:
        """An `every` or `some` whose value the folded rules read from its children's values
        (one firing fewer per binding and one stage less than its own value fact); what the
        lowering refuses stays with the lowering, which reports it."""
        if not self.low.check_quantifier(cond, tree.scope):
            return self._opaque(cond, node, tree)
        fact = self.low.types.get(cond.binding.fact)
        if fact is not None and self.low.disputed(fact, cond.binding.where):
            # its scope widened and its requirement gated (`Lowering.gated`): the lowering's
            return self._opaque(cond, node, tree)
        kind, empty = ("every", cond.if_empty) if isinstance(cond, Every) else ("some", None)
        # `absent`: the value over an empty range, which `Lowering.empty_range` derives
        tree.leaves.append(_Leaf(node, kind, AllOf(()), (), empty, lambda: 0))
        tree.children[node] = (f"{node}/0",)
        return True

    def _opaque(self, cond: Condition, node: str, tree: _Tree) -> bool:
        tree.opaque[node] = cond
        tree.children[node] = ()
        tree.leaves.append(_Leaf(node, "value", AllOf(()), (), None, lambda: 0))
        return True

    # -- clauses and subtrees ----------------------------------------------------------------

    def _tree(self, roots: list[tuple[str, Condition]], scope: Scope) -> _Tree | None:
        """The trees under `roots`; None when the per-node lowering must take them. Checks run
        against a scratch collector: a problem means the per-node lowering takes the tree and
        reports it there, once."""
        low = self.low
        tree = _Tree({}, {}, [], {}, scope)
        problems, low.problems = low.problems, Collector()
        try:
            ok = all(self._walk(cond, node, tree) for node, cond in roots)
            ok = ok and not low.problems.problems
        finally:
            low.problems = problems
        return tree if ok and tree.leaves else None

    def clause(self, clause: Clause) -> int | None:
        """Fold `clause` and return the stage its status is complete at; None (nothing emitted,
        nothing reported) when it keeps the per-node lowering."""
        if clause.id in self.keep:
            return None
        base = clause.id
        applies = f"{base}:applies_when" if clause.applies_when else None
        waiver = f"{base}:waived_by" if clause.waived_by else None
        requires = f"{base}:requires"
        roots = [(requires, clause.requires)]
        if clause.applies_when is not None and applies:
            roots.append((applies, clause.applies_when))
        if clause.waived_by is not None and waiver:
            roots.append((waiver, clause.waived_by))
        tree = self._tree(roots, Scope())
        if tree is None:
            return None
        rules = self._rules(tree, self._statuses(clause, tree, (applies, waiver, requires)))
        if rules is None:
            return None
        stage = self._emit(tree, rules, base)
        self.folded.append(base)
        self.low.clause_nodes[clause.id] = ClauseNodes(applies, waiver, requires)
        # Fail closed: no term matched (a leaf's fact passed none of its tests). The engine
        # reports the clause left without a status once the case ran (`Program.required`):
        # a rule looking for the missing status would need every status asserted.
        return stage

    def subtree(self, cond: Condition, scope: Scope, node: str) -> int | None:
        """Fold the inner node `node` into rules deriving its value, one firing per deciding
        explanation and binding instead of one per node, with its descendants' values for
        evidence as records. Return the stage the value is complete at; None (nothing emitted,
        nothing reported) when it keeps the per-node lowering."""
        if not isinstance(cond, All | AnyOf | Not | Demonstrated | NOf | Compare):
            return None
        if node in self.keep:
            return None
        tree = self._tree([(node, cond)], scope)
        if tree is None or node in tree.opaque:  # e.g. an N-of-M the lowering refuses
            return None
        if isinstance(cond, Compare) and tree.leaves[0].kind != "many":
            # One rule per outcome already: nothing to save. A comparison over a type that
            # occurs several times saves its candidate values and their OR, one stage.
            return None
        try:
            terms = _Terms(tree)
            outcomes: list[tuple[_Term, Action]] = [
                (term, EmitValue(VAL, node, value, scope.keys, None, term.records))
                for value in (T, F, U)
                for term in _without(terms.terms(node, value), node)
            ]
        except _TooBigError:
            return None
        rules = self._rules(tree, outcomes)
        if rules is None:
            return None
        stage = self._emit(tree, rules, node)
        self.folded.append(node)
        self.low.require_value(node, scope, stage)
        return stage

    def _emit(self, tree: _Tree, rules: list[tuple[list[Pattern], Action]], origin: str) -> int:
        """Emit folded rules (after the strata they read, which may compile other clauses and
        derived facts, and the nodes lowered as before); return their stage."""
        low, scope = self.low, tree.scope
        stages = [low.anchor_stage(scope)]
        for leaf in tree.leaves:
            if leaf.kind == "value":
                stages.append(low.node(tree.opaque[leaf.node], scope, leaf.node))
            elif leaf.kind in _QUANTIFIERS:
                quantifier = tree.conditions[leaf.node]
                assert isinstance(quantifier, Every | Some)
                stages.append(low.quantified(quantifier, scope, leaf.node))
            else:
                stages.append(leaf.stage_of())
            if isinstance(cond := tree.conditions.get(leaf.node), PolicyIs):
                low.references.add(cond.policy)
        stage = max(stages) + 1
        aliases = tuple(b.alias for b in scope.bindings)
        facts = tuple(b.fact for b in scope.bindings)
        for node, cond in tree.conditions.items():
            if node not in tree.opaque:
                depth = len(scope.bindings)
                low.nodes[node] = Node(node, cond, tree.children[node], depth, aliases, facts)
        for patterns, action in rules:
            low.emit(stage, patterns, action, origin)
        for index, leaf in enumerate(tree.leaves):
            if index in tree.checked:
                self._check_tests(index, leaf, stage, origin, scope)
        return stage

    def _check_tests(self, index: int, leaf: _Leaf, stage: int, origin: str, scope: Scope) -> None:
        """A fact that passes none of its leaf's tests would satisfy the negations (no true
        fact, no fact passing the other tests) as if it were absent or decided: report it."""
        alias = f"f{index}"
        # One negation per test: one `$or` of all three exceeds the engine's 32 expressions
        # in one join node (error 113) on a measurement with words.
        passes = [
            Pattern(f"g{index}{name}", AllOf((Join(KEY, alias, KEY), test)), True)
            for name, test in leaf.tests
        ]
        self.low.emit(
            stage,
            [*self.low.anchors(scope), Pattern(alias, leaf.base), *passes],
            EmitMissing(leaf.node, scope.keys, tuple(b.alias for b in scope.bindings), alias),
            origin,
        )

    def _statuses(
        self, clause: Clause, tree: _Tree, roots: tuple[str | None, str | None, str]
    ) -> list[tuple[_Term, Action]] | None:
        """The clause's terms per status, as `compiler.py` lowers a clause: not applicable when
        waived or not applying, else the status of `requires`."""
        applies, waiver, requires = roots
        terms = _Terms(tree)
        everything = [_Term({}, ())]
        try:
            not_waived = terms.cover(waiver, frozenset({F, U})) if waiver else everything
            applicable = terms.cover(applies, frozenset({T, U})) if applies else everything
            by_status: list[tuple[Status, list[_Term]]] = []
            if waiver:
                by_status.append((Status.NOT_APPLICABLE, terms.terms(waiver, T)))
            if applies:
                by_status.append(
                    (Status.NOT_APPLICABLE, _conj(terms.terms(applies, F), not_waived))
                )
            outcomes = {T: Status.MET, F: Status.NOT_MET, U: clause.undocumented}
            for value, status in outcomes.items():
                found = _conj(terms.terms(requires, value), applicable, not_waived)
                by_status.append((status, found))
        except _TooBigError:
            return None
        return [
            (term, EmitStatus(clause.id, status, term.records))
            for status, found in by_status
            for term in found
        ]

    def _rules(
        self, tree: _Tree, outcomes: list[tuple[_Term, Action]] | None
    ) -> list[tuple[list[Pattern], Action]] | None:
        """Each term's patterns (each leaf's variants as patterns; a comparison on a bound fact
        joins its anchor's pattern), after the scope's anchors; None past the limits. The
        terms are simplified first (`_simplify`), and the leaves whose patterns negate a test
        are noted in `tree.checked` (`_check_tests`)."""
        if outcomes is None:
            return None
        simpler = _simplify(tree, outcomes)
        rules = self._patterns(tree, simpler)
        plain = self._patterns(tree, outcomes)
        if rules is None or (plain is not None and _widest(rules) > max(_widest(plain), _WIDEST)):
            # no pattern wider than the terms as they come: the engine takes 32 expressions
            # in one join node (error 113)
            rules, simpler = plain, outcomes
        tree.checked.update(_negating(tree, simpler))
        if rules is None:
            return None
        return [_one_fact(tree, patterns, action) for patterns, action in rules]

    def _patterns(
        self, tree: _Tree, outcomes: list[tuple[_Term, Action]]
    ) -> list[tuple[list[Pattern], Action]] | None:
        """`_rules` for the outcomes as they are."""
        anchors = self.low.anchors(tree.scope)
        names = {a.alias for a in anchors}
        rules: list[tuple[list[Pattern], Action]] = []
        for term, action in outcomes:
            choices = [
                self._alternatives(i, tree.leaves[i], variants, tree.scope)
                for i, variants in sorted(term.constraints.items())
            ]
            leaves = sorted(term.constraints)
            for combo in itertools.product(*choices):
                extra: dict[str, list[Test]] = {}
                rest: list[tuple[int, Pattern]] = []
                for i, alt in zip(leaves, combo, strict=True):
                    for pattern in alt:
                        if pattern.alias in names:
                            extra.setdefault(pattern.alias, []).append(pattern.test)
                        else:
                            rest.append((_lead_rank(tree.leaves[i], pattern), pattern))
                joined = [
                    Pattern(a.alias, AllOf((a.test, *extra[a.alias]))) if a.alias in extra else a
                    for a in anchors
                ]
                if len(joined) + len(rest) + 1 > _MAX_PATTERNS:
                    return None
                ordered = [p for _, p in sorted(rest, key=lambda r: r[0])]
                rules.append(([*joined, *ordered], action))
                if len(rules) > MAX_RULES_PER_CLAUSE:
                    return None
        return rules

    def _alternatives(
        self, index: int, leaf: _Leaf, variants: frozenset[str], scope: Scope
    ) -> list[tuple[Pattern, ...]]:
        """Patterns admitting `variants` of a leaf (and no other), as few alternatives as the
        engine can express; alternatives may overlap. A positive pattern is aliased `f<i>`,
        which is what a record's source names."""
        if variants == frozenset(leaf.domain):
            return [()]
        alias = f"f{index}"
        if leaf.kind == "value":
            values = tuple(_truth_of(v) for v in sorted(variants))
            return [(self.low.value_pattern(f"v{index}", (leaf.node,), values, scope),)]
        if leaf.kind in _QUANTIFIERS:
            return self._quantified(index, leaf, frozenset(_truth_of(v) for v in variants), scope)
        if leaf.anchor is not None:
            return [(Pattern(leaf.anchor, _any_of([leaf.test(v) for v in sorted(variants)])),)]
        if leaf.kind == "many":
            return self._many(index, leaf, variants)
        present = sorted(variants - {_ABSENT})
        if _ABSENT not in variants:
            return [(Pattern(alias, _any_of([leaf.test(v) for v in present])),)]
        if not present:
            return [(Pattern(f"n{index}", leaf.base, True),)]
        # No fact, or one passing these tests: no fact passing the others (a fact that passes
        # none is an engine error, `_check_tests`).
        others = [leaf.test(v) for v in leaf.domain if v != _ABSENT and v not in variants]
        return [(Pattern(f"n{index}", _any_of(others), True),)]

    def _quantified(
        self, index: int, leaf: _Leaf, values: frozenset[Truth], scope: Scope
    ) -> list[tuple[Pattern, ...]]:
        """Patterns admitting `values` of an `every` (the Kleene AND of its children's values)
        or a `some` (their OR), read from the children's value facts, which the lowering
        derives per binding (a child left without one is an engine error in the same stage).

        The value that wins first (every: false, some: true) is a child with it; the second
        (unknown) a child with it and none with the first; the last is no child with either,
        read with negations only, so it fires once. An `every` over no facts has the value
        fact of `Lowering.empty_range` (its `if_empty`, `leaf.absent`), which only that case
        has; a `some` over no facts is false, which the negations already give."""
        child = f"{leaf.node}/0"
        first, second, last = (F, U, T) if leaf.kind == "every" else (T, U, F)
        empty = leaf.absent if leaf.absent is not None else last

        def child_is(name: str, *vs: Truth, negated: bool = False) -> Pattern:
            return self.low.value_pattern(f"q{index}{name}", (child,), vs, scope, VAL, negated)

        # The empty range's own fact: read when it gives a value the negations do not.
        by_empty = [(self.low.value_pattern(f"q{index}e", (leaf.node,), (empty,), scope),)]
        not_empty = self.low.value_pattern(
            f"q{index}e", (leaf.node,), (empty,), scope, VAL, negated=True
        )
        out: list[tuple[Pattern, ...]] = []
        if values == {second, last}:
            # no child with the first value (nor an empty range that gives it)
            return [(child_is("x", first, negated=True), *([] if empty in values else [not_empty]))]
        if {first, second} <= values:
            out.append((child_is("c", first, second),))
        elif first in values:
            out.append((child_is("c", first),))
        elif second in values:
            out.append((child_is("c", second), child_is("x", first, negated=True)))
        if last in values:
            blocked = [] if empty is last else [not_empty]
            out.append(
                (child_is("x", first, negated=True), child_is("y", second, negated=True), *blocked)
            )
        if empty in values and empty is not last:
            out.extend(by_empty)
        return out

    def _many(self, index: int, leaf: _Leaf, variants: frozenset[str]) -> list[tuple[Pattern, ...]]:
        """A leaf over a type that occurs several times is the Kleene OR over its facts: true
        when a fact passes the true test; unknown when one passes the unknown test and none
        the true one; false when one passes the false test and none of the other two."""
        tests = dict(leaf.tests)

        def none_of(*names: str) -> list[Pattern]:
            return [Pattern(f"n{index}{n}", tests[n], True) for n in names if n in tests]

        def some(*names: str) -> Pattern:
            return Pattern(f"f{index}", _any_of([tests[n] for n in names if n in tests]))

        present = variants - {_ABSENT}
        domain = frozenset(leaf.domain) - {_ABSENT}
        out: list[tuple[Pattern, ...]] = []
        if _ABSENT in variants and present == domain - {"T"} and present:
            return [tuple(none_of("T"))]
        if _ABSENT in variants and present == domain - {"T", "U"} and present:
            return [tuple(none_of("T", "U"))]
        if _ABSENT in variants:
            out.append((Pattern(f"n{index}", leaf.base, True),))
        # The best fact decides: the variants present, each as "a fact this good, none better".
        if present == domain:
            out.append((some(*sorted(present)),))
        elif present == {"T", "U"} & domain and present:
            out.append((some("T", "U"),))
        elif present == {"U", "F"} & domain and "T" in domain and present:
            out.append((some("U", "F"), *none_of("T")))
        else:
            ranked = {"T": (), "U": ("T",), "F": ("T", "U")}
            out.extend((some(v), *none_of(*ranked[v])) for v in sorted(present))
        return out


def _lead_rank(leaf: _Leaf, pattern: Pattern) -> int:
    """Where a leaf's pattern goes in its rule (a stable sort, lowest first).

    durable_rules walks, for each fact a pattern after the first receives, every partial match
    before it unless an equality join hashes them (events.c `handleBetaMessage`): over a fact
    type that occurs once per service line (a segment, a fixation, the line) an unjoined
    pattern after the first costs n^2/2 in the lines (tests/test_line_cost.py). Folded leaves
    at one scope join nothing, so their order is free: a positive pattern over a per-line type
    goes first (`ruleset._lead_order` then leads the rule with it, ahead of the stage marker),
    then other positive patterns over types that occur several times, then the rest, the
    negated ones last (a negation cannot lead a rule). A pattern with an `$or` cannot lead
    (`ruleset._lead_order`), so one without goes ahead of it."""
    if pattern.negated:
        return 6
    tests = parts(pattern.test)
    kinds = {t.value for t in tests if isinstance(t, Eq) and t.field == "t"}
    spread = 0 if kinds & PER_LINE else 2 if leaf.kind in ("many", "exists") else 4
    return spread + any(isinstance(t, AnyTest) for t in tests)


def parts(test: Test) -> list[Test]:
    """The tests of a pattern, nested conjunctions flattened."""
    if isinstance(test, AllOf):
        return [p for t in test.tests for p in parts(t)]
    return [test]


class _TooBigError(Exception):
    """More terms than one clause may fold into."""


@dataclass(frozen=True)
class _Term:
    """A conjunction of leaf constraints (leaf index -> variants admitted) and the node
    values that any combination it admits gives (records, for evidence)."""

    constraints: Mapping[int, frozenset[str]]
    records: tuple[Record, ...]

    def and_(self, other: _Term) -> _Term | None:
        merged = dict(self.constraints)
        for leaf, variants in other.constraints.items():
            both = merged.get(leaf, variants) & variants
            if not both:
                return None
            merged[leaf] = both
        return _Term(merged, tuple(dict.fromkeys((*self.records, *other.records))))


def _conj(*groups: Sequence[_Term]) -> list[_Term]:
    """Every conjunction of one term from each group (the contradictory ones dropped)."""
    out: list[_Term] = [_Term({}, ())]
    for group in groups:
        nxt = []
        for a in out:
            for b in group:
                both = a.and_(b)
                if both is not None:
                    nxt.append(both)
        if len(nxt) > MAX_RULES_PER_CLAUSE:
            raise _TooBigError
        out = nxt
    return out


def _noted(terms: Iterable[_Term], record: Record) -> list[_Term]:
    return [_Term(t.constraints, (record, *t.records)) for t in terms]


class _Terms:
    """Terms for a node's value, built from its children's.

    `terms(node, v)` are conjunctions that each imply node == v, together admit every
    combination of leaf variants giving v, and record the node's evidence path (as
    decision._Assembler.evidence reads it): a combination may match several terms (e.g. one
    per false child of an `all`), and the records of all it matches are exactly that path.
    `cover(node, S)` are terms without records implying and admitting node in S.
    """

    def __init__(self, tree: _Tree) -> None:
        self.tree = tree
        self.index = {leaf.node: i for i, leaf in enumerate(tree.leaves)}

    def _kids(self, node: str) -> tuple[str, ...]:
        return self.tree.children[node]

    def terms(self, node: str, value: Truth) -> list[_Term]:
        if node in self.index:
            i = self.index[node]
            leaf = self.tree.leaves[i]
            return [
                _Term({i: frozenset({v})}, _leaf_records(i, leaf, v))
                for v in leaf.domain
                if leaf.truth(v) is value
            ]
        cond = self.tree.conditions[node]
        kids = self._kids(node)
        record = Record(node, value)
        if isinstance(cond, Not):
            return _noted(self.terms(kids[0], Truth(2 - value)), record)
        if isinstance(cond, Demonstrated):
            if value is T:
                return _noted(self.terms(kids[0], T), record)
            marked = self._marked(node)
            if marked is None:
                inner = [F, U] if value is F else []
                return _noted([t for v in inner for t in self.terms(kids[0], v)], record)
            # unknown stays unknown where a fact it reads carries a marker (x-disputed)
            unknown = _conj(self.terms(kids[0], U), [marked[value is U]])
            found = [*self.terms(kids[0], F), *unknown] if value is F else unknown
            return _noted(_bounded(found), record)
        if isinstance(cond, All | AnyOf):
            # For `all` false is decided by any false child and true needs every child; `any`
            # the other way round. Unknown: an unknown child and no deciding one.
            decides = F if isinstance(cond, All) else T
            if value is decides:
                out = [t for k in kids for t in self.terms(k, value)]
            elif value is not U:
                out = _conj(*(self.terms(k, value) for k in kids))
            else:
                rest = frozenset({T, F} - {decides}) | {U}
                out = [
                    t
                    for i, k in enumerate(kids)
                    for t in _conj(
                        self.terms(k, U),
                        *(self.cover(o, rest) for j, o in enumerate(kids) if j != i),
                    )
                ]
            return _noted(_bounded(out), record)
        assert isinstance(cond, NOf)
        n, m = cond.at_least, len(kids)
        if value is T:
            out = self._subsets(kids, n, lambda k: self.terms(k, T))
        elif value is F:
            out = self._subsets(kids, m - n + 1, lambda k: self.terms(k, F))
        else:
            undecided = self.cover(node, frozenset({U}))
            out = [t for k in kids for t in _conj(self.terms(k, U), undecided)]
        return _noted(_bounded(out), record)

    def _marked(self, node: str) -> tuple[_Term, _Term] | None:
        """For a `demonstrated` with an unsettled leaf: (no fact read carries a marker, one
        does), terms without records; else None."""
        leaf = self.tree.unsettled.get(node)
        if leaf is None:
            return None
        i = self.index[leaf]
        return _Term({i: frozenset({_ABSENT})}, ()), _Term({i: frozenset({"T"})}, ())

    def cover(self, node: str, values: frozenset[Truth]) -> list[_Term]:
        if values >= {T, F, U}:
            return [_Term({}, ())]
        if not values:
            return []
        if node in self.index:
            i = self.index[node]
            leaf = self.tree.leaves[i]
            admitted = frozenset(v for v in leaf.domain if leaf.truth(v) in values)
            return [_Term({i: admitted}, ())] if admitted else []
        cond = self.tree.conditions[node]
        kids = self._kids(node)
        if isinstance(cond, Not):
            return self.cover(kids[0], frozenset(Truth(2 - v) for v in values))
        if isinstance(cond, Demonstrated):
            marked = self._marked(node)
            if marked is None:
                inner = ({T} if T in values else set()) | ({F, U} if F in values else set())
                return self.cover(kids[0], frozenset(inner))
            found = self.cover(kids[0], frozenset(values - {U}))
            if {F, U} <= values:  # the child's unknown, marked or not
                found += self.cover(kids[0], frozenset({U}))
            elif F in values or U in values:  # the child's unknown, as the marker says
                found += _conj(self.cover(kids[0], frozenset({U})), [marked[U in values]])
            return _bounded(found)
        if isinstance(cond, All | AnyOf):
            decides = F if isinstance(cond, All) else T
            other = T if decides is F else F
            if values in ({decides}, {decides, U}):
                return _bounded([t for k in kids for t in self.cover(k, values)])
            if values in ({other}, {other, U}):
                return _conj(*(self.cover(k, values) for k in kids))
            if values == {U}:
                return [
                    t
                    for i, k in enumerate(kids)
                    for t in _conj(
                        self.cover(k, frozenset({U})),
                        *(
                            self.cover(o, frozenset({other, U}))
                            for j, o in enumerate(kids)
                            if j != i
                        ),
                    )
                ]
            return [*self.cover(node, frozenset({T})), *self.cover(node, frozenset({F}))]
        assert isinstance(cond, NOf)
        n, m = cond.at_least, len(kids)
        # true: n children true; false: m - n + 1 children false; not true: m - n + 1 children
        # not true; not false: n children not false.
        shapes = {
            frozenset({T}): (n, frozenset({T})),
            frozenset({F}): (m - n + 1, frozenset({F})),
            frozenset({F, U}): (m - n + 1, frozenset({F, U})),
            frozenset({T, U}): (n, frozenset({T, U})),
        }
        if values in shapes:
            size, each = shapes[values]
            return self._subsets(kids, size, lambda k: self.cover(k, each))
        if values == {U}:
            return _conj(self.cover(node, frozenset({F, U})), self.cover(node, frozenset({T, U})))
        return [*self.cover(node, frozenset({T})), *self.cover(node, frozenset({F}))]

    @staticmethod
    def _subsets(
        kids: tuple[str, ...], size: int, each: Callable[[str], list[_Term]]
    ) -> list[_Term]:
        out: list[_Term] = []
        for chosen in itertools.combinations(kids, size):
            out.extend(_conj(*(each(k) for k in chosen)))
        return _bounded(out)


# -- simpler terms --------------------------------------------------------------------------------


def _simplify(tree: _Tree, outcomes: list[tuple[_Term, Action]]) -> list[tuple[_Term, Action]]:
    """The outcomes with what the leaves share taken into account: fewer rules and patterns,
    the same cases matched, the same records kept.

    Leaves that test the same facts with the same tests (a condition written twice, e.g. one
    YAML anchor as `applies_when` and `requires`) always take the same variant: one pattern
    reads both (two would fire once per pair of their facts). Leaves over the same facts (the
    same type and `where`) have a matching fact for all or for none: a term that needs none
    for one and one for another matches no case and goes; "none" for one makes the others'
    constraints redundant; "one" for one turns the others' "none or one passing these tests"
    into "one passing these tests" (a positive pattern, no negated test). Terms of one outcome
    left with the same constraints are one rule, with the records of both."""
    domains = [frozenset(leaf.domain) for leaf in tree.leaves]
    kinds = [leaf.kind for leaf in tree.leaves]
    twins = _twins(tree)
    groups = _presence_groups(tree, twins)
    merged: dict[tuple[Action, frozenset[tuple[int, frozenset[str]]]], list[Record]] = {}
    for term, action in outcomes:
        box = _shared(dict(term.constraints), twins, groups, domains, kinds)
        if box is None:
            continue  # no case matches it
        records = [_renamed(r, twins) for r in term.records]
        key = (_bare(action), frozenset(box.items()))
        found = merged.setdefault(key, [])
        found.extend(r for r in records if r not in found)
    return [
        (_Term(dict(box), tuple(records)), _with_records(action, tuple(records)))
        for (action, box), records in merged.items()
    ]


def _shared(
    box: dict[int, frozenset[str]],
    twins: Mapping[int, int],
    groups: list[list[int]],
    domains: list[frozenset[str]],
    kinds: list[str],
) -> dict[int, frozenset[str]] | None:
    """A term's constraints with twins read through one leaf and leaves over the same facts
    agreeing on whether there is one; None when they cannot agree."""
    for twin, first in twins.items():
        if twin in box:
            both = box.pop(twin) & box.get(first, domains[first])
            if not both:
                return None
            box[first] = both
    for group in groups:
        sets = {i: box[i] for i in group if i in box}
        if any(v == {_ABSENT} for v in sets.values()):
            if not all(_ABSENT in v for v in sets.values()):
                return None
            # no fact for the group: said once, by its first leaf, so that the terms saying
            # it through different leaves are one rule
            for i in sets:
                del box[i]
            box[group[0]] = frozenset({_ABSENT})
        elif any(_ABSENT not in v for v in sets.values()):
            for i, v in sets.items():
                if not v - {_ABSENT}:
                    return None
                # (a leaf over several facts keeps "no fact passing the true test", which
                # is cheaper than "one passing another test, none the true one")
                if kinds[i] == "single":
                    box[i] = v - {_ABSENT}
    return {i: v for i, v in sorted(box.items()) if v != domains[i]}


def _twins(tree: _Tree) -> dict[int, int]:
    """Leaves identical to an earlier one (same kind, facts and tests): leaf -> that one."""
    first: dict[tuple[object, ...], int] = {}
    out: dict[int, int] = {}
    for i, leaf in enumerate(tree.leaves):
        if leaf.kind not in ("single", "many", "exists"):
            continue
        key = (leaf.kind, leaf.base, leaf.tests, leaf.absent, leaf.anchor, leaf.sourced)
        if key in first:
            out[i] = first[key]
        else:
            first[key] = i
    return out


def _presence_groups(tree: _Tree, twins: Mapping[int, int]) -> list[list[int]]:
    """Leaves over the same facts (same type and `where`), twins aside: a fact matching them
    exists for all of them or for none (their `A` variant)."""
    groups: dict[Test, list[int]] = {}
    for i, leaf in enumerate(tree.leaves):
        if leaf.kind in ("single", "many", "exists") and i not in twins:
            groups.setdefault(leaf.base, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _renamed(record: Record, twins: Mapping[int, int]) -> Record:
    """A twin's record names the fact its first leaf's pattern matched."""
    for twin, first in twins.items():
        if record.source == f"f{twin}":
            return dataclasses.replace(record, source=f"f{first}")
    return record


def _widest(rules: list[tuple[list[Pattern], Action]]) -> int:
    """The most tests in one pattern of the rules."""
    return max((_size(p.test) for patterns, _ in rules for p in patterns), default=0)


def _size(test: Test) -> int:
    if isinstance(test, AllOf):
        return sum(_size(t) for t in test.tests)
    if isinstance(test, AnyTest):
        return 1 + sum(_size(t) for t in test.tests)
    return 2 if isinstance(test, Ne) else 1


def _bare(action: Action) -> Action:
    if isinstance(action, EmitStatus | EmitValue):
        return dataclasses.replace(action, records=())
    return action


def _with_records(action: Action, records: tuple[Record, ...]) -> Action:
    if isinstance(action, EmitStatus | EmitValue):
        return dataclasses.replace(action, records=records)
    return action


def _negating(tree: _Tree, outcomes: list[tuple[_Term, Action]]) -> set[int]:
    """The leaves whose patterns will read "no fact passing this test" (`_alternatives`,
    `_many`): a fact passing none of the leaf's tests would satisfy that as if it were absent
    or decided otherwise. A leaf read only as "a fact passing these tests" or "no fact at all"
    needs no such check: that fact matches no rule, and the clause gets no status."""
    out: set[int] = set()
    for term, _ in outcomes:
        for i, variants in term.constraints.items():
            leaf = tree.leaves[i]
            present = variants - {_ABSENT}
            single = leaf.kind == "single" and _ABSENT in variants and bool(present)
            many = leaf.kind == "many" and variants != {_ABSENT} and present != set(leaf.domain)
            if single or many:
                out.add(i)
    return out


def _without(terms: list[_Term], node: str) -> list[_Term]:
    """The terms without the record of `node` itself: its value is asserted as a fact. A
    comparison folded alone keeps its candidates (the facts that decided it)."""
    return [
        _Term(t.constraints, tuple(r for r in t.records if r.node != node or r.candidate))
        for t in terms
    ]


def _bounded(terms: list[_Term]) -> list[_Term]:
    if len(terms) > MAX_RULES_PER_CLAUSE:
        raise _TooBigError
    return terms


def _leaf_records(index: int, leaf: _Leaf, variant: str) -> tuple[Record, ...]:
    """What a leaf in `variant` tells evidence: its value and the fact that decided it."""
    if leaf.kind == "value":
        return ()  # the node derives its own value
    value = leaf.truth(variant)
    if variant == _ABSENT or leaf.kind in _QUANTIFIERS:
        # a quantifier's evidence is its children's, which have value facts of their own
        return (Record(leaf.node, value),)
    if leaf.kind == "many":
        return (Record(leaf.node, value), Record(leaf.node, value, f"f{index}", candidate=True))
    source = leaf.anchor or f"f{index}"
    return (Record(leaf.node, value, source if leaf.sourced else None),)


def _truth_of(variant: str) -> Truth:
    return {"T": T, "F": F, "U": U}[variant]


def _fact_stage(low: Lowering, fact: str, pointer: str) -> Callable[[], int]:
    return lambda: low.stage_of_fact(fact, pointer)


def _too_many_n_of(cond: NOf) -> bool:
    return len(list(itertools.combinations(range(len(cond.parts)), cond.at_least))) > (
        MAX_N_OF_COMBINATIONS
    )


def _any_of(tests: list[Test]) -> Test:
    return tests[0] if len(tests) == 1 else AnyTest(tuple(tests))


def _one_fact(tree: _Tree, patterns: list[Pattern], action: Action) -> tuple[list[Pattern], Action]:
    """A rule with the positive patterns of leaves over the one fact of a type that occurs
    once (same type and `where`: `_presence_groups`) read as one pattern.

    Each such leaf reads the same fact through a pattern of its own (durable_rules lets one
    fact fill several patterns: `dist: 0`), which costs a beta node, a join and the fact's
    JSON once more in every firing's message, and matches nothing more. Merged, the pattern
    tests the type once; the records that named a merged pattern name the one kept (the same
    fact, so evidence is unchanged). A merge wider than `_WIDEST` tests is not made (the
    engine takes 32 expressions in one join node, error 113)."""
    first: dict[Test, int] = {}
    out: list[Pattern] = []
    renames: dict[str, str] = {}
    for pattern in patterns:
        leaf = _leaf_of(tree, pattern)
        if leaf is None or leaf.kind != "single" or pattern.negated:
            out.append(pattern)
            continue
        at = first.get(leaf.base)
        if at is None:
            first[leaf.base] = len(out)
            out.append(pattern)
            continue
        merged = _both(out[at], pattern)
        if _size(merged.test) > _WIDEST:
            out.append(pattern)
            continue
        out[at] = merged
        renames[pattern.alias] = merged.alias
    if not renames:
        return patterns, action
    records = tuple(
        dataclasses.replace(r, source=renames[r.source]) if r.source in renames else r
        for r in (action.records if isinstance(action, EmitStatus | EmitValue) else ())
    )
    return out, _with_records(action, records)


def _leaf_of(tree: _Tree, pattern: Pattern) -> _Leaf | None:
    """The leaf whose fact a positive pattern `f<i>` matches (`_alternatives`)."""
    index = pattern.alias[1:]
    if pattern.alias[:1] != "f" or not index.isdigit() or int(index) >= len(tree.leaves):
        return None
    return tree.leaves[int(index)]


def _both(first: Pattern, other: Pattern) -> Pattern:
    """One pattern passing the tests of two, its type tested once (`ruleset._hoist_type`
    leads with it; an `any` whose every alternative tests the type again is stripped of it)."""
    tests: list[Test] = []
    for test in (*parts(first.test), *parts(other.test)):
        if test not in tests:
            tests.append(test)
    kinds: set[Test] = {t for t in tests if isinstance(t, Eq) and t.field == "t"}
    plain = [
        AnyTest(tuple(_untyped(t, kinds) for t in test.tests))
        if isinstance(test, AnyTest)
        else test
        for test in tests
        if test not in kinds
    ]
    return Pattern(first.alias, AllOf((*sorted(kinds, key=repr), *_pruned(plain))))


def _pruned(tests: list[Test]) -> list[Test]:
    """A conjunction with each `any` rid of the alternatives its other conjuncts rule out
    (a field both absent and tested: durable_rules fails every test on a missing field, trap
    6) and dropped when one of its alternatives is already a conjunct (`a and (a or b)` is
    `a`). The merge of two leaves' patterns writes such `any`s ("one passing the false test
    or none" beside "no status"); an `any` left out lets the pattern lead its rule and lose
    its stage marker (`ruleset._lead_order`, `shaping`), and each alternative is an alpha path
    of its own. An `any` left with no alternative keeps them all: it matches nothing either
    way, and the engine takes no empty `$or`."""
    plain = [t for t in tests if not isinstance(t, AnyTest)]
    absent = {t.field for t in plain if isinstance(t, Absent)}
    present = {_field(t) for t in plain if not isinstance(t, Absent)} - {None}
    out: list[Test] = []
    for test in tests:
        if not isinstance(test, AnyTest):
            out.append(test)
            continue
        if any(set(parts(alternative)) <= set(plain) for alternative in test.tests):
            continue  # implied by the conjuncts
        kept = tuple(a for a in test.tests if not _ruled_out(a, absent, present))
        if len(kept) == 1:
            out.extend(t for t in parts(kept[0]) if t not in out and t not in plain)
        else:
            out.append(AnyTest(kept) if kept else test)
    return out


def _field(test: Test) -> str | None:
    """The field a test needs present (every test but `Absent` fails on a missing field)."""
    if isinstance(test, Eq | Ne | Cmp | Present):
        return test.field
    return None


def _ruled_out(alternative: Test, absent: set[str], present: set[str | None]) -> bool:
    """Whether an alternative needs present a field the conjunction needs absent, or absent
    one it needs present."""
    for test in parts(alternative):
        if isinstance(test, Absent) and test.field in present:
            return True
        if _field(test) in absent:
            return True
    return False


def _untyped(test: Test, kinds: set[Test]) -> Test:
    """An alternative of an `any` without the type test its pattern makes already."""
    rest = [t for t in parts(test) if t not in kinds]
    if not rest:
        return test
    return rest[0] if len(rest) == 1 else AllOf(tuple(rest))
