"""Every rendered pattern tests its fact type first (compile.ruleset._hoist_type, issue 10).

Folding writes "a fact passing the false test, or one without the field" as an `any` whose
alternatives each test the type. Rendered as it stood, such a pattern had no type test of its
own: every fact of the case, every stage marker and every derived fact went down its alpha path
and was tested against each alternative (a fifth of durable_rules' instructions on the bench
policy). The renderer now tests the shared type first. These tests check that the rewritten
pattern matches exactly the facts the old one did, in the real engine, that every shipped and
bench pattern now tests its type, and that a hoisted pattern that matched too few facts would
be an engine error, never another decision (fail closed).
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest

from benchmarks import benchgen
from benchmarks.compare import POLICIES, POLICY, parse
from evaluator import api
from evaluator.case.cases import Case
from evaluator.compile import folding, ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import (
    STAGE,
    VAL,
    Absent,
    AllOf,
    AnyTest,
    Cmp,
    EmitValue,
    Eq,
    Ne,
    Pattern,
    Program,
    Rule,
    Test,
)
from evaluator.compile.ruleset import render
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.conditions import Truth
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
X, Y = Eq("t", "x_fact"), Eq("t", "y_fact")
_names = itertools.count()


def test_an_any_whose_alternatives_share_a_type_tests_it_first() -> None:
    low, absent = Cmp("<", "a", 3.0), Absent("a")
    any_test = AnyTest((AllOf((X, low)), AllOf((X, absent))))
    assert ruleset._hoist_type([any_test]) == [X, AnyTest((low, absent))]
    # nested conjunctions are flattened; other conjuncts keep their order after the type
    other = Ne("b", "q")
    nested = AnyTest((AllOf((AllOf((X, low)), other)), AllOf((X, absent))))
    assert ruleset._hoist_type([other, nested]) == [
        X,
        other,
        AnyTest((AllOf((low, other)), absent)),
    ]
    # an alternative that is the type alone makes the `any` true once the type is tested
    assert ruleset._hoist_type([AnyTest((X, AllOf((X, low))))]) == [X]
    # the hoisted type is tested first, then the lane (none in lane 0: tests/test_ruleset.py)
    assert ruleset._with_lane(any_test, 0)["$and"][0] == {"t": "x_fact"}
    rendered = ruleset._with_lane(any_test, 1)
    assert rendered["$and"][:2] == [{"t": "x_fact"}, {"$nex": {"_lane1": 1}}]


@pytest.mark.parametrize(
    "parts",
    [
        # alternatives of two types, or one without a type: the `any` must stay whole
        [AnyTest((AllOf((X, Cmp("<", "a", 3.0))), AllOf((Y, Absent("a")))))],
        [AnyTest((AllOf((X, Cmp("<", "a", 3.0))), Absent("a")))],
        # a pattern that already tests its type
        [X, AnyTest((AllOf((X, Cmp("<", "a", 3.0))), AllOf((X, Absent("a")))))],
    ],
)
def test_the_hoist_leaves_other_patterns_alone(parts: list[Test]) -> None:
    assert ruleset._hoist_type(parts) == parts


# --- the same matches in the engine ------------------------------------------------------------

TESTS: dict[str, Test] = {
    "low-or-absent": AnyTest((AllOf((X, Cmp("<", "a", 3.0))), AllOf((X, Absent("a"))))),
    "other-or-absent": AnyTest((AllOf((X, Ne("b", "p"))), AllOf((X, Absent("b"))))),
    "two-fields": AnyTest(
        (AllOf((X, Cmp(">=", "a", 3.0), Eq("b", "p"))), AllOf((X, Absent("a"), Absent("b"))))
    ),
    "type-alone": AnyTest((X, AllOf((X, Eq("b", "q"))))),
    "mixed-types": AnyTest((AllOf((X, Eq("b", "p"))), AllOf((Y, Eq("b", "p"))))),
}


def _program() -> Program:
    marker = Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", 1))))
    rules = tuple(
        Rule(f"r{i}", 1, (marker, Pattern("f", test)), EmitValue(VAL, name, Truth.TRUE, ()), name)
        for i, (name, test) in enumerate(TESTS.items())
    )
    # a fresh name each time: the engine registers a ruleset once per name
    return Program(f"hoist-{next(_names)}-{uuid.uuid4().hex[:8]}", 1, rules, {}, {}, None)


def _facts() -> list[dict[str, Any]]:
    facts = []
    values_a: list[int | None] = [None, 1, 5]
    values_b: list[str | None] = [None, "p", "q"]
    for index, (kind, a, b) in enumerate(
        itertools.product(("x_fact", "y_fact"), values_a, values_b)
    ):
        fact: dict[str, Any] = {"t": kind, "id": f"{kind}:{index}"}
        if a is not None:
            fact["a"] = a
        if b is not None:
            fact["b"] = b
        facts.append(fact)
    return facts


def _matches(monkeypatch: pytest.MonkeyPatch, hoist: bool) -> list[tuple[str, str]]:
    with monkeypatch.context() as patched:
        patched.setenv("NECESSITY_CACHE_DIR", "off")
        if not hoist:
            patched.setattr(ruleset, "_hoist_type", lambda parts: parts)
        program = _program()
        trace = Engine.get().run(program, _facts(), trace=True)
    assert trace.log is not None
    # a list: a fact passing two alternatives must not fire twice either
    return sorted((program.rule(f.rule).origin, f.matched["f"]) for f in trace.log)


def test_hoisted_patterns_match_the_same_facts_in_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _matches(monkeypatch, hoist=False)
    after = _matches(monkeypatch, hoist=True)
    assert after == before
    assert len(after) == len(set(after))  # `type-alone`: x_fact with b = q passes both
    # not vacuous: each rule matched, and only facts of its type(s)
    assert {name for name, _ in after} == set(TESTS)
    assert all(fact.startswith("x_fact") for name, fact in after if name != "mixed-types")
    assert ("low-or-absent", "x_fact:0") in after  # no `a`
    assert ("low-or-absent", "x_fact:3") in after  # a = 1
    assert ("low-or-absent", "x_fact:6") not in after  # a = 5
    with_p = {fact["id"] for fact in _facts() if fact.get("b") == "p"}
    assert {fact for name, fact in after if name == "mixed-types"} == with_p


# --- every shipped and bench pattern ---------------------------------------------------------


def _programs() -> list[Program]:
    programs = []
    for root in (None, ROOT / "benchmarks" / "policies"):
        library = Library() if root is None else Library(root)
        programs += [api.program_for(policy) for policy in library.all()]
    return programs


def test_every_rendered_shipped_and_bench_pattern_tests_its_type_first() -> None:
    for program in _programs():
        for name, rule in render(program).items():
            if name == "catch_all":
                continue
            for pattern in rule["all"]:
                ((alias, expr),) = pattern.items()
                first = expr["$and"][0]
                assert set(first) == {"t"}, f"{program.name} {name} {alias}: {expr}"


# --- fail closed ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench_cases() -> list[Case]:
    _, cases = parse(benchgen.generate(300))
    return cases


def _statuses(case: Case, policy: Any) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    try:
        decision = api.evaluate(case, policy)
    except EngineError:
        return None
    clauses = tuple((c.id, c.status.value) for c in decision.clauses)
    return decision.determination.value, clauses


def test_a_hoisted_pattern_matching_too_few_facts_is_an_engine_error(
    monkeypatch: pytest.MonkeyPatch, bench_cases: list[Case]
) -> None:
    """Drop the last alternative of every hoisted `any` (a fact without the field then matches
    none of the clause's terms): each bench case must keep its decision or fail with an
    EngineError, and some must fail: the clause is left without a status, never defaulted."""
    policy = Library(POLICIES).get(POLICY)
    before = [_statuses(case, policy) for case in bench_cases]
    assert all(outcome is not None for outcome in before)
    hoist = ruleset._hoist_type
    broken: list[Test] = []

    def narrower(parts: list[Test]) -> list[Test]:
        out = hoist(parts)
        if out is parts:
            return out
        hoisted = [p for p in out if isinstance(p, AnyTest) and len(p.tests) > 1]
        broken.extend(hoisted)
        return [AnyTest(p.tests[:-1]) if p in hoisted else p for p in out]

    monkeypatch.setattr(ruleset, "_hoist_type", narrower)
    # Without folding's merge of the patterns over one fact (`folding._one_fact`), which
    # tests the type once itself (tests/test_one_fact.py breaks those `any`s the same way).
    monkeypatch.setattr(folding, "_one_fact", lambda _tree, patterns, action: (patterns, action))
    monkeypatch.setenv("NECESSITY_CACHE_DIR", "off")
    program = compile_policy(policy)
    mutated = dataclasses.replace(program, name=f"{program.name}~narrower-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(api, "program_for", lambda _policy: mutated)
    after = [_statuses(case, policy) for case in bench_cases]
    assert broken, "no hoisted pattern was rendered"
    changed = [
        case.case_id
        for case, old, new in zip(bench_cases, before, after, strict=True)
        if new is not None and new != old
    ]
    assert changed == []
    assert any(new is None for new in after)
