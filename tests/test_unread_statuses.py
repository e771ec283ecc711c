"""Statuses no rule reads are not asserted back into the engine (`compiler._unread`), and a
clause, folded or not, left without a status is an engine error once the case ran
(`Program.required`).

Each status a rule derives is a firing; asserting it back costs the engine a message that
every status pattern tests. The compiler marks the statuses no pattern of the program can
match (`EmitStatus.asserted`): the decision still reads them from the firing. What must
survive: every clause gets exactly one engine-derived status, else an engine error; two
different statuses are an engine error whether asserted or not; a status another clause reads
(`clause ... is`) or the determination reads (not met, not documented) is asserted.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_compiler import (  # type: ignore[import-not-found]
    BASE_FACTS,
    Compiled,
    clause,
    document,
    run,
    write,
)

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import EmitStatus, Program, Rule
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.model import Determination, Status
from evaluator.language.policies import Library, load_policy

RED_FLAG = {"exists": {"fact": "red_flag", "where": {"kind": {"one_of": ["tumour", "infection"]}}}}
DIABETES = {"fact": "diabetes", "field": "hba1c", "less_than": {"value": 8.0, "unit": "%"}}
URGENT = clause("C-URGENT", RED_FLAG, applies_when=RED_FLAG)
WAIVED = clause("C-DIABETES", DIABETES, waived_by={"clause": "C-URGENT", "is": "met"})


def compiled(tmp_path: Path, clauses: list[dict[str, Any]], *, fold: bool = True) -> Program:
    # a name of its own: the engine registers a ruleset once per name, and tests mutate them
    name = f"us{uuid.uuid4().hex[:12]}"
    path = write(tmp_path, json.dumps(document(clauses, name)), name)
    return compile_policy(load_policy(path), fold=fold)


def with_rules(program: Program, rules: list[Rule]) -> Program:
    """The program with other rules, under a name of its own (a ruleset registers once)."""
    return dataclasses.replace(
        program, name=f"{program.name}~{uuid.uuid4().hex[:8]}", rules=tuple(rules)
    )


def asserted(program: Program) -> dict[tuple[str, str], bool]:
    out: dict[tuple[str, str], bool] = {}
    for rule in program.rules:
        if isinstance(rule.action, EmitStatus):
            key = (rule.action.clause, rule.action.status.value)
            out[key] = out.get(key, False) or rule.action.asserted
    return out


def test_only_the_statuses_no_rule_reads_are_left_unasserted(tmp_path: Path) -> None:
    program = compiled(tmp_path, [URGENT, WAIVED])
    marks = asserted(program)
    # C-DIABETES reads "C-URGENT is met"; the determination reads every not met and not
    # documented status; nothing reads C-URGENT not applicable nor C-DIABETES met or not
    # applicable.
    assert marks[("C-URGENT", "met")] is True
    assert marks[("C-URGENT", "not_applicable")] is False
    assert marks[("C-DIABETES", "not_met")] is True
    assert marks[("C-DIABETES", "not_documented")] is True
    assert marks[("C-DIABETES", "met")] is False
    assert marks[("C-DIABETES", "not_applicable")] is False
    assert set(program.required) == {"C-URGENT", "C-DIABETES"}


def test_a_status_read_by_another_clause_reaches_it(tmp_path: Path) -> None:
    """Were C-URGENT's met left unasserted, C-DIABETES would not see the waiver: not met."""
    program = compiled(tmp_path, [URGENT, WAIVED])
    facts = [
        {"t": "red_flag", "id": "red_flag:1", "kind": "tumour"},
        {"t": "diabetes", "id": "diabetes:1", "hba1c": 9.0},
    ]
    trace = run(Compiled(program), facts)
    statuses = {c: e.fact["status"] for c, e in trace.statuses.items()}
    assert statuses == {"C-URGENT": "met", "C-DIABETES": "not_applicable"}
    assert trace.verdict is Determination.MEDICALLY_NECESSARY


def test_unasserted_statuses_give_the_same_decisions_as_the_per_node_lowering(
    tmp_path: Path,
) -> None:
    folded = compiled(tmp_path, [URGENT, WAIVED])
    plain = compiled(tmp_path, [URGENT, WAIVED], fold=False)
    assert not all(asserted(folded).values())
    cases: list[list[dict[str, Any]]] = [
        [],
        [{"t": "red_flag", "id": "red_flag:1", "kind": "tumour"}],
        [{"t": "diabetes", "id": "diabetes:1", "hba1c": 7.0}],
        [{"t": "diabetes", "id": "diabetes:1", "hba1c": 9.0}],
        [{"t": "diabetes", "id": "diabetes:1"}],
    ]
    for facts in cases:
        a, b = run(Compiled(folded), facts), run(Compiled(plain), facts)
        assert {c: e.fact["status"] for c, e in a.statuses.items()} == {
            c: e.fact["status"] for c, e in b.statuses.items()
        }, facts
        assert a.verdict is b.verdict, facts


def test_a_dropped_status_rule_is_an_engine_error_never_a_determination(tmp_path: Path) -> None:
    """Mutation: the unasserted `met` rule of C-DIABETES is dropped. No rule can look for the
    missing status (nothing asserts it); the engine's check of `Program.required` must fail
    the case, where the determination rules alone would call it medically necessary."""
    program = compiled(tmp_path, [URGENT, WAIVED])
    dropped = [
        r
        for r in program.rules
        if not (
            isinstance(r.action, EmitStatus)
            and r.action.clause == "C-DIABETES"
            and r.action.status is Status.MET
        )
    ]
    assert len(dropped) < len(program.rules)
    broken = with_rules(program, dropped)
    facts = [{"t": "diabetes", "id": "diabetes:1", "hba1c": 7.0}]
    with pytest.raises(EngineError) as raised:
        run(Compiled(broken), facts)
    assert raised.value.code == "engine_incomplete"
    assert "node `C-DIABETES:requires` got no value" in str(raised.value)
    # without the check, the same program gives a determination: the check is what fails it
    unchecked = dataclasses.replace(broken, name=f"{broken.name}~unchecked", required={})
    trace = run(Compiled(unchecked), facts)
    assert "C-DIABETES" not in trace.statuses
    assert trace.verdict is Determination.MEDICALLY_NECESSARY


def test_a_dropped_status_rule_is_an_engine_error_in_a_traced_run(tmp_path: Path) -> None:
    """As above, in the traced run `evaluate --explain` uses (a session of its own): the
    check of `Program.required` is the engine's, whichever way the case ran."""
    program = compiled(tmp_path, [URGENT, WAIVED])
    broken = with_rules(
        program,
        [
            r
            for r in program.rules
            if not (isinstance(r.action, EmitStatus) and r.action.clause == "C-DIABETES")
        ],
    )
    facts = [{"t": "diabetes", "id": "diabetes:1", "hba1c": 7.0}]
    with pytest.raises(EngineError) as raised:
        Engine.get().run(broken, facts, trace=True)
    assert raised.value.code == "engine_incomplete"
    assert "node `C-DIABETES:requires` got no value" in str(raised.value)


def test_a_missing_status_fails_every_case_run_after_another(tmp_path: Path) -> None:
    program = compiled(tmp_path, [URGENT, WAIVED])
    broken = with_rules(
        program,
        [
            r
            for r in program.rules
            if not (isinstance(r.action, EmitStatus) and r.action.clause == "C-URGENT")
        ],
    )
    base = [{"t": "case", "id": "case:1", "case_id": "c1"}, {"t": "request", "id": "request:1"}]
    for _ in range(2):  # the second case in the session the first one used
        with pytest.raises(EngineError) as raised:
            Engine.get().run(broken, base)
        assert raised.value.code == "engine_incomplete"
        assert "node `C-URGENT:requires` got no value" in str(raised.value)


def test_two_different_unasserted_statuses_are_an_engine_error(tmp_path: Path) -> None:
    """Mutation: C-DIABETES's unasserted `met` rule also says `not_applicable` for the same
    facts (both unasserted): still two statuses for one clause, an engine error."""
    program = compiled(tmp_path, [URGENT, WAIVED])
    extra = []
    for rule in program.rules:
        action = rule.action
        if (
            isinstance(action, EmitStatus)
            and action.clause == "C-DIABETES"
            and action.status is Status.MET
        ):
            assert not action.asserted
            twin = dataclasses.replace(action, status=Status.NOT_APPLICABLE)
            extra.append(dataclasses.replace(rule, name=f"{rule.name}x", action=twin))
    broken = with_rules(program, [*program.rules, *extra])
    with pytest.raises(EngineError, match="derived both"):
        run(Compiled(broken), [{"t": "diabetes", "id": "diabetes:1", "hba1c": 7.0}])


def test_a_shipped_policy_leaves_statuses_unasserted_and_decides_every_clause() -> None:
    """An unasserted status is still in the trace the decision reads."""
    case = load_case(Path(__file__).parent.parent / "examples" / "cases" / "t12-s2-fusion.json")
    policy = api.select_policy(case, "lumbar-fusion", Library())
    program = api.program_for(policy)
    assert not all(asserted(program).values())  # it has statuses no rule reads
    decision = api.evaluate(case, policy)
    assert {c.id for c in decision.clauses} == set(program.clauses)


def test_a_dropped_status_rule_of_an_unfolded_clause_is_an_engine_error(tmp_path: Path) -> None:
    """The per-node lowering (a clause folding hands back, or `fold=False`) leaves statuses
    unasserted too; without its status rules the determination rules alone call the case
    medically necessary, so its clauses are in `Program.required` as well."""
    program = compiled(tmp_path, [URGENT, WAIVED], fold=False)
    assert not all(asserted(program).values())
    assert set(program.required) == {"C-URGENT", "C-DIABETES"}
    broken = with_rules(
        program,
        [
            r
            for r in program.rules
            if not (isinstance(r.action, EmitStatus) and r.action.clause == "C-DIABETES")
        ],
    )
    facts = [{"t": "diabetes", "id": "diabetes:1", "hba1c": 7.0}]
    for trace in (False, True):
        with pytest.raises(EngineError) as raised:
            Engine.get().run(broken, [*BASE_FACTS, *facts], trace=trace)
        assert raised.value.code == "engine_incomplete"
        assert "node `C-DIABETES:requires` got no value" in str(raised.value)
