"""Lowering of condition trees into engine rules: one method per operator.

Each node's rules derive its Kleene value for every combination of bound facts; `compiler.py`
drives this per clause and derivation rule and owns the strata the lowering asks for.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from evaluator.compile.comparisons import (
    NEVER,
    PAIR_FIRST,
    PAIR_SECOND,
    Outcomes,
    check_value,
    is_side,
    lower,
    side_pairs,
)
from evaluator.compile.program import (
    CAND,
    KEY,
    PAIR,
    POLICY_RESULT,
    STAGE,
    STATUS,
    VAL,
    Action,
    AllOf,
    AnyTest,
    ClauseNodes,
    EmitMissing,
    EmitPair,
    EmitValue,
    Eq,
    Join,
    Ne,
    Node,
    Pattern,
    Rule,
    Test,
)
from evaluator.errors import Collector, Location
from evaluator.language import dictionary
from evaluator.language.conditions import (
    TIME_ANCHORS,
    TIME_OPS,
    All,
    AnyOf,
    Binding,
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
    Op,
    PolicyIs,
    Some,
    Threshold,
    Truth,
    WhereEq,
    WhereItem,
    WhereOneOf,
    WhereSameAs,
    latest_rival,
)
from evaluator.language.dictionary import FactType
from evaluator.language.model import Clause, DeriveRule, Policy

MAX_N_OF_COMBINATIONS = 64
# Facts one rule may join, the stage marker included (error 304; ruleset.MAX_PATTERNS).
MAX_JOINED = 16
# Quantifiers (every/some/count, plus a derivation rule's bindings) nested this deep are the most
# durable_rules 2.0.28 runs safely: one level more, with joins between the levels, corrupted its
# heap ("free(): invalid pointer", SIGABRT/SIGSEGV) in probes at depth 5 with a comparison beside
# each nested quantifier, 6 with a joined leaf, 8 with a plain chain (durable-rules.md trap 19;
# reproduced in subprocesses by tests/test_nesting.py). No shape crashed at 4.
MAX_QUANTIFIER_DEPTH = 4
F, U, T = Truth.FALSE, Truth.UNKNOWN, Truth.TRUE


@dataclass(frozen=True, slots=True)
class Scope:
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


class Lowering:
    """Shared compiler state, the rule helpers and the per-operator lowering."""

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
        # Quantifier bindings whose `where` tests a disputed field by value (x-disputed): their
        # scope takes the facts that may pass it too, each fact's requirement gated (`gated`).
        self.widened: dict[Binding, Mapping[str, str]] = {}
        self.references: set[str] = set()
        # Derives a node's value by folded rules (`folding.py`) and returns its stage, or None
        # to lower it node by node.
        self.fold: Callable[[Condition, Scope, str], int | None] | None = None
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

    def anchors(self, scope: Scope, extra: Mapping[str, Test] | None = None) -> list[Pattern]:
        """Patterns binding the scope's facts; `extra` adds tests to one alias's pattern."""
        if not scope.bindings:
            return []
        patterns = []
        for binding in scope.bindings:
            alias = _alias(binding.alias)
            tests: list[Test] = list(self.scope_test(binding).tests)
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

    def scope_test(self, binding: Binding) -> AllOf:
        """The test a fact in `binding`'s scope passes: its `where`, or, widened, that it may
        pass it (`maybe_test`)."""
        widened = self.widened.get(binding)
        if widened is None:
            return self.fact_test(binding.fact, binding.where)
        return self.maybe_test(binding.fact, binding.where, widened)

    def fact_test(self, fact: str, items: tuple[WhereItem, ...]) -> AllOf:
        """The test a fact of type `fact` passing the `where` items passes."""
        return AllOf((Eq("t", fact), *self.where(items)))

    def disputed(self, fact: FactType, items: tuple[WhereItem, ...]) -> dict[str, str]:
        """Return, per field a `where` item tests by value, the field a fact carries when
        that field's sources disagree (x-disputed): such a fact may or may not pass the item
        (domain rule 9: conflicting documentation is not documented, never absent)."""
        found: dict[str, str] = {}
        for item in items:
            info = fact.fields.get(item.field)
            if isinstance(item, WhereEq | WhereOneOf) and info is not None and info.disputed:
                found[item.field] = info.disputed
        return found

    def maybe_test(
        self, fact: str, items: tuple[WhereItem, ...], disputed: Mapping[str, str]
    ) -> AllOf:
        """The test a fact passes that passes the `where` items or may pass them: each item
        passed or, on a field in `disputed`, its marker set (a fact passing this test and not
        the items themselves is one whose sources disagree)."""
        tests: list[Test] = []
        for item, test in zip(items, self.where(items), strict=True):
            marker = disputed.get(item.field)
            tests.append(test if marker is None else AnyTest((test, Eq(marker, True))))
        return AllOf((Eq("t", fact), *tests))

    def value_pattern(
        self,
        alias: str,
        nodes: tuple[str, ...],
        values: tuple[Truth, ...],
        scope: Scope,
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

    def anchor_stage(self, scope: Scope) -> int:
        return max((self.stage_of_fact(b.fact, b.pointer) for b in scope.bindings), default=0)

    # -- names -------------------------------------------------------------------------------

    def fact_type(self, name: str, pointer: str) -> FactType | None:
        found = self.types.get(name)
        if found is None:
            self.problems.add(
                "unknown_fact",
                f"unknown fact type `{name}`",
                self.locate(pointer),
                did_you_mean(name, self.types),
            )
        return found

    def check_where(
        self, fact: FactType, items: tuple[WhereItem, ...], scope: Scope, pointer: str
    ) -> None:
        for item in items:
            info = fact.fields.get(item.field)
            if info is None:
                self.problems.add(
                    "unknown_field",
                    f"fact `{fact.name}` has no field `{item.field}`",
                    self.locate(pointer),
                    did_you_mean(item.field, fact.fields),
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

    # -- strata the lowering asks for; the compiler computes them ---------------------------

    def stage_of_fact(self, name: str, pointer: str) -> int:
        raise NotImplementedError

    def stage_of_clause(self, clause_id: str, pointer: str) -> int:
        raise NotImplementedError

    # -- conditions --------------------------------------------------------------------------

    def node(self, cond: Condition, scope: Scope, node_id: str) -> int:
        """Emit the rules that derive `node_id`'s value; return the stage it is complete at."""
        if self.fold is not None and (folded := self.fold(cond, scope, node_id)) is not None:
            return folded
        children: tuple[str, ...] = ()
        if isinstance(cond, Compare):
            stage = self.compare(cond, scope, node_id)
        elif isinstance(cond, Exists):
            stage = self.exists(cond, scope, node_id)
        elif isinstance(cond, ClauseIs):
            stage = self.clause_is(cond, scope, node_id)
        elif isinstance(cond, PolicyIs):
            stage = self.policy_is(cond, scope, node_id)
        elif isinstance(cond, Distinct):
            stage = self.distinct(cond, scope, node_id)
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
        elif isinstance(cond, Latest):
            children = (f"{node_id}/0",)
            stage = self.latest(cond, scope, node_id)
        else:
            stage = self.quantifier(cond, scope, node_id)
            children = (f"{node_id}/0",)
        self.register(cond, scope, node_id, children, stage)
        return stage

    def require_value(self, node_id: str, scope: Scope, stage: int) -> None:
        """Fail closed: a node asked for a combination of bound facts must have a value for it.

        The combination rules only look at the values that exist, so a child that got none
        (a test no fact matched) would silently drop out of a Kleene AND/OR. This rule runs once
        the node is complete and makes the engine report every combination left without one.
        """
        self.emit(
            stage + 1,
            [
                *self.anchors(scope),
                self.value_pattern("v", (node_id,), (F, U, T), scope, negated=True),
            ],
            EmitMissing(node_id, scope.keys, tuple(b.alias for b in scope.bindings)),
            node_id,
        )

    def compare_tests(self, leaf: Compare, scope: Scope) -> tuple[FactType, Outcomes] | None:
        """Check a comparison leaf (reporting misuse) and return its fact type and its three
        tests; None when it cannot be lowered. Shared by the per-node lowering and folding."""
        bound = scope.find(leaf.fact)
        fact = (
            self.types.get(bound.fact)
            if bound
            else self.fact_type(leaf.fact, f"{leaf.pointer}/fact")
        )
        if fact is None:
            return None
        info = fact.fields.get(leaf.field)
        for name in (leaf.field, leaf.minus):
            if name is not None and name not in fact.fields:
                key = "field" if name == leaf.field else "minus"
                self.problems.add(
                    "unknown_field",
                    f"fact `{fact.name}` has no field `{name}`",
                    self.locate(f"{leaf.pointer}/{key}"),
                    did_you_mean(name, fact.fields),
                )
        if isinstance(leaf.operand, Threshold) and math.isnan(leaf.operand.value):
            self.problems.add(
                "unknown_setting",
                f"unknown setting `{leaf.operand.setting}`",
                self.locate(f"{leaf.pointer}/{leaf.op.value}/setting"),
                did_you_mean(leaf.operand.setting or "", self.policy.settings),
            )
            return None
        if info is None:
            return None
        self.check_where(fact, leaf.where, scope, leaf.pointer)
        pair = (
            self.check_time(leaf, fact, scope.find(leaf.fact), scope)
            if leaf.op in TIME_OPS
            else False
        )
        if pair is None:
            return None
        outcomes = lower(
            leaf, info, self.policy.below_threshold_words, self.problems, self.locate, pair
        )
        return fact, outcomes

    def needs_values(self, leaf: Compare) -> bool:
        """True for a comparison of two facts that only the per-node lowering takes (a side
        compared with another fact's, the time between two bound facts): folding reads its
        value instead of folding its tests into one pattern."""
        if leaf.op is Op.SAME_SIDE_AS:
            return True
        if leaf.op not in TIME_OPS or (leaf.of or "") in TIME_ANCHORS:
            return False
        return (leaf.of or "").partition(".")[0] != leaf.fact

    def compare(self, leaf: Compare, scope: Scope, node_id: str) -> int:
        found = self.compare_tests(leaf, scope)
        if found is None:
            return 0
        fact, outcomes = found
        bound = scope.find(leaf.fact)
        if bound is not None and self.needs_values(leaf) and leaf.op in TIME_OPS:
            return self.pair_compare(leaf, outcomes, bound, scope, node_id)
        # (value, test on the compared fact, tests on other bound facts) per rule.
        variants: list[tuple[Truth, Test, dict[str, Test]]] = [
            (T, outcomes.true, {}),
            (F, outcomes.false, {}),
            (U, outcomes.unknown, {}),
        ]
        if leaf.op is Op.SAME_SIDE_AS:
            sides = self.side_variants(leaf, outcomes, scope)
            if sides is None:
                return 0
            variants = sides
        if bound is not None:
            # The bound fact itself: exactly one fact, so each outcome is the node's value.
            stage = self.anchor_stage(scope) + 1
            me = _alias(bound.alias)
            for value, test, extra in variants:
                if not _is_never(test):
                    tests = dict(extra)
                    tests[me] = AllOf((test, tests[me])) if me in tests else test
                    self.emit(
                        stage,
                        self.anchors(scope, tests),
                        EmitValue(VAL, node_id, value, scope.keys, me),
                        node_id,
                    )
            return stage
        stage = max(self.anchor_stage(scope), self.stage_of_fact(fact.name, leaf.pointer)) + 1
        base: list[Test] = [Eq("t", fact.name), *self.where(leaf.where)]
        disputed = self.disputed(fact, leaf.where)
        many = fact.many or bool(disputed)
        kind = CAND if many else VAL
        for value, test, extra in variants:
            pattern = Pattern("f", AllOf((*base, test)))
            self.emit(
                stage,
                [*self.anchors(scope, extra), pattern],
                EmitValue(kind, node_id, value, scope.keys, "f"),
                node_id,
            )
        scoped = AllOf(tuple(base))
        if disputed:
            maybe = self.maybe_test(fact.name, leaf.where, disputed)
            unsure = AnyTest(tuple(Eq(marker, True) for marker in disputed.values()))
            self.maybe_compared(leaf, node_id, scope, stage, variants, scoped, (maybe, unsure))
            scoped = maybe
        absent = Pattern("f", scoped, negated=True)
        self.emit(
            stage,
            [*self.anchors(scope), absent],
            EmitValue(VAL, node_id, leaf.if_absent, scope.keys),
            node_id,
        )
        if not many:
            return stage
        # Several facts can match: the leaf is true if any is, else unknown if any is (Kleene OR).
        self.or_rules(node_id, (node_id,), scope, stage + 1, CAND)
        # Every matching fact must have given a candidate, or the OR would skip it.
        joins = [Join(f"k{i + 1}", key, KEY) for i, key in enumerate(scope.keys)]
        values = AnyTest(tuple(Eq("v", int(v)) for v in (F, U, T)))
        no_candidate = AllOf((Eq("t", CAND), Eq("n", node_id), values, Join("f", "f", KEY), *joins))
        self.emit(
            stage + 1,
            [
                *self.anchors(scope),
                Pattern("f", AllOf(tuple(base))),
                Pattern("c", no_candidate, True),
            ],
            EmitMissing(node_id, scope.keys, tuple(b.alias for b in scope.bindings), "f"),
            node_id,
        )
        return stage + 1

    def maybe_compared(
        self,
        leaf: Compare,
        node_id: str,
        scope: Scope,
        stage: int,
        variants: list[tuple[Truth, Test, dict[str, Test]]],
        base: AllOf,
        maybe: tuple[AllOf, Test],
    ) -> None:
        """The candidates of the facts that may pass the leaf's `where` (a field it tests is
        disputed, x-disputed): such a fact may or may not be compared, so where it would make
        the leaf true it makes it unknown (never true). Where it would make it false it adds
        nothing beside a fact that passes, and beside none the leaf is false compared or
        `if_absent` not: false only when both are. ``maybe``: the test a fact that passes the
        `where` or may pass it passes, and the test that it only may (a marker set)."""
        alone = Pattern("n", base, negated=True)
        for compared, test, extra in variants:
            if _is_never(test):
                continue
            patterns = [*self.anchors(scope, extra)]
            value = U
            if compared is F:
                patterns.append(alone)
                value = F if leaf.if_absent is F else U
            patterns.append(Pattern("f", AllOf((*maybe, test))))
            self.emit(stage, patterns, EmitValue(CAND, node_id, value, scope.keys, "f"), node_id)

    def side_variants(
        self, leaf: Compare, outcomes: Outcomes, scope: Scope
    ) -> list[tuple[Truth, Test, dict[str, Test]]] | None:
        """The rules of `same_side_as`: tests on the compared fact and on the other bound fact,
        never a join between them (a non-equality join crashes durable_rules, trap 17)."""
        if _is_never(outcomes.true):
            return None  # not a side field: lower() reported it
        alias, _, field = str(leaf.operand).partition(".")
        at = self.locate(f"{leaf.pointer}/same_side_as")
        other = scope.find(alias)
        if other is None:
            self.problems.add("unknown_alias", f"`{alias}` is not bound here", at)
            return None
        other_type = self.types.get(other.fact)
        info = other_type.fields.get(field) if other_type else None
        if info is None:
            self.problems.add("unknown_field", f"fact `{other.fact}` has no field `{field}`", at)
            return None
        if not is_side(info):
            self.problems.add(
                "not_a_side",
                f"`{other.fact}.{field}` is not a side field (left, right, bilateral)",
                at,
            )
            return None
        variants: list[tuple[Truth, Test, dict[str, Test]]] = []
        for value, pairs in side_pairs(leaf.field, field).items():
            for mine, theirs in pairs:
                extra = {} if theirs is None else {_alias(alias): theirs}
                variants.append((value, mine if mine is not None else AllOf(()), extra))
        return variants

    def check_time(
        self, leaf: Compare, fact: FactType, bound: Binding | None, scope: Scope
    ) -> bool | None:
        """Return whether a time comparison needs a pair fact (its `of` is another bound fact);
        None after reporting a problem."""
        at = self.locate(f"{leaf.pointer}/of")
        of = leaf.of or ""
        if of in TIME_ANCHORS:
            return False
        alias, _, field = of.partition(".")
        other = fact if alias == leaf.fact else None
        if other is None:
            binding = scope.find(alias)
            if binding is None:
                self.problems.add(
                    "unknown_alias",
                    f"`{alias}` is not bound here (`of` is request, service, or a bound "
                    "fact's date)",
                    at,
                )
                return None
            other = self.types.get(binding.fact)
        info = other.fields.get(field) if other else None
        if other is None or info is None:
            name = other.name if other else alias
            self.problems.add("unknown_field", f"fact `{name}` has no field `{field}`", at)
            return None
        if info.kind != "date":
            self.problems.add("not_a_date", f"`{other.name}.{field}` is not a date field", at)
            return None
        if alias == leaf.fact:
            return False
        if bound is None:
            self.problems.add(
                "unbound_time",
                f"the time between `{leaf.fact}` and `{alias}` needs both facts bound: bind "
                f"`{leaf.fact}` with every, some or count",
                self.locate(f"{leaf.pointer}/fact"),
            )
            return None
        return True

    def pair_compare(
        self, leaf: Compare, outcomes: Outcomes, bound: Binding, scope: Scope, node_id: str
    ) -> int:
        """Time between two bound facts: one stage copies both dates into a pair fact, the
        next compares them there with arithmetic on that one fact."""
        stage = self.pair(leaf, bound, scope, node_id)
        joins = [Join(f"k{i + 1}", key, KEY) for i, key in enumerate(scope.keys)]
        for value, test in ((T, outcomes.true), (F, outcomes.false), (U, outcomes.unknown)):
            pattern = Pattern("p", AllOf((Eq("t", PAIR), Eq("n", node_id), *joins, test)))
            self.emit(
                stage + 1,
                [*self.anchors(scope), pattern],
                EmitValue(VAL, node_id, value, scope.keys, _alias(bound.alias)),
                node_id,
            )
        return stage + 1

    def pair(self, leaf: Compare, bound: Binding, scope: Scope, node_id: str) -> int:
        """Emit the rule copying both dates of a time comparison between two bound facts into
        one pair fact per combination (`node_id`'s); return its stage."""
        alias, _, field = str(leaf.of).partition(".")
        copies: list[tuple[str, str, str]] = []
        for prefix, who, name in (
            (PAIR_FIRST, bound.alias, leaf.field),
            (PAIR_SECOND, alias, field),
        ):
            for part in ("lo", "hi", "mday_lo", "mday_hi", "mend_lo", "mend_hi"):
                copies.append((f"{prefix}_{part}", _alias(who), f"{name}_{part}"))
        stage = self.anchor_stage(scope) + 1
        self.emit(stage, self.anchors(scope), EmitPair(node_id, scope.keys, tuple(copies)), node_id)
        return stage

    def exists(self, cond: Exists, scope: Scope, node_id: str) -> int:
        fact = self.fact_type(cond.fact, cond.pointer)
        if fact is None:
            return 0
        self.check_where(fact, cond.where, scope, cond.pointer)
        stage = max(self.anchor_stage(scope), self.stage_of_fact(fact.name, cond.pointer)) + 1
        test = self.fact_test(fact.name, cond.where)
        self.emit(
            stage,
            [*self.anchors(scope), Pattern("f", test)],
            EmitValue(VAL, node_id, T, scope.keys, "f"),
            node_id,
        )
        disputed = self.disputed(fact, cond.where)
        if not disputed:
            self.emit(
                stage,
                [*self.anchors(scope), Pattern("f", test, negated=True)],
                EmitValue(VAL, node_id, F, scope.keys),
                node_id,
            )
            return stage
        # Three-valued on a disputed field: unknown when no fact passes and one may (its
        # evidence), false only when no fact passes or may pass (`maybe` admits both).
        maybe = self.maybe_test(fact.name, cond.where, disputed)
        self.emit(
            stage,
            [*self.anchors(scope), Pattern("n", test, negated=True), Pattern("f", maybe)],
            EmitValue(VAL, node_id, U, scope.keys, "f"),
            node_id,
        )
        self.emit(
            stage,
            [*self.anchors(scope), Pattern("f", maybe, negated=True)],
            EmitValue(VAL, node_id, F, scope.keys),
            node_id,
        )
        return stage

    def clause_is(self, cond: ClauseIs, scope: Scope, node_id: str) -> int:
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

    def distinct(self, cond: Distinct, scope: Scope, node_id: str) -> int:
        """Two names for one fact are found by an equality join on the key (false); true is the
        absence of that value one stage later. A non-equality join (key differs) would crash
        durable_rules (trap 17)."""
        names = [_alias(a) for a in cond.aliases]
        for alias in cond.aliases:
            if scope.find(alias) is None:
                self.problems.add(
                    "unknown_alias",
                    f"`{alias}` is not bound here",
                    self.locate(f"{cond.pointer}/distinct"),
                )
        if any(scope.find(a) is None for a in cond.aliases):
            return 0
        order = {key: i for i, key in enumerate(scope.keys)}
        stage = self.anchor_stage(scope) + 1
        for first, second in itertools.combinations(sorted(set(names), key=order.__getitem__), 2):
            # A join may only refer to a fact matched earlier in the rule.
            same = Join(KEY, first, KEY)
            self.emit(
                stage,
                self.anchors(scope, {second: same}),
                EmitValue(VAL, node_id, F, scope.keys),
                node_id,
            )
        self.emit(
            stage + 1,
            [*self.anchors(scope), self.value_pattern("x", (node_id,), (F,), scope, negated=True)],
            EmitValue(VAL, node_id, T, scope.keys),
            node_id,
        )
        return stage + 1

    def policy_is(self, cond: PolicyIs, scope: Scope, node_id: str) -> int:
        """Another policy's determination, given as a fact; none given (it could not be
        decided) leaves the node unknown, which never demonstrates anything."""
        if cond.policy == self.policy.id:
            self.problems.add(
                "cycle",
                f"policy `{cond.policy}` refers to its own determination",
                self.locate(cond.pointer),
            )
            return 0
        self.references.add(cond.policy)
        stage = self.anchor_stage(scope) + 1
        base = (Eq("t", POLICY_RESULT), Eq("policy", cond.policy))
        decided: dict[Truth, Test] = {
            T: Eq("determination", cond.determination),
            F: Ne("determination", cond.determination),
        }
        for value, test in decided.items():
            self.emit(
                stage,
                [*self.anchors(scope), Pattern("p", AllOf((*base, test)))],
                EmitValue(VAL, node_id, value, scope.keys, "p"),
                node_id,
            )
        self.emit(
            stage,
            [*self.anchors(scope), Pattern("p", AllOf(base), negated=True)],
            EmitValue(VAL, node_id, U, scope.keys),
            node_id,
        )
        return stage

    def or_rules(
        self,
        node_id: str,
        inputs: tuple[str, ...],
        scope: Scope,
        stage: int,
        kind: str = VAL,
        inner: Scope | None = None,
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
        scope: Scope,
        stage: int,
        inner: Scope | None = None,
    ) -> None:
        """Kleene AND (min) of the inputs' values; with `inner`, an empty range is vacuously
        true (`every` does not use that: its empty range has its own rule)."""
        self._extremum(node_id, inputs, scope, stage, VAL, inner, order=(F, U, T))

    def _extremum(
        self,
        node_id: str,
        inputs: tuple[str, ...],
        scope: Scope,
        stage: int,
        kind: str,
        inner: Scope | None,
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
        # Without `inner`, every input has a value once none has the other two (else its own
        # missing-value rule fails the evaluation), so the first input then has `last`: testing
        # only it fires this rule once, not once per input.
        positive = [] if inner is not None else [vp("c", inputs[:1], (last,), scope, kind)]
        emit(last, [*positive, *blockers])

    def combine(
        self,
        is_all: bool,
        node_id: str,
        children: tuple[str, ...],
        stages: list[int],
        scope: Scope,
    ) -> int:
        stage = max([*stages, self.anchor_stage(scope)]) + 1
        if is_all:
            self.and_rules(node_id, children, scope, stage)
        else:
            self.or_rules(node_id, children, scope, stage)
        return stage

    def n_of(
        self, cond: NOf, node_id: str, children: tuple[str, ...], stages: list[int], scope: Scope
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
        stage = max([*stages, self.anchor_stage(scope)]) + 1
        if len(self.anchors(scope)) + len(children) + 1 <= MAX_JOINED:
            return self.n_of_direct(n, node_id, children, stage, scope)
        # Too many children to join in one rule: at least n true == some n-subset is all true,
        # with the same Kleene unknowns.
        combo_ids = tuple(f"{node_id}/of{i}" for i in range(len(combos)))
        for combo_id, combo in zip(combo_ids, combos, strict=True):
            self.and_rules(combo_id, combo, scope, stage)
            self.record(All((), cond.pointer), scope, combo_id, combo)
        self.or_rules(node_id, combo_ids, scope, stage + 1)
        return stage + 1

    def n_of_direct(
        self, n: int, node_id: str, children: tuple[str, ...], stage: int, scope: Scope
    ) -> int:
        """At least n of the children, with one firing per binding instead of one per subset.

        Kleene: true when n children are true, false when more than len - n are false (no
        n-subset can then be all true), else unknown. The true rules match the first n true
        children in order (every earlier child false or unknown), so exactly one matches; the
        false rules likewise match the first len - n + 1 false children. Unknown is what is left
        once both are decided, one stage later. A child without a value stops every rule that
        reads it; its own missing-value rule then fails the evaluation.
        """
        vp = self.value_pattern
        anchors = self.anchors(scope)
        for value, needed, others in ((T, n, (F, U)), (F, len(children) - n + 1, (T, U))):
            for chosen in itertools.combinations(range(len(children)), needed):
                patterns = [
                    vp(f"c{i}", (children[i],), (value,) if i in chosen else others, scope)
                    for i in range(chosen[-1] + 1)
                ]
                self.emit(
                    stage,
                    [*anchors, *patterns],
                    EmitValue(VAL, node_id, value, scope.keys),
                    node_id,
                )
        self.emit(
            stage + 1,
            [
                *anchors,
                vp("c", (children[0],), (F, U, T), scope),
                vp("x", (node_id,), (T, F), scope, VAL, True),
            ],
            EmitValue(VAL, node_id, U, scope.keys),
            node_id,
        )
        return stage + 1

    def unary(
        self, cond: Not | Demonstrated, node_id: str, child: str, child_stage: int, scope: Scope
    ) -> int:
        stage = max(child_stage, self.anchor_stage(scope)) + 1
        mapping = {T: F, U: U, F: T} if isinstance(cond, Not) else {T: T, U: F, F: F}
        unsettled = self.unsettled(cond, node_id, scope)
        if unsettled is not None:
            # Unknown stays unknown where a value the child reads is stated but unsettled.
            withheld, settled_stage = unsettled
            stage = max(stage, settled_stage + 1)
            del mapping[U]
            for value, after in ((T, U), (F, F)):
                self.emit(
                    stage,
                    [
                        *self.anchors(scope),
                        self.value_pattern("c", (child,), (U,), scope),
                        self.value_pattern("w", (withheld,), (value,), scope),
                    ],
                    EmitValue(VAL, node_id, after, scope.keys),
                    node_id,
                )
        for before, after in mapping.items():
            self.emit(
                stage,
                [*self.anchors(scope), self.value_pattern("c", (child,), (before,), scope)],
                EmitValue(VAL, node_id, after, scope.keys),
                node_id,
            )
        return stage

    def latest(self, cond: Latest, scope: Scope, node_id: str) -> int:
        """`latest`, lowered directly: per fact in scope, whether a rival of the scope is surely
        dated after it (two-valued: an undated rival, or a month that may fall either side,
        supersedes nothing) and `require`, each once; the facts no rival supersedes are the
        ones that may be the latest, and they decide: true when all meet `require`, false when
        all fail it, unknown otherwise and when the scope is empty (domain rule 9).

        Only the rules that first bind a fact (the pair of dates, "not superseded", the
        fail-closed checks and `require`'s own) test the binding's `where`; the rest reach the
        scope through the pair or values already derived for it. Repeated in every rule (an
        `$or` over a value set's codes is a fresh engine node per pattern), a `where` on three
        HbA1c codes took observations to 73 pending tests of the engine's 64 (error 303). Node by
        node: folded, the requirement's tests on the bound fact (a measurement with its
        qualitative words, three times over) passed the engine's 32 tests on one fact."""
        binding = cond.binding
        if not self.check_quantifier(cond, scope):
            return 0
        rival, after = latest_rival(binding, cond.by, f"{cond.pointer}/latest")
        if scope.find(rival.alias) is not None:
            self.problems.add(
                "alias_reused",
                f"`{rival.alias}` is already bound here (`latest` names its rival so)",
                self.locate(binding.pointer),
            )
            return 0
        if len(scope.bindings) + 2 > MAX_QUANTIFIER_DEPTH:
            self.problems.add(
                "engine_limit",
                f"`latest` binds its facts two deep ({len(scope.bindings) + 2} in all); the "
                f"engine crashes past {MAX_QUANTIFIER_DEPTH} (durable_rules corrupts its "
                "memory): flatten the condition, e.g. with a derived fact",
                self.locate(cond.pointer),
            )
            return 0
        fact = self.types.get(binding.fact)
        if fact is not None and (disputed := self.disputed(fact, binding.where)):
            # Fail closed: such a scope takes the facts that may pass the `where` (`gated`);
            # lowered so, it needed 139 pending tests of the engine's 64.
            self.problems.add(
                "disputed_latest",
                f"`latest` filters `{binding.fact}` on `{sorted(disputed)[0]}`, which the "
                "records may dispute (x-disputed): a fact that may or may not be in scope; test "
                "it in `require` instead",
                self.locate(f"{binding.pointer}/where"),
            )
            return 0
        inner = Scope((*scope.bindings, binding))
        pair = Scope((*inner.bindings, rival))
        found = self.compare_tests(after, pair)
        if found is None:
            return 0
        outcomes = found[1]
        # Numbered as children are: the requirement /1, "superseded" /2 and, per fact and
        # rival, their pair of dates and its comparison /2/0.
        requires, superseded, compared = (f"{node_id}/{n}" for n in ("1", "2", "2/0"))
        stage = self.pair(after, rival, pair, compared)
        # The pair of dates exists for the scope's facts only: the facts beside it need no
        # `where` (`plain`). One fact alone never supersedes itself (it is not dated after
        # itself): no distinctness test is needed.
        me, them = _alias(binding.alias), _alias(rival.alias)
        plain = Pattern(me, Eq("t", binding.fact))
        bound = [*self.anchors(scope), plain, Pattern(them, Eq("t", rival.fact))]
        joins = [Join(f"k{i + 1}", key, KEY) for i, key in enumerate(pair.keys)]
        base: tuple[Test, ...] = (Eq("t", PAIR), Eq("n", compared), *joins)
        stage += 1
        # Each outcome derived, none read as an absence: a comparison that never matched
        # leaves a pair without a value, an engine error below, never "not superseded".
        for value, test in ((T, outcomes.true), (F, outcomes.false), (U, outcomes.unknown)):
            self.emit(
                stage,
                [*bound, Pattern("p", AllOf((*base, test)))],
                EmitValue(VAL, compared, value, pair.keys, them),
                compared,
            )
        self.emit(
            stage + 1,
            [
                *bound,
                Pattern("p", AllOf(base)),
                self.value_pattern("v", (compared,), (F, U, T), pair, negated=True),
            ],
            EmitMissing(compared, pair.keys, tuple(b.alias for b in pair.bindings)),
            compared,
        )
        self.record(after, pair, compared, ())
        # Superseded: a rival is surely dated after the fact (two-valued; an unknown order
        # supersedes nothing, so such a fact may be the latest).
        later_stage = stage + 1
        self.emit(
            later_stage,
            [*self.anchors(scope), plain, self.value_pattern("l", (compared,), (T,), inner)],
            EmitValue(VAL, superseded, T, inner.keys),
            superseded,
        )
        self.emit(
            later_stage,
            [
                *self.anchors(inner),
                self.value_pattern("l", (compared,), (T,), inner, negated=True),
            ],
            EmitValue(VAL, superseded, F, inner.keys),
            superseded,
        )
        self.register(Some(rival, after, cond.pointer), inner, superseded, (compared,), later_stage)
        candidate = f"{node_id}/0"
        fold, self.fold = self.fold, None
        try:
            require_stage = self.node(cond.require, inner, requires)
        finally:
            self.fold = fold
        # What a fact that may be the latest says: its requirement's value; none for a
        # superseded one.
        stage = max(later_stage, require_stage) + 1
        standing = self.value_pattern("s", (superseded,), (F,), inner)
        for value in (F, U, T):
            self.emit(
                stage,
                [
                    *self.anchors(scope),
                    plain,
                    standing,
                    self.value_pattern("r", (requires,), (value,), inner),
                ],
                EmitValue(VAL, candidate, value, inner.keys),
                candidate,
            )
        self.record(All((cond.require,), cond.pointer), inner, candidate, (requires,))
        # Fail closed: a fact that may be the latest and got no value would drop out.
        self.emit(
            stage + 1,
            [
                *self.anchors(scope),
                plain,
                standing,
                self.value_pattern("c", (candidate,), (F, U, T), inner, negated=True),
            ],
            EmitMissing(candidate, inner.keys, tuple(b.alias for b in inner.bindings)),
            candidate,
        )
        # Every fact in scope has a "superseded" value: one means the scope is not empty.
        # Several rules may match: each asserts the same value.
        stage += 1
        member = self.value_pattern("m", (superseded,), (F, T), scope)
        for value, against in ((T, (F, U)), (F, (T, U))):
            self.emit(
                stage,
                [
                    *self.anchors(scope),
                    member,
                    self.value_pattern("x", (candidate,), against, scope, negated=True),
                ],
                EmitValue(VAL, node_id, value, scope.keys),
                node_id,
            )
        # The latest facts disagree, one is unknown, or there are none: not documented.
        self.emit(
            stage + 1,
            [
                *self.anchors(scope),
                self.value_pattern("v", (node_id,), (F, T), scope, negated=True),
            ],
            EmitValue(VAL, node_id, U, scope.keys),
            node_id,
        )
        return stage + 1

    def register(
        self, cond: Condition, scope: Scope, node_id: str, children: tuple[str, ...], stage: int
    ) -> None:
        """Record a lowered node (its evidence reads it) and fail closed on a binding it leaves
        without a value."""
        self.record(cond, scope, node_id, children)
        self.require_value(node_id, scope, stage)

    def record(
        self, cond: Condition, scope: Scope, node_id: str, children: tuple[str, ...]
    ) -> None:
        """Record a lowered node for the evidence that reads it; the caller derives its
        fail-closed check (`register`'s, or its own)."""
        self.nodes[node_id] = Node(
            node_id,
            cond,
            children,
            len(scope.bindings),
            tuple(b.alias for b in scope.bindings),
            tuple(b.fact for b in scope.bindings),
        )

    def unsettled(
        self, cond: Not | Demonstrated, node_id: str, scope: Scope
    ) -> tuple[str, int] | None:
        """For a `demonstrated` whose condition reads a field the record may state without
        settling it, emit the rules deriving whether a fact it reads carries the field's
        marker (`unsettled_test`), a two-valued node, and return (that node, its stage);
        else None."""
        found = self.unsettled_test(cond, scope) if isinstance(cond, Demonstrated) else None
        if found is None:
            return None
        marked, facts = found
        node_id = f"{node_id}/unsettled"
        stage = max(self.anchor_stage(scope), *(self.stage_of_fact(f, cond.pointer) for f in facts))
        stage += 1
        for pattern, value in ((Pattern("f", marked), T), (Pattern("f", marked, negated=True), F)):
            self.emit(
                stage,
                [*self.anchors(scope), pattern],
                EmitValue(VAL, node_id, value, scope.keys, "f" if value is T else None),
                node_id,
            )
        return node_id, stage

    def unsettled_test(
        self, cond: Demonstrated, scope: Scope
    ) -> tuple[Test, tuple[str, ...]] | None:
        """Return the test a fact passes that carries the marker of a field `cond` reads
        (x-disputed: its sources disagree, or its document is dated only possibly after the
        request), with the fact types read; None when it reads no such field.

        `demonstrated` turns a value never documented into false; one the record states but
        leaves unsettled may contradict what is to be shown absent (`not: demonstrated:`), so
        there the condition's unknown stands (domain rule 9; a month reaching past the request
        is not documented, rule 5)."""
        outside = {b.alias: b.fact for b in scope.bindings}
        reads = dictionary.unsettled_reads(cond.part, self.types, outside)
        if not reads:
            return None
        tests = tuple(
            AllOf((Eq("t", read.fact), *self.where(read.where), Eq(read.marker, True)))
            for read in reads
        )
        marked = tests[0] if len(tests) == 1 else AnyTest(tests)
        return marked, tuple(dict.fromkeys(read.fact for read in reads))

    def quantifier(self, cond: Condition, scope: Scope, node_id: str) -> int:
        assert isinstance(cond, Every | Some | Count)
        binding = cond.binding
        if not self.check_quantifier(cond, scope):
            return 0
        inner = Scope((*scope.bindings, binding))
        child = f"{node_id}/0"
        child_stage = self.node(self.gated(cond), inner, child)
        stage = max(child_stage, self.anchor_stage(inner)) + 1
        # Children carry one more key; joining on the outer keys only ranges over all of them.
        if isinstance(cond, Every):
            # Without `inner`, true needs a true child: an empty range derives nothing here and
            # takes `if_empty` from the rule below (fail closed: unknown unless the author says).
            self.and_rules(node_id, (child,), scope, stage)
            self.empty_range(cond, scope, node_id, stage)
        elif isinstance(cond, Some):
            self.or_rules(node_id, (child,), scope, stage, inner=scope)
        else:
            return self.count(cond, node_id, child, stage, scope)
        return stage

    def gated(self, cond: Every | Some | Count) -> Condition:
        """Return what the quantifier requires of each fact in its scope. Where its `where`
        tests a disputed field (x-disputed), the scope is widened to the facts that may pass
        it (`widened`), and each fact's requirement is gated by the tests themselves, read on
        the bound fact: true where it passes them, unknown where its field is disputed (absent):
        such a fact may or may not be in scope. `some` and `count` take the gate and the
        requirement (a disputed fact is at most unknown), `every` the requirement or the gate's
        negation, and unknown either way for a disputed fact, which is never vacuously true."""
        binding = cond.binding
        fact = self.types.get(binding.fact)
        disputed = {} if fact is None else self.disputed(fact, binding.where)
        if not disputed:
            return cond.require
        self.widened[binding] = disputed
        at = f"{binding.pointer}/where"
        gates: list[Condition] = []
        for item in binding.where:
            if item.field not in disputed:
                continue
            if isinstance(item, WhereEq):
                gates.append(Compare(binding.alias, item.field, Op.EQUALS, item.value, (), at))
            elif isinstance(item, WhereOneOf):
                gates.append(Compare(binding.alias, item.field, Op.ONE_OF, item.values, (), at))
        gate = gates[0] if len(gates) == 1 else All(tuple(gates), at)
        passed = All((gate, cond.require), cond.pointer)
        if isinstance(cond, Every):
            return AnyOf((passed, Not(gate, at)), cond.pointer)
        return passed

    def quantified(self, cond: Every | Some, scope: Scope, node_id: str) -> int:
        """Lower what a folded rule reads of a quantifier (folding.py): its child's values per
        binding and, for `every`, its value over an empty range; return the stage they are
        complete at. The quantifier's own value is then decided by the folded rules."""
        inner = Scope((*scope.bindings, cond.binding))
        child_stage = self.node(cond.require, inner, f"{node_id}/0")
        if isinstance(cond, Some):
            return child_stage
        # The empty range only needs the bound type complete, not the child's values.
        empty = self.anchor_stage(inner) + 1
        self.empty_range(cond, scope, node_id, empty)
        # Fail closed: the folded rules read "no empty-range value" as "some facts in range";
        # an empty range that got none must not read so.
        bound = self.fact_test(cond.binding.fact, cond.binding.where)
        self.emit(
            empty + 1,
            [
                *self.anchors(scope),
                Pattern(_alias(cond.binding.alias), bound, negated=True),
                self.value_pattern("v", (node_id,), (cond.if_empty,), scope, negated=True),
            ],
            EmitMissing(node_id, scope.keys, tuple(b.alias for b in scope.bindings)),
            node_id,
        )
        return max(child_stage, empty)

    def empty_range(self, cond: Every, scope: Scope, node_id: str, stage: int) -> None:
        """`every` over no facts takes its `if_empty` (by default unknown)."""
        binding = cond.binding
        bound = self.scope_test(binding)
        self.emit(
            stage,
            [*self.anchors(scope), Pattern(_alias(binding.alias), bound, negated=True)],
            EmitValue(VAL, node_id, cond.if_empty, scope.keys),
            node_id,
        )

    def check_quantifier(self, cond: Every | Some | Count | Latest, scope: Scope) -> bool:
        """Report what makes a quantifier impossible to lower; False when something does."""
        binding = cond.binding
        if scope.find(binding.alias) is not None:
            self.problems.add(
                "alias_reused",
                f"`{binding.alias}` is already bound here",
                self.locate(binding.pointer),
            )
            return False
        if isinstance(cond, Count) and scope.bindings:
            # durable_rules batches counted matches across all bindings, so a count inside
            # another quantifier would mix elements.
            self.problems.add(
                "nested_count",
                "`count` must not be inside every/some/count",
                self.locate(cond.pointer),
            )
            return False
        if len(scope.bindings) + 1 > MAX_QUANTIFIER_DEPTH:
            self.problems.add(
                "engine_limit",
                f"quantifiers nested {len(scope.bindings) + 1} deep; the engine crashes past "
                f"{MAX_QUANTIFIER_DEPTH} (durable_rules corrupts its memory): flatten the "
                "condition, e.g. with a derived fact",
                self.locate(cond.pointer),
            )
            return False
        fact = self.fact_type(binding.fact, binding.pointer)
        if fact is None:
            return False
        self.check_where(fact, binding.where, scope, binding.pointer)
        return True

    def count(self, cond: Count, node_id: str, child: str, stage: int, scope: Scope) -> int:
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


def did_you_mean(name: str, known: Mapping[str, object] | Iterator[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean `{close[0]}`?" if close else None
