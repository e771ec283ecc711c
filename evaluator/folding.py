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

A subtree folding cannot take (a quantifier over bound facts, `count`, an N-of-M that the
lowering refuses, an operator this module does not know) stays a node lowered as before, and
the folded rules read its value fact like a leaf. A clause with too many leaves or rules
falls back to the per-node lowering altogether (`MAX_ASSIGNMENTS`, `MAX_RULES_PER_CLAUSE`).

Fail closed: a leaf whose fact passes none of its tests matches no box that constrains the
leaf, so the clause gets no status, and a rule one stage later reports that as an engine
error; a leaf over a fact type that occurs several times is also negated (no true fact, ...),
so its rule that finds a fact passing none of the three tests fails the evaluation too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .comparisons import NEVER
from .conditions import (
    All,
    AnyOf,
    ClauseIs,
    Compare,
    Condition,
    Demonstrated,
    Exists,
    NOf,
    Not,
    PolicyIs,
    Truth,
)
from .errors import Collector
from .lowering import MAX_N_OF_COMBINATIONS, Lowering, Scope
from .model import Clause, Status
from .program import (
    KEY,
    POLICY_RESULT,
    STATUS,
    VAL,
    AllOf,
    AnyTest,
    ClauseNodes,
    EmitMissing,
    EmitStatus,
    Eq,
    Join,
    Ne,
    Node,
    Pattern,
    Record,
    Test,
)

F, U, T = Truth.FALSE, Truth.UNKNOWN, Truth.TRUE
# Variant names: a fact passing the true / false / unknown test, or no fact at all.
_ABSENT = "A"
_BY_TRUTH = {T: "T", F: "F", U: "U"}
# Combinations of leaf variants enumerated per clause (4 variants, 6 leaves), and rules one
# clause may fold into; past either the clause keeps the per-node lowering. Measured on the
# shipped policies: no folded clause needs more than MAX_RULES_PER_CLAUSE rules.
MAX_ASSIGNMENTS = 4096
MAX_RULES_PER_CLAUSE = 48
# Facts one rule may join, the stage marker included (error 304; ruleset.MAX_PATTERNS).
_MAX_PATTERNS = 16

Box = tuple[frozenset[str], ...]


@dataclass(frozen=True)
class _Leaf:
    """One leaf of a folded tree: its node, kind and the tests of each variant.

    kind: `single` (a fact type that occurs once: a comparison, another policy's result),
    `many` (a comparison over a type that occurs several times: its value is the Kleene OR
    over the facts), `exists`, `value` (a node lowered as before, read through its value fact).
    """

    node: str
    kind: str
    base: Test
    tests: tuple[tuple[str, Test], ...]  # variant -> test of a present fact
    absent: Truth | None  # the value when no fact matches `base`; None: no absent variant
    stage_of: Callable[[], int]
    sourced: bool = True  # whether a present fact is the leaf's evidence (`f`)

    @property
    def domain(self) -> tuple[str, ...]:
        if self.kind == "value":
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
class _Alternative:
    """Patterns admitting some of a leaf's variants, and the records they establish."""

    patterns: tuple[Pattern, ...]
    records: tuple[Record, ...]


@dataclass(frozen=True)
class _Tree:
    """A clause's trees flattened: every node's condition and children, and its leaves."""

    conditions: dict[str, Condition]
    children: dict[str, tuple[str, ...]]
    leaves: list[_Leaf]
    opaque: dict[str, Condition]  # nodes lowered as before, by id


class Folder:
    """Folds the clauses of one compilation; `lowering` gives the checks, strata and emit."""

    def __init__(self, lowering: Lowering) -> None:
        self.low = lowering

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
            parts = (cond.part,)
        elif isinstance(cond, Compare):
            return self._compare(cond, node, tree)
        elif isinstance(cond, Exists):
            fact = low.fact_type(cond.fact, cond.pointer)
            if fact is None:
                return False
            low.check_where(fact, cond.where, _root(), cond.pointer)
            base = AllOf((Eq("t", fact.name), *low.where(cond.where)))
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

    def _compare(self, cond: Compare, node: str, tree: _Tree) -> bool:
        low = self.low
        found = low.compare_tests(cond, _root())
        if found is None:
            return False
        fact, outcomes = found
        base = AllOf((Eq("t", fact.name), *low.where(cond.where)))
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

    def _opaque(self, cond: Condition, node: str, tree: _Tree) -> bool:
        tree.opaque[node] = cond
        tree.children[node] = ()
        tree.leaves.append(_Leaf(node, "value", AllOf(()), (), None, lambda: 0))
        return True

    # -- clauses -----------------------------------------------------------------------------

    def clause(self, clause: Clause) -> int | None:
        """Fold `clause` and return the stage its status is complete at; None (nothing emitted,
        nothing reported) when it keeps the per-node lowering."""
        low = self.low
        base = clause.id
        applies = f"{base}:applies_when" if clause.applies_when else None
        waiver = f"{base}:waived_by" if clause.waived_by else None
        requires = f"{base}:requires"
        roots = [(requires, clause.requires)]
        if clause.applies_when is not None and applies:
            roots.append((applies, clause.applies_when))
        if clause.waived_by is not None and waiver:
            roots.append((waiver, clause.waived_by))
        tree = _Tree({}, {}, [], {})
        # Checks run against a scratch collector: a problem means the per-node lowering takes
        # the clause and reports it there, once.
        problems, low.problems = low.problems, Collector()
        try:
            ok = all(self._walk(cond, node, tree) for node, cond in roots)
            ok = ok and not low.problems.problems
        finally:
            low.problems = problems
        if not ok or not tree.leaves:
            return None
        sizes = [len(leaf.domain) for leaf in tree.leaves]
        if _product(sizes) > MAX_ASSIGNMENTS:
            return None
        outcome = _Outcome(clause, tree, applies, waiver, requires)
        rules = self._rules(tree, outcome)
        if rules is None:
            return None
        # Folding it is: strata (which may compile other clauses and derived facts), the nodes
        # lowered as before, then the rules.
        stages = [0]
        for leaf in tree.leaves:
            if leaf.kind == "value":
                stages.append(low.node(tree.opaque[leaf.node], _root(), leaf.node))
            else:
                stages.append(leaf.stage_of())
            if isinstance(cond := tree.conditions[leaf.node], PolicyIs):
                low.references.add(cond.policy)
        stage = max(stages) + 1
        for node, cond in tree.conditions.items():
            if node not in tree.opaque:
                low.nodes[node] = Node(node, cond, tree.children[node], 0, ())
        low.clause_nodes[clause.id] = ClauseNodes(applies, waiver, requires)
        for patterns, action in rules:
            low.emit(stage, list(patterns), action, base)
        for index, leaf in enumerate(tree.leaves):
            if leaf.kind == "many":
                self._check_tests(index, leaf, stage, base)
        # Fail closed: no box matched (a leaf's fact passed none of its tests).
        status = AllOf((Eq("t", STATUS), Eq("clause", clause.id)))
        low.emit(
            stage + 1,
            [Pattern("s", status, negated=True)],
            EmitMissing(requires, (), ()),
            base,
        )
        return stage

    def _check_tests(self, index: int, leaf: _Leaf, stage: int, origin: str) -> None:
        """A fact of a many-fact leaf that passes none of its tests would be read as absent by
        the negations; report it instead."""
        alias = f"f{index}"
        passes = AnyTest(tuple(test for _, test in leaf.tests))
        self.low.emit(
            stage,
            [
                Pattern(alias, leaf.base),
                Pattern(f"g{index}", AllOf((leaf.base, Join(KEY, alias, KEY), passes)), True),
            ],
            EmitMissing(leaf.node, (), (), alias),
            origin,
        )

    def _rules(
        self, tree: _Tree, outcome: _Outcome
    ) -> list[tuple[tuple[Pattern, ...], EmitStatus]] | None:
        leaves = tree.leaves
        groups: dict[tuple[Status, frozenset[tuple[str, str]]], list[Box]] = {}
        for assignment in itertools.product(*(leaf.domain for leaf in leaves)):
            status, path = outcome.evaluate(assignment)
            groups.setdefault((status, path), []).append(tuple(frozenset((v,)) for v in assignment))
        rules: list[tuple[tuple[Pattern, ...], EmitStatus]] = []
        for (status, path), boxes in sorted(groups.items(), key=lambda g: _group_order(g[0])):
            inner = tuple(
                Record(node, Truth(int(detail)))
                for node, detail in sorted(path)
                if node not in {leaf.node for leaf in leaves}
            )
            for box in _merge(boxes, len(leaves)):
                choices = [
                    self._alternatives(i, leaf, box[i], (leaf.node, _only(box[i])) in path)
                    for i, leaf in enumerate(leaves)
                ]
                for combo in itertools.product(*choices):
                    patterns = tuple(p for alt in combo for p in alt.patterns)
                    if len(patterns) + 1 > _MAX_PATTERNS:
                        return None
                    records = (*inner, *(r for alt in combo for r in alt.records))
                    rules.append((patterns, EmitStatus(outcome.clause.id, status, records)))
                    if len(rules) > MAX_RULES_PER_CLAUSE:
                        return None
        return rules

    def _alternatives(
        self, index: int, leaf: _Leaf, variants: frozenset[str], evidence: bool
    ) -> list[_Alternative]:
        """Patterns admitting exactly `variants` of a leaf, as few alternatives as the engine
        can express; with `evidence` (one variant, on the evidence path) the records too."""
        if variants == frozenset(leaf.domain):
            return [_Alternative((), ())]
        alias = f"f{index}"
        if leaf.kind == "value":
            values = tuple(sorted(int(_truth_of(v)) for v in variants))
            value = AllOf((Eq("t", VAL), Eq("n", leaf.node), _any_of([Eq("v", v) for v in values])))
            return [_Alternative((Pattern(f"v{index}", value),), ())]
        if leaf.kind == "many":
            return self._many(index, leaf, variants, evidence)
        out: list[_Alternative] = []
        present = sorted(variants - {_ABSENT})
        if present:
            test = _any_of([leaf.test(v) for v in present])
            records: tuple[Record, ...] = ()
            if evidence:
                source = alias if leaf.sourced else None
                records = (Record(leaf.node, leaf.truth(present[0]), source),)
            out.append(_Alternative((Pattern(alias, test),), records))
        if _ABSENT in variants:
            records = (Record(leaf.node, leaf.truth(_ABSENT)),) if evidence else ()
            out.append(_Alternative((Pattern(f"n{index}", leaf.base, True),), records))
        return out

    def _many(
        self, index: int, leaf: _Leaf, variants: frozenset[str], evidence: bool
    ) -> list[_Alternative]:
        """A leaf over a type that occurs several times is the Kleene OR over its facts: true
        when a fact passes the true test; unknown when one passes the unknown test and none
        the true one; false when one passes the false test and none of the other two."""
        tests = dict(leaf.tests)

        def none_of(*names: str) -> list[Pattern]:
            return [Pattern(f"n{index}{n}", tests[n], True) for n in names if n in tests]

        # No true fact: every fact false or unknown, or none; no true or unknown fact: every
        # fact false, or none (a fact that passes no test is caught by `_check_tests`).
        domain = frozenset(leaf.domain)
        shapes: dict[frozenset[str], list[Pattern]] = {
            domain - {"T"}: none_of("T"),
            domain - {"T", "U"}: none_of("T", "U"),
            frozenset({_ABSENT}): [Pattern(f"n{index}", leaf.base, True)],
        }
        ranked = {"T": (), "U": ("T",), "F": ("T", "U")}
        for name, above in ranked.items():
            if name in tests:
                shapes[frozenset({name})] = [Pattern(f"f{index}", tests[name]), *none_of(*above)]
        shape = shapes.get(variants)
        if shape is not None:
            records: tuple[Record, ...] = ()
            if evidence:
                (variant,) = variants
                value = leaf.truth(variant)
                records = (Record(leaf.node, value),)
                if variant != _ABSENT:
                    records = (*records, Record(leaf.node, value, f"f{index}", candidate=True))
            return [_Alternative(tuple(shape), records)]
        # Not one conjunction: one alternative per variant.
        return [
            alt for v in sorted(variants) for alt in self._many(index, leaf, frozenset({v}), False)
        ]


class _Outcome:
    """The clause's status and evidence path for one combination of leaf variants, computed
    as `compiler.py` lowers a clause and `decision.py` reads its evidence."""

    def __init__(
        self,
        clause: Clause,
        tree: _Tree,
        applies: str | None,
        waiver: str | None,
        requires: str,
    ) -> None:
        self.clause = clause
        self.tree = tree
        self.applies, self.waiver, self.requires = applies, waiver, requires
        self.index = {leaf.node: i for i, leaf in enumerate(tree.leaves)}

    def evaluate(self, assignment: Sequence[str]) -> tuple[Status, frozenset[tuple[str, str]]]:
        values: dict[str, Truth] = {}
        for root in (self.requires, self.applies, self.waiver):
            if root is not None:
                self._value(root, assignment, values)
        if self.waiver is not None and values[self.waiver] is T:
            return Status.NOT_APPLICABLE, self._path(self.waiver, assignment, values)
        if self.applies is not None and values[self.applies] is F:
            return Status.NOT_APPLICABLE, self._path(self.applies, assignment, values)
        value = values[self.requires]
        status = {T: Status.MET, F: Status.NOT_MET, U: self.clause.undocumented}[value]
        return status, self._path(self.requires, assignment, values)

    def _value(self, node: str, assignment: Sequence[str], values: dict[str, Truth]) -> Truth:
        if node in self.index:
            i = self.index[node]
            values[node] = self.tree.leaves[i].truth(assignment[i])
            return values[node]
        cond = self.tree.conditions[node]
        kids = [self._value(k, assignment, values) for k in self.tree.children[node]]
        if isinstance(cond, All):
            value = min(kids, default=T)
        elif isinstance(cond, AnyOf):
            value = max(kids, default=F)
        elif isinstance(cond, Not):
            value = Truth(2 - kids[0])
        elif isinstance(cond, Demonstrated):
            value = T if kids[0] is T else F
        else:
            assert isinstance(cond, NOf)
            true, unknown = kids.count(T), kids.count(U)
            n = cond.at_least
            value = T if true >= n else F if true + unknown < n else U
        values[node] = value
        return value

    def _path(
        self, node: str, assignment: Sequence[str], values: dict[str, Truth]
    ) -> frozenset[tuple[str, str]]:
        """The nodes decision assembly reads to explain `node`'s value (decision._Assembler
        .evidence): a leaf by its variant, an inner node by its value, then the children
        whose value explains it."""
        if node in self.index:
            return frozenset({(node, assignment[self.index[node]])})
        value = values[node]
        cond = self.tree.conditions[node]
        wanted = {value}
        if isinstance(cond, Not):
            wanted = {Truth(2 - value)}
        elif isinstance(cond, Demonstrated):
            wanted = {T} if value is T else {F, U}
        out = {(node, str(int(value)))}
        for kid in self.tree.children[node]:
            if values[kid] in wanted:
                out |= self._path(kid, assignment, values)
        return frozenset(out)


def _truth_of(variant: str) -> Truth:
    return {"T": T, "F": F, "U": U}[variant]


def _root() -> Scope:
    return Scope()


def _fact_stage(low: Lowering, fact: str, pointer: str) -> Callable[[], int]:
    return lambda: low.stage_of_fact(fact, pointer)


def _too_many_n_of(cond: NOf) -> bool:
    return len(list(itertools.combinations(range(len(cond.parts)), cond.at_least))) > (
        MAX_N_OF_COMBINATIONS
    )


def _any_of(tests: list[Test]) -> Test:
    return tests[0] if len(tests) == 1 else AnyTest(tuple(tests))


def _only(variants: frozenset[str]) -> str:
    return next(iter(variants)) if len(variants) == 1 else ""


def _product(sizes: Iterable[int]) -> int:
    out = 1
    for size in sizes:
        out *= size
    return out


def _group_order(key: tuple[Status, frozenset[tuple[str, str]]]) -> tuple[str, list[str]]:
    status, path = key
    return status.value, sorted(f"{n}={d}" for n, d in path)


def _merge(boxes: list[Box], width: int) -> list[Box]:
    """Merge boxes that differ in one coordinate only, until none do; the result covers the
    same combinations, still disjoint, in a stable order."""
    current = set(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(width):
            by_rest: dict[Box, list[Box]] = {}
            for box in current:
                by_rest.setdefault(box[:i] + box[i + 1 :], []).append(box)
            merged = set()
            for rest, group in by_rest.items():
                if len(group) > 1:
                    changed = True
                union = frozenset().union(*(b[i] for b in group))
                merged.add((*rest[:i], union, *rest[i:]))
            current = merged
    return sorted(current, key=lambda b: [sorted(c) for c in b])
