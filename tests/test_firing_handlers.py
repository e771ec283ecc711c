"""A firing runs its rule's handler, made once per Program (`durable._plans`), issue 10.

Everything a firing needs is worked out per rule in advance: its stage (by the table it is in),
its status text, its records, its fact template. These tests pin that this derives what the
engine matched, fact for fact, and fails closed where a handler could otherwise skip or
default something. The checks that stay engine errors (another stage's rule, an unknown rule,
an action the engine cannot run, contradictions) are in tests/test_engine.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from evaluator.compile.program import (
    CASE,
    STAGE,
    VAL,
    AllOf,
    EmitFact,
    EmitStatus,
    EmitValue,
    Eq,
    Pattern,
    Program,
    Record,
    Rule,
)
from evaluator.engine import durable as engine
from evaluator.engine.durable import Emitted, Engine, Trace
from evaluator.language.conditions import Truth
from evaluator.language.model import Status
from tests.test_sessions import _judged


@pytest.fixture(scope="module")
def judged() -> list[tuple[Program, list[dict[str, Any]]]]:
    return _judged()


def _emitted(trace: Trace) -> Iterator[Emitted]:
    yield from trace.values.values()
    yield from trace.statuses.values()
    yield from trace.candidates
    yield from trace.derived


def test_every_firing_is_counted_once_traced_or_not(judged):
    # Firings are counted per drain rather than per firing; the log records each one.
    for program, facts in judged:
        traced = Engine.get().run(program, facts, trace=True)
        plain = Engine.get().run(program, facts)
        assert traced.log is not None
        assert traced.firings == len(traced.log) == plain.firings > 0, program.name
        # tracing observes: the same values, statuses, candidates, facts and verdict
        assert (plain.values, plain.statuses, plain.candidates, plain.derived) == (
            traced.values,
            traced.statuses,
            traced.candidates,
            traced.derived,
        )
        assert plain.verdict == traced.verdict


def test_what_a_firing_derived_names_the_facts_it_matched(judged):
    # A status handler builds the ids of the matched facts only when it keeps something (and
    # `_keep` shares them between its records): whatever it keeps names exactly the facts of
    # one firing of its rule, never none or another firing's.
    checked = 0
    for program, facts in judged:
        trace = Engine.get().run(program, facts, trace=True)
        assert trace.log is not None
        fired: dict[str, list[dict[str, str]]] = {}
        for firing in trace.log:
            fired.setdefault(firing.rule, []).append(dict(firing.matched))
        for emitted in _emitted(trace):
            assert type(emitted) is Emitted  # built by tuple.__new__, a real Emitted
            assert emitted == Emitted(emitted.fact, emitted.rule, emitted.matched)
            assert dict(emitted.matched) in fired[emitted.rule], (program.name, emitted)
            checked += 1
        # the stage marker is no evidence
        assert all("stage" not in firing.matched for firing in trace.log)
    # and bound facts are there to name: a check of empty mappings only would prove nothing
    assert checked > 100


def test_the_plans_are_made_once_per_program(judged):
    program, _ = judged[0]
    plans = engine._plans(program)
    assert engine._plans(program) is plans
    # every rule is in its own stage's table and no other
    for rule in program.rules:
        assert [s for s, table in plans.stages.items() if rule.name in table] == [rule.stage]


def _constant_fact_rules(*values: Any) -> Program:
    marker = Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", 1))))
    rules = tuple(
        Rule(
            f"r{i}",
            1,
            (marker, Pattern("case", Eq("t", CASE))),
            EmitFact(f"r{i}", "made", {"x": value}, {}, ()),
            "hand",
        )
        for i, value in enumerate(values)
    )
    return Program("constants", 1, rules, {}, {}, None)


def _fire_all(program: Program) -> engine._Session:
    """Run every rule's handler once, in order, without the engine."""
    session = engine._Session(0, program, "7")
    session.stage = 1
    handlers = engine._plans(program).stages[1]
    for rule in program.rules:
        handlers[rule.name](session, {"case": {"key": "case:1", "t": CASE}})
    return session


def test_a_nan_constant_is_never_taken_for_a_null_one():
    # Derived facts are a set, told apart by their JSON text, which orjson writes faster than
    # json.dumps but with NaN as null: a rule whose constant is NaN keeps json.dumps's text,
    # so its fact is not dropped as "already derived" and fails where a NaN must (the engine
    # cannot take it).
    session = _fire_all(_constant_fact_rules(None, 1))
    assert [f["id"] for f in session.pending] == ["made0", "made1"]
    with pytest.raises(ValueError, match="out of range"):
        _fire_all(_constant_fact_rules(None, math.nan))
    with pytest.raises(ValueError, match="out of range"):
        _fire_all(_constant_fact_rules(None, math.inf))


def test_derived_facts_equal_as_json_are_one_fact_and_no_others():
    session = _fire_all(_constant_fact_rules("a", "a", 1, 1.0, True, 0.0, -0.0, 2**70, 2**70))
    # 1, 1.0 and true differ in JSON, as 0.0 and -0.0 do; the repeated ones are dropped
    kept = [e.fact["x"] for e in session.trace.derived]
    assert [type(x) for x in kept] == [str, int, float, bool, float, float, int]
    assert kept == ["a", 1, 1.0, True, 0.0, -0.0, 2**70]


def test_the_text_a_derived_fact_is_told_apart_by():
    fact = {"t": "made", "x": 1, "a": "é"}
    fast = engine._content(fact, exact=True)
    assert fast == engine._content(dict(reversed(fact.items())), exact=True)  # sorted keys
    slow = engine._content(fact, exact=False)
    assert fast != slow  # two forms, never equal
    # what orjson cannot write takes json.dumps's form
    assert engine._content({"x": 2**70}, exact=True) == engine._content({"x": 2**70}, exact=False)
    assert engine._content({"x": math.nan}, exact=False) != engine._content(
        {"x": None}, exact=False
    )


def test_a_value_only_recorded_so_far_is_still_asserted_when_a_rule_derives_it():
    # A folded rule keeps the node values its patterns establish without asserting them; a
    # later firing that derives the same value for a rule to read must still give it to the
    # engine: dropped as "already derived", the rules reading it would never see it.
    marker = Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", 1))))
    case = Pattern("case", Eq("t", CASE))
    actions: tuple[EmitStatus | EmitValue, ...] = (
        EmitStatus("X-ONE", Status.MET, (Record("n", Truth.TRUE),)),
        EmitValue(VAL, "n", Truth.TRUE, ()),
    )
    rules = tuple(
        Rule(f"r{i}", 1, (marker, case), action, "hand") for i, action in enumerate(actions)
    )
    session = _fire_all(Program("recorded", 1, rules, {}, {}, None))
    asserted = [f for f in session.pending if f["t"] == VAL]
    assert [(f["n"], f["v"]) for f in asserted] == [("n", 2)]
    kept = session.trace.values[("n", ())]
    assert kept.rule == "r1"
    assert kept.fact["id"] == asserted[0]["id"]


def _kept_by_status_rule() -> tuple[Program, engine._Handler]:
    marker = Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", 1))))
    records = (Record("n", Truth.TRUE, "f0"), Record("m", Truth.FALSE))
    rule = Rule(
        "r0",
        1,
        (marker, Pattern("f0", Eq("t", "nicotine"))),
        EmitStatus("X-ONE", Status.MET, records),
        "hand",
    )
    program = Program("kept", 1, (rule,), {}, {}, None)
    return program, engine._plans(program).stages[1]["r0"]


def test_a_status_rule_keeps_its_node_values_naming_the_fact_that_decided_them():
    # A status firing keeps its records inline (not through `_keep`): the same facts, in the
    # same field order, as `_keep` builds for a value rule.
    program, fire = _kept_by_status_rule()
    session = engine._Session(0, program, "7")
    stage = {"t": STAGE, "key": "stage1"}
    fire(session, {"f0": {"t": "nicotine", "key": "nicotine:1"}, "stage": stage})
    n, m = session.trace.values[("n", ())], session.trace.values[("m", ())]
    assert list(n.fact.items()) == [("t", VAL), ("n", "n"), ("v", 2), ("f", "nicotine:1")]
    assert list(m.fact.items()) == [("t", VAL), ("n", "m"), ("v", 0)]
    assert n.rule == m.rule == "r0"
    assert n.matched == m.matched == {"f0": "nicotine:1"}
    # a second firing (another candidate fact) keeps the first one's values
    fire(session, {"f0": {"t": "nicotine", "key": "nicotine:2"}, "stage": stage})
    assert session.trace.values[("n", ())] is n


def test_a_status_rule_whose_firing_lacks_the_deciding_fact_keeps_nothing():
    # Fail closed: a record whose source fact the engine did not send is never kept without
    # it (nor with a made-up id); the firing fails and no status is derived.
    program, fire = _kept_by_status_rule()
    session = engine._Session(0, program, "7")
    with pytest.raises(KeyError):
        fire(session, {"stage": {"t": STAGE, "key": "stage1"}})
    assert session.trace.values == {}
    assert session.trace.statuses == {}
