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

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from evaluator.case.facts import LINE_PARTS, LINE_SEGMENTS
from evaluator.compile import folding, joins, ruleset, shaping
from evaluator.compile.folding import Folder
from evaluator.compile.lowering import MAX_QUANTIFIER_DEPTH, F, Lowering, Scope, T, U, did_you_mean
from evaluator.compile.program import (
    STATUS,
    VAL,
    AllOf,
    AnyTest,
    ClauseNodes,
    EmitFact,
    EmitStatus,
    EmitVerdict,
    Eq,
    Join,
    Pattern,
    Program,
    Rule,
    Test,
)
from evaluator.errors import PolicyError
from evaluator.language import dictionary
from evaluator.language.model import Clause, DeriveRule, Determination, FromField, Policy, Status


class _Compiler(Lowering):
    """Drives the lowering per clause and rule and assigns the strata."""

    def __init__(
        self,
        policy: Policy,
        fold: bool = False,
        keep: frozenset[str] = frozenset(),
        *,
        shaped: bool = True,
    ) -> None:
        super().__init__(policy)
        self.shaped = shaped
        self.folder = Folder(self, keep) if fold else None
        if self.folder:
            self.fold = self.folder.subtree

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
                did_you_mean(clause_id, self.clauses),
            )
            return 0
        if not self.guard(f"clause {clause_id}", pointer):
            return 0
        stage = self.clause(clause)
        self.busy.pop()
        self.clause_stage[clause_id] = stage
        return stage

    # -- clauses, derivations, verdict ---------------------------------------------------------

    def clause(self, clause: Clause) -> int:
        folded = self.folder.clause(clause) if self.folder else None
        if folded is not None:
            self.check_cites(clause)
            return folded
        root = Scope()
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
        self.check_cites(clause)
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

    def check_cites(self, clause: Clause) -> None:
        for ref in clause.cites:
            if ref not in {r.id for r in self.policy.references}:
                self.problems.add(
                    "unknown_reference",
                    f"reference {ref} is not defined",
                    self.locate(clause.pointer + "/cites"),
                )

    def derive(self, rule: DeriveRule) -> int:
        target = self.types.get(rule.fact)
        if target is None or not target.derived:
            self.problems.add(
                "undeclared_fact",
                f"rule `{rule.id}` derives `{rule.fact}`, which is not declared under `facts`",
                self.locate(rule.pointer + "/derive/fact"),
            )
            return 0
        scope = Scope()
        if len(rule.bindings) > MAX_QUANTIFIER_DEPTH:
            self.problems.add(
                "engine_limit",
                f"rule `{rule.id}` binds {len(rule.bindings)} facts; the engine crashes past "
                f"{MAX_QUANTIFIER_DEPTH} nested bindings: split it into two rules",
                self.locate(rule.pointer),
            )
            return 0
        for binding in rule.bindings:
            fact = self.fact_type(binding.fact, binding.pointer)
            if fact is not None:
                self.check_where(fact, binding.where, scope, binding.pointer)
            scope = Scope((*scope.bindings, binding))
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
        case = self.anchors(Scope())

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
            last = max(last, self.node(self.policy.alternative.when, Scope(), alternative))
            for line in self.policy.alternative.lines:
                fact = self.fact_type(line.segments, "/alternative/lines")
                missing = [f for f in ("segment", "line") if fact and f not in fact.fields]
                if missing:
                    self.problems.add(
                        "not_segments",
                        f"`{line.segments}` has no `{missing[0]}` field",
                        self.locate("/alternative/lines"),
                    )
                # The alternative request rewrites these parts of a service line.
                if line.replaces not in LINE_SEGMENTS:
                    self.problems.add(
                        "not_segments",
                        f"`replaces: {line.replaces}` is not a line's segments "
                        f"({', '.join(sorted(LINE_SEGMENTS))})",
                        self.locate("/alternative/lines"),
                    )
                for dropped in line.drops:
                    if dropped not in LINE_PARTS:
                        self.problems.add(
                            "not_segments",
                            f"`drops: {dropped}` is not a part of a service line "
                            f"({', '.join(sorted(LINE_PARTS))})",
                            self.locate("/alternative/lines"),
                        )
        self.verdict(last + 1)
        self.rules = _unread(self.rules)
        # After `_unread`, which reads the statuses each pattern names before they are merged.
        self.rules = shaping.shape(self.rules, self.policy.derived) if self.shaped else self.rules
        joins.check(self.policy, self.types, self.problems)  # a join on a field a case may omit
        self.problems.raise_if_any(PolicyError)
        policy = self.policy
        return Program(
            # the engine keeps a ruleset per name: the content hash covers imported modules and
            # a plan overlay, which the file's bytes do not
            name=f"{policy.id}@{policy.version}#{policy.sha256[:12]}-{policy.content_sha256[:12]}"
            + ("" if self.folder else "~unfolded")
            + ("" if self.shaped else "~unshaped"),
            stages=last + 1,
            rules=tuple(self.rules),
            nodes=MappingProxyType(dict(self.nodes)),
            clauses=MappingProxyType(dict(self.clause_nodes)),
            alternative=alternative,
            derived_fields=MappingProxyType(
                {n: MappingProxyType(dict(d.fields)) for n, d in policy.derived.items()}
            ),
            references=tuple(sorted(self.references)),
            # every clause, folded or not: any of its statuses may be left unasserted (`_unread`)
            required=MappingProxyType({c: n.requires for c, n in self.clause_nodes.items()}),
        )


def _unread(rules: list[Rule]) -> list[Rule]:
    """The rules with every status rule whose status no pattern of the program reads marked
    not to be asserted (`EmitStatus.asserted`): the decision still gets it from the firing,
    the engine one message fewer. Read: a pattern that may match a status fact of that
    clause with that status, negated or not; a test this cannot read counts as reading all."""
    reads = [_status_read(p.test) for rule in rules for p in rule.patterns]
    found = [r for r in reads if r is not False]

    def read(clause: str, status: str) -> bool:
        return any(
            r is True or ((r[0] is None or clause in r[0]) and (r[1] is None or status in r[1]))
            for r in found
        )

    out = []
    for rule in rules:
        action = rule.action
        if isinstance(action, EmitStatus) and not read(action.clause, action.status.value):
            silent = dataclasses.replace(action, asserted=False)
            out.append(dataclasses.replace(rule, action=silent))
        else:
            out.append(rule)
    return out


_Read = tuple[frozenset[str] | None, frozenset[str] | None]


def _status_read(test: Test) -> _Read | bool:
    """What of the status facts a pattern may match: False (none), (clauses, statuses) with
    None for any, or True (any status: a test this does not follow)."""
    kinds = _types(test)
    if kinds is None:
        return True  # a pattern naming no type may match any fact
    if STATUS not in kinds:
        return False
    parts = folding.parts(test)
    clauses: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    for part in parts:
        values = _values(part, "clause")
        if values is not None:
            clauses = values if clauses is None else clauses & values
        values = _values(part, "status")
        if values is not None:
            statuses = values if statuses is None else statuses & values
    return clauses, statuses


def _types(test: Test) -> frozenset[str] | None:
    """The fact types a test can pass (None: any)."""
    if isinstance(test, Eq) and test.field == "t":
        return frozenset({str(test.value)})
    if isinstance(test, AllOf):
        found = [k for k in (_types(t) for t in test.tests) if k is not None]
        return frozenset.intersection(*found) if found else None
    if isinstance(test, AnyTest) and test.tests:
        branches = [_types(t) for t in test.tests]
        if any(b is None for b in branches):
            return None
        return frozenset().union(*(b for b in branches if b is not None))
    return None


def _values(test: Test, name: str) -> frozenset[str] | None:
    """The values of field `name` a test admits, when it is an equality or an `any` of
    equalities on that field; None (any value) otherwise."""
    if isinstance(test, Eq) and test.field == name:
        return frozenset({str(test.value)})
    if (
        isinstance(test, AnyTest)
        and test.tests
        and all(isinstance(t, Eq) and t.field == name for t in test.tests)
    ):
        return frozenset(str(t.value) for t in test.tests if isinstance(t, Eq))
    return None


def compile_policy(policy: Policy, *, fold: bool = True, shaped: bool = True) -> Program:
    """Return the Program for a policy; `fold=False` keeps every clause on the per-node
    lowering (a reference for tests and measurements: same statuses, more firings);
    `shaped=False` keeps every negated pattern and stage marker as the lowering wrote them
    (`shaping.py`; a reference for tests and measurements: the same firings, more beta nodes).

    Raises PolicyError with every problem found (unknown facts, fields, settings, clauses,
    references; unit and value mismatches; cycles between rules).
    """
    if not fold:
        program = _Compiler(policy, shaped=shaped).run()
    else:
        # The folds are chosen on the shaped program, the one the engine gets; unshaped, the
        # same folds, so that the two differ only by shaping.
        program, keep = _folded(policy)
        if not shaped:
            program = _Compiler(policy, fold=True, keep=keep, shaped=False).run()
    # Render now so that an engine limit is reported when the policy is compiled (by
    # `validate` and `lint` too), not on the first case evaluated; the engine registers the
    # same text, which the disk cache keeps for the next process.
    try:
        key = ruleset.cache_key(policy, folded=fold) if shaped else None
        ruleset.definition_text(program, key)
    except PolicyError:
        if not fold:
            raise
        # Folded rules test more per fact; past a limit the per-node lowering runs the policy
        # (or reports the limit it hits itself).
        return compile_policy(policy, fold=False, shaped=shaped)
    return program


# Folding is an optimisation: it may spend the engine's stack of pending tests per fact (error
# 303, `ruleset.alpha_stack`) only up to this margin below the engine's limit, the margin that
# tests/test_alpha_stack.py demands of the shipped policies, so that an amended condition does
# not tip a policy into refusal. Folded rules repeat a leaf's tests in every rule that reads it,
# and a pattern with a join is a node of its own that every fact of its type enters: a shipped
# `every` over segments, folded, made its policy need 58 of the 64 (17 per node).
FOLD_STACK_MARGIN = 20


def _folded(policy: Policy) -> tuple[Program, frozenset[str]]:
    """Return the folded program, with the folds that would fire per pair of service lines
    (`_products`) and those that make its alpha stack exceed the budget (`FOLD_STACK_MARGIN`
    below the engine's limit) left to the per-node lowering.

    One at a time, the folded clause or subtree whose rules weigh most on the fact type that
    makes the bound goes back to the per-node lowering (measured: the bound without its rules),
    and the policy is compiled again; when no single fold lowers the bound, none is kept.
    Also returns the folds left to the per-node lowering.
    """
    keep: frozenset[str] = frozenset()
    while True:
        compiler = _Compiler(policy, fold=True, keep=keep)
        program = compiler.run()
        folded = [o for o in (compiler.folder.folded if compiler.folder else []) if o not in keep]
        products = _products(program, frozenset(folded))
        if products:
            keep = keep | products
            continue
        definition = ruleset.definition(program)
        stacks = ruleset.alpha_stacks(definition)
        stack = max(stacks.values())
        if stack <= ruleset.MAX_ALPHA_STACK - FOLD_STACK_MARGIN or not folded:
            return program, keep
        worst = {kind for kind, need in stacks.items() if need == stack and kind is not None}
        origin = {rule.name: rule.origin for rule in program.rules}
        tested = {o: set[str]() for o in folded}
        for name, rule in definition.items():
            if origin.get(name) in tested:
                tested[origin[name]].update(_kinds(rule))
        # Lower the bound, or at least the number of fact types that make it (or what all
        # need): when two types tie, no single fold lowers the bound, and handing back every
        # fold would lose them all.
        best, lowest = None, _bound(stacks)
        # first the folds that test the types making the bound; then any (a fold's tests
        # outside every type's own tests count for all types)
        heavy = sorted(o for o in folded if tested[o] & worst)
        for candidates in (heavy, sorted(set(folded) - set(heavy))):
            for candidate in candidates:
                rest = {n: r for n, r in definition.items() if origin.get(n) != candidate}
                need = _bound(ruleset.alpha_stacks(rest))
                if need < lowest:
                    best, lowest = candidate, need
            if best is not None:
                break
        keep = keep | ({best} if best is not None else set(folded))


def _bound(stacks: Mapping[str | None, int]) -> tuple[int, int, int]:
    """A ruleset's alpha-stack bound, how many fact types reach it and what all need: a
    fold that lowers none of the first two but the last still brings the bound closer."""
    top = max(stacks.values())
    return top, sum(need == top for need in stacks.values()), sum(stacks.values())


def _products(program: Program, folded: frozenset[str]) -> frozenset[str]:
    """The folds whose rules would fire once per combination of service lines.

    A folded conjunction of existence leaves matches every combination of the facts its leaves
    find; with two unjoined patterns over types that occur once per service line (the line, its
    segments, fixations, resections) that is the square of the lines (benchmarks/lines.py:
    111,329 firings at 400 lines). The per-node lowering takes each leaf's OR in one value per
    leaf instead, so such folds go back to it.
    """
    found: set[str] = set()
    for rule in program.rules:
        if rule.origin not in folded:
            continue
        free = 0
        for pattern in rule.patterns:
            parts = folding.parts(pattern.test)
            kinds = {t.value for t in parts if isinstance(t, Eq) and t.field == "t"}
            if VAL in kinds:
                # a folded quantifier's children: one value per bound fact
                kinds = {
                    kind
                    for t in parts
                    if isinstance(t, Eq) and t.field == "n" and t.value in program.nodes
                    for kind in program.nodes[str(t.value)].facts[-1:]
                }
            if (
                not pattern.negated
                and kinds & folding.PER_LINE
                and not any(isinstance(t, Join) for t in parts)
            ):
                free += 1
        if free > 1:
            found.add(rule.origin)
    return frozenset(found)


def _kinds(rule: Mapping[str, Any]) -> set[str]:
    """The fact types a rendered rule's patterns test."""
    kinds: set[str] = set()
    for pattern in rule["all"]:
        (expr,) = pattern.values()
        for part in expr.get("$and", [expr]):
            if "t" in part:
                kinds.add(str(part["t"]))
    return kinds


__all__ = ["compile_policy"]
