"""compile/shaping.py: fewer beta nodes per durable_rules session, the same firings (issue 10).

Every session allocates and zeroes state per rule pattern, so the compiler merges a rule's
negated patterns on one fact type, node and joins into one, and drops the stage marker from
rules that cannot complete before their stage's batch anyway. These tests pin what the engine
does that the rewrite relies on (or avoids), that every example and generated bench case gets
the very same firings, in the same order, from the shaped program as from the unshaped one,
and that a rule freed from its marker by mistake is an engine error, never a determination.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import durable_rules_engine as dre
import pytest

from evaluator.case import cases
from evaluator.case.cases import Case
from evaluator.compile import shaping
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import (
    CASE,
    STAGE,
    STATUS,
    VAL,
    AllOf,
    AnyTest,
    Cmp,
    EmitFact,
    EmitStatus,
    EmitValue,
    Eq,
    Join,
    Pattern,
    Program,
    Rule,
)
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import EngineError
from evaluator.language.conditions import Truth
from evaluator.language.model import Policy, Status
from evaluator.language.policies import Library, load_policy
from tests.engine_runs import governed
from tests.test_assembly import POLICIES, bench_cases

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


# --- what durable_rules does, that shaping relies on or avoids ------------------------------------


def _fired(rules: dict[str, Any], facts: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    """Assert the facts in one batch; return each firing as rule -> the ids it matched."""
    rules = {**rules, "catch_all": {"all": [{"m": {"$ex": {"t": 1}}}, {"n": {"t": "never"}}]}}
    handle = dre.create_ruleset(f"shaping-{uuid.uuid4().hex[:12]}", json.dumps(rules))
    result = dre.assert_facts(handle, json.dumps([dict(f, sid="1", key=f["id"]) for f in facts]))
    state = result[1]
    fired = []
    started = dre.start_action_for_state(handle, state)
    message = started[1] if started else None
    while message:
        for name, matched in json.loads(message).items():
            ids = [f["id"] for alias, f in matched.items() if alias != "stage"]
            fired.append({name: ids})
        message = dre.complete_and_start_action(handle, state)
    return fired


MARKER = {"stage": {"$and": [{"t": "stage"}, {"s": 1}]}}
MARKER_FACT = {"t": "stage", "id": "stage1", "s": 1}
A = {"a": {"t": "a"}}
NOT_B = {"b$not": {"$and": [{"t": "b"}, {"k": {"a": "key"}}]}}


def test_a_negated_fact_later_in_the_same_batch_does_not_undo_a_match():
    # Why `ungate` keeps the marker of a rule that negates what its own batch brings: the
    # marker comes last in the batch, so the negated fact is in before the rule can match.
    facts = [{"t": "a", "id": "a1"}, {"t": "b", "id": "b1", "k": "a1"}]
    assert _fired({"r": {"all": [A, NOT_B], "dist": 0}}, facts) == [{"r": ["a1"]}]
    assert _fired({"r": {"all": [A, NOT_B], "dist": 0}}, facts[::-1]) == []
    gated = {"r": {"all": [A, MARKER, NOT_B], "dist": 0}}
    assert _fired(gated, [*facts, MARKER_FACT]) == []


def test_one_pattern_over_several_facts_matches_in_the_same_order_without_the_marker():
    facts = [{"t": "a", "id": f"a{i}"} for i in range(4)]
    gated = _fired({"r": {"all": [A, MARKER], "dist": 0}}, [*facts, MARKER_FACT])
    assert len(gated) == 4
    assert _fired({"r": {"all": [A], "dist": 0}}, facts) == gated
    # ... and with a pattern that matches one fact, wherever that fact comes in the batch
    one = {"s": {"$and": [{"t": "one"}]}}
    single = [{"t": "one", "id": "one1"}]
    gated = _fired({"r": {"all": [A, MARKER, one], "dist": 0}}, [*facts, *single, MARKER_FACT])
    assert _fired({"r": {"all": [A, one], "dist": 0}}, [*facts, *single]) == gated
    assert _fired({"r": {"all": [A, one], "dist": 0}}, [*single, *facts]) == gated
    assert _fired({"r": {"all": [A, one], "dist": 0}}, [*facts[:2], *single, *facts[2:]]) == gated


def test_two_patterns_over_several_facts_match_in_another_order_without_the_marker():
    # Why `ungate` keeps the marker of such rules: the order of firings is the evidence's.
    b = {"b": {"$and": [{"t": "b"}, {"k": {"a": "key"}}]}}
    facts = [{"t": "a", "id": f"a{i}"} for i in range(2)]
    facts += [{"t": "b", "id": f"b{i}", "k": f"a{i % 2}"} for i in range(4)]
    gated = _fired({"r": {"all": [A, MARKER, b], "dist": 0}}, [*facts, MARKER_FACT])
    ungated = _fired({"r": {"all": [A, b], "dist": 0}}, facts)
    assert sorted(map(str, gated)) == sorted(map(str, ungated))
    assert gated != ungated


def test_a_negated_any_blocks_as_the_negations_it_replaces():
    # `merge_negations`: "no b with x >= 6 and no b with y < 6" as one negated `any`; a fact
    # passing both alternatives reaches the negated pattern twice, and still blocks once.
    a, marker = A, MARKER
    split = [a, marker, {"g1$not": {"$and": [{"t": "b"}, {"$gte": {"x": 6}}]}}]
    split.append({"g2$not": {"$and": [{"t": "b"}, {"$lt": {"y": 6}}]}})
    merged = [
        a,
        marker,
        {"g$not": {"$and": [{"t": "b"}, {"$or": [{"$gte": {"x": 6}}, {"$lt": {"y": 6}}]}]}},
    ]
    b: dict[str, Any]
    for b in ({"x": 7, "y": 7}, {"x": 1, "y": 1}, {"x": 7, "y": 1}, {"x": 1, "y": 7}, {}):
        facts: list[dict[str, Any]] = [{"t": "a", "id": "a1"}, {"t": "b", "id": "b1", **b}]
        facts.append(MARKER_FACT)
        want = _fired({"r": {"all": split, "dist": 0}}, facts)
        assert _fired({"r": {"all": merged, "dist": 0}}, facts) == want, b


# --- the same firings on every example and generated case ---------------------------------------

Run = tuple[str, Program, Program, list[dict[str, Any]]]


def _runs(judged: list[tuple[Case, Library]]) -> Iterator[Run]:
    """Each case's governing policies: the shaped and unshaped programs and the facts."""
    for label, _, effective, program, facts in governed(judged):
        yield label, program, _unshaped(effective), facts


_UNSHAPED: dict[str, Program] = {}


def _unshaped(policy: Policy) -> Program:
    key = f"{policy.id}@{policy.version}#{policy.content_sha256}"
    if key not in _UNSHAPED:
        _UNSHAPED[key] = compile_policy(policy, shaped=False)
    return _UNSHAPED[key]


def _observed(trace: Trace) -> Any:
    """Everything a run gives decision assembly, in the order the engine gave it."""
    assert trace.log is not None

    def fact(asserted: Any) -> dict[str, Any]:
        return {k: v for k, v in asserted.items() if k != "sid"}  # the session's own number

    return (
        [(f.rule, dict(f.matched), [fact(a) for a in f.asserted], f.verdict) for f in trace.log],
        [(k, dict(e.fact), e.rule, dict(e.matched)) for k, e in trace.values.items()],
        [(dict(e.fact), e.rule) for e in trace.candidates],
        [(dict(e.fact), e.rule) for e in trace.derived],
        [(k, dict(e.fact), e.rule) for k, e in trace.statuses.items()],
        trace.verdict,
        trace.firings,
    )


def _outcome(program: Program, facts: list[dict[str, Any]]) -> Any:
    try:
        return _observed(Engine.get().run(program, facts, trace=True))
    except EngineError as error:
        return ("EngineError", str(error))


def _check_same(runs: list[Run]) -> None:
    assert runs
    for name, program, unshaped, facts in runs:
        assert _outcome(program, facts) == _outcome(unshaped, facts), name


def test_every_example_fires_the_same_rules_in_the_same_order():
    library = Library()
    _check_same(list(_runs([(cases.load_case(path), library) for path in EXAMPLES])))


def test_generated_bench_cases_fire_the_same_rules_in_the_same_order():
    library = Library(POLICIES)
    _check_same(list(_runs([(case, library) for case in bench_cases(120, seed=20261206)])))


def _patterns(program: Program) -> int:
    return sum(len(rule.patterns) for rule in program.rules)


@pytest.mark.parametrize("path", [*Library().paths(), *Library(POLICIES).paths()], ids=str)
def test_shipped_programs_lose_markers_and_negated_patterns(path):
    # The comparisons above mean something only if shaping changed the programs they run.
    policy = load_policy(path)
    shaped, unshaped = compile_policy(policy), compile_policy(policy, shaped=False)
    assert [r.name for r in shaped.rules] == [r.name for r in unshaped.rules]
    freed = [r for r in shaped.rules if r.patterns[0].alias != STAGE]
    negated = sum(p.negated for r in shaped.rules for p in r.patterns)
    assert freed
    assert negated < sum(p.negated for r in unshaped.rules for p in r.patterns)
    assert _patterns(shaped) < _patterns(unshaped)


# --- the analysis, rule by rule -------------------------------------------------------------------


def _marker(stage: int) -> Pattern:
    return Pattern(STAGE, AllOf((Eq("t", STAGE), Eq("s", stage))))


def _value(node: str, stage: int, keys: tuple[str, ...] = ()) -> Rule:
    """A rule of `stage` deriving node's value (the value arrives in batch stage + 1)."""
    case = Pattern("c", Eq("t", CASE))
    action = EmitValue(VAL, node, Truth.TRUE, keys)
    return Rule(f"make-{node}", stage, (_marker(stage), case), action, "test")


def _reads(node: str, negated: bool = False, alias: str = "v") -> Pattern:
    return Pattern(alias, AllOf((Eq("t", VAL), Eq("n", node), Eq("v", 2))), negated)


def _shaped(rule: Rule, *producers: Rule) -> Rule:
    return shaping.shape([*producers, rule], derived=())[-1]


STATUS_RULE = EmitStatus("C", Status.MET)


def test_a_rule_reading_what_its_own_batch_brings_loses_its_marker():
    rule = Rule("r", 3, (_marker(3), _reads("n2")), STATUS_RULE, "test")
    assert _shaped(rule, _value("n2", 2)).patterns == (_reads("n2"),)


def test_a_rule_negating_what_its_own_batch_brings_keeps_its_marker():
    patterns = (_marker(3), _reads("n2"), _reads("m2", negated=True, alias="w"))
    rule = Rule("r", 3, patterns, STATUS_RULE, "test")
    assert _shaped(rule, _value("n2", 2), _value("m2", 2)) == rule
    # negating what an earlier batch brought is fine
    assert _shaped(rule, _value("n2", 2), _value("m2", 1)).patterns == patterns[1:]


def test_a_rule_reading_only_earlier_batches_keeps_its_marker():
    rule = Rule("r", 3, (_marker(3), _reads("n1")), STATUS_RULE, "test")
    assert _shaped(rule, _value("n1", 1)) == rule
    # nor does a case fact free a rule of stage 2
    case = Rule("r", 2, (_marker(2), Pattern("c", Eq("t", CASE))), STATUS_RULE, "test")
    assert _shaped(case) == case
    first = Rule("r", 1, (_marker(1), case.patterns[1]), STATUS_RULE, "test")
    assert _shaped(first).patterns == case.patterns[1:]  # in stage 1, case facts gate it


def test_a_rule_with_two_patterns_over_several_facts_keeps_its_marker():
    keyed = (_value("n2", 2, keys=("b",)), _value("m2", 2, keys=("b",)))
    patterns = (_marker(3), _reads("n2"), _reads("m2", alias="w"))
    rule = Rule("r", 3, patterns, STATUS_RULE, "test")
    assert _shaped(rule, *keyed) == rule
    # one of them over one fact at most (a value over no bound facts): freed
    assert _shaped(rule, keyed[0], _value("m2", 2)).patterns == patterns[1:]


def test_a_rule_no_positive_pattern_can_lead_keeps_its_marker():
    # durable_rules starts a match from a positive pattern, and a fact passing two
    # alternatives of an `any` in the first pattern would start two matches.
    either = Pattern("v", AllOf((Eq("t", VAL), Eq("n", "n2"), AnyTest((Eq("v", 1), Eq("v", 2))))))
    any_first = Rule("r", 3, (_marker(3), either), STATUS_RULE, "test")
    assert _shaped(any_first, _value("n2", 2)) == any_first
    negated = _reads("m1", True, "w")
    negated_first = Rule("r", 3, (_marker(3), negated, either), STATUS_RULE, "test")
    assert _shaped(negated_first, _value("n2", 2), _value("m1", 1)) == negated_first
    # another positive pattern without an `any` or a join leads instead
    led = Rule("r", 3, (_marker(3), negated, either, _reads("n2", alias="u")), STATUS_RULE, "t")
    shaped = _shaped(led, _value("n2", 2), _value("m1", 1))
    assert shaped.patterns == (_reads("n2", alias="u"), negated, either)
    joined = Pattern("u", AllOf((Eq("t", VAL), Eq("n", "n2"), Eq("v", 2), Join("k1", "v", "key"))))
    tied = Rule("r", 3, (_marker(3), negated, either, joined), STATUS_RULE, "test")
    assert _shaped(tied, _value("n2", 2), _value("m1", 1)) == tied


def test_a_derived_fact_no_rule_derives_frees_nothing():
    pattern = Pattern("d", Eq("t", "derived_thing"))
    rule = Rule("r", 2, (_marker(2), pattern), STATUS_RULE, "test")
    assert shaping.shape([rule], derived=("derived_thing",))[-1] == rule
    made = Rule(
        "make",
        1,
        (_marker(1), Pattern("c", Eq("t", CASE))),
        EmitFact("x", "derived_thing", {}, {}, ()),
        "test",
    )
    assert shaping.shape([made, rule], derived=("derived_thing",))[-1].patterns == (pattern,)


def test_negations_on_one_type_node_and_joins_merge():
    join = Join("k1", "b", "key")
    one = Pattern("x", AllOf((Eq("t", VAL), Eq("n", "a"), Eq("v", 2), join)), negated=True)
    two = Pattern("y", AllOf((Eq("t", VAL), Eq("n", "a"), Eq("v", 1), join)), negated=True)
    other = Pattern("z", AllOf((Eq("t", VAL), Eq("n", "b"), Eq("v", 1), join)), negated=True)
    bound = Pattern("b", Eq("t", "thing"))
    rule = Rule("r", 2, (_marker(2), bound, one, two, other), STATUS_RULE, "test")
    merged = shaping.merge_negations(rule)
    assert merged.patterns == (
        _marker(2),
        bound,
        Pattern(
            "x",
            AllOf((Eq("t", VAL), Eq("n", "a"), join, AnyTest((Eq("v", 2), Eq("v", 1))))),
            negated=True,
        ),
        other,  # another node: its own pattern
    )


def test_a_negation_that_says_less_absorbs_the_others():
    wide = Pattern("x", AllOf((Eq("t", "b"),)), negated=True)
    narrow = Pattern("y", AllOf((Eq("t", "b"), Cmp(">", "x", 3))), negated=True)
    rule = Rule("r", 1, (_marker(1), Pattern("a", Eq("t", "a")), narrow, wide), STATUS_RULE, "t")
    assert shaping.merge_negations(rule).patterns[-1] == Pattern("y", AllOf((Eq("t", "b"),)), True)


# --- fail closed --------------------------------------------------------------------------------


def test_a_rule_freed_by_mistake_is_an_engine_error():
    # A rule of stage 2 without its marker over a case fact fires in stage 1: were `ungate`
    # ever to free such a rule, the engine refuses the case rather than decide it.
    case = Pattern("c", Eq("t", CASE))
    rules = (
        Rule("early", 2, (case,), EmitStatus("C", Status.MET), "test"),
        Rule("late", 2, (_marker(2), case), EmitStatus("C", Status.MET), "test"),
    )
    program = Program(f"shaping-{uuid.uuid4().hex[:12]}", 2, rules, {}, {}, None)
    with pytest.raises(EngineError, match="of stage 2 fired in stage 1"):
        Engine.get().run(program, [{"t": CASE, "id": "case:1"}])
    fine = Program(f"shaping-{uuid.uuid4().hex[:12]}", 2, rules[1:], {}, {}, None)
    assert (
        Engine.get().run(fine, [{"t": CASE, "id": "case:1"}]).statuses["C"].fact["status"] == "met"
    )


def test_the_status_a_freed_rule_would_have_read_is_asserted():
    # `shape` runs after `_unread`: a status some pattern reads is still asserted, so a rule
    # gated by it can fire; a rule gated by a status never asserted would never fire, and the
    # clause reading it would get no status (Program.required: an engine error).
    status = Pattern("s", AllOf((Eq("t", STATUS), Eq("clause", "A"), Eq("status", "met"))))
    made = Rule(
        "make",
        1,
        (_marker(1), Pattern("c", Eq("t", CASE))),
        EmitStatus("A", Status.MET, asserted=False),
        "t",
    )
    rule = Rule("r", 2, (_marker(2), status), STATUS_RULE, "t")
    assert shaping.shape([made, rule], derived=())[-1] == rule


def test_negations_too_wide_to_merge_stay_apart():
    # The engine refuses a pattern of more than 32 expressions (error 113): a merge past
    # MAX_MERGED keeps the patterns as they were.
    wide = tuple(Cmp(">", f"x{i}", i) for i in range(shaping.MAX_MERGED))
    one = Pattern("x", AllOf((Eq("t", "b"), *wide)), negated=True)
    two = Pattern("y", AllOf((Eq("t", "b"), Cmp("<", "y", 1))), negated=True)
    rule = Rule("r", 1, (_marker(1), Pattern("a", Eq("t", "a")), one, two), STATUS_RULE, "t")
    assert shaping.merge_negations(rule) == rule
    narrow = Pattern("x", AllOf((Eq("t", "b"), *wide[:3])), negated=True)
    fits = Rule("r", 1, (_marker(1), Pattern("a", Eq("t", "a")), narrow, two), STATUS_RULE, "t")
    assert len(shaping.merge_negations(fits).patterns) == 3
