"""Fail closed: a node the rules leave without a value is an engine error, never a decision.

The mutation test breaks one rendered comparison at a time so that its tests never match, and
checks that every example case then gives the same decision as before or an EngineError; a
different decision would mean a combination rule decided on the values that happened to exist.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import Case, case_from_data, load_case
from evaluator.compile import ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import (
    Absent,
    AllOf,
    AnyTest,
    Cmp,
    CmpField,
    EmitStatus,
    Ne,
    Present,
    Program,
    Test,
)
from evaluator.errors import EngineError
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
NEVER: dict[str, Any] = {"t": "__never__"}  # no fact has this type


def _operator(kind: type[Cmp] | type[CmpField], op: str) -> Callable[[Test], bool]:
    return lambda test: isinstance(test, kind) and test.op == op


# One mutation per rendered comparison: the test class and, for comparisons, the operator.
MUTATIONS: dict[str, Callable[[Test], bool]] = {
    **{f"cmp {op}": _operator(Cmp, op) for op in ruleset._OPS},
    **{f"cmp-field {op}": _operator(CmpField, op) for op in ruleset._OPS},
    "not-equal": lambda test: isinstance(test, Ne),
    "present": lambda test: isinstance(test, Present),
    "absent": lambda test: isinstance(test, Absent),
}

Outcome = tuple[str, tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]] | None


@pytest.fixture(scope="module")
def example_cases() -> list[Case]:
    return [load_case(path) for path in EXAMPLES]


def _outcome(case: Case, library: Library) -> Outcome:
    """Each line's determination and clause statuses, or None for an engine error."""
    try:
        review = api.review_case(case, library)
    except EngineError:
        return None
    return (
        review.overall.value,
        tuple(
            (
                line.line.id,
                line.determination,
                tuple((c.id, c.status.value) for c in line.decision.clauses)
                if line.decision
                else (),
            )
            for line in review.lines
        ),
    )


def _mutate(monkeypatch: pytest.MonkeyPatch, name: str, fold: bool = True) -> dict[str, Program]:
    """Make the rendered tests of mutation `name` never match; return the mutated programs."""
    breaks = MUTATIONS[name]
    original = ruleset.render_test

    def render_test(test: Test) -> dict[str, Any]:
        if breaks(test):
            return {"$and": [NEVER, original(test)]}
        return original(test)

    monkeypatch.setattr(ruleset, "render_test", render_test)
    # The disk cache holds the unbroken text of these same rules (it is keyed by the rules and
    # the renderer's source, not by a renderer changed at run time): render every time.
    monkeypatch.setenv("NECESSITY_CACHE_DIR", "off")
    programs: dict[str, Program] = {}

    def program_for(policy: Any) -> Program:
        # by content, as api.program_for: a plan overlay makes another policy of the same ref
        key = f"{policy.ref}#{policy.content_sha256}"
        if key not in programs:
            # A new name registers a new ruleset: the engine caches rulesets by name.
            program = compile_policy(policy, fold=fold)
            programs[key] = dataclasses.replace(program, name=f"{program.name}~{name}")
        return programs[key]

    monkeypatch.setattr(api, "program_for", program_for)
    return programs


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_comparison_that_never_matches_never_changes_a_decision(
    mutation: str,
    monkeypatch: pytest.MonkeyPatch,
    library: Library,
    example_cases: list[Case],
) -> None:
    before = {case.case_id: _outcome(case, library) for case in example_cases}
    assert all(outcome is not None for outcome in before.values())
    _mutate(monkeypatch, mutation)
    changed = []
    for case in example_cases:
        after = _outcome(case, library)
        if after is not None and after != before[case.case_id]:
            changed.append(case.case_id)
    assert changed == []


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "per-node"])
def test_a_leaf_without_value_is_an_engine_error_naming_the_node(
    monkeypatch: pytest.MonkeyPatch, library: Library, fold: bool
) -> None:
    # The reproduction: `>=` never matches, so the 6-week physical-therapy comparison
    # gets no value. It used to drop out of the clause's AND and leave the clause met.
    _mutate(monkeypatch, "cmp >=", fold)
    case = load_case(ROOT / "examples" / "cases" / "pt-exactly-6-weeks.json")
    with pytest.raises(EngineError) as raised:
        api.evaluate(case, library.get("lumbar-fusion", case.request_date.lo))
    assert raised.value.code == "engine_incomplete"
    if fold:
        # Several clauses read a broken `>=`; the first whose rules run names its node (a
        # folded clause names its own node one stage after its status rules).
        assert re.search(r"node `LF-[A-Z-]+:[a-z_]+[/0-9]*` got no value", str(raised.value))
    else:
        assert "node `LF-CONSERVATIVE-DURATION:requires` got no value" in str(raised.value)


def _tests(test: Test) -> list[Test]:
    if isinstance(test, AllOf | AnyTest):
        return [t for part in test.tests for t in _tests(part)]
    return [test]


def test_the_mutations_reach_the_folded_rules(library: Library) -> None:
    """Folded clause rules (evaluator/compile/folding.py) test case facts directly: every mutation
    above that breaks a comparison must also reach some folded rule's patterns, so the
    mutation test covers them (it runs the examples on the default, folded, programs)."""
    programs = [compile_policy(policy) for policy in library.all()]
    folded = [
        rule
        for program in programs
        for rule in program.rules
        if isinstance(rule.action, EmitStatus) and rule.action.records
    ]
    assert folded
    tests = [t for rule in folded for p in rule.patterns for t in _tests(p.test)]
    reached = {name for name, breaks in MUTATIONS.items() if any(breaks(t) for t in tests)}
    assert reached >= {"cmp <", "cmp >=", "not-equal", "absent", "present"}


def test_the_error_names_the_bound_facts(monkeypatch: pytest.MonkeyPatch, library: Library) -> None:
    _mutate(monkeypatch, "not-equal")
    # A pain over a broader region: its location is false only through `!=`, which the mutation
    # breaks; with no nicotine record, no unbound `!=` leaf fails first. A bilateral request:
    # the line's side is then one of the sides every clause's part per joint asks for (no
    # `!=` there), so the first leaf to fail is one bound to the pain.
    data = json.loads((ROOT / "examples" / "cases" / "si-approvable-unilateral.json").read_text())
    del data["nicotine"]
    data["request"]["lines"][0].update(side="bilateral", same_day=False)
    data["si_joint"]["pain"] = [{"side": "right", "location": "broader_region"}]
    case = case_from_data(data, "broader.json")
    with pytest.raises(EngineError, match=r"got no value with pain=si_pain:\d+"):
        api.evaluate(case, library.get("si-joint-fusion", case.request_date.lo))
