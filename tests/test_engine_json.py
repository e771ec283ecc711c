"""The JSON text given to durable_rules: rulesets and facts written alike (ruleset.engine_json).

durable_rules compares strings as the bytes it was given and does not decode `\\u` escapes, so
a rule and a fact written by two different encoders (one escaping non-ASCII text, one not)
would silently never match: a clause would lose its evidence.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.compile.program import STAGE, VAL, AllOf, EmitValue, Eq, Pattern, Program, Rule
from evaluator.compile.ruleset import engine_json
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.conditions import Truth

# any text a case or policy file can hold: no lone surrogates (the reader refuses them)
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


def _program(value: str) -> Program:
    marker = Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", 1))))
    wanted = Pattern("f", AllOf((Eq("t", "thing"), Eq("v", value))))
    rule = Rule("r0", 1, (marker, wanted), EmitValue(VAL, "n0", Truth.TRUE, ()), "X:requires")
    return Program(f"engine-json-{uuid.uuid4().hex[:8]}", 1, (rule,), {}, {}, None)


@settings(max_examples=40, deadline=None)
@given(value=TEXT, other=TEXT)
def test_a_rule_on_any_text_matches_exactly_the_facts_with_that_text(
    value: str, other: str
) -> None:
    program = _program(value)
    for text, fires in ((value, True), (other, other == value)):
        trace = Engine.get().run(program, [{"t": "thing", "id": "thing:1", "v": text}])
        assert (trace.value("n0") is Truth.TRUE) is fires, (value, text)


@pytest.mark.parametrize("value", ["plain", "é✓ ≥ 3 mm", "\U0001f600 \u2028"])
def test_cases_one_after_another_match_the_same_text(value: str) -> None:
    program = _program(value)
    cases = [[{"t": "thing", "id": "thing:1", "v": text}] for text in (value, value + "x", value)]
    traces = [Engine.get().run(program, facts) for facts in cases]
    assert [t.value("n0") is Truth.TRUE for t in traces] == [True, False, True]


@pytest.mark.parametrize(
    "value",
    ["plain", "é✓ ≥ 3 mm", 'tab\tquote" back\\slash', "\x01\x1f\x7f", "\u2028\U0001f600", 1.5],
)
def test_it_writes_what_json_writes_without_ascii_escapes(value: object) -> None:
    data = [{"t": "thing", "v": value, "n": 123456789012345.6, "z": -0.0001}]
    assert engine_json(data) == json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def test_what_json_cannot_carry_is_an_engine_error() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        engine_json(["\udc00"])
    program = _program("x")
    with pytest.raises(EngineError, match="cannot be given to the engine"):
        Engine.get().run(program, [{"t": "thing", "id": "thing:1", "v": 2**70}])
