"""Fewer beta nodes for the same matches: what every durable_rules session pays for.

durable_rules builds one beta node per pattern of every rule, and every session it creates
allocates and zeroes state for each of them (state.c `createStateNode`: 8 KB of hash index
and two frame pools per beta node), then frees them again (`deleteStateNode`). A case with no
facts cost 858 us and 1,147 us of CPU per session on the two largest shipped policies (912
and 1,091 patterns), most of it this. Two rewrites of a compiled rule remove patterns without
changing which combinations of facts fire it:

- `merge_negations`: "no fact passing A and no fact passing B" is "no fact passing A or B":
  negated patterns of one rule on the same fact type, node or clause, and joins become one
  negated pattern with an `any` of what differs. A fact that passes two alternatives reaches
  the negated node twice; durable_rules drops the repeat (events.c `handleBetaMessage`
  skips a message a node already holds; a negated pattern is never a rule's first).
- `ungate`: a rule whose stage marker only repeats what one of its positive patterns already
  ensures loses the marker. The marker makes a rule wait for its stage's batch, after every
  fact it reads or negates is final (durable-rules.md trap 2). When some positive pattern can
  only match facts that arrive in that very batch (case facts in stage 1's; facts derived in
  stage N - 1 in stage N's), the rule cannot complete earlier; positive patterns join in any
  order. A negated fact, though, must arrive in an earlier batch: one that arrives in the same
  batch after the fact the rule matched does not undo the queued match (measured: the rule
  fires; tests/test_shaping.py), so a rule negating what its own batch brings keeps its
  marker, which comes last in the batch. A firing in any other stage remains an engine error
  (`_Session.apply`), so a wrong analysis here fails closed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from evaluator.compile.program import (
    CAND,
    PAIR,
    STAGE,
    STATUS,
    VAL,
    VERDICT,
    AllOf,
    AnyTest,
    EmitFact,
    EmitPair,
    EmitStatus,
    EmitValue,
    Eq,
    Join,
    Ne,
    Pattern,
    Rule,
    Test,
)

# Value and pair facts are told apart by node, status facts by clause: a merged pattern keeps
# these (and the type) as its own equality tests, so a fact enters the merged pattern's joins
# only behind its own node, as it entered each of the merged ones (ruleset._with_lane).
_PINNED = {VAL: "n", CAND: "n", PAIR: "n", STATUS: "clause"}
# Types whose facts the engine asserts itself, never from derivations a rule names: a pattern
# over them cannot be placed in a batch here.
_UNPLACED = frozenset({STAGE, VERDICT})


def shape(rules: Iterable[Rule], derived: Iterable[str]) -> list[Rule]:
    """Return the rules with negations merged and needless stage markers dropped.

    `derived` names the policy's derived fact types: a pattern over one of them matches only
    facts some rule derives; any other type not reserved is a case fact (stage 1's batch).
    """
    merged = [merge_negations(rule) for rule in rules]
    arrivals = _arrivals(merged, frozenset(derived))
    return [ungate(rule, arrivals) for rule in merged]


def parts(test: Test) -> list[Test]:
    """The tests of a pattern, nested conjunctions flattened."""
    if isinstance(test, AllOf):
        return [p for t in test.tests for p in parts(t)]
    return [test]


# -- merging negated patterns -------------------------------------------------------------------


def _merge_key(pattern: Pattern) -> tuple[object, ...] | None:
    """What negated patterns must share to be merged (None: never merged): their one type,
    the tests pinning their node or clause, and their joins (each a node the engine enters)."""
    tests = parts(pattern.test)
    kinds = [t for t in tests if isinstance(t, Eq) and t.field == "t"]
    if len(kinds) != 1:
        return None
    field = _PINNED.get(str(kinds[0].value))
    pinned = tuple(t for t in tests if field is not None and _pins(t, field))
    joins = tuple(t for t in tests if isinstance(t, Join))
    return (kinds[0], pinned, joins)


def _pins(test: Test, field: str) -> bool:
    if isinstance(test, Eq):
        return test.field == field
    return (
        isinstance(test, AnyTest)
        and bool(test.tests)
        and all(isinstance(t, Eq) and t.field == field for t in test.tests)
    )


def _alternative(rest: list[Test]) -> tuple[Test, ...] | None:
    """What one merged pattern adds to the shared tests, as alternatives of the `any` (an
    `any` of its own is spliced in; nothing: no alternative); None when it would nest an
    `any` inside an `all` inside the `any`, a shape the engine's other patterns never take."""
    if not rest:
        return ()
    if len(rest) == 1:
        only = rest[0]
        return only.tests if isinstance(only, AnyTest) else (only,)
    if any(isinstance(t, AnyTest) for t in rest):
        return None
    return (AllOf(tuple(rest)),)


def _merged(group: list[Pattern]) -> Pattern:
    common = _common(group)
    alternatives: list[Test] = []
    for own in (parts(p.test) for p in group):
        rest = [t for t in own if t not in common]
        if not rest:
            # One pattern is the shared tests alone: no fact passing them at all already
            # says that no fact passes them and anything more.
            return Pattern(group[0].alias, AllOf(tuple(common)), negated=True)
        found = _alternative(rest)
        assert found is not None  # the caller merges only patterns with an alternative
        alternatives.extend(t for t in found if t not in alternatives)
    if len(alternatives) == 1:
        return Pattern(group[0].alias, AllOf((*common, *parts(alternatives[0]))), negated=True)
    return Pattern(group[0].alias, AllOf((*common, AnyTest(tuple(alternatives)))), negated=True)


def merge_negations(rule: Rule) -> Rule:
    """Return the rule with its negated patterns on one type, node or clause and joins as
    one negated pattern (see the module's docstring); a counted rule is left as it is."""
    if rule.count is not None:
        return rule
    groups: dict[tuple[object, ...], list[Pattern]] = defaultdict(list)
    for pattern in rule.patterns:
        key = _merge_key(pattern) if pattern.negated else None
        if key is not None:
            groups[key].append(pattern)
    for key, group in groups.items():
        groups[key] = _mergeable(group)
    if not any(groups.values()):
        return rule
    placed: dict[str, Pattern] = {}
    dropped: set[str] = set()
    for group in groups.values():
        if group:
            placed[group[0].alias] = _merged(group)
            dropped.update(p.alias for p in group[1:])
    patterns = tuple(
        placed.get(p.alias, p) for p in rule.patterns if not (p.negated and p.alias in dropped)
    )
    return Rule(rule.name, rule.stage, patterns, rule.action, rule.origin, rule.count)


def _common(group: list[Pattern]) -> list[Test]:
    """The tests every pattern of the group has, in the first one's order."""
    tests = [parts(p.test) for p in group]
    return [t for t in tests[0] if all(t in other for other in tests[1:])]


def _mergeable(group: list[Pattern]) -> list[Pattern]:
    """The patterns of a group that merge (none when fewer than two): a pattern whose own
    tests would nest `any` in `all` in `any` stays on its own. Leaving one out can only add
    shared tests, so the others are checked again until none is left out."""
    while len(group) > 1:
        common = _common(group)
        kept = [
            p
            for p in group
            if _alternative([t for t in parts(p.test) if t not in common]) is not None
        ]
        if len(kept) == len(group):
            return group if _size(_merged(group).test) <= MAX_MERGED else []
        group = kept
    return []


# The engine refuses a pattern past its expression slots (error 113: ruleset.MAX_EXPRESSIONS
# counts them as it does, two per group and one per join), and a refused folded program would
# go back to the per-node lowering: merged patterns stay small, counted here by their tests
# (more than the slots they take), with room for the lane test (the shipped policies' largest
# merge has 17).
MAX_MERGED = 24


def _size(test: Test) -> int:
    """The tests a test renders to (ruleset.render_test: `Ne` is two)."""
    if isinstance(test, AllOf | AnyTest):
        return sum(_size(t) for t in test.tests)
    return 2 if isinstance(test, Ne) else 1


# -- stage markers ------------------------------------------------------------------------------

# What a fact is, for placing it in a batch: (type, node or clause) or (derived type, None).
_Source = tuple[str, str | None]


def _arrivals(rules: Iterable[Rule], derived: frozenset[str]) -> _Arrivals:
    """When the facts of each source reach the engine (a fact a rule of stage N derives is
    asserted with stage N + 1's marker: engine `assert_stage`), and which sources have at
    most one fact per case: a clause's status, and the value of a node over no bound facts
    (the engine asserts one status per clause and one value per node and bound facts)."""
    batches: dict[_Source, set[int]] = defaultdict(set)
    keyed: set[_Source] = set()
    for rule in rules:
        action = rule.action
        if isinstance(action, EmitValue):
            batches[(action.kind, action.node)].add(rule.stage + 1)
            if action.kind != VAL or action.keys:
                keyed.add((action.kind, action.node))
        elif isinstance(action, EmitStatus) and action.asserted:
            batches[(STATUS, action.clause)].add(rule.stage + 1)
        elif isinstance(action, EmitFact):
            batches[(action.fact, None)].add(rule.stage + 1)
        elif isinstance(action, EmitPair):
            batches[(PAIR, action.node)].add(rule.stage + 1)
    single = frozenset(
        source for source in batches if source[0] in (VAL, STATUS) and source not in keyed
    )
    return _Arrivals({k: frozenset(v) for k, v in batches.items()}, derived, single)


class _Arrivals:
    def __init__(
        self,
        batches: Mapping[_Source, frozenset[int]],
        derived: frozenset[str],
        single: frozenset[_Source],
    ) -> None:
        self.batches = batches
        self.derived = derived
        self.single = single

    def of(self, pattern: Pattern) -> frozenset[int] | None:
        """The batches in which a fact the pattern matches may arrive (None: not known)."""
        tests = parts(pattern.test)
        kinds = [t for t in tests if isinstance(t, Eq) and t.field == "t"]
        if len(kinds) != 1 or not isinstance(kinds[0].value, str):
            return None  # no type, or one this cannot read: any fact may match
        kind = kinds[0].value
        if kind in _UNPLACED:
            return None
        field = _PINNED.get(kind)
        if field is not None:
            names = _pinned_values(tests, field)
            if names is None:
                return None
            found: set[int] = set()
            for name in names:
                found |= self.batches.get((kind, name), frozenset())
            return frozenset(found)
        if kind in self.derived:
            return self.batches.get((kind, None), frozenset())
        return frozenset({1})  # a case fact: asserted with stage 1's marker

    def singular(self, pattern: Pattern) -> bool:
        """Whether at most one fact of a case can match the pattern."""
        tests = parts(pattern.test)
        kinds = {t.value for t in tests if isinstance(t, Eq) and t.field == "t"}
        if len(kinds) != 1:
            return False
        kind = str(kinds.pop())
        names = _pinned_values(tests, _PINNED.get(kind, "t"))
        return names is not None and len(names) == 1 and (kind, names.pop()) in self.single


def _pinned_values(tests: list[Test], field: str) -> set[str] | None:
    for test in tests:
        if isinstance(test, Eq) and test.field == field:
            return {str(test.value)}
        if _pins(test, field) and isinstance(test, AnyTest):
            return {str(t.value) for t in test.tests if isinstance(t, Eq)}
    return None


def _leads(pattern: Pattern) -> bool:
    """Whether a pattern can lead a rule: positive (durable_rules starts from one) and without
    an `any` (a fact passing two alternatives would start two matches: ruleset._lead_order)."""
    return not pattern.negated and not any(isinstance(t, AnyTest) for t in parts(pattern.test))


def _joins(pattern: Pattern) -> bool:
    return any(isinstance(t, Join) for t in parts(pattern.test))


def ungate(rule: Rule, arrivals: _Arrivals) -> Rule:
    """Return the rule without its stage marker when the marker is redundant (see the
    module's docstring), else the rule as it is.

    Redundant: some positive pattern matches only facts that arrive in the rule's own stage's
    batch, every other positive pattern only facts that arrive by then and every negated one
    only facts that arrive before. Counted rules and rules that no positive pattern without
    an `any` or a join can lead keep it, and so do rules with two positive patterns that may each
    match several facts. The order of a rule's firings is the order of the evidence, of the
    engine's trace and of derived facts' ids, which must not move (the golden files and
    digests): durable_rules creates a rule's matches in the order of their last fact's
    arrival, and the marker, arriving last, creates them all, walking the facts of the first
    pattern in the order they came, then each later pattern's. When only one pattern may
    match several facts (the others match one at most: a clause's status, a value over no
    bound facts), either way its facts' arrival order is the matches' order (measured in
    tests/test_shaping.py).
    """
    marker, *rest = rule.patterns
    if rule.count is not None or marker.alias != STAGE or not rest:
        return rule
    if not _leads(rest[0]):
        # Another positive pattern can lead when it joins nothing (the later ones' joins name
        # only earlier aliases, and still do); with one pattern over several facts at most, the
        # order of the patterns does not change the order of the matches.
        lead = next((p for p in rest if _leads(p) and not _joins(p)), None)
        if lead is None:
            return rule
        rest = [lead, *(p for p in rest if p is not lead)]
    if sum(1 for p in rest if not p.negated and not arrivals.singular(p)) > 1:
        return rule
    own = frozenset({rule.stage})
    gated = False
    for pattern in rest:
        batches = arrivals.of(pattern)
        # A negated fact must be in before the batch: arriving in it, after the fact the rule
        # matched, it would not undo the match (durable-rules.md trap 2 holds within one
        # batch too; tests/test_shaping.py). Positive patterns join in any order.
        last = rule.stage - 1 if pattern.negated else rule.stage
        if batches is None or any(b > last for b in batches):
            return rule
        if not pattern.negated and batches == own:
            gated = True
    if not gated:
        return rule
    return Rule(rule.name, rule.stage, tuple(rest), rule.action, rule.origin, rule.count)
