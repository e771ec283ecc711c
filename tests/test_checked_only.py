"""Node values only their missing-value check reads are not asserted (stop 27, issue 10).

An `every` reads its children's false and unknown values, never their true ones, yet each true
value went to the engine as a message of its own, read only by the node's missing-value check
(`Lowering.require_value`). `compiler._checked_only` leaves such a value unasserted and has the
check ask for no fact the value's own rule matches instead. These tests check that every
example and generated bench case fires the same rules on the same facts, keeps the same values
and statuses and gets the same decision as with every value asserted; that the bench program
asserts no true value of its `every` and every shipped program leaves some values out; and
that the rewritten check still fails a case whose bound fact got no value.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from evaluator.case import cases
from evaluator.case.cases import Case
from evaluator.compile import compiler, ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import VAL, EmitMissing, EmitValue, Program
from evaluator.decide import decision
from evaluator.engine import durable
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import EngineError
from evaluator.language.model import Policy
from evaluator.language.policies import Library
from tests.engine_runs import governed
from tests.test_assembly import POLICIES, bench_cases, digest

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
EVERY = "BF-INSTABILITY:requires/0"  # the bench policy's `every` over fused segments: its child


def _asserting(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> Program:
    """The policy compiled with every value asserted, under a name of its own (the engine keeps
    one ruleset per name) and kept out of the disk cache of rulesets."""
    with monkeypatch.context() as m:
        m.setattr(compiler, "_checked_only", lambda rules: rules)
        m.setattr(ruleset, "cache_key", lambda *_a, **_k: None)
        program = compile_policy(policy)
    return dataclasses.replace(program, name=program.name + "~asserting")


def _unasserted(program: Program) -> set[str]:
    return {
        r.name for r in program.rules if isinstance(r.action, EmitValue) and not r.action.asserted
    }


def _observed(
    policy: Policy, program: Program, case: Case, facts: list[dict[str, Any]], left_out: set[str]
) -> Any:
    """What a run gives, less the values `left_out`'s rules assert (the one difference)."""
    try:
        trace: Trace = Engine.get().run(program, facts, trace=True)
    except EngineError as error:
        return ("EngineError", str(error))
    assert trace.log is not None

    def asserted(rule: str, facts: Any) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in f.items() if k != "sid"}
            for f in facts
            if not (rule in left_out and f["t"] == VAL)
        ]

    assembled = decision.assemble(policy, program, trace, case.case_id, facts, [])
    return (
        [(f.rule, dict(f.matched), asserted(f.rule, f.asserted), f.verdict) for f in trace.log],
        [(k, dict(e.fact), e.rule, dict(e.matched)) for k, e in trace.values.items()],
        [(dict(e.fact), e.rule) for e in trace.candidates],
        [(dict(e.fact), e.rule) for e in trace.derived],
        [(k, dict(e.fact), e.rule) for k, e in trace.statuses.items()],
        trace.verdict,
        trace.firings,
        digest(assembled),
    )


def _check_same(judged: list[tuple[Case, Library]], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run every case through its programs both ways; return how many runs left values out."""
    asserting: dict[str, Program] = {}
    left = 0
    for label, case, policy, program, facts in governed(judged):
        other = asserting.get(program.name)
        if other is None:
            other = asserting[program.name] = _asserting(policy, monkeypatch)
        out = _unasserted(program)
        assert [r.name for r in program.rules] == [r.name for r in other.rules], label
        assert _observed(policy, program, case, facts, out) == _observed(
            policy, other, case, facts, out
        ), label
        left += bool(out)
    return left


def test_every_example_fires_and_decides_as_with_every_value_asserted(monkeypatch):
    library = Library()
    judged = [(cases.load_case(path), library) for path in EXAMPLES]
    assert _check_same(judged, monkeypatch)


def test_generated_bench_cases_fire_and_decide_as_with_every_value_asserted(monkeypatch):
    library = Library(POLICIES)
    assert _check_same([(case, library) for case in bench_cases(150, seed=20261207)], monkeypatch)


def test_the_every_asserts_no_true_value_of_its_children(monkeypatch):
    bench = Library(POLICIES).get("bench-fusion")
    program = compile_policy(bench)
    true_rules = {
        r.name
        for r in program.rules
        if isinstance(r.action, EmitValue) and r.action.node == EVERY and r.action.value == 2
    }
    assert true_rules
    assert true_rules <= _unasserted(program)
    given: list[dict[str, Any]] = []
    send = durable._Session._assert

    def recorded(session: durable._Session, facts: list[dict[str, Any]], what: str) -> None:
        given.extend(facts)
        send(session, facts, what)

    monkeypatch.setattr(durable._Session, "_assert", recorded)
    library = Library(POLICIES)
    kept = 0
    for _label, _case, _policy, compiled, facts in governed(
        [(case, library) for case in bench_cases(60, seed=20261207)]
    ):
        trace = Engine.get().run(compiled, facts)
        kept += sum(1 for (n, _), v in trace.values.items() if n == EVERY and v.fact["v"] == 2)
    values = [f["v"] for f in given if f["t"] == VAL and f["n"] == EVERY]
    assert values  # false and unknown values still go to the engine
    assert 2 not in values
    assert kept  # some segment was true, and its value kept for the decision
    for policy in Library().all():
        assert _unasserted(compile_policy(policy)), policy.id


def test_a_bound_fact_left_without_a_value_still_fails():
    """Fail closed: with the rule that gives a segment its false value gone, a segment whose
    finding reports no spondylolisthesis gets no value; the check, which now also looks for the
    true value's fact, must still fail the case rather than let the `every` be met."""
    bench = Library(POLICIES).get("bench-fusion")
    program = compile_policy(bench)
    false_rules = [
        r.name
        for r in program.rules
        if isinstance(r.action, EmitValue) and r.action.node == EVERY and r.action.value == 0
    ]
    assert false_rules
    checks = [
        r for r in program.rules if isinstance(r.action, EmitMissing) and r.action.node == EVERY
    ]
    assert any(p.negated and p.alias.startswith("v2_") for r in checks for p in r.patterns)
    broken = dataclasses.replace(
        program,
        name=program.name + "~no-false",
        rules=tuple(r for r in program.rules if r.name not in false_rules),
    )
    library = Library(POLICIES)
    failed = 0
    for label, _case, _policy, compiled, facts in governed(
        [(case, library) for case in bench_cases(150, seed=20261207)]
    ):
        good = Engine.get().run(compiled, facts)
        if not any(node == EVERY and v.fact["v"] == 0 for (node, _), v in good.values.items()):
            continue
        with pytest.raises(EngineError, match=EVERY):
            Engine.get().run(broken, facts)
        failed += 1
        del label
    assert failed
