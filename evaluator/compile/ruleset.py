"""Render a Program as a durable_rules JSON ruleset, and refuse one the engine cannot run.

durable_rules fails in ways that are hard to read (error codes at ruleset creation) or not at all
(creation hangs forever past 512 distinct values on one property): the limits are checked here
first, with messages an author can act on (durable-rules.md item 11).

Rendering the shipped policies costs a process more than compiling them (issue 10), so the
JSON text is rendered once per Program, and a policy's is kept on disk (read/disk_cache.py)
under a key computed from everything compiling and rendering it reads: the policy's data as
parsed (in file order) and its value sets, the evaluator's code and schemas, its version and
Python's. Any edit to one of these misses; an entry is used only when its key and its digest
match.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from evaluator.compile.program import (
    CAND,
    KEY,
    STAGE,
    STATUS,
    VAL,
    Absent,
    AllOf,
    AnyTest,
    Cmp,
    CmpField,
    EmitFact,
    EmitPair,
    Eq,
    Join,
    Ne,
    Pattern,
    Present,
    Program,
    Test,
)
from evaluator.errors import Collector, Location, PolicyError
from evaluator.language.model import FromField, Policy
from evaluator.read import resources
from evaluator.read.disk_cache import entry_path, read_text, write_text
from evaluator.vocab import units

MAX_RULES = 4096  # error 106
MAX_PATTERNS = 16  # facts joined in one rule, error 304
# durable_rules gives each pattern a sequence of 32 expression slots, evaluated when a fact
# reaches the pattern's beta node (rete.c GET_EXPRESSION / APPEND_EXPRESSION): an `$and` or
# `$or` takes two (its opening and its end), a test against another fact (a join, or arithmetic
# over one) one, and a test against a constant or the fact's own field (`$m`) none, however
# many. Filling the last slot is error 113 at registration: a pattern may take 31.
MAX_EXPRESSIONS = 31
# An identical pattern may feed at most 256 rules (error 108); rules are spread over lanes of
# this size, each lane's patterns past the first made distinct by a test on an attribute no
# fact has (`_with_lane`).
LANE = 200
MAX_DISTINCT_VALUES = 400  # past 512 on one property, ruleset creation never returns
# durable_rules matches each fact by walking its tests depth first with a fixed stack of 64
# pending tests (events.c `handleAlpha`, MAX_STACK_SIZE); one more fails every assert of such
# a fact with error 303 (ERR_MAX_STACK_SIZE), at run time only. `alpha_stack` bounds it.
MAX_ALPHA_STACK = 64
# The field naming a fact's case when several cases share one session, one after another
# (`shares`): every pattern of a rule after the first joins the first on it.
CASE_KEY = "c"
# A session's set-up costs per beta node (durable_rules zeroes ~8 KB for each pattern after a
# rule's first), the case join per fact and per pattern. Measured (CPU, stop 20): sharing
# pays on a small program (87 beta nodes: 261-279 -> 228-232 us per `api.evaluate`) and costs
# on large ones (668: 1,400 -> 1,560-1,960 us per run with the same firings; memory grows
# with every case a session keeps). At 119 (a program run beside large ones in one review)
# its runs were faster (375 -> 319 us) but the review slower (10.4-10.8 -> 10.6-11.1 ms): its
# open session made the large programs' sessions costlier to set up. docs/architecture.md.
# Past this many, a program runs one case per session.
SHARE_MAX_BETA = 100
_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


# Past this, json.dumps and orjson write floats in exponent notation, which the engine cannot
# parse.
_LARGEST = 1e15


def number(value: float) -> float:
    """Return a number durable_rules can parse: no exponent notation, no inf or NaN.

    Raises ValueError for a number the engine cannot represent.
    """
    if isinstance(value, int):  # bool is an int too, and passes unchanged
        return value
    if not math.isfinite(value) or abs(value) >= _LARGEST:
        raise ValueError(f"number out of range: {value!r}")
    # Exact where Python writes it plainly: rounded, 7.99999 would meet "at least 8".
    kept = units.plain(value)
    return int(kept) if kept.is_integer() else kept


def engine_json(value: Any) -> str:
    """Return `value` as the JSON text durable_rules reads: a ruleset or a batch of facts.

    durable_rules compares strings as the bytes it was given, without decoding `\\u` escapes
    (`"\\u00e9"` in a rule never matches `"é"` in a fact), so rulesets and facts are written
    by this one function: UTF-8 as is, as json.dumps(ensure_ascii=False) writes it, by orjson
    (faster). Raises ValueError for what JSON cannot carry (a lone surrogate, an integer past
    64 bits).
    """
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as error:
        raise ValueError(str(error)) from error


def _scalar(value: Any) -> Any:
    return (
        number(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    )


def render_test(test: Test) -> dict[str, Any]:
    """Return durable_rules' JSON expression for one test."""
    if isinstance(test, Eq):
        return {test.field: _scalar(test.value)}
    if isinstance(test, Ne):
        return {"$and": [{"$ex": {test.field: 1}}, {"$neq": {test.field: _scalar(test.value)}}]}
    if isinstance(test, Cmp):
        return {_OPS[test.op]: {test.field: number(test.value)}}
    if isinstance(test, CmpField):
        other = {"$add": {"$l": {"$m": test.other}, "$r": number(test.offset)}}
        return {_OPS[test.op]: {test.field: other}}
    if isinstance(test, Present):
        return {"$ex": {test.field: 1}}
    if isinstance(test, Absent):
        return {"$nex": {test.field: 1}}
    if isinstance(test, Join):
        return {test.field: {test.alias: test.other}}
    if isinstance(test, AllOf):
        parts = [render_test(t) for t in test.tests]
        return parts[0] if len(parts) == 1 else _conjunction(parts)
    if isinstance(test, AnyTest):
        parts = [render_test(t) for t in test.tests]
        return parts[0] if len(parts) == 1 else {"$or": parts}
    raise TypeError(f"unknown test {test!r}")


def _conjunction(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the `$and` of rendered parts, an `$and` among them spliced in (a not-equals
    test's, a conjunction's): rete.c chains the tests of a nested `$and` just as the outer
    one's, so the network is the same, and each nested group would take two of the pattern's
    expression slots (`MAX_EXPRESSIONS`)."""
    flat: list[dict[str, Any]] = []
    for part in parts:
        if part.keys() == {"$and"}:
            flat.extend(_conjunction(part["$and"])["$and"])
        else:
            flat.append(part)
    return {"$and": flat}


def _flatten(test: Test) -> list[Test]:
    if isinstance(test, AllOf):
        return [part for t in test.tests for part in _flatten(t)]
    return [test]


def _with_lane(test: Test, lane: int, case_join: Join | None = None) -> dict[str, Any]:
    """Return one pattern's expression in the order durable_rules needs.

    The type test comes first, then the lane test (past lane 0: see below; so it also splits
    the values tested next), then the equality tests, then every join: durable_rules 2.0.28
    ignores a join that follows an `$or` in the same `$and` (reproduced in
    tests/test_ruleset.py), and AND is order-free for us. Equality tests go before the joins
    because the engine shares a test node between patterns only up to the first join (it
    never shares a join) and enters every join node under a shared test for each fact that
    has the property: with the joins first, one value fact entered a node per joined value
    pattern of its lane, and large policies overflowed the engine's stack of 64 (error 303,
    `alpha_stack`). Behind `n == <node>` a fact enters only the joins of the patterns on its
    own node.

    `case_join` (a program whose cases share sessions, `shares`) joins the pattern to its
    rule's first on the case key. Every fact has that key, so the join goes last when the
    pattern's other tests are plain tests against a constant (`$lt`.., `$ex`, `$nex`): a fact
    reaches it only once it passed them. Otherwise it goes with the other joins, ahead of the
    nested groups: the engine ignores a join behind one (an `$or`; the `$and` a not-equals
    test renders is spliced into the pattern's own, `_conjunction`, except inside an `$or`).
    """
    parts = _hoist_type(_flatten(test))
    kind = [t for t in parts if isinstance(t, Eq) and t.field == "t"][:1]
    equal = [t for t in parts if isinstance(t, Eq) and t not in kind]
    joins: list[Test] = [t for t in parts if isinstance(t, Join)]
    rest: list[Test] = [
        t for t in parts if t not in kind and t not in equal and not isinstance(t, Join)
    ]
    if case_join is not None:
        if all(isinstance(t, Cmp | Present | Absent) for t in rest):
            rest.append(case_join)
        else:
            joins.append(case_join)
    ordered = [*(render_test(t) for t in kind), *(render_test(t) for t in equal)]
    # Lane 0's patterns with a type test go without: they are told apart from every later
    # lane's, which have one, and every fact of the type passed it anyway. Half the founding
    # case's patterns had it, and registering them cost a sixth more (benchmarks/README.md,
    # stop 25). A pattern without a type test keeps it, so that its joins and other tests
    # hang under a test node of their own, not the engine's root.
    if lane or not kind:
        ordered.insert(len(kind), {"$nex": {f"_lane{lane}": 1}})
    return _conjunction([*ordered, *(render_test(t) for t in (*joins, *rest))])


def _hoist_type(parts: list[Test]) -> list[Test]:
    """Return a pattern's conjuncts with the fact type tested first when every alternative of
    an `AnyTest` tests the same one: `any(all(t=X, a), all(t=X, b))` is `t=X and any(a, b)`.

    Folding writes "a fact passing the false test, or one without the field" as such an `any`
    (folding.py). Without a type test of its own the pattern's alpha path starts at the lane
    test, which every fact of every type passes, so every fact of the case, every stage marker
    and every derived fact was tested against each alternative: on the bench policy a fifth
    of durable_rules' instructions. Behind `t == X` only the facts of that type go on.
    A pattern that already tests its type, or whose alternatives test different types or
    none, is left as it is.
    """
    if any(isinstance(t, Eq) and t.field == "t" for t in parts):
        return parts
    for index, part in enumerate(parts):
        if not isinstance(part, AnyTest) or not part.tests:
            continue
        alternatives = [_flatten(alternative) for alternative in part.tests]
        kinds = {
            next((t for t in alternative if isinstance(t, Eq) and t.field == "t"), None)
            for alternative in alternatives
        }
        kind = kinds.pop()
        if kinds or kind is None:
            continue
        rest = [[t for t in alternative if t != kind] for alternative in alternatives]
        if any(not alternative for alternative in rest):
            hoisted: list[Test] = []  # one alternative is the type alone: the `any` holds
        else:
            hoisted = [AnyTest(tuple(AllOf(tuple(r)) if len(r) > 1 else r[0] for r in rest))]
        return [kind, *parts[:index], *hoisted, *parts[index + 1 :]]
    return parts


def _lead_order(patterns: tuple[Pattern, ...]) -> tuple[Pattern, ...]:
    """Return the patterns with the first fact pattern ahead of the stage marker.

    durable_rules hashes a pattern's partial matches on its equality joins; a pattern after the
    first with no join keeps them in one chain that it walks for every fact it receives
    (events.c `handleBetaMessage` checks each fact against all earlier ones), so an unjoined
    pattern over n facts costs n^2/2. The first pattern of a rule skips that walk. The compiler
    puts the stage marker first and binds the outermost fact (a fused segment, a line) unjoined
    right after it: with thousands of such facts (hundreds of service lines) that walk made
    the engine's cost grow with the square of the lines. The marker joins nothing, so leading
    with the first fact pattern instead matches the same combinations. A negated pattern
    cannot lead a rule (durable_rules starts from a positive one), so such rules keep the
    marker first, and so do rules whose first fact pattern has an `$or`: a fact that passes two
    of its alternatives reaches the pattern twice, and only that same walk drops the repeat.
    """
    marker, *rest = patterns
    if marker.alias != STAGE or not rest or rest[0].negated:
        return patterns
    if any(isinstance(t, AnyTest) for t in _flatten(rest[0].test)):
        return patterns
    return (rest[0], marker, *rest[1:])


def expression_slots(expr: Mapping[str, Any]) -> int:
    """Return the slots of durable_rules' expression sequence one rendered pattern (or part
    of one) takes, counted as rete.c counts them (`MAX_EXPRESSIONS`)."""
    ((key, value),) = expr.items()
    if key in ("$and", "$or"):
        return 2 + sum(expression_slots(part) for part in value)
    if key in ("$iany", "$iall"):
        ((_, inner),) = value.items()
        return expression_slots(inner)
    if key in _ALPHA_OPS:
        ((_, value),) = value.items()
    return 1 if _names_a_fact(value) else 0


def _names_a_fact(operand: Any) -> bool:
    """Whether a test's operand reads another fact bound in the rule (`{alias: field}`),
    possibly inside arithmetic; `$m` names the fact under test."""
    if not isinstance(operand, dict):
        return False
    ((key, value),) = operand.items()
    if key in ("$add", "$sub", "$mul", "$div"):
        return any(_names_a_fact(side) for side in value.values())
    return bool(key != "$m")


def render(program: Program) -> dict[str, Any]:
    """Return the ruleset definition (a fresh dict: durable_rules mutates what it is given).
    Raises PolicyError when the program exceeds one of the engine's limits.
    """
    fresh: dict[str, Any] = json.loads(json.dumps(_definition(program)))
    return fresh


_SHARES = "_ruleset_shares"
# How a case join starts in the text the engine registers (`engine_json`).
_CASE_JOIN = f'"{CASE_KEY}":{{"'


def shares(program: Program) -> bool:
    """Whether cases of the program share engine sessions, one after another: then its
    ruleset joins every pattern of a rule after the first to the first on `CASE_KEY`
    (`render`), so no rule matches facts of two cases and a negation looks in its own case.

    Not with `count` rules (durable_rules counts a rule's matches across the whole session),
    nor when a rule reads a case fact's own field named like the case key, nor past
    `SHARE_MAX_BETA` beta nodes (slower there), nor when the joins would take the program
    past one of the engine's limits. Worked out once per Program.
    """
    found: bool | None = program.__dict__.get(_SHARES)
    if found is not None:
        return found
    beta = sum(len(rule.patterns) - 1 for rule in program.rules)
    found = (
        beta <= SHARE_MAX_BETA
        and all(rule.count is None for rule in program.rules)
        and CASE_KEY not in projection(program).fields
    )
    text: str | None = program.__dict__.get(_MEMO)
    if found and text is not None:
        # Rendered already (or read from the disk cache, which a new process does): the text
        # has the case joins exactly when this returned True for it. No other test names
        # the field (`projection` holds no `c`), so a join on it is the case join.
        found = _CASE_JOIN in text
    elif found:
        problems = Collector()
        joined = _build(program, problems, cases=True)
        found = not problems and alpha_stack(joined) <= MAX_ALPHA_STACK
    # Program is frozen; a memo, not part of its value (as `projection` keeps its own).
    object.__setattr__(program, _SHARES, found)
    return found


def _definition(program: Program) -> dict[str, Any]:
    problems = Collector()
    definition = _build(program, problems, cases=shares(program))
    stack = alpha_stack(definition)
    if stack > MAX_ALPHA_STACK:
        problems.add(
            "engine_limit",
            f"one fact could meet {stack} pending tests in the engine (it allows "
            f"{MAX_ALPHA_STACK}, error 303 at evaluation); split the policy or give its "
            "conditions fewer alternatives (any, one_of, nested every/some over one fact type)",
            Location(pointer=program.name),
        )
    problems.raise_if_any(PolicyError)
    return definition


def definition(program: Program) -> dict[str, Any]:
    """Return the ruleset definition as `render` builds it, its limits unchecked: for measuring
    a program (`alpha_stacks`) that `render` might refuse. Never give it to the engine.
    Without the case joins (`shares`): folding is chosen on it, and must not depend on them."""
    return _build(program, Collector(), cases=False)


def _build(program: Program, problems: Collector, *, cases: bool) -> dict[str, Any]:
    where = Location(pointer=program.name)
    if len(program.rules) + 1 > MAX_RULES:
        problems.add(
            "engine_limit", f"{len(program.rules)} rules exceed the engine's {MAX_RULES}", where
        )
    definition: dict[str, Any] = {}
    distinct: dict[tuple[int, str], set[str]] = defaultdict(set)
    for index, rule in enumerate(program.rules):
        lane = index // LANE
        if len(rule.patterns) > MAX_PATTERNS:
            problems.add(
                "engine_limit",
                f"a rule from `{rule.origin}` joins {len(rule.patterns)} facts "
                f"(the engine allows {MAX_PATTERNS}); split the condition",
                where,
            )
        patterns = []
        ordered = _lead_order(rule.patterns)
        lead = ordered[0].alias
        for pattern in ordered:
            # Several cases share a session: every fact a rule matches is of one case.
            joined = cases and pattern is not ordered[0]
            case_join = Join(CASE_KEY, lead, CASE_KEY) if joined else None
            expr = (
                _with_lane(pattern.test, lane)
                if case_join is None
                else _with_lane(pattern.test, lane, case_join)
            )
            slots = expression_slots(expr)
            if slots > MAX_EXPRESSIONS:
                problems.add(
                    "engine_limit",
                    f"a condition in `{rule.origin}` needs {slots} of the engine's "
                    f"{MAX_EXPRESSIONS} expression slots on one fact (two per group of "
                    "alternatives or of tests, one per comparison with another fact); split it",
                    where,
                )
            _note_values(pattern, lane, distinct)
            alias = f"{pattern.alias}$not" if pattern.negated else pattern.alias
            patterns.append({alias: expr})
        # dist 0: one fact may fill several patterns of the rule. durable_rules' default keeps
        # them distinct, so nested quantifiers over one fact type silently missed the
        # combinations where the inner and outer binding are the same fact (trap 19).
        # Every setting is written, with the engine's own default (priority 0, count 1, no
        # cap), and before the patterns: registering reads each setting by scanning the rule's
        # keys up to it, so a setting left out, or written after `all`, cost a scan of every
        # pattern (a seventh of registering a ruleset: benchmarks/README.md, stop 23).
        definition[rule.name] = {
            "pri": 0,
            "count": 1 if rule.count is None else rule.count,
            "cap": 0,
            "dist": 0,
            "all": patterns,
        }
    for (_, field), values in sorted(distinct.items()):
        if len(values) > MAX_DISTINCT_VALUES:
            problems.add(
                "engine_limit",
                f"{len(values)} distinct values are tested on `{field}` "
                f"(the engine hangs past 512); split the policy",
                where,
            )
            break
    # Every fact must match some pattern or the engine rejects it (durable-rules.md trap 1);
    # this rule matches everything and never fires, since no fact has the second type.
    definition["catch_all"] = {"all": [{"m": {"$ex": {"t": 1}}}, {"n": {"t": "__never__"}}]}
    return definition


def _note_values(pattern: Pattern, lane: int, distinct: dict[tuple[int, str], set[str]]) -> None:
    def walk(test: Test) -> None:
        if isinstance(test, Eq):
            distinct[(lane, test.field)].add(repr(test.value))
        elif isinstance(test, AllOf | AnyTest):
            for t in test.tests:
                walk(t)

    walk(pattern.test)


# -- what the engine is given of each case fact ---------------------------------------------------

# The fields of a case fact the engine always gets: its type and identity (`KEY` is written from
# `id` when the fact is asserted). The session and case keys are the engine's own, added then.
_ALWAYS = frozenset({"t", "id", KEY})


@dataclass(frozen=True, slots=True)
class Projection:
    """What of a case's facts the engine needs: the fact types some pattern may match (None:
    any type, when a pattern does not name one) and the fields some test or action reads.

    A field absent from every test and action cannot change a match (a test reads only its
    own fields, `$nex` included) nor a derived fact, so leaving it out changes no firing;
    every alpha test probes each field a fact has, so every field left out is work saved.
    """

    types: frozenset[str] | None
    fields: frozenset[str]

    def keeps(self, kind: Any) -> bool:
        return self.types is None or kind in self.types


def _test_fields(test: Test, out: set[str]) -> None:
    if isinstance(test, AllOf | AnyTest):
        for part in test.tests:
            _test_fields(part, out)
    elif isinstance(test, CmpField):
        out.update((test.field, test.other))
    elif isinstance(test, Join):
        out.update((test.field, test.other))  # `other` is a field of the joined fact
    else:
        out.add(test.field)


def _types(test: Test) -> set[str] | None:
    """The fact types a test can pass (None: any): a conjunction passes only the types one
    of its parts allows, an alternative the types of any of its branches."""
    if isinstance(test, Eq) and test.field == "t" and isinstance(test.value, str):
        return {test.value}
    if isinstance(test, AllOf):
        for part in test.tests:
            found = _types(part)
            if found is not None:
                return found
        return None
    if isinstance(test, AnyTest):
        union: set[str] = set()
        for part in test.tests:
            found = _types(part)
            if found is None:
                return None
            union |= found
        return union
    return None


def projection(program: Program) -> Projection:
    """Return the program's `Projection` (computed once per Program)."""
    found: Projection | None = program.__dict__.get(_PROJECTION)
    if found is not None:
        return found
    types: set[str] | None = set()
    fields: set[str] = set(_ALWAYS)
    for rule in program.rules:
        for pattern in rule.patterns:
            _test_fields(pattern.test, fields)
            kinds = _types(pattern.test)
            if kinds is None:
                types = None  # a pattern that names no type may match a fact of any type
            elif types is not None:
                types |= kinds
        action = rule.action
        if isinstance(action, EmitFact):
            fields.update(("src",))  # provenance of the derived fact (engine `_fact`)
            for name, value in action.values.items():
                if isinstance(value, FromField):
                    fields.update(action.copy.get(name, (value.field,)))
        elif isinstance(action, EmitPair):
            fields.update(physical for _, _, physical in action.fields)
    # The engine flattens a nested object into `name.sub` fields: keep the top-level name.
    fields.update(f.split(".", 1)[0] for f in list(fields))
    # The session id is the engine's: a fact's own `sid` would move it to another session.
    fields.discard("sid")
    found = Projection(None if types is None else frozenset(types), frozenset(fields))
    object.__setattr__(program, _PROJECTION, found)  # a memo, not part of the Program's value
    return found


_PROJECTION = "_projection"


# -- durable_rules' alpha network, modelled to bound the stack its walk needs -------------------


class _Alpha:
    """One test node of the alpha network (rete.c): children tested by property (`hashed`) and
    the `$nex` children it enters when the property is absent (`listed`)."""

    __slots__ = ("equal", "hashed", "listed", "value")

    def __init__(self, equal: str | None = None, value: Any = None) -> None:
        self.hashed: dict[tuple[str, str, Any], _Alpha] = {}
        self.listed: dict[Any, _Alpha] = {}
        self.equal = equal  # the property of an equality test (one value per fact)
        self.value = value


_ALPHA_OPS = {"$lt", "$lte", "$gt", "$gte", "$neq", "$ex", "$nex", "$mt", "$imt"}


def _alpha(parent: _Alpha, expr: Mapping[str, Any], fresh: itertools.count[int]) -> _Alpha:
    """Add one expression under `parent` as rete.c `createAlpha` does; return its last node."""
    ((key, value),) = expr.items()
    if key == "$and":
        node = parent
        for part in value:
            node = _alpha(node, part, fresh)
        return node
    if key == "$or":
        # Each alternative ends in a fresh forward node, never shared, entered by every fact.
        forward = _Alpha()
        for part in value:
            _alpha(parent, part, fresh).listed[next(fresh)] = forward
        return forward
    if key in _ALPHA_OPS:
        op, ((prop, operand),) = key, value.items()
    else:
        op, prop, operand = "$eq", key, value
    if op == "$nex":
        return parent.listed.setdefault((prop, repr(operand)), _Alpha())
    if isinstance(operand, dict):
        # A join or arithmetic: rete.c stores its names anew for every pattern, so the node is
        # never shared; a join is entered for every fact with the property.
        return parent.hashed.setdefault((prop, op, next(fresh)), _Alpha())
    equal = prop if op == "$eq" else None
    return parent.hashed.setdefault((prop, op, repr(operand)), _Alpha(equal, operand))


# The order in which the engine's own facts carry their properties (engine.py builds them so):
# the walk pushes a node's children property by property in that order and pops the last
# pushed first. For other facts the order is not known here and the worst is assumed.
_KEYS = tuple(f"k{i}" for i in range(1, MAX_PATTERNS + 1))
_ORDER: dict[str, tuple[str, ...]] = {
    VAL: ("sid", "t", "n", "v", *_KEYS, "f", "id", KEY),
    CAND: ("sid", "t", "n", "v", *_KEYS, "f", "id", KEY),
    STATUS: ("sid", "t", "clause", "status", "id", KEY),
    STAGE: ("sid", "t", "id", "s", KEY),
}


def _pending(node: _Alpha, order: Mapping[str, int] | None, known: dict[int, int]) -> int:
    """An upper bound of the stack the walk below `node` needs for one fact: it pushes every
    child the fact may enter (the `$nex` ones first, then property by property; one equality
    test per property), then walks the last pushed with the others still pending.

    The network is a graph, not a tree: every alternative of an `$or` leads to the group's one
    forward node, so n groups in a row reach the last along 2^n paths. `known` holds each
    node's bound once worked out (by identity; the order is the same for the whole walk)."""
    if (done := known.get(id(node))) is not None:
        return done
    groups: dict[int, list[_Alpha]] = {}
    if node.listed:
        groups[-1] = list(node.listed.values())
    for (prop, _, _), child in node.hashed.items():
        # Properties of unknown order form one group, pushed last: everything else below it.
        rank = order.get(prop, len(order)) if order is not None else 0
        groups.setdefault(rank, []).append(child)
    need = below = 0
    for _, members in sorted(groups.items()):
        equal = {c.equal for c in members if c.equal is not None}
        size = len(equal) + sum(1 for c in members if c.equal is None)
        need = max(need, below + size - 1 + max(_pending(c, order, known) for c in members))
        below += size
    known[id(node)] = bound = max(need, below)
    return bound


def alpha_stack(definition: Mapping[str, Any]) -> int:
    """Return a bound of the tests durable_rules keeps pending while it matches one fact
    against the ruleset (`MAX_ALPHA_STACK` at most; error 303 past it).

    The network is rebuilt as rete.c builds it: patterns share their leading tests, `$nex`
    tests and the forward node closing each `$or` are entered whenever their property is
    absent, and every join is a node of its own that every fact with the property enters.
    The bound assumes any non-equality test may pass; on 150 generated policies every one at
    or below 60 ran and every one that failed with error 303 was at 74 or more.
    """
    return max(alpha_stacks(definition).values())


def alpha_stacks(definition: Mapping[str, Any]) -> dict[str | None, int]:
    """Return `alpha_stack`'s bound per fact type (the key None: a fact of a type no pattern
    tests), to find what makes a ruleset's bound."""
    root = _Alpha()
    fresh = itertools.count()
    for rule in definition.values():
        for pattern in rule["all"]:
            (expr,) = pattern.values()
            _alpha(root, expr, fresh)
    # A fact enters one type test at the root, beside the root's other children.
    kinds = [c for (prop, _, _), c in root.hashed.items() if prop == "t" and c.equal]
    beside = len(root.listed) + len(root.hashed) - len(kinds)
    need: dict[str | None, int] = {None: beside + 1}
    for kind in kinds:
        known = _ORDER.get(str(kind.value))
        order = {p: i for i, p in enumerate(known)} if known else None
        need[str(kind.value)] = max(beside + 1, beside + _pending(kind, order, {}))
    return need


# --- the rendered text, once per program and across processes ----------------------------------

# The renderer as imported. A test that changes it at run time (monkeypatching render_test,
# a limit, ...) must see its own rendering, which no cache entry holds: then nothing is cached.
_RENDERER = {name: value for name, value in globals().items() if not name.startswith("__")}


def _renderer_changed() -> bool:
    current = globals()
    return any(current.get(name) is not value for name, value in _RENDERER.items())


# Bump when the entry layout changes (code changes are caught by _evaluator_fingerprint()).
FORMAT = "necessity-ruleset-3"
_MEMO = "_ruleset_text"


def definition_text(program: Program, key: str | None = None) -> str:
    """Return the program's ruleset as the JSON text durable_rules registers.

    Rendered once per Program object; with a `key` (`cache_key` of the policy it was compiled
    from), read from or written to the disk cache. Raises PolicyError when the program exceeds
    one of the engine's limits (an entry exists only for a ruleset that did not).
    """
    text: str | None = program.__dict__.get(_MEMO)
    if text is not None:
        return text
    if key is not None and _renderer_changed():
        key = None
    entry = None if key is None else entry_path("rulesets", key)
    if entry is not None and key is not None:
        text = _read_entry(entry, key)
    if text is None:
        try:
            text = engine_json(_definition(program))
        except ValueError as error:  # only a program built by hand: the reader refuses these
            raise PolicyError.single(
                "engine_limit", f"the engine cannot read policy `{program.name}`: {error}"
            ) from error
        if entry is not None and key is not None:
            _write_entry(entry, key, text)
    # Program is frozen; this memo is not part of its value (nor of its equality).
    object.__setattr__(program, _MEMO, text)
    return text


def cache_key(policy: Policy, *, folded: bool) -> str | None:
    """Return the disk cache key of the ruleset compiled from `policy` (with the clause trees
    `folded` into the status rules or not), or None (no caching).

    The Program is a function of the policy's data (key order included: it orders the rules),
    the value sets it uses, the modules it imports and the plan overlaid on it (its content
    hash), the fact dictionary and schemas, the code and the lowering chosen; the key covers each.
    """
    fingerprint = _evaluator_fingerprint()
    if policy.document is None or fingerprint is None:
        return None
    try:
        data = orjson.dumps(policy.document.data)
    except orjson.JSONEncodeError:
        return None
    digest = hashlib.sha256()
    lowering = "folded" if folded else "per-node"
    for part in (FORMAT, resources.evaluator_version(), sys.version, fingerprint, lowering):
        digest.update(part.encode() + b"\0")
    digest.update(data + b"\0")
    # what the file's data does not show: the shared modules it imports and a plan's overlay
    digest.update(policy.content_sha256.encode() + b"\0")
    # value sets are frozen dataclasses of strings and tuples: their repr spells out every code
    digest.update(repr(tuple(policy.value_sets.items())).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@functools.cache
def _evaluator_fingerprint() -> str | None:
    # The evaluator's own source and its schemas (the fact dictionary): in a checkout, code is
    # edited without a new version, and must not reuse what the old code compiled.
    package = Path(__file__).resolve().parent.parent  # evaluator/, not compile/
    digest = hashlib.sha256()
    try:
        # os.walk and names sorted as strings: Path.rglob and sorting Paths cost every
        # process several times more. A folder it cannot list is an OSError (nothing is
        # cached), never skipped: the fingerprint would miss the code in it
        sources = sorted(
            os.path.join(folder, name)
            for folder, _, names in os.walk(package, onerror=_raise)
            for name in names
            if name.endswith(".py")
        )
        for path in [*map(Path, sources), *sorted(resources.schemas_dir().glob("*"))]:
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()


def _raise(error: OSError) -> None:
    raise error


def _read_entry(entry: Path, key: str) -> str | None:
    # first line: the key and the digest of the text after it; a truncated, damaged or foreign
    # entry is a miss
    stored = read_text(entry)
    if stored is None:
        return None
    header, _, text = stored.partition("\n")
    if header != f"{key} {hashlib.sha256(text.encode()).hexdigest()}":
        return None
    return text


def _write_entry(entry: Path, key: str, text: str) -> None:
    write_text(entry, f"{key} {hashlib.sha256(text.encode()).hexdigest()}\n{text}")
