"""Tests for compile.ruleset: engine limits refused with a clear PolicyError, lanes, numbers.

durable_rules fails late or not at all past its limits (durable-rules.md item 11): a rule joining
17 facts fails on the first assert (error 304), 257 rules sharing a pattern fail at creation
(error 108), and past 512 distinct values on one property creation never returns. The limits
are checked before the engine sees a ruleset; these tests never build one that would hang.
"""

from __future__ import annotations

import itertools
import json
import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import durable_rules_engine
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.compile import ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import (
    CASE,
    STAGE,
    VAL,
    AllOf,
    AnyTest,
    CmpField,
    EmitValue,
    Eq,
    Join,
    Ne,
    Pattern,
    Program,
    Rule,
    Test,
)
from evaluator.compile.ruleset import (
    LANE,
    MAX_DISTINCT_VALUES,
    MAX_EXPRESSIONS,
    MAX_PATTERNS,
    MAX_RULES,
    number,
    render,
)
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError, PolicyError
from evaluator.language.conditions import Truth
from evaluator.language.policies import Library, load_policy

HERE = Path(__file__).parent
_names = itertools.count()


# --- hand-built programs ------------------------------------------------------------------------


def marker(stage: int = 1) -> Pattern:
    return Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", stage))))


def rule(index: int, *patterns: Pattern, origin: str = "X-ONE:requires") -> Rule:
    action = EmitValue(VAL, f"n{index}", Truth.TRUE, ())
    return Rule(f"r{index}", 1, (marker(), *patterns), action, origin)


def program(rules: list[Rule]) -> Program:
    # a fresh name each time: a ruleset name registers once per process
    name = f"hand-built-{next(_names)}-{uuid.uuid4().hex[:8]}"
    return Program(name, 1, tuple(rules), {}, {}, None)


def case_pattern(alias: str = "case") -> Pattern:
    return Pattern(alias, Eq("t", CASE))


def refused(prog: Program) -> list[str]:
    """The engine_limit messages render gives; every problem must be one."""
    with pytest.raises(PolicyError) as caught:
        render(prog)
    assert {p.code for p in caught.value.problems} == {"engine_limit"}
    return [p.message for p in caught.value.problems]


def document(requires: dict[str, Any]) -> dict[str, Any]:
    clause = {
        "id": "X-ONE",
        "title": "x",
        "requires": requires,
        "cites": [1],
        "recommendation": "r",
    }
    return {
        "id": f"limits-{uuid.uuid4().hex[:8]}",
        "version": "1",
        "title": "limits",
        "status": "active",
        "effective": {"from": "2025-01-01"},
        "procedures": [{"procedure": "lumbar_fusion"}],
        "references": [{"id": 1, "citation": "c"}],
        "sections": [{"id": "s", "title": "S", "clauses": [clause]}],
    }


def compile_and_register(root: Path, data: dict[str, Any]) -> Program:
    path = root / "policies" / data["id"] / "1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data, indent=1))
    compiled = compile_policy(load_policy(path))
    Engine.get().prepare(compiled)
    return compiled


# --- facts joined in one rule -------------------------------------------------------------------


def test_a_rule_joining_more_than_16_facts_is_refused():
    joined = [case_pattern(f"c{i}") for i in range(MAX_PATTERNS)]  # + the stage marker: 17
    (message,) = refused(program([rule(0, *joined, origin="X-WIDE:requires")]))
    assert "17 facts" in message
    assert str(MAX_PATTERNS) in message
    assert "`X-WIDE:requires`" in message


def test_a_rule_joining_16_facts_registers():
    joined = [case_pattern(f"c{i}") for i in range(MAX_PATTERNS - 1)]
    Engine.get().prepare(program([rule(0, *joined)]))


def test_the_engine_itself_fails_on_17_joined_facts():
    # Why the limit is 16: creation succeeds, the first assert fails with error 304.
    patterns = [{f"a{i}": {"t": f"x{i}"}} for i in range(MAX_PATTERNS + 1)]
    name = f"raw-304-{uuid.uuid4().hex[:8]}"
    handle = durable_rules_engine.create_ruleset(name, json.dumps({"r": {"all": patterns}}))
    facts = [{"sid": "1", "id": f"i{i}", "t": f"x{i}"} for i in range(MAX_PATTERNS + 1)]
    with pytest.raises(durable_rules_engine.error, match="304"):
        durable_rules_engine.assert_facts(handle, json.dumps(facts))


def nested_every(depth: int) -> dict[str, Any]:
    require: dict[str, Any] = {"fact": "nicotine", "field": "status", "equals": "never"}
    for level in range(depth):
        require = {"every": {"fact": "fused_segment", "as": f"s{level}", "require": require}}
    return require


def test_a_policy_nesting_16_everys_is_refused(tmp_path):
    with pytest.raises(PolicyError) as caught:
        compile_and_register(tmp_path, document(nested_every(16)))
    assert {p.code for p in caught.value.problems} == {"engine_limit"}
    assert "nested 5 deep" in str(caught.value)  # the nesting limit, before the join limit


def test_a_policy_nesting_3_everys_compiles_and_runs(tmp_path):
    compiled = compile_and_register(tmp_path, document(nested_every(3)))
    facts = [
        {"t": "case", "id": "case:1"},
        {"t": "nicotine", "id": "nicotine:1", "status": "never"},
    ]
    facts += [
        {"t": "fused_segment", "id": f"fused_segment:{i}", "segment": "L4-L5"} for i in range(2)
    ]
    trace = Engine.get().run(compiled, facts)
    assert trace.statuses["X-ONE"].fact["status"] == "met"


# --- tests on one fact --------------------------------------------------------------------------


def wide(n: int) -> Test:
    # the type test plus n tests against the stage marker: a join takes one of the pattern's
    # expression slots and its `$and` two
    return AllOf((Eq("t", CASE), *(Join(f"f{i}", "stage", "s") for i in range(n))))


def test_a_fact_tested_past_the_engines_expression_slots_is_refused_where_written():
    (message,) = refused(program([rule(0, Pattern("case", wide(MAX_EXPRESSIONS - 1)))]))
    assert message.startswith(
        f"a condition in `X-ONE:requires` needs {MAX_EXPRESSIONS + 1} of the engine's "
        f"{MAX_EXPRESSIONS} expression slots on one fact"
    )


def test_a_fact_tested_up_to_the_engines_expression_slots_registers():
    Engine.get().prepare(program([rule(0, Pattern("case", wide(MAX_EXPRESSIONS - 2)))]))


# How a pattern's size grows with n, by the kind of test, and an n past the engine's limit
# where it has one: the engine counts groups and joins (error 113), never tests against a
# constant or the fact's own fields, however many.
SHAPES: dict[str, tuple[Callable[[int], Test], int]] = {
    "joins": (
        lambda n: AllOf((Eq("t", CASE), *(Join(f"f{i}", "stage", "s") for i in range(n)))),
        31,
    ),
    "constants": (lambda n: AllOf((Eq("t", CASE), *(Eq(f"f{i}", i) for i in range(n)))), 40),
    "not-equals": (lambda n: AllOf((Eq("t", CASE), *(Ne(f"f{i}", i) for i in range(n)))), 40),
    "field comparisons": (
        lambda n: AllOf((Eq("t", CASE), *(CmpField("<", f"f{i}", "g", 1) for i in range(n)))),
        40,
    ),
    "alternatives": (
        lambda n: AllOf(
            (Eq("t", CASE), *(AnyTest((Eq(f"a{i}", 1), Eq(f"b{i}", 2))) for i in range(n)))
        ),
        16,
    ),
    "nested groups": (
        lambda n: AllOf(
            (
                Eq("t", CASE),
                *(
                    AnyTest((AllOf((Eq(f"a{i}", 1), Ne(f"b{i}", 2))), Eq(f"c{i}", 3)))
                    for i in range(n)
                ),
            )
        ),
        9,
    ),
    "joined alternatives": (
        lambda n: AllOf(
            (
                Eq("t", CASE),
                *(AnyTest((Join(f"a{i}", "stage", "s"), Eq(f"b{i}", 2))) for i in range(n)),
            )
        ),
        11,
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_expression_slots_are_counted_as_the_engine_counts_them(shape: str) -> None:
    """Up to and past the engine's limit, `render` refuses exactly the patterns that
    durable_rules refuses with error 113 at registration, never one it runs."""
    build, most = SHAPES[shape]
    verdicts = []
    for n in range(1, most + 1):
        prog = program([rule(0, Pattern("case", build(n)))])
        try:
            render(prog)
            checked = "registers"
        except PolicyError:
            checked = "refused"
        name = f"raw-113-{uuid.uuid4().hex[:8]}"
        try:
            durable_rules_engine.create_ruleset(name, json.dumps(ruleset.definition(prog)))
            engine = "registers"
        except durable_rules_engine.error as error:
            engine = "refused" if "113" in str(error) else str(error)
        verdicts.append((n, checked, engine))
    assert [v for v in verdicts if v[1] != v[2]] == []


@pytest.mark.parametrize(
    ("cpt", "status"), [("20000", "met"), ("20039", "met"), ("29999", "not_met")]
)
def test_a_policy_with_a_long_one_of_registers_and_runs(tmp_path, cpt, status):
    # Forty alternatives against constants take two of the engine's expression slots, not
    # forty (they were refused until stop 25, by a count of tests rather than of slots).
    codes = [f"2{n:04d}" for n in range(40)]
    compiled = compile_and_register(
        tmp_path, document({"fact": "line", "field": "cpt", "one_of": codes})
    )
    facts = [{"t": "case", "id": "case:1"}, {"t": "line", "id": "line:1", "cpt": cpt}]
    trace = Engine.get().run(compiled, facts)
    assert trace.statuses["X-ONE"].fact["status"] == status


def word_policy(n: int) -> dict[str, Any]:
    data = document(
        {"fact": "nicotine", "field": "cotinine", "at_most": {"value": 10, "unit": "ng/mL"}}
    )
    data["settings"] = {"qualitative_words": {"below_threshold": [f"word{i}" for i in range(n)]}}
    return data


def excluded_codes(n: int) -> dict[str, Any]:
    return document({"fact": "line", "field": "cpt", "not_one_of": [f"2{i:04d}" for i in range(n)]})


def test_a_policy_that_compiles_always_registers(tmp_path):
    # Every size either is refused as a policy problem (engine_limit: statically, or by the
    # engine at registration) or registers: never an EngineError on the first case.
    outcomes = {}
    for shape, make in (("words", word_policy), ("not_one_of", excluded_codes)):
        for n in range(1, 21):
            try:
                compile_and_register(tmp_path / f"{shape}-{n}", make(n))
                outcomes[f"{shape} {n}"] = "registered"
            except (PolicyError, EngineError) as error:
                outcomes[f"{shape} {n}"] = error.code
    assert {k: v for k, v in outcomes.items() if v not in ("registered", "engine_limit")} == {}


# --- distinct values on one property ------------------------------------------------------------


def valued(rules: int, per_rule: int) -> Program:
    values = iter(range(rules * per_rule))
    out = []
    for index in range(rules):
        test = AnyTest(tuple(Eq("cpt", f"v{next(values)}") for _ in range(per_rule)))
        out.append(rule(index, Pattern("line", AllOf((Eq("t", "line"), test)))))
    return program(out)


def test_more_than_400_distinct_values_on_one_property_are_refused():
    # 600 values in one lane (LANE rules): past 512 creation would never return.
    (message,) = refused(valued(LANE, 600 // LANE))
    assert "600 distinct values" in message
    assert "`cpt`" in message


def test_400_distinct_values_on_one_property_are_accepted():
    render(valued(LANE, MAX_DISTINCT_VALUES // LANE))
    assert MAX_DISTINCT_VALUES < 512


def test_more_than_4096_rules_are_refused():
    rules = [rule(i, case_pattern()) for i in range(MAX_RULES)]  # + the catch-all
    messages = refused(program(rules))
    assert any(f"{MAX_RULES} rules" in m for m in messages)


def test_every_limit_is_reported_at_once():
    joined = [case_pattern(f"c{i}") for i in range(MAX_PATTERNS)]
    prog = program([rule(0, *joined), rule(1, Pattern("case", wide(MAX_EXPRESSIONS + 5)))])
    assert len(refused(prog)) == 2


# --- lanes: more than 256 rules sharing a pattern -----------------------------------------------


def shared(n: int) -> Program:
    return program([rule(i, case_pattern()) for i in range(n)])


def test_rules_sharing_a_pattern_are_spread_over_lanes():
    Engine.get().prepare(shared(300))


def lane_tests(expression: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in expression["$and"] if "$nex" in t and str(*t["$nex"]).startswith("_lane")]


def test_only_lanes_past_the_first_test_their_lane():
    # Lane 0's typed patterns are told apart from later lanes' by the lane test those have:
    # leaving it out is a third fewer pattern tests to register (benchmarks/README.md, stop 25)
    rendered = render(shared(2 * LANE + 5))
    for index in (0, LANE - 1, LANE, 2 * LANE + 4):
        lane = index // LANE
        for pattern in rendered[f"r{index}"]["all"]:
            (expression,) = pattern.values()
            expected = [] if lane == 0 else [{"$nex": {f"_lane{lane}": 1}}]
            assert lane_tests(expression) == expected
            # the type test first, then the lane's
            assert expression["$and"][0].keys() == {"t"}
            assert expression["$and"][1 : 1 + len(expected)] == expected
    # a pattern without a type test keeps its lane's node, even in lane 0
    untyped = Pattern("case", AllOf((Eq("f", 1), Eq("g", 2))))
    expression = ruleset._with_lane(untyped.test, 0)
    assert lane_tests(expression) == [{"$nex": {"_lane0": 1}}]


def test_rules_sharing_a_pattern_in_every_lane_all_fire():
    # one case fact matches the same pattern in lane 0 (no lane test) and in lanes 1 and 2
    prog = shared(2 * LANE + 5)
    trace = Engine.get().run(prog, [{"t": CASE, "id": "case:1"}])
    fired = {node for node, _ in trace.values}
    assert fired == {f"n{i}" for i in range(2 * LANE + 5)}


def test_without_lanes_the_engine_refuses_257_rules_sharing_a_pattern(monkeypatch):
    monkeypatch.setattr(ruleset, "LANE", 10**6)
    # the cached text of these very rules has lanes: a renderer changed at run time must render
    monkeypatch.setenv("NECESSITY_CACHE_DIR", "off")
    with pytest.raises(PolicyError, match="108"):
        Engine.get().prepare(shared(300))


def test_shipped_policy_with_hundreds_of_rules_registers_and_runs():
    policy = Library().get("lumbar-fusion@2025.1")
    # per node: folded, it needs fewer than 256 rules (248)
    compiled = compile_policy(policy, fold=False)
    assert len(compiled.rules) > 256
    Engine.get().prepare(compiled)
    trace = Engine.get().run(
        compiled, [{"t": "case", "id": "case:1"}, {"t": "request", "id": "request:1"}]
    )
    assert set(trace.statuses) == {c.id for c in policy.clauses}
    assert trace.verdict is not None


def test_render_returns_a_fresh_definition():
    prog = shared(3)
    first = render(prog)
    first["r0"]["all"].clear()
    assert render(prog)["r0"]["all"]
    assert "catch_all" in first


def test_each_rule_spells_out_its_settings_before_its_patterns():
    # Registering reads a setting by scanning the rule's keys up to it: one left out or
    # written after `all` cost a scan of every pattern (ruleset._build). The values are the
    # engine's own defaults, so the network registered is the one the shorter text gave.
    counted = Rule(
        "r1", 1, (marker(), case_pattern()), EmitValue(VAL, "n1", Truth.TRUE, ()), "X", 3
    )
    definition = render(program([rule(0, case_pattern()), counted]))
    assert list(definition["r0"]) == ["pri", "count", "cap", "dist", "all"]
    assert {k: definition["r0"][k] for k in ("pri", "count", "cap", "dist")} == {
        "pri": 0,
        "count": 1,
        "cap": 0,
        "dist": 0,
    }
    assert list(definition["r1"]) == ["pri", "count", "cap", "dist", "all"]
    assert definition["r1"]["count"] == 3


def numbers_in(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers_in(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return []


@pytest.mark.parametrize("path", list(Library().paths()), ids=lambda p: p.parent.name)
def test_rendered_shipped_rulesets_write_plain_numbers(path):
    found = numbers_in(render(compile_policy(load_policy(path))))
    assert found
    for value in found:
        assert math.isfinite(value)
        assert "e" not in json.dumps(value).lower()


# --- numbers ------------------------------------------------------------------------------------

finite = st.floats(
    allow_nan=False,
    allow_infinity=False,
    min_value=-1e15,
    max_value=1e15,
    exclude_min=True,
    exclude_max=True,
)


@given(finite)
def test_number_never_writes_an_exponent(x):
    text = json.dumps(number(x))
    assert "e" not in text.lower()
    # as stated where Python writes it plainly, else four places (half a unit of the 4th at most)
    assert math.isclose(float(text), x, rel_tol=1e-15, abs_tol=5.001e-5)


@given(st.integers(-(10**18), 10**18))
def test_number_keeps_integers(n):
    assert number(n) == n
    assert type(number(n)) is int


def test_number_keeps_booleans():
    assert number(True) is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e-07, 0),
        (2.5, 2.5),
        (3.0, 3),
        (0.00012, 0.00012),  # kept: rounded, 7.99999 % was 8.0 and not "below 8.0 %"
        (-0.00005, -0.0001),  # written -5e-05: rounded
        (-0.0, 0),
        (123456789.123456, 123456789.123456),
    ],
    ids=["tiny", "decimal", "whole-float", "kept", "rounded", "negative-zero", "large"],
)
def test_number_writes_fixed_decimals(value, expected):
    assert number(value) == expected
    assert "e" not in json.dumps(number(value))


@pytest.mark.parametrize(
    "value",
    [math.inf, -math.inf, math.nan, 1e15, -1e16],
    ids=["inf", "-inf", "nan", "1e15", "-1e16"],
)
def test_number_rejects_what_the_engine_cannot_parse(value):
    with pytest.raises(ValueError, match="out of range"):
        number(value)
