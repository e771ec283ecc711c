"""Compile a policy into a Program: stratified engine rules with data-only actions.

Stages, in the order they run on a policy:
1. resolve names against the fact dictionary (case facts plus the policy's derived types) and
   check kinds, units and enum values, collecting every problem;
2. lower each condition node into rules that derive its Kleene value (comparisons via
   `comparisons.lower`; all/any/not/demonstrated/every/some combine child values; N-of-M becomes
   an any of alls);
3. stratify: every rule gets a stage strictly above the stages of all it reads, because
   durable_rules negation has no truth maintenance and must only see complete inputs;
4. add the clause-status, determination and catch-all rules.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from . import dictionary, ruleset
from .comparisons import NEVER, check_value, lower
from .conditions import (
    All,
    AnyOf,
    Binding,
    ClauseIs,
    Compare,
    Condition,
    Count,
    Demonstrated,
    Every,
    Exists,
    NOf,
    Not,
    Some,
    Threshold,
    Truth,
    WhereEq,
    WhereItem,
    WhereOneOf,
    WhereSameAs,
)
from .dictionary import FactType
from .errors import Collector, Location, PolicyError
from .model import Clause, DeriveRule, Determination, FromField, Policy, Status
from .program import (
    CAND,
    CASE,
    KEY,
    STAGE,
    STATUS,
    VAL,
    Action,
    AllOf,
    AnyTest,
    ClauseNodes,
    EmitFact,
    EmitStatus,
    EmitValue,
    EmitVerdict,
    Eq,
    Join,
    Node,
    Pattern,
    Program,
    Rule,
    Test,
)

MAX_N_OF_COMBINATIONS = 64
F, U, T = Truth.FALSE, Truth.UNKNOWN, Truth.TRUE


@dataclass(frozen=True, slots=True)
class _Scope:
    bindings: tuple[Binding, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(_alias(b.alias) for b in self.bindings)

    def find(self, alias: str) -> Binding | None:
        return next((b for b in self.bindings if b.alias == alias), None)


def _alias(name: str) -> str:
    # Author aliases get a prefix so they can never collide with the compiler's own.
    return f"b_{name}"


def _is_never(test: Test) -> bool:
    return test == NEVER


class _Compiler:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.types = dictionary.with_derived(policy.derived)
        self.problems = Collector()
        self.rules: list[Rule] = []
        self.nodes: dict[str, Node] = {}
        self.clause_nodes: dict[str, ClauseNodes] = {}
        self.fact_stage: dict[str, int] = {
            name: 0 for name, t in self.types.items() if not t.derived
        }
        self.clause_stage: dict[str, int] = {}
        self.busy: list[str] = []
        self.clauses: dict[str, Clause] = {}
        for clause in policy.clauses:
            if clause.id in self.clauses:
                self.problems.add(
                    "duplicate_clause",
                    f"clause id `{clause.id}` is used twice",
                    self.locate(clause.pointer + "/id"),
                )
            self.clauses[clause.id] = clause
        self.producers: dict[str, list[DeriveRule]] = {}
        for rule in policy.rules:
            self.producers.setdefault(rule.fact, []).append(rule)

    def locate(self, pointer: str) -> Location:
        return self.policy.locate(pointer)

    # -- rules -------------------------------------------------------------------------------

    def emit(
        self,
        stage: int,
        patterns: list[Pattern],
        action: Action,
        origin: str,
        count: int | None = None,
    ) -> None:
        if any(_is_never(p.test) and not p.negated for p in patterns):
            return  # a pattern that matches nothing: the rule could never fire
        marker = Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", stage))))
        name = f"r{len(self.rules)}"
        self.rules.append(Rule(name, stage, (marker, *patterns), action, origin, count))

    def anchors(self, scope: _Scope, extra: Mapping[str, Test] | None = None) -> list[Pattern]:
        """Patterns binding the scope's facts; `extra` adds tests to one alias's pattern."""
        if not scope.bindings:
            return [Pattern("case", Eq("t", CASE))]
        patterns = []
        for binding in scope.bindings:
            alias = _alias(binding.alias)
            tests: list[Test] = [Eq("t", binding.fact), *self.where(binding.where)]
            if extra and alias in extra:
                tests.append(extra[alias])
            patterns.append(Pattern(alias, AllOf(tuple(tests))))
        return patterns

    def where(self, items: tuple[WhereItem, ...]) -> list[Test]:
        tests: list[Test] = []
        for item in items:
            if isinstance(item, WhereEq):
                tests.append(Eq(item.field, item.value))
            elif isinstance(item, WhereOneOf):
                tests.append(AnyTest(tuple(Eq(item.field, v) for v in item.values)))
            elif isinstance(item, WhereSameAs):
                tests.append(Join(item.field, _alias(item.alias), item.other))
        return tests

    def value_pattern(
        self,
        alias: str,
        nodes: tuple[str, ...],
        values: tuple[Truth, ...],
        scope: _Scope,
        kind: str = VAL,
        negated: bool = False,
    ) -> Pattern:
        def one_of(field: str, options: tuple[object, ...]) -> Test:
            if len(options) == 1:
                return Eq(field, options[0])  # type: ignore[arg-type]
            return AnyTest(tuple(Eq(field, o) for o in options))  # type: ignore[arg-type]

        joins = [Join(f"k{i + 1}", key, KEY) for i, key in enumerate(scope.keys)]
        test = AllOf(
            (Eq("t", kind), one_of("n", nodes), one_of("v", tuple(int(v) for v in values)), *joins)
        )
        return Pattern(alias, test, negated)

    def anchor_stage(self, scope: _Scope) -> int:
        return max((self.stage_of_fact(b.fact, b.pointer) for b in scope.bindings), default=0)

    # -- names -------------------------------------------------------------------------------

    def fact_type(self, name: str, pointer: str) -> FactType | None:
        found = self.types.get(name)
        if found is None:
            self.problems.add(
                "unknown_fact",
                f"unknown fact type `{name}`",
                self.locate(pointer),
                _did_you_mean(name, self.types),
            )
        return found

    def check_where(
        self, fact: FactType, items: tuple[WhereItem, ...], scope: _Scope, pointer: str
    ) -> None:
        for item in items:
            info = fact.fields.get(item.field)
            if info is None:
                self.problems.add(
                    "unknown_field",
                    f"fact `{fact.name}` has no field `{item.field}`",
                    self.locate(pointer),
                    _did_you_mean(item.field, fact.fields),
                )
                continue
            if isinstance(item, WhereEq):
                check_value(fact.name, info, item.value, self.problems, self.locate(pointer))
            elif isinstance(item, WhereOneOf):
                for value in item.values:
                    check_value(fact.name, info, value, self.problems, self.locate(pointer))
            else:
                bound = scope.find(item.alias)
                if bound is None:
                    self.problems.add(
                        "unknown_alias",
                        f"`{item.alias}` is not bound here",
                        self.locate(pointer),
                    )
                elif (
                    bound_type := self.types.get(bound.fact)
                ) and item.other not in bound_type.fields:
                    self.problems.add(
                        "unknown_field",
                        f"fact `{bound.fact}` has no field `{item.other}`",
                        self.locate(pointer),
                    )

    # -- strata ------------------------------------------------------------------------------

    def guard(self, key: str, pointer: str) -> bool:
        """Enter `key`; report a cycle and refuse when it is already being compiled."""
        if key in self.busy:
            cycle = " -> ".join([*self.busy[self.busy.index(key) :], key])
            self.problems.add("cycle", f"rules depend on themselves: {cycle}", self.locate(pointer))
            return False
        self.busy.append(key)
        return True

    def stage_of_fact(self, name: str, pointer: str) -> int:
        if name in self.fact_stage:
            return self.fact_stage[name]
        if name not in self.types:
            return 0  # reported where it is used
        if not self.guard(f"fact {name}", pointer):
            return 0
        stage = 0
        for rule in self.producers.get(name, []):
            stage = max(stage, self.derive(rule))
        self.busy.pop()
        self.fact_stage[name] = stage
        return stage

    def stage_of_clause(self, clause_id: str, pointer: str) -> int:
        if clause_id in self.clause_stage:
            return self.clause_stage[clause_id]
        clause = self.clauses.get(clause_id)
        if clause is None:
            self.problems.add(
                "unknown_clause",
                f"unknown clause `{clause_id}`",
                self.locate(pointer),
                _did_you_mean(clause_id, self.clauses),
            )
            return 0
        if not self.guard(f"clause {clause_id}", pointer):
            return 0
        stage = self.clause(clause)
        self.busy.pop()
        self.clause_stage[clause_id] = stage
        return stage

    # -- conditions --------------------------------------------------------------------------

    def node(self, cond: Condition, scope: _Scope, node_id: str) -> int:
        """Emit the rules that derive `node_id`'s value; return the stage it is complete at."""
        children: tuple[str, ...] = ()
        if isinstance(cond, Compare):
            stage = self.compare(cond, scope, node_id)
        elif isinstance(cond, Exists):
            stage = self.exists(cond, scope, node_id)
        elif isinstance(cond, ClauseIs):
            stage = self.clause_is(cond, scope, node_id)
        elif isinstance(cond, All | AnyOf):
            children = tuple(f"{node_id}/{i}" for i in range(len(cond.parts)))
            stages = [self.node(p, scope, c) for p, c in zip(cond.parts, children, strict=True)]
            stage = self.combine(isinstance(cond, All), node_id, children, stages, scope)
        elif isinstance(cond, NOf):
            children = tuple(f"{node_id}/{i}" for i in range(len(cond.parts)))
            stages = [self.node(p, scope, c) for p, c in zip(cond.parts, children, strict=True)]
            stage = self.n_of(cond, node_id, children, stages, scope)
        elif isinstance(cond, Not | Demonstrated):
            children = (f"{node_id}/0",)
            child_stage = self.node(cond.part, scope, children[0])
            stage = self.unary(cond, node_id, children[0], child_stage, scope)
        else:
            stage = self.quantifier(cond, scope, node_id)
            children = (f"{node_id}/0",)
        self.nodes[node_id] = Node(
            node_id, cond, children, len(scope.bindings), tuple(b.alias for b in scope.bindings)
        )
        return stage

    def compare(self, leaf: Compare, scope: _Scope, node_id: str) -> int:
        bound = scope.find(leaf.fact)
        fact = (
            self.types.get(bound.fact)
            if bound
            else self.fact_type(leaf.fact, f"{leaf.pointer}/fact")
        )
        if fact is None:
            return 0
        info = fact.fields.get(leaf.field)
        for name in (leaf.field, leaf.minus):
            if name is not None and name not in fact.fields:
                key = "field" if name == leaf.field else "minus"
                self.problems.add(
                    "unknown_field",
                    f"fact `{fact.name}` has no field `{name}`",
                    self.locate(f"{leaf.pointer}/{key}"),
                    _did_you_mean(name, fact.fields),
                )
        if isinstance(leaf.operand, Threshold) and math.isnan(leaf.operand.value):
            self.problems.add(
                "unknown_setting",
                f"unknown setting `{leaf.operand.setting}`",
                self.locate(f"{leaf.pointer}/{leaf.op.value}/setting"),
                _did_you_mean(leaf.operand.setting or "", self.policy.settings),
            )
            return 0
        if info is None:
            return 0
        self.check_where(fact, leaf.where, scope, leaf.pointer)
        outcomes = lower(leaf, info, self.policy.below_threshold_words, self.problems, self.locate)
        by_value = ((T, outcomes.true), (F, outcomes.false), (U, outcomes.unknown))
        if bound is not None:
            # The bound fact itself: exactly one fact, so each outcome is the node's value.
            stage = self.anchor_stage(scope) + 1
            for value, test in by_value:
                if not _is_never(test):
                    self.emit(
                        stage,
                        self.anchors(scope, {_alias(bound.alias): test}),
                        EmitValue(VAL, node_id, value, scope.keys, _alias(bound.alias)),
                        node_id,
                    )
            return stage
        stage = max(self.anchor_stage(scope), self.stage_of_fact(fact.name, leaf.pointer)) + 1
        base: list[Test] = [Eq("t", fact.name), *self.where(leaf.where)]
        kind = CAND if fact.many else VAL
        for value, test in by_value:
            pattern = Pattern("f", AllOf((*base, test)))
            self.emit(
                stage,
                [*self.anchors(scope), pattern],
                EmitValue(kind, node_id, value, scope.keys, "f"),
                node_id,
            )
        absent = Pattern("f", AllOf(tuple(base)), negated=True)
        self.emit(
            stage,
            [*self.anchors(scope), absent],
            EmitValue(VAL, node_id, leaf.if_absent, scope.keys),
            node_id,
        )
        if not fact.many:
            return stage
        # Several facts can match: the leaf is true if any is, else unknown if any is (Kleene OR).
        self.or_rules(node_id, (node_id,), scope, stage + 1, CAND)
        return stage + 1

    def exists(self, cond: Exists, scope: _Scope, node_id: str) -> int:
        fact = self.fact_type(cond.fact, cond.pointer)
        if fact is None:
            return 0
        self.check_where(fact, cond.where, scope, cond.pointer)
        stage = max(self.anchor_stage(scope), self.stage_of_fact(fact.name, cond.pointer)) + 1
        test = AllOf((Eq("t", fact.name), *self.where(cond.where)))
        self.emit(
            stage,
            [*self.anchors(scope), Pattern("f", test)],
            EmitValue(VAL, node_id, T, scope.keys, "f"),
            node_id,
        )
        self.emit(
            stage,
            [*self.anchors(scope), Pattern("f", test, negated=True)],
            EmitValue(VAL, node_id, F, scope.keys),
            node_id,
        )
        return stage

    def clause_is(self, cond: ClauseIs, scope: _Scope, node_id: str) -> int:
        stage = max(self.anchor_stage(scope), self.stage_of_clause(cond.clause, cond.pointer)) + 1
        test = AllOf((Eq("t", STATUS), Eq("clause", cond.clause), Eq("status", cond.status)))
        self.emit(
            stage,
            [*self.anchors(scope), Pattern("s", test)],
            EmitValue(VAL, node_id, T, scope.keys),
            node_id,
        )
        self.emit(
            stage,
            [*self.anchors(scope), Pattern("s", test, negated=True)],
            EmitValue(VAL, node_id, F, scope.keys),
            node_id,
        )
        return stage

    def or_rules(
        self,
        node_id: str,
        inputs: tuple[str, ...],
        scope: _Scope,
        stage: int,
        kind: str = VAL,
        inner: _Scope | None = None,
    ) -> None:
        """Kleene OR (max) of the inputs' values.

        With `inner` the inputs are a quantifier's children, joined on the outer keys only, and an
        empty range is vacuously false; otherwise a false result needs a false input to exist.
        """
        self._extremum(node_id, inputs, scope, stage, kind, inner, order=(T, U, F))

    def and_rules(
        self,
        node_id: str,
        inputs: tuple[str, ...],
        scope: _Scope,
        stage: int,
        inner: _Scope | None = None,
    ) -> None:
        """Kleene AND (min) of the inputs' values; an empty quantifier range is vacuously true."""
        self._extremum(node_id, inputs, scope, stage, VAL, inner, order=(F, U, T))

    def _extremum(
        self,
        node_id: str,
        inputs: tuple[str, ...],
        scope: _Scope,
        stage: int,
        kind: str,
        inner: _Scope | None,
        order: tuple[Truth, Truth, Truth],
    ) -> None:
        # `order` ranks the values: the first present wins (OR: true, unknown, false).
        vp = self.value_pattern
        first, second, last = order
        anchors = self.anchors(scope)

        def emit(value: Truth, patterns: list[Pattern]) -> None:
            self.emit(
                stage, [*anchors, *patterns], EmitValue(VAL, node_id, value, scope.keys), node_id
            )

        emit(first, [vp("c", inputs, (first,), scope, kind)])
        emit(
            second,
            [vp("c", inputs, (second,), scope, kind), vp("x", inputs, (first,), scope, kind, True)],
        )
        blockers = [
            vp("x", inputs, (first,), scope, kind, True),
            vp("y", inputs, (second,), scope, kind, True),
        ]
        positive = [] if inner is not None else [vp("c", inputs, (last,), scope, kind)]
        emit(last, [*positive, *blockers])

    def combine(
        self,
        is_all: bool,
        node_id: str,
        children: tuple[str, ...],
        stages: list[int],
        scope: _Scope,
    ) -> int:
        stage = max([*stages, self.anchor_stage(scope)]) + 1
        if is_all:
            self.and_rules(node_id, children, scope, stage)
        else:
            self.or_rules(node_id, children, scope, stage)
        return stage

    def n_of(
        self, cond: NOf, node_id: str, children: tuple[str, ...], stages: list[int], scope: _Scope
    ) -> int:
        n = cond.at_least
        if n > len(children):
            self.problems.add(
                "impossible_n_of",
                f"`at_least: {n}` of only {len(children)} conditions can never be true",
                self.locate(cond.pointer),
            )
            return 0
        combos = list(itertools.combinations(children, n))
        if len(combos) > MAX_N_OF_COMBINATIONS:
            self.problems.add(
                "n_of_too_large",
                f"{n} of {len(children)} expands to {len(combos)} combinations "
                f"(at most {MAX_N_OF_COMBINATIONS})",
                self.locate(cond.pointer),
            )
            return 0
        # At least n true == some n-subset is all true, with the same Kleene unknowns.
        stage = max([*stages, self.anchor_stage(scope)]) + 1
        combo_ids = tuple(f"{node_id}/of{i}" for i in range(len(combos)))
        for combo_id, combo in zip(combo_ids, combos, strict=True):
            self.and_rules(combo_id, combo, scope, stage)
            self.nodes[combo_id] = Node(
                combo_id,
                All((), cond.pointer),
                combo,
                len(scope.bindings),
                tuple(b.alias for b in scope.bindings),
            )
        self.or_rules(node_id, combo_ids, scope, stage + 1)
        return stage + 1

    def unary(
        self, cond: Not | Demonstrated, node_id: str, child: str, child_stage: int, scope: _Scope
    ) -> int:
        stage = max(child_stage, self.anchor_stage(scope)) + 1
        mapping = {T: F, U: U, F: T} if isinstance(cond, Not) else {T: T, U: F, F: F}
        for before, after in mapping.items():
            self.emit(
                stage,
                [*self.anchors(scope), self.value_pattern("c", (child,), (before,), scope)],
                EmitValue(VAL, node_id, after, scope.keys),
                node_id,
            )
        return stage

    def quantifier(self, cond: Condition, scope: _Scope, node_id: str) -> int:
        assert isinstance(cond, Every | Some | Count)
        binding = cond.binding
        if scope.find(binding.alias) is not None:
            self.problems.add(
                "alias_reused",
                f"`{binding.alias}` is already bound here",
                self.locate(binding.pointer),
            )
            return 0
        if isinstance(cond, Count) and scope.bindings:
            # durable_rules batches counted matches across all bindings, so a count inside
            # another quantifier would mix elements.
            self.problems.add(
                "nested_count",
                "`count` must not be inside every/some/count",
                self.locate(cond.pointer),
            )
            return 0
        fact = self.fact_type(binding.fact, binding.pointer)
        if fact is None:
            return 0
        self.check_where(fact, binding.where, scope, binding.pointer)
        inner = _Scope((*scope.bindings, binding))
        child = f"{node_id}/0"
        child_stage = self.node(cond.require, inner, child)
        stage = max(child_stage, self.anchor_stage(inner)) + 1
        # Children carry one more key; joining on the outer keys only ranges over all of them.
        if isinstance(cond, Every):
            self.and_rules(node_id, (child,), scope, stage, inner=scope)
        elif isinstance(cond, Some):
            self.or_rules(node_id, (child,), scope, stage, inner=scope)
        else:
            return self.count(cond, node_id, child, stage, scope)
        return stage

    def count(self, cond: Count, node_id: str, child: str, stage: int, scope: _Scope) -> int:
        """True when N children are true; false when N are documented but fewer than N are
        true or unknown; otherwise unknown (fewer than N documented: more may exist)."""
        vp = self.value_pattern
        n = cond.at_least
        possible, documented = f"{node_id}/possible", f"{node_id}/documented"
        for marker in (possible, documented):
            self.nodes[marker] = Node(marker, cond, (child,), 0, ())
        self.emit(
            stage,
            [vp("c", (child,), (T,), scope)],
            EmitValue(VAL, node_id, T, ()),
            node_id,
            count=n,
        )
        self.emit(
            stage,
            [vp("c", (child,), (T, U), scope)],
            EmitValue(VAL, possible, T, ()),
            node_id,
            count=n,
        )
        self.emit(
            stage,
            [vp("c", (child,), (T, U, F), scope)],
            EmitValue(VAL, documented, T, ()),
            node_id,
            count=n,
        )
        done = vp("x", (node_id,), (T,), scope, VAL, True)
        self.emit(
            stage + 1,
            [vp("p", (possible,), (T,), scope), done],
            EmitValue(VAL, node_id, U, ()),
            node_id,
        )
        self.emit(
            stage + 1,
            [vp("d", (documented,), (T,), scope, VAL, True), done],
            EmitValue(VAL, node_id, U, ()),
            node_id,
        )
        self.emit(
            stage + 1,
            [
                vp("d", (documented,), (T,), scope),
                vp("p", (possible,), (T,), scope, VAL, True),
                done,
            ],
            EmitValue(VAL, node_id, F, ()),
            node_id,
        )
        return stage + 1

    # -- clauses, derivations, verdict ---------------------------------------------------------

    def clause(self, clause: Clause) -> int:
        root = _Scope()
        base = clause.id
        applies = f"{base}:applies_when" if clause.applies_when else None
        waiver = f"{base}:waived_by" if clause.waived_by else None
        requires = f"{base}:requires"
        stages = [self.node(clause.requires, root, requires)]
        if clause.applies_when is not None and applies:
            stages.append(self.node(clause.applies_when, root, applies))
        if clause.waived_by is not None and waiver:
            stages.append(self.node(clause.waived_by, root, waiver))
        self.clause_nodes[clause.id] = ClauseNodes(applies, waiver, requires)
        for ref in clause.cites:
            if ref not in {r.id for r in self.policy.references}:
                self.problems.add(
                    "unknown_reference",
                    f"reference {ref} is not defined",
                    self.locate(clause.pointer + "/cites"),
                )
        stage = max(stages) + 1
        vp = self.value_pattern
        case = self.anchors(root)
        blockers = []
        if applies:
            blockers.append(vp("na", (applies,), (F,), root, VAL, True))
            self.emit(
                stage,
                [*case, vp("a", (applies,), (F,), root)],
                EmitStatus(clause.id, Status.NOT_APPLICABLE),
                base,
            )
        if waiver:
            blockers.append(vp("w", (waiver,), (T,), root, VAL, True))
            self.emit(
                stage,
                [*case, vp("a", (waiver,), (T,), root)],
                EmitStatus(clause.id, Status.NOT_APPLICABLE),
                base,
            )
        outcomes = {T: Status.MET, F: Status.NOT_MET, U: clause.undocumented}
        for value, status in outcomes.items():
            self.emit(
                stage,
                [*case, vp("r", (requires,), (value,), root), *blockers],
                EmitStatus(clause.id, status),
                base,
            )
        return stage

    def derive(self, rule: DeriveRule) -> int:
        target = self.types.get(rule.fact)
        if target is None or not target.derived:
            self.problems.add(
                "undeclared_fact",
                f"rule `{rule.id}` derives `{rule.fact}`, which is not declared under `facts`",
                self.locate(rule.pointer + "/derive/fact"),
            )
            return 0
        scope = _Scope()
        for binding in rule.bindings:
            fact = self.fact_type(binding.fact, binding.pointer)
            if fact is not None:
                self.check_where(fact, binding.where, scope, binding.pointer)
            scope = _Scope((*scope.bindings, binding))
        stage = self.anchor_stage(scope)
        patterns = self.anchors(scope)
        if rule.when is not None:
            when_id = f"{rule.id}:when"
            stage = max(stage, self.node(rule.when, scope, when_id))
            patterns.append(self.value_pattern("c", (when_id,), (T,), scope))
        copy: dict[str, tuple[str, ...]] = {}
        for name, value in rule.values.items():
            if name not in target.fields:
                self.problems.add(
                    "unknown_field",
                    f"`{rule.fact}` has no field `{name}`",
                    self.locate(rule.pointer + "/derive/set"),
                )
            if isinstance(value, FromField):
                bound = scope.find(value.alias)
                source = self.types.get(bound.fact) if bound else None
                info = source.fields.get(value.field) if source else None
                if info is None:
                    self.problems.add(
                        "unknown_field",
                        f"`{value.alias}.{value.field}` is not bound here",
                        self.locate(rule.pointer + "/derive/set"),
                    )
                    continue
                copy[name] = dictionary.physical_fields(info)
        action = EmitFact(rule.id, rule.fact, rule.values, MappingProxyType(copy), scope.keys)
        self.emit(stage + 1, patterns, action, rule.id)
        return stage + 1

    def verdict(self, stage: int) -> None:
        case = self.anchors(_Scope())

        def status(name: str, negated: bool = False) -> Pattern:
            return Pattern(f"s_{name}", AllOf((Eq("t", STATUS), Eq("status", name))), negated)

        self.emit(
            stage,
            [*case, status("not_met")],
            EmitVerdict(Determination.NOT_MEDICALLY_NECESSARY),
            "determination",
        )
        self.emit(
            stage,
            [*case, status("not_documented"), status("not_met", True)],
            EmitVerdict(Determination.INSUFFICIENT_DOCUMENTATION),
            "determination",
        )
        self.emit(
            stage,
            [*case, status("not_met", True), status("not_documented", True)],
            EmitVerdict(Determination.MEDICALLY_NECESSARY),
            "determination",
        )

    def run(self) -> Program:
        for clause in self.policy.clauses:
            self.stage_of_clause(clause.id, clause.pointer)
        for rule in self.policy.rules:
            target = self.types.get(rule.fact)
            if target is None or not target.derived:
                self.derive(rule)  # reports the undeclared fact with its location
            else:
                self.stage_of_fact(rule.fact, rule.pointer)
        alternative = None
        last = max([*self.clause_stage.values(), *self.fact_stage.values(), 0])
        if self.policy.alternative is not None:
            alternative = "alternative:when"
            last = max(last, self.node(self.policy.alternative.when, _Scope(), alternative))
            for line in self.policy.alternative.lines:
                fact = self.fact_type(line.segments, "/alternative/lines")
                if fact is not None and "segment" not in fact.fields:
                    self.problems.add(
                        "not_segments",
                        f"`{line.segments}` has no `segment` field",
                        self.locate("/alternative/lines"),
                    )
        self.verdict(last + 1)
        self.problems.raise_if_any(PolicyError)
        policy = self.policy
        return Program(
            name=f"{policy.id}@{policy.version}#{policy.sha256[:12]}",
            stages=last + 1,
            rules=tuple(self.rules),
            nodes=MappingProxyType(dict(self.nodes)),
            clauses=MappingProxyType(dict(self.clause_nodes)),
            alternative=alternative,
            derived_fields=MappingProxyType(
                {n: MappingProxyType(dict(d.fields)) for n, d in policy.derived.items()}
            ),
        )


def _did_you_mean(name: str, known: Mapping[str, object] | Iterator[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean `{close[0]}`?" if close else None


def compile_policy(policy: Policy) -> Program:
    """Return the Program for a policy.

    Raises PolicyError with every problem found (unknown facts, fields, settings, clauses,
    references; unit and value mismatches; cycles between rules).
    """
    program = _Compiler(policy).run()
    # Render once now so that an engine limit is reported when the policy is compiled (by
    # `validate` and `lint` too), not on the first case evaluated.
    ruleset.render(program)
    return program


__all__ = ["compile_policy"]
