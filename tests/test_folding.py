"""Tests for evaluator.compile.folding: folded clauses fire once per outcome and decide as before.

Every test compares the folded program with the per-node lowering (`compile_policy(...,
fold=False)`), the reference: same statuses on generated policies and facts, same decisions
with the same evidence on every example, and far fewer firings.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_compiler import (  # type: ignore[import-not-found]
    Compiled,
    clause,
    document,
    run,
    truths,
    write,
)
from test_fuzz_policies import (  # type: ignore[import-not-found]
    Generator,
    Oracle,
    joins_unchecked,
)

from evaluator import api
from evaluator.case.cases import Case, load_case
from evaluator.compile import ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import EmitStatus, EmitValue, Eq, Ne, Program
from evaluator.engine import durable as engine
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.conditions import Truth
from evaluator.language.model import Policy
from evaluator.language.policies import Library, load_policy

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
# Engine firings over all example cases (every line, alternatives and referenced policies),
# measured when folding landed: 3,122 folded, 5,256 with the per-node lowering; about 3,900
# folded after issue 11 (the SI-joint policy's sides and block days as pairwise values, the
# HbA1c recency leaf, lumbar-fusion 2025.1's two new clauses and four more examples), with one
# subtree per lumbar-fusion version left per node to keep the engine's stack margin
# (compiler._folded: +2 firings a lumbar-fusion case), and 4,012 once folds that would fire per
# pair of service lines went back per node (compiler._products, tests/test_line_cost.py);
# 4,109 with the fusion plan overlay's example (lf-commercial-ppo-5-months, about 97 firings,
# as many as the approvable case it copies); 2,756 once quantifiers folded, terms were
# simplified and the SI-joint policy folded too (issue 10); 3,980 after the stop-22 policy
# amendments (wrong approvals: the SI-joint work-up checked per joint, one part per side in three
# clauses; LD-LUMBAR-LEVELS, per node; lumbar-fusion reading each imaging finding with its
# study's date: correlation, the slip route and the alternative decompression); 4,277 after the
# stop-22 second round (wrong approvals: SI-STAGED-BILATERAL also reading a left and a right
# line, SI-NO-INFLAMMATORY-ARTHROPATHY the coded conditions, LF-DIABETES's applicability a coded
# diabetes or HbA1c; lumbar-decompression's segment_reading, one derived fact per MRI/CT
# finding, and its latest-study check; the nicotine module's three conflict checks); 4,500 at
# stop 23 (the nicotine module's `not: demonstrated:` reading the cotinine's and quit date's
# x-disputed markers: its clause exceeds MAX_RULES_PER_CLAUSE and folds by subtree, +9 firings
# per lumbar-fusion case, +4 per SI-joint one); 4,570 after LF-INSTABILITY read the slip route
# under `demonstrated` where no route is derived (stop 23: a disputed slip pends); 4,707 after
# LF-DEFORMITY-SIGNIFICANT read the latest standing full-length films (stop 24: `latest`, its
# rival and requirement lowered once, node by node: 4 firings more per lumbar-fusion case);
# 4,867 after the nicotine module's abstinence route counted a derived verifying_cotinine (stop
# 24: a cotinine dated since the quit date, none above the limit after the request); 5,077
# after LF-INSTABILITY's motion route read the latest flexion-extension films (stop 24, merged
# at stop 25: one derived motion_reading per views and segment, the route and the
# unsettled-motion check over them); 5,172 after LF-DIABETES and LF-FUNCTIONAL-IMPAIRMENT
# read the latest coded HbA1c and ODI (stop 25: `latest` lowered directly, its scope's `where`
# tested once per fact: about 6 firings more per lumbar-fusion case, 14 on the one with two
# ODIs, 2 fewer on the deformity cases); 5,298 after LF-DIABETES weighed a coded HbA1c dated
# after the request (stop 26: rules late-hba1c-at-limit and hba1c-uncontradicted, one derived
# fact per lumbar-fusion case with a diabetes history and the check that reads it); 5,346
# after LF-INSTABILITY's motion route read views that leave the motion unknown ("moderate",
# stop 26: rules unmeasured-reading and unmeasured-motion, 1 or 2 firings more per fused
# segment); 5,521 after LF-LUMBAR-LEVELS checked that a lumbar segment is fused (stop 27: a
# new clause, some fused segment from L1-L2 to L5-S1, about 8 firings per lumbar-fusion case).
# The bound fails when folding is silently disabled or loses a clause or subtree.
MAX_EXAMPLE_FIRINGS = 5550
# The decompression policy folds three of its four clauses: its cases fired at most 20 rules;
# since stop 22 rule segment-reading derives one fact per MRI or CT finding and the latest-study
# check, per node, reads them: 21 to 30 (ld-level-without-stenosis, three segments).
MAX_DECOMPRESSION_FIRINGS = 32


def folded_clauses(program: Program) -> set[str]:
    return {
        r.origin for r in program.rules if isinstance(r.action, EmitStatus) and r.action.records
    }


def folded_subtrees(program: Program) -> set[str]:
    """Nodes whose value folded rules derive (with their descendants' values as records)."""
    return {
        r.action.node for r in program.rules if isinstance(r.action, EmitValue) and r.action.records
    }


@pytest.fixture(scope="module")
def examples() -> list[Case]:
    return [load_case(path) for path in EXAMPLES]


@pytest.fixture
def mode(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Switch api.program_for between folded and per-node programs; count firings per case."""
    state: dict[str, Any] = {"fold": True, "programs": {}, "firings": Counter(), "case": ""}

    def program_for(policy: Policy) -> Program:
        key = (policy.ref, state["fold"])
        if key not in state["programs"]:
            program = compile_policy(policy, fold=state["fold"])
            Engine.get().prepare(program)
            state["programs"][key] = program
        return state["programs"][key]  # type: ignore[no-any-return]

    original = engine.Engine.run

    def counted(self: Engine, program: Program, facts: Any, **kw: Any) -> engine.Trace:
        trace = original(self, program, facts, **kw)
        state["firings"][(state["fold"], state["case"])] += trace.firings
        return trace

    monkeypatch.setattr(api, "program_for", program_for)
    monkeypatch.setattr(engine.Engine, "run", counted)
    return state


def review(case: Case, library: Library, mode: dict[str, Any], fold: bool) -> Any:
    mode["fold"], mode["case"] = fold, case.case_id
    return api.review_case(case, library)


def test_the_examples_decide_alike_with_the_same_evidence_and_fewer_firings(
    library: Library, examples: list[Case], mode: dict[str, Any]
) -> None:
    for case in examples:
        folded = review(case, library, mode, True)
        plain = review(case, library, mode, False)
        assert folded.overall == plain.overall, case.case_id
        for a, b in zip(folded.lines, plain.lines, strict=True):
            # Decisions are frozen dataclasses: clauses, evidence, documents, alternative.
            assert (a.determination, a.decision) == (b.determination, b.decision), case.case_id
    firings = mode["firings"]
    folded_total = sum(n for (fold, _), n in firings.items() if fold)
    plain_total = sum(n for (fold, _), n in firings.items() if not fold)
    assert folded_total <= MAX_EXAMPLE_FIRINGS < plain_total
    for case in examples:
        assert firings[(True, case.case_id)] <= firings[(False, case.case_id)], case.case_id
        assert firings[(True, case.case_id)] < firings[(False, case.case_id)], case.case_id
        if case.case_id.startswith("ld-"):
            assert firings[(True, case.case_id)] <= MAX_DECOMPRESSION_FIRINGS, case.case_id


def test_the_shipped_policies_fold_the_clauses_they_can(library: Library) -> None:
    programs = {p.ref: compile_policy(p) for p in library.all()}
    decompression = next(p for ref, p in programs.items() if "decompression" in ref)
    # LD-IMAGING-CORRELATION folded whole was one rule over a segment, a line and a study that
    # fired once per pair of lines (compiler._products): it stays per node.
    assert folded_clauses(decompression) == {"LD-URGENT", "LD-SYMPTOMS", "LD-CONSERVATIVE-CARE"}
    for ref, program in programs.items():
        if ref.startswith("lumbar-fusion@2025"):
            # LF-NICOTINE folds by subtree since stop 23: its never-user route's unknown (a
            # cotinine or quit date stated but unsettled) takes it past MAX_RULES_PER_CLAUSE.
            assert folded_clauses(program) >= {"LF-PHYSICAL-THERAPY", "LF-URGENT"}
            assert "LF-NICOTINE:requires/0" in folded_subtrees(program)
        # every shipped policy folds (the SI-joint one too: derived facts are numbered on
        # their own, so folding does not renumber those evidence shows)
        assert folded_clauses(program), ref


def test_derived_facts_keep_their_ids_whatever_folds(
    library: Library, examples: list[Case], mode: dict[str, Any]
) -> None:
    """Evidence shows a derived fact by its id (`test_on_fused_side5`). Derived facts are
    numbered on their own (engine/durable.py), so folding, which asserts fewer value facts,
    leaves their ids alone: the SI-joint policy folds, with the same decisions as per node."""
    si = [case for case in examples if case.case_id.startswith("si-")]
    assert si
    for case in si:
        folded = review(case, library, mode, True)
        plain = review(case, library, mode, False)
        ids = [
            fact.id
            for line in folded.lines
            if line.decision is not None
            for clause in line.decision.clauses
            for evidence in clause.evidence
            for fact in evidence.facts
            if fact.type in ("test_on_fused_side", "distinct_block")
        ]
        assert (folded.overall, folded.lines) == (plain.overall, plain.lines), case.case_id
        # numbered among the derived facts only (under the shared counter with the value
        # facts they were `test_on_fused_side40` and up)
        numbers = [int(re.sub(r"^\D+", "", i)) for i in ids]
        assert numbers, case.case_id
        assert max(numbers) < 2 * len(set(ids)) + 4, (case.case_id, ids)
    assert folded_clauses(compile_policy(library.get("si-joint-fusion@2025.1")))


def test_a_folded_clause_fires_once_and_keeps_no_value_facts(tmp_path: Path) -> None:
    tree = {
        "all": [
            {"fact": "nicotine", "field": "status", "not_equals": "current"},
            {"not": {"exists": {"fact": "diagnosis", "where": {"name": "scoliosis"}}}},
        ]
    }
    path = write(tmp_path, _json(document([clause("C-1", tree)])))
    program = compile_policy(load_policy(path))
    assert folded_clauses(program) == {"C-1"}
    Engine.get().prepare(program)
    trace = run(Compiled(program), [{"t": "nicotine", "id": "nicotine:1", "status": "former"}])
    assert truths(trace) == {"C-1": Truth.TRUE}
    # one status firing, one determination; the nodes' values come from the firing's records
    assert trace.firings == 2
    assert trace.value("C-1:requires") is Truth.TRUE
    assert trace.value("C-1:requires/0") is Truth.TRUE
    assert trace.values[("C-1:requires/0", ())].fact["f"] == "nicotine:1"


def test_a_folded_leaf_without_value_is_an_engine_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break the only test a fact could pass: no box matches, the clause gets no status, and
    the rule one stage later names the clause's node."""
    tree = {"fact": "nicotine", "field": "status", "equals": "current"}
    path = write(tmp_path, _json(document([clause("C-1", tree)])))
    original = ruleset.render_test

    def render_test(test: Any) -> dict[str, Any]:
        status = isinstance(test, Ne) or (isinstance(test, Eq) and test.field == "status")
        if status and getattr(test, "value", None) == "current":
            return {"$and": [{"t": "__never__"}, original(test)]}
        return original(test)

    monkeypatch.setattr(ruleset, "render_test", render_test)
    program = compile_policy(load_policy(path))
    assert folded_clauses(program) == {"C-1"}
    Engine.get().prepare(program)
    with pytest.raises(EngineError) as raised:
        run(Compiled(program), [{"t": "nicotine", "id": "nicotine:1", "status": "former"}])
    assert raised.value.code == "engine_incomplete"
    assert "node `C-1:requires` got no value" in str(raised.value)


def test_a_many_fact_leaf_whose_fact_passes_no_test_is_an_engine_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leaf over a type that occurs several times is negated (no true fact); a fact that
    passes none of its tests must not read as absent."""
    tree = {
        "fact": "provocative_test",
        "where": {"test": "faber"},
        "field": "result",
        "equals": "positive",
    }
    path = write(tmp_path, _json(document([clause("C-1", tree)])))
    original = ruleset.render_test

    def render_test(test: Any) -> dict[str, Any]:
        if isinstance(test, Eq) and (test.field, test.value) == ("result", "positive"):
            return {"$and": [{"t": "__never__"}, original(test)]}
        return original(test)

    monkeypatch.setattr(ruleset, "render_test", render_test)
    program = compile_policy(load_policy(path))
    assert folded_clauses(program) == {"C-1"}
    Engine.get().prepare(program)
    facts = [
        {"t": "provocative_test", "id": "p:1", "test": "faber", "result": "positive"},
        {"t": "provocative_test", "id": "p:2", "test": "faber", "result": "negative"},
    ]
    with pytest.raises(EngineError) as raised:
        run(Compiled(program), facts)
    assert raised.value.code == "engine_incomplete"
    assert "got no value for fact `p:1`" in str(raised.value)


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1)


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_folded_and_per_node_programs_give_the_same_statuses(tmp_path: Path, seed: int) -> None:
    """Generated policies (tests/test_fuzz_policies.py), folded and not, on generated facts:
    the same statuses, and the reference interpreter's."""
    rng = random.Random(seed)
    gen = Generator(rng)
    # Shallow trees fold; deeper ones mix folded clauses with per-node subtrees.
    trees = {f"FD-{i}": gen.tree(2 if i < 2 else 3, [], top=True) for i in range(3)}
    path = write(tmp_path / str(seed), _json(document([clause(c, t) for c, t in trees.items()])))
    policy = load_policy(path)
    # a join on a field a fact need not carry is refused (test_fuzz_policies checks that);
    # the two lowerings of one are still compared, with the check off
    with joins_unchecked(trees):
        folded = compile_policy(policy)
        plain = compile_policy(policy, fold=False)
    Engine.get().prepare(folded)
    Engine.get().prepare(plain)
    for _ in range(6):
        facts = gen.facts()
        outcomes = []
        for program in (folded, plain):
            try:
                outcomes.append(truths(run(Compiled(program), facts)))
            except EngineError as error:  # error 303, see test_fuzz_policies
                failure = str(error)
                outcomes.append(None)
            else:
                failure = ""
            assert not failure or "error code: 303" in failure, (seed, trees, facts)
        if None in outcomes:
            continue
        oracle = Oracle(facts)
        expected = {cid: oracle.value(tree, {}) for cid, tree in trees.items()}
        assert outcomes[0] == outcomes[1] == expected, (seed, trees, facts)


def test_the_property_test_reaches_folded_clauses(tmp_path: Path) -> None:
    """The generated shallow trees mostly fold: the property test compares something."""
    folded = 0
    for seed in range(10):
        gen = Generator(random.Random(seed))
        trees = {f"FD-{i}": gen.tree(2, [], top=True) for i in range(3)}
        data = document([clause(c, t) for c, t in trees.items()], f"reach-{seed}")
        path = write(tmp_path / str(seed), _json(data), f"reach-{seed}")
        with joins_unchecked(trees):
            folded += len(folded_clauses(compile_policy(load_policy(path))))
    assert folded >= 15


def test_subtrees_inside_quantifiers_and_derivations_fold(library: Library) -> None:
    """A quantifier's condition and a derivation rule's `when` fold into rules deriving their
    value once per binding (the per-node lowering's values of their descendants as records)."""
    program = compile_policy(library.get("lumbar-fusion@2025.1"))
    subtrees = folded_subtrees(program)
    assert any(node.endswith(":when") for node in subtrees), subtrees
    assert any("/0" in node and ":requires" in node for node in subtrees), subtrees
