"""Folding reads the one fact of a type that occurs once through one pattern (issue 10).

A folded rule used to read such a fact (nicotine, diabetes, physical therapy) through one
positive pattern per leaf: durable_rules let the one fact fill each of them (`dist: 0`), at the
cost of a beta node, a join per case and the fact's JSON once more in the firing's message.
`folding._one_fact` merges them. These tests check that every example and generated bench case
gets the same firings, in the same order, asserting the same facts and the same decision, from
the merged program as from one compiled without the merge; that the shipped and bench
programs lost patterns that way; and that a merge dropping a leaf's tests is an engine error
on the bench cases, never another decision.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.case import cases
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
    Present,
    Program,
    Rule,
    Test,
)
from evaluator.decide import decision
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import EngineError
from evaluator.language.conditions import Truth
from evaluator.language.model import Policy
from evaluator.language.policies import Library
from tests.engine_runs import governed
from tests.test_assembly import POLICIES, bench_cases, digest

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


def _compiled(
    policy: Policy, monkeypatch: pytest.MonkeyPatch, suffix: str, **patch: Any
) -> Program:
    """The policy compiled with folding's functions patched, under a name of its own (the
    engine keeps one ruleset per name) and kept out of the disk cache of rulesets (its key
    does not know of the patch: the next compile of the policy would read this text)."""
    with monkeypatch.context() as m:
        for name, value in patch.items():
            m.setattr(folding, name, value)
        m.setattr(ruleset, "cache_key", lambda *_a, **_k: None)
        program = compile_policy(policy)
    return dataclasses.replace(program, name=program.name + suffix)


def _unmerged(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> Program:
    return _compiled(policy, monkeypatch, "~unmerged", _one_fact=lambda _t, p, a: (p, a))


def _ids(matched: dict[str, str]) -> list[str]:
    """The facts a firing matched, each once, in order: the merge reads them through fewer
    aliases."""
    return list(dict.fromkeys(matched.values()))


def _observed(policy: Policy, program: Program, case: Case, facts: list[dict[str, Any]]) -> Any:
    """What a run gives: firings (rule, facts matched, facts asserted, verdict), the values,
    candidates, derived facts and statuses, and the decision assembled from them."""
    try:
        trace: Trace = Engine.get().run(program, facts, trace=True)
    except EngineError as error:
        return ("EngineError", str(error))
    assert trace.log is not None

    def fact(asserted: Any) -> dict[str, Any]:
        return {k: v for k, v in asserted.items() if k != "sid"}  # the session's own number

    assembled = decision.assemble(policy, program, trace, case.case_id, facts, [])
    return (
        [
            (f.rule, _ids(dict(f.matched)), [fact(a) for a in f.asserted], f.verdict)
            for f in trace.log
        ],
        [(k, dict(e.fact), e.rule, _ids(dict(e.matched))) for k, e in trace.values.items()],
        [(dict(e.fact), e.rule) for e in trace.candidates],
        [(dict(e.fact), e.rule) for e in trace.derived],
        [(k, dict(e.fact), e.rule) for k, e in trace.statuses.items()],
        trace.verdict,
        trace.firings,
        digest(assembled),
    )


def _runs(
    judged: list[tuple[Case, Library]],
) -> Iterator[tuple[str, Policy, Program, Case, list[dict[str, Any]]]]:
    for label, case, effective, program, facts in governed(judged):
        yield label, effective, program, case, facts


def _check_same(judged: list[tuple[Case, Library]], monkeypatch: pytest.MonkeyPatch) -> None:
    unmerged: dict[str, Program] = {}
    checked = 0
    for label, policy, program, case, facts in _runs(judged):
        other = unmerged.get(program.name)
        if other is None:
            other = unmerged[program.name] = _unmerged(policy, monkeypatch)
        assert [r.name for r in program.rules] == [r.name for r in other.rules], label
        assert _observed(policy, program, case, facts) == _observed(policy, other, case, facts), (
            label
        )
        checked += 1
    assert checked


def test_every_example_fires_and_decides_as_unmerged(monkeypatch):
    library = Library()
    _check_same([(cases.load_case(path), library) for path in EXAMPLES], monkeypatch)


def test_generated_bench_cases_fire_and_decide_as_unmerged(monkeypatch):
    library = Library(POLICIES)
    _check_same([(case, library) for case in bench_cases(150, seed=20261207)], monkeypatch)


def _patterns(program: Program) -> int:
    return sum(len(rule.patterns) for rule in program.rules)


def test_shipped_and_bench_programs_read_the_one_fact_once(monkeypatch):
    # The comparisons above mean something only if the merge changed the programs they run.
    bench = Library(POLICIES).get("bench-fusion")
    fusion = Library().get("lumbar-fusion@2025.1")
    for policy in (bench, fusion):
        merged, unmerged = compile_policy(policy), _unmerged(policy, monkeypatch)
        assert _patterns(merged) < _patterns(unmerged), policy.id
    # bench-fusion: no folded rule reads nicotine, diabetes or physical therapy twice
    for rule in compile_policy(bench).rules:
        positive = [p for p in rule.patterns if not p.negated and p.alias.startswith("f")]
        kinds = [_kind(p) for p in positive]
        assert len(kinds) == len(set(kinds)), rule


def _kind(pattern: Pattern) -> object:
    return next(t for t in folding.parts(pattern.test) if getattr(t, "field", None) == "t")


def _mutated(monkeypatch: pytest.MonkeyPatch, suffix: str, both: Any) -> tuple[int, int]:
    """The bench cases through the bench program compiled with `folding._both` replaced:
    how many were engine errors and how many differ otherwise from the correct program (the
    comparisons above would fail on those). No case may get another determination without an
    engine error."""
    policy = Library(POLICIES).get("bench-fusion")
    broken = _compiled(policy, monkeypatch, suffix, _both=both)
    library = Library(POLICIES)
    errors = differences = 0
    for label, effective, program, case, facts in _runs(
        [(case, library) for case in bench_cases(150, seed=20261207)]
    ):
        good = _observed(effective, program, case, facts)
        bad = _observed(effective, broken, case, facts)
        if bad[0] == "EngineError":
            errors += 1
            continue
        assert bad[5] == good[5], label
        differences += bad != good
    return errors, differences


def test_a_merge_that_drops_a_leaf_is_caught(monkeypatch):
    """Fail closed: a merged pattern without the second leaf's tests matches facts its term
    does not admit. Where another outcome's rule matches them too, that is two statuses (or
    two values of a node), an engine error; where the extra firing says the same status with
    other evidence, the comparisons above fail."""
    errors, differences = _mutated(monkeypatch, "~dropped", lambda first, _other: first)
    assert errors
    assert differences


_both = folding._both


def _fewer_alternatives(first: Pattern, other: Pattern) -> Pattern:
    """`folding._both`, with the last alternative of each `any` it writes dropped."""
    merged = _both(first, other)
    tests = folding.parts(merged.test)
    narrower = [
        AnyTest(t.tests[:-1]) if isinstance(t, AnyTest) and len(t.tests) > 1 else t for t in tests
    ]
    return Pattern(merged.alias, AllOf(tuple(narrower)))


def test_a_merge_that_matches_too_few_facts_is_caught(monkeypatch):
    """Fail closed: a merged pattern that lost an alternative of an `any` (a fact without the
    field) leaves the clause without a status where no other term holds, an engine error
    (`Program.required`); where another term of the same status holds (on the bench cases,
    each time), the comparisons above fail: that firing's evidence is lost."""
    errors, differences = _mutated(monkeypatch, "~narrower", _fewer_alternatives)
    assert errors + differences


# --- `_pruned`: the `any`s a merge writes, rid of what the conjunction decides -----------------

A_ABSENT, B_ABSENT = Absent("a"), Absent("b")
A_LOW, B_P = Cmp("<", "a", 3.0), Eq("b", "p")


def test_an_any_implied_by_the_conjunction_goes() -> None:
    assert folding._pruned([A_ABSENT, AnyTest((B_P, A_ABSENT))]) == [A_ABSENT]


def test_alternatives_the_conjunction_rules_out_go() -> None:
    # `a` absent: no test on `a` can pass; `b` tested: `b` is not absent
    ruled = AnyTest((AllOf((Present("a"), Ne("a", 1))), B_ABSENT, AllOf((A_ABSENT, B_P))))
    assert folding._pruned([A_ABSENT, B_P, ruled]) == [A_ABSENT, B_P]
    # one alternative left: its tests join the conjunction
    assert folding._pruned([A_ABSENT, AnyTest((A_LOW, B_P))]) == [A_ABSENT, B_P]
    # two left: the `any` stays, with those two
    two = AnyTest((A_LOW, B_P, B_ABSENT))
    assert folding._pruned([A_ABSENT, two]) == [A_ABSENT, AnyTest((B_P, B_ABSENT))]


def test_an_any_nothing_rules_out_stays_whole() -> None:
    whole = AnyTest((A_LOW, A_ABSENT))
    assert folding._pruned([B_P, whole]) == [B_P, whole]
    # every alternative ruled out: the pattern matches nothing either way; the engine takes no
    # empty `$or`
    assert folding._pruned([A_ABSENT, AnyTest((A_LOW, Eq("a", 1)))]) == [
        A_ABSENT,
        AnyTest((A_LOW, Eq("a", 1))),
    ]


def test_pruned_patterns_match_the_same_facts_in_the_engine(monkeypatch) -> None:
    """Each conjunction above, pruned and not, on every combination of `a` and `b` absent or
    given: the same facts match in durable_rules."""
    kind = Eq("t", "x_fact")
    conjunctions: list[list[Test]] = [
        [A_ABSENT, AnyTest((B_P, A_ABSENT))],
        [A_ABSENT, AnyTest((AllOf((Present("a"), Ne("a", 1))), B_P))],
        [A_ABSENT, AnyTest((A_LOW, B_P))],
        [A_ABSENT, AnyTest((A_LOW, B_P, B_ABSENT))],
        [Present("b"), AnyTest((B_ABSENT, A_LOW))],
    ]
    facts: list[dict[str, Any]] = []
    for index, (a, b) in enumerate(itertools.product([None, 1, 5], [None, "p", "q"])):
        fact: dict[str, Any] = {"t": "x_fact", "id": f"x:{index}"}
        fact.update({k: v for k, v in (("a", a), ("b", b)) if v is not None})
        facts.append(fact)

    def matches(prune: bool) -> list[tuple[str, str]]:
        marker = Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", 1))))
        rules = tuple(
            Rule(
                f"r{i}",
                1,
                (marker, Pattern("f", AllOf((kind, *(folding._pruned(c) if prune else c))))),
                EmitValue(VAL, f"n{i}", Truth.TRUE, ()),
                f"n{i}",
            )
            for i, c in enumerate(conjunctions)
        )
        program = Program(f"pruned-{prune}-{uuid.uuid4().hex[:8]}", 1, rules, {}, {}, None)
        with monkeypatch.context() as patched:
            patched.setenv("NECESSITY_CACHE_DIR", "off")
            trace = Engine.get().run(program, facts, trace=True)
        assert trace.log is not None
        return sorted((program.rule(f.rule).origin, f.matched["f"]) for f in trace.log)

    found = matches(prune=True)
    assert found == matches(prune=False)
    assert len({origin for origin, _ in found}) == len(conjunctions)
