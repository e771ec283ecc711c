"""Tests for compile.compiler: Kleene semantics end to end, clause statuses, strata, errors.

Policies are written to tmp_path as files (JSON is YAML) under the library layout, compiled and
run through the engine on hand-written facts; pure-Python oracles say what each clause must be.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evaluator.compile.compiler import compile_policy
from evaluator.compile.folding import parts
from evaluator.compile.program import (
    CAND,
    PAIR,
    STAGE,
    STATUS,
    VAL,
    AllOf,
    AnyTest,
    EmitFact,
    EmitMissing,
    EmitPair,
    EmitStatus,
    EmitValue,
    EmitVerdict,
    Eq,
    Pattern,
    Program,
    Test,
)
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import PolicyError
from evaluator.language.conditions import Truth
from evaluator.language.model import Determination
from evaluator.language.policies import Library, load_policy
from evaluator.vocab.levels import parse_level

HERE = Path(__file__).parent
T, U, F = Truth.TRUE, Truth.UNKNOWN, Truth.FALSE
STATUS_TRUTH = {"met": T, "not_met": F, "not_documented": U}
BASE_FACTS = [{"t": "case", "id": "case:1", "case_id": "c1"}, {"t": "request", "id": "request:1"}]
# Six independent leaves: one provocative test each, true when positive.
TESTS = ("distraction", "compression", "thigh_thrust", "faber", "gaenslen", "sacral_thrust")
# An unknown leaf is either no fact at all or a fact without the field.
NO_FACT, NO_FIELD = "no-fact", "no-field"


# --- helpers ------------------------------------------------------------------------------------


def document(clauses: list[dict[str, Any]], pid: str = "p", **extra: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "version": "1",
        "title": pid,
        "status": "active",
        "effective": {"from": "2025-01-01"},
        "procedures": [{"procedure": "lumbar_fusion"}],
        "references": [{"id": 1, "citation": "c"}],
        **extra,
        "sections": [{"id": "s", "title": "S", "clauses": clauses}],
    }


def clause(cid: str, requires: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "title": cid,
        "requires": requires,
        "cites": [1],
        "recommendation": "r",
        **extra,
    }


def write(root: Path, text: str, pid: str = "p", version: str = "1") -> Path:
    path = root / "policies" / pid / f"{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Compiled:
    """A compiled policy whose repr is short: Hypothesis prints a failing example's arguments
    (fixtures included), and a Program prints as hundreds of kilobytes. (Not a dataclass:
    Hypothesis prints a dataclass field by field, whatever its __repr__.)"""

    def __init__(self, program: Program) -> None:
        self.program = program

    def __repr__(self) -> str:
        return f"Compiled({self.program.name})"


def build(root: Path, data: dict[str, Any]) -> Compiled:
    return prepared(write(root, json.dumps(data, indent=1), data["id"]))


def prepared(path: Path) -> Compiled:
    program = compile_policy(load_policy(path))
    Engine.get().prepare(program)
    return Compiled(program)


def run(compiled: Compiled, facts: Iterable[dict[str, Any]]) -> Trace:
    return Engine.get().run(compiled.program, [*BASE_FACTS, *facts])


def truths(trace: Trace) -> dict[str, Truth]:
    return {cid: STATUS_TRUTH[e.fact["status"]] for cid, e in trace.statuses.items()}


def leaf(i: int) -> dict[str, Any]:
    return {
        "fact": "provocative_test",
        "where": {"test": TESTS[i]},
        "field": "result",
        "equals": "positive",
    }


def leaf_facts(values: Iterable[Truth | str]) -> list[dict[str, Any]]:
    """Facts giving leaf i the value values[i] (U as NO_FACT when given as a Truth)."""
    out = []
    for i, value in enumerate(values):
        if value in (U, NO_FACT):
            continue
        fact = {"t": "provocative_test", "id": f"provocative_test:{i}", "test": TESTS[i]}
        if value is not NO_FIELD:
            fact["result"] = "positive" if value is T else "negative"
        out.append(fact)
    return out


def truth_of(value: Truth | str) -> Truth:
    return value if isinstance(value, Truth) else U


def n_of_oracle(n: int, values: list[Truth]) -> Truth:
    true, unknown = values.count(T), values.count(U)
    return T if true >= n else F if true + unknown < n else U


def count_oracle(n: int, values: list[Truth]) -> Truth:
    true, unknown = values.count(T), values.count(U)
    if true >= n:
        return T
    return F if len(values) >= n and true + unknown < n else U


leaf_value = st.sampled_from((T, F, NO_FACT, NO_FIELD))


# --- Kleene all / any / not / demonstrated / n_of -----------------------------------------------

KLEENE: dict[str, dict[str, Any]] = {
    "K-ALL": {"all": [leaf(0), leaf(1)]},
    "K-ANY": {"any": [leaf(0), leaf(1)]},
    "K-NOT": {"not": leaf(0)},
    "K-DEM": {"demonstrated": leaf(0)},
    "K-ALL6": {"all": [leaf(i) for i in range(6)]},
    "K-ANY6": {"any": [leaf(i) for i in range(6)]},
    "K-NOF3": {"n_of": {"at_least": 3, "of": [leaf(i) for i in range(6)]}},
    "K-NOF1": {"n_of": {"at_least": 1, "of": [leaf(i) for i in range(6)]}},
    "K-NOF6": {"n_of": {"at_least": 6, "of": [leaf(i) for i in range(6)]}},
    "K-NEST": {"not": {"all": [{"any": [leaf(0), leaf(1)]}, {"demonstrated": leaf(2)}]}},
}


def kleene_oracle(values: list[Truth]) -> dict[str, Truth]:
    a, b, c = values[:3]
    return {
        "K-ALL": min(a, b),
        "K-ANY": max(a, b),
        "K-NOT": Truth(2 - a),
        "K-DEM": T if a is T else F,
        "K-ALL6": min(values),
        "K-ANY6": max(values),
        "K-NOF3": n_of_oracle(3, values),
        "K-NOF1": n_of_oracle(1, values),
        "K-NOF6": n_of_oracle(6, values),
        "K-NEST": Truth(2 - min(max(a, b), T if c is T else F)),
    }


@pytest.fixture(scope="module")
def kleene(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    clauses = [clause(cid, cond) for cid, cond in KLEENE.items()]
    return build(tmp_path_factory.mktemp("kleene"), document(clauses, "kleene"))


PAIRS = list(itertools.product((T, U, F), repeat=2))


@pytest.mark.parametrize(
    ("a", "b"), PAIRS, ids=[f"{a.name.lower()}-{b.name.lower()}" for a, b in PAIRS]
)
def test_kleene_truth_tables(kleene, a, b):
    values = [a, b, F, F, F, F]
    found = truths(run(kleene, leaf_facts(values)))
    expected = kleene_oracle(values)
    for cid in ("K-ALL", "K-ANY", "K-NOT", "K-DEM"):
        assert found[cid] is expected[cid], cid


@settings(max_examples=120, deadline=None)
@given(raw=st.lists(leaf_value, min_size=6, max_size=6))
@example(raw=[T, T, T, F, F, F])
@example(raw=[T, T, NO_FACT, F, F, F])
@example(raw=[T, T, F, F, F, F])
@example(raw=[T] * 6)
@example(raw=[NO_FIELD] * 6)
def test_n_of_and_nesting_match_the_oracle(kleene, raw):
    found = truths(run(kleene, leaf_facts(raw)))
    expected = kleene_oracle([truth_of(v) for v in raw])
    assert found == expected


def test_n_of_is_lowered_without_a_node_per_subset(kleene):
    nodes = kleene.program.nodes
    node = nodes["K-NOF3:requires"]
    assert not [c for c in nodes if c.startswith("K-NOF3:requires/of")]
    assert set(node.children) == {f"K-NOF3:requires/{i}" for i in range(6)}
    deriving = [
        r
        for r in kleene.program.rules
        if isinstance(r.action, EmitValue) and r.action.node == "K-NOF3:requires"
    ]
    # the first 3 true children (6 choose 3), the first 4 false ones (6 choose 4), unknown
    assert len(deriving) == 20 + 15 + 1


@pytest.mark.parametrize("raw", [[T] * 6, [F] * 6, [U] * 6, [T, U, F, T, U, F], [U, T, T, T, F, F]])
def test_n_of_derives_its_value_in_one_firing(kleene, raw):
    # One round trip per binding, not one per subset: exactly one of its rules matches.
    trace = Engine.get().run(kleene.program, [*BASE_FACTS, *leaf_facts(raw)], trace=True)
    assert trace.log is not None
    node = "K-NOF3:requires"
    origins = [kleene.program.rule(f.rule).origin for f in trace.log]
    fired = [o for o in origins if o == node or o.startswith(f"{node}/of")]
    assert len(fired) == 1
    assert trace.value("K-NOF3:requires") is n_of_oracle(3, raw)


@pytest.mark.parametrize(("cid", "raw"), [("K-ALL6", [T] * 6), ("K-ANY6", [F] * 6)])
def test_all_and_any_decided_by_every_child_fire_once(kleene, cid, raw):
    # All children true (all) or all false (any): one firing, not one per child.
    trace = Engine.get().run(kleene.program, [*BASE_FACTS, *leaf_facts(raw)], trace=True)
    assert trace.log is not None
    fired = [f for f in trace.log if kleene.program.rule(f.rule).origin == f"{cid}:requires"]
    assert len(fired) == 1
    assert trace.value(f"{cid}:requires") is raw[0]


# --- every / some / count -----------------------------------------------------------------------

L3 = parse_level("L3").index
ELEMENT = {"fact": "seg", "field": "upper", "at_or_above": "L3"}
QUANTIFIED: dict[str, dict[str, Any]] = {
    "Q-EVERY": {"every": {"fact": "fused_segment", "as": "seg", "require": ELEMENT}},
    "Q-EVERY-T": {
        "every": {"fact": "fused_segment", "as": "seg", "if_empty": "true", "require": ELEMENT}
    },
    "Q-EVERY-F": {
        "every": {"fact": "fused_segment", "as": "seg", "if_empty": "false", "require": ELEMENT}
    },
    "Q-SOME": {"some": {"fact": "fused_segment", "as": "seg", "require": ELEMENT}},
    "Q-COUNT": {"count": {"fact": "fused_segment", "as": "seg", "at_least": 2, "require": ELEMENT}},
    # every segment has a finding at the same segment showing spondylolisthesis (a join)
    "Q-NESTED": {
        "every": {
            "fact": "fused_segment",
            "as": "seg",
            "require": {
                "some": {
                    "fact": "imaging_finding",
                    "as": "f",
                    "where": {"segment": {"same_as": "seg.segment"}},
                    "require": {"fact": "f", "field": "spondylolisthesis", "equals": True},
                }
            },
        }
    },
}
SEGMENTS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5")


@pytest.fixture(scope="module")
def quantified(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    clauses = [clause(cid, cond) for cid, cond in QUANTIFIED.items()]
    return build(tmp_path_factory.mktemp("quantified"), document(clauses, "quantified"))


def segment_facts(values: list[Truth]) -> list[dict[str, Any]]:
    """One fused segment per value: above L3 (true), below it (false), or no upper (unknown)."""
    out = []
    for i, value in enumerate(values):
        fact: dict[str, Any] = {
            "t": "fused_segment",
            "id": f"fused_segment:{i}",
            "segment": SEGMENTS[i],
        }
        if value is not U:
            fact["upper_index"] = L3 - 1 if value is T else L3 + 1
        out.append(fact)
    return out


@pytest.mark.parametrize(
    ("clause_id", "expected"),
    [
        ("Q-EVERY", U),
        ("Q-EVERY-T", T),
        ("Q-EVERY-F", F),
        ("Q-SOME", F),
        ("Q-COUNT", U),
        ("Q-NESTED", U),
    ],
    ids=[
        "every-not-documented",
        "every-if-empty-true",
        "every-if-empty-false",
        "some-false",
        "count-unknown",
        "nested-every-not-documented",
    ],
)
def test_quantifiers_over_no_facts(quantified, clause_id, expected):
    assert truths(run(quantified, []))[clause_id] is expected


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.sampled_from((T, U, F)), max_size=4))
@example(values=[T, T])
@example(values=[T, U])
@example(values=[F, F, U])
def test_every_some_count_match_the_oracle(quantified, values):
    found = truths(run(quantified, segment_facts(values)))
    assert found["Q-EVERY"] is (min(values) if values else U)
    assert found["Q-EVERY-T"] is (min(values) if values else T)
    assert found["Q-EVERY-F"] is (min(values) if values else F)
    assert found["Q-SOME"] is (max(values) if values else F)
    assert found["Q-COUNT"] is count_oracle(2, values)


@settings(max_examples=60, deadline=None)
@given(
    findings=st.lists(
        st.tuples(st.sampled_from(SEGMENTS[:3]), st.sampled_from((T, U, F))), max_size=5
    ),
    n_segments=st.integers(0, 3),
)
def test_nested_quantifiers_join_on_the_bound_fact(quantified, findings, n_segments):
    facts = segment_facts([T] * n_segments)
    for i, (segment, value) in enumerate(findings):
        fact = {"t": "imaging_finding", "id": f"imaging_finding:{i}", "segment": segment}
        if value is not U:
            fact["spondylolisthesis"] = value is T
        facts.append(fact)
    per_segment = [
        max([v for s, v in findings if s == segment], default=F)
        for segment in SEGMENTS[:n_segments]
    ]
    assert truths(run(quantified, facts))["Q-NESTED"] is min(per_segment, default=U)


# --- clause statuses and the determination ------------------------------------------------------

STATUS_CLAUSES = [
    clause("S-APPLIES", leaf(1), applies_when=leaf(0)),
    clause("S-WAIVED", leaf(1), waived_by=leaf(0)),
    clause("S-BOTH", leaf(2), applies_when=leaf(0), waived_by=leaf(1)),
    clause("S-UNDOC", leaf(0), undocumented="not_met"),
    clause("S-BASE", leaf(0)),
    clause("S-ROUTE", {"clause": "S-BASE", "is": "met"}),
    clause("S-ROUTE-ND", {"clause": "S-BASE", "is": "not_documented"}),
    clause("S-ROUTE-OR", {"any": [{"clause": "S-BASE", "is": "met"}, leaf(1)]}),
]


@pytest.fixture(scope="module")
def statuses(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    return build(tmp_path_factory.mktemp("statuses"), document(STATUS_CLAUSES, "statuses"))


def status(
    requires: Truth, applies: Truth = T, waiver: Truth = F, undocumented: str = "not_documented"
) -> str:
    if applies is F or waiver is T:
        return "not_applicable"
    return {T: "met", F: "not_met", U: undocumented}[requires]


def determination(found: Iterable[str]) -> Determination:
    found = list(found)
    if "not_met" in found:
        return Determination.NOT_MEDICALLY_NECESSARY
    if "not_documented" in found:
        return Determination.INSUFFICIENT_DOCUMENTATION
    return Determination.MEDICALLY_NECESSARY


TRIPLES = list(itertools.product((T, U, F), repeat=3))


@pytest.mark.parametrize(
    ("a", "b", "c"), TRIPLES, ids=["-".join(v.name.lower() for v in t) for t in TRIPLES]
)
def test_clause_statuses_and_determination(statuses, a, b, c):
    trace = run(statuses, leaf_facts([a, b, c]))
    found = {cid: e.fact["status"] for cid, e in trace.statuses.items()}
    base = status(a)
    expected = {
        "S-APPLIES": status(b, applies=a),
        "S-WAIVED": status(b, waiver=a),
        "S-BOTH": status(c, applies=a, waiver=b),
        "S-UNDOC": status(a, undocumented="not_met"),
        "S-BASE": base,
        # a clause reference is two-valued: true only when the clause ends with that status
        "S-ROUTE": status(T if base == "met" else F),
        "S-ROUTE-ND": status(T if base == "not_documented" else F),
        "S-ROUTE-OR": status(max(T if base == "met" else F, b)),
    }
    assert found == expected
    assert trace.verdict is determination(expected.values())


# --- stratification -----------------------------------------------------------------------------

CHAIN = """\
id: chain
version: "1"
title: chain
status: active
effective: {from: "2025-01-01"}
procedures: [{procedure: lumbar_fusion}]
references: [{id: 1, citation: c}]
facts:
  a_seg: {description: listhesis at the segment, fields: {segment: segment}}
  b_seg: {description: no a_seg at the segment, fields: {segment: segment}}
  c_seg: {description: no b_seg at the segment, fields: {segment: segment}}
rules:
  # listed last-first, so that file order cannot be what makes the answer right
  - id: rc
    for_each: [{fact: fused_segment, as: seg}]
    when: {not: {exists: {fact: b_seg, where: {segment: {same_as: seg.segment}}}}}
    derive: {fact: c_seg, set: {segment: {from: seg.segment}}}
  - id: rb
    for_each: [{fact: fused_segment, as: seg}]
    when: {not: {exists: {fact: a_seg, where: {segment: {same_as: seg.segment}}}}}
    derive: {fact: b_seg, set: {segment: {from: seg.segment}}}
  - id: ra
    for_each: [{fact: fused_segment, as: seg}]
    when:
      fact: imaging_finding
      where: {segment: {same_as: seg.segment}}
      field: spondylolisthesis
      equals: true
    derive: {fact: a_seg, set: {segment: {from: seg.segment}}}
sections:
  - id: s
    title: S
    clauses:
      - id: C-CHAIN
        title: every fused segment has a c_seg
        requires:
          every:
            fact: fused_segment
            as: seg
            require: {exists: {fact: c_seg, where: {segment: {same_as: seg.segment}}}}
        cites: [1]
        recommendation: r
"""


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    return prepared(write(tmp_path_factory.mktemp("chain"), CHAIN, "chain"))


@settings(max_examples=40, deadline=None)
@given(listhesis=st.lists(st.booleans(), min_size=1, max_size=4))
@example(listhesis=[True, False, True])
def test_negation_over_derived_facts_never_fires_early(chain, listhesis):
    # c_seg = not b_seg = not not a_seg: exactly the segments with listhesis. A negation that
    # fired before the fact it negates was derived would add c_seg (or b_seg) at other segments.
    facts = [
        {"t": "fused_segment", "id": f"fused_segment:{i}", "segment": SEGMENTS[i]}
        for i in range(len(listhesis))
    ]
    # the findings come last, so nothing depends on the order facts are given in
    facts += [
        {
            "t": "imaging_finding",
            "id": f"imaging_finding:{i}",
            "segment": SEGMENTS[i],
            "spondylolisthesis": flag,
        }
        for i, flag in enumerate(listhesis)
    ]
    trace = run(chain, facts)
    derived: dict[str, set[str]] = {"a_seg": set(), "b_seg": set(), "c_seg": set()}
    for emitted in trace.derived:
        derived[emitted.fact["t"]].add(emitted.fact["segment"])
    with_listhesis = {SEGMENTS[i] for i, flag in enumerate(listhesis) if flag}
    assert derived["a_seg"] == with_listhesis
    assert derived["b_seg"] == set(SEGMENTS[: len(listhesis)]) - with_listhesis
    assert derived["c_seg"] == with_listhesis
    assert truths(trace)["C-CHAIN"] is (T if all(listhesis) else F)


def test_chain_stages_follow_the_derivations(chain):
    stage = {}
    for rule in chain.program.rules:
        if isinstance(rule.action, EmitFact):
            stage[rule.action.fact] = rule.stage
    assert stage["a_seg"] < stage["b_seg"] < stage["c_seg"]


def _eq_values(test: Test, field: str) -> set[object] | None:
    """The values a test pins `field` to (top-level Eq, or an AnyTest of Eqs), else None."""
    parts = test.tests if isinstance(test, AllOf) else (test,)
    for part in parts:
        if isinstance(part, Eq) and part.field == field:
            return {part.value}
        if (
            isinstance(part, AnyTest)
            and part.tests
            and all(isinstance(t, Eq) and t.field == field for t in part.tests)
        ):
            return {t.value for t in part.tests if isinstance(t, Eq)}
    return None


def _produced(program: Program) -> dict[tuple[str, object, object], int]:
    """What the rules derive, (kind, name, value), and the last stage deriving it."""
    produced: dict[tuple[str, object, object], int] = {}
    for rule in program.rules:
        action = rule.action
        if isinstance(action, EmitValue):
            key: tuple[str, object, object] = (action.kind, action.node, int(action.value))
        elif isinstance(action, EmitFact):
            key = ("fact", action.fact, None)
        elif isinstance(action, EmitStatus):
            key = (STATUS, action.clause, None)
        elif isinstance(action, EmitMissing):
            continue  # fails the evaluation; produces nothing another rule reads
        elif isinstance(action, EmitPair):
            key = (PAIR, action.node, None)
        else:
            assert isinstance(action, EmitVerdict)
            key = ("verdict", None, None)
        produced[key] = max(produced.get(key, 0), rule.stage)
    return produced


def stage_violations(program: Program) -> Iterator[str]:
    """Every rule that reads something not complete before its stage."""
    # what: (kind, name, value); a value fact is read by node and value (a count's own rules
    # read whether its true value exists, which is final a stage before they run).
    produced = _produced(program)
    derived = {fact for kind, fact, _ in produced if kind == "fact"}
    clauses = {c for kind, c, _ in produced if kind == STATUS}
    for rule in program.rules:
        marker, *patterns = rule.patterns
        # A rule without its marker (compile/shaping.py `ungate`) must wait for its stage's
        # batch all the same: a positive pattern reads only what the stage before derives (or,
        # in stage 1, case facts), and whatever it negates is complete a batch earlier.
        ungated = _eq_values(marker.test, "t") != {STAGE}
        gate = False
        if ungated:
            patterns = list(rule.patterns)
        elif _eq_values(marker.test, "s") != {rule.stage}:
            yield f"{rule.name}: first pattern is not the marker of stage {rule.stage}"
        if not 1 <= rule.stage <= program.stages:
            yield f"{rule.name}: stage {rule.stage} outside 1..{program.stages}"
        flat = [Pattern(p.alias, AllOf(tuple(parts(p.test))), p.negated) for p in patterns]
        for pattern in flat:
            kinds = _eq_values(pattern.test, "t") or set()
            reads: list[tuple[str, object, object]] = []
            for kind in kinds:
                if kind in (VAL, CAND):
                    nodes = _eq_values(pattern.test, "n")
                    values = _eq_values(pattern.test, "v")
                    assert nodes, f"{rule.name} reads values of no node"
                    assert values, f"{rule.name} reads no value"
                    reads += [(str(kind), n, v) for n in nodes for v in values]
                elif kind == STATUS:
                    found = _eq_values(pattern.test, "clause") or clauses
                    reads += [(STATUS, c, None) for c in found]
                elif kind == PAIR:
                    reads += [(PAIR, n, None) for n in _eq_values(pattern.test, "n") or ()]
                elif kind in derived:
                    reads.append(("fact", kind, None))
            if ungated:
                stages = {produced.get(read, 0) for read in reads} or {0}
                if pattern.negated and max(stages) >= rule.stage - 1:
                    yield f"{rule.name}: no marker, and negates what its own batch brings"
                if not pattern.negated and stages == {rule.stage - 1}:
                    gate = True
            for read in reads:
                if read not in produced:
                    # a value no rule can derive (e.g. false for `demonstrated`'s unknown) is
                    # fine to read; a node nobody derives at all is not
                    if not any(p[:2] == read[:2] for p in produced):
                        yield f"{rule.name} ({rule.origin}) reads {read}, which no rule produces"
                elif rule.stage <= produced[read]:
                    yield (
                        f"{rule.name} ({rule.origin}) at stage {rule.stage} reads {read}, "
                        f"complete only at stage {produced[read]}"
                    )
        if ungated and not gate:
            yield f"{rule.name}: no marker, and nothing it reads comes in its own batch"


def shipped() -> list[Path]:
    return list(Library().paths())


@pytest.mark.parametrize("name", ["kleene", "quantified", "statuses", "chain"], ids=str)
def test_every_rule_reads_only_earlier_strata(request, name):
    compiled = request.getfixturevalue(name)
    assert list(stage_violations(compiled.program)) == []


@pytest.mark.parametrize("path", shipped(), ids=lambda p: f"{p.parent.name}@{p.stem}")
def test_shipped_policies_are_stratified(path):
    assert list(stage_violations(compile_policy(load_policy(path)))) == []


# --- compile errors -----------------------------------------------------------------------------

BROKEN = """\
id: broken
version: "1"
title: broken
status: active
effective: {from: "2025-01-01"}
procedures: [{procedure: lumbar_fusion}]
references: [{id: 1, citation: c}]
settings:
  gap: {value: 3, unit: mm, description: d}
facts:
  a_fact: {description: d, fields: {segment: segment}}
  b_fact: {description: d, fields: {segment: segment}}
rules:
  - id: ra
    for_each: [{fact: fused_segment, as: s}]
    when: {exists: {fact: b_fact}}
    derive: {fact: a_fact, set: {segment: {from: s.segment}}}
  - id: rb
    for_each: [{fact: fused_segment, as: s}]
    when: {exists: {fact: a_fact}}            # CYCLE-RULES
    derive: {fact: b_fact, set: {segment: {from: s.segment}}}
  - id: rc
    for_each: [{fact: fused_segment, as: s}]
    derive: {fact: c_fact, set: {segment: {from: s.segment}}}   # UNDECLARED
sections:
  - id: s
    title: S
    clauses:
      - id: X-ONE
        title: T
        requires:
          all:
            - {fact: nicotin, field: status, equals: never}
            - {fact: nicotine, field: cotinin, at_most: {value: 10, unit: ng/mL}}
            - {fact: dynamic_study, field: translation, at_least: {setting: gapp}}
            - {fact: dynamic_study, field: translation, at_least: {value: 3, unit: deg}}
            - {fact: nicotine, field: status, equals: nevr}
            - {clause: X-TWOO, is: met}
        cites: [1]
        recommendation: r
      - id: X-TWO
        title: T
        requires: {clause: X-THREE, is: met}
        cites: [1]
        recommendation: r
      - id: X-THREE
        title: T
        requires: {clause: X-TWO, is: met}   # CYCLE-CLAUSES
        cites: [1]
        recommendation: r
"""


def line_of(text: str, marker: str) -> int:
    (line,) = [i for i, row in enumerate(text.splitlines(), start=1) if marker in row]
    return line


def test_compile_errors_are_collected_and_located(tmp_path):
    path = write(tmp_path, BROKEN, "broken")
    with pytest.raises(PolicyError) as caught:
        compile_policy(load_policy(path))
    found = sorted((p.code, p.location.line, p.hint) for p in caught.value.problems)
    expected = sorted(
        [
            ("unknown_fact", line_of(BROKEN, "nicotin,"), "did you mean `nicotine`?"),
            ("unknown_field", line_of(BROKEN, "cotinin,"), "did you mean `cotinine`?"),
            ("unknown_setting", line_of(BROKEN, "gapp"), "did you mean `gap`?"),
            ("unit_mismatch", line_of(BROKEN, "unit: deg"), None),
            ("unknown_value", line_of(BROKEN, "nevr"), "did you mean `never`?"),
            ("unknown_clause", line_of(BROKEN, "X-TWOO"), "did you mean `X-TWO`?"),
            ("cycle", line_of(BROKEN, "CYCLE-CLAUSES"), None),
            ("cycle", line_of(BROKEN, "CYCLE-RULES"), None),
            ("undeclared_fact", line_of(BROKEN, "UNDECLARED"), None),
        ]
    )
    assert found == expected
    assert all(p.location.file == str(path) for p in caught.value.problems)
    messages = "\n".join(p.message for p in caught.value.problems)
    assert "`mm`" in messages  # the unit mismatch says which unit was expected
    assert "clause X-TWO -> clause X-THREE -> clause X-TWO" in messages
    assert "fact a_fact -> fact b_fact -> fact a_fact" in messages


UNDECLARED = """\
id: undeclared
version: "1"
title: undeclared
status: active
effective: {from: "2025-01-01"}
procedures: [{procedure: lumbar_fusion}]
references: [{id: 1, citation: c}]
rules:
  - id: r-undeclared
    for_each: [{fact: fused_segment, as: s}]
    derive: {fact: c_fact, set: {segment: {from: s.segment}}}      # UNDECLARED
  - id: r-case-type
    for_each: [{fact: fused_segment, as: s}]
    derive: {fact: decompressed_segment, set: {segment: {from: s.segment}}}  # CASE-TYPE
sections:
  - id: s
    title: S
    clauses:
      - id: X-ONE
        title: T
        requires: {fact: nicotine, field: status, equals: never}
        cites: [1]
        recommendation: r
"""


def test_deriving_an_undeclared_fact_is_an_error(tmp_path):
    path = write(tmp_path, UNDECLARED, "undeclared")
    with pytest.raises(PolicyError) as caught:
        compile_policy(load_policy(path))
    found = sorted((p.code, p.location.line) for p in caught.value.problems)
    assert found == [
        ("undeclared_fact", line_of(UNDECLARED, "UNDECLARED")),
        ("undeclared_fact", line_of(UNDECLARED, "CASE-TYPE")),
    ]


MONTHS = {"value": 3, "unit": "months"}


@pytest.mark.parametrize(
    ("requires", "code"),
    [
        ({"fact": "line", "field": "pelvic_fixation", "equals": 1}, "wrong_type"),
        ({"fact": "line", "field": "cpt", "equals": 22612}, "wrong_type"),
        ({"fact": "line", "field": "upper", "above": "L9"}, "unknown_level"),
        ({"fact": "nicotine", "field": "status", "above": "L1"}, "not_a_level"),
        (
            {"fact": "nicotine", "field": "status", "at_least": {"value": 1, "unit": "count"}},
            "not_numeric",
        ),
        ({"fact": "conservative_care", "field": "start", "at_least": MONTHS}, "date_needs_measure"),
        ({"fact": "physical_therapy", "field": "duration", "at_least": MONTHS}, "unit_mismatch"),
        ({"n_of": {"at_least": 3, "of": [leaf(0), leaf(1)]}}, "impossible_n_of"),
        (
            {
                "every": {
                    "fact": "fused_segment",
                    "as": "s",
                    "require": {"every": {"fact": "fused_segment", "as": "s", "require": leaf(0)}},
                }
            },
            "alias_reused",
        ),
        (
            {
                "every": {
                    "fact": "fused_segment",
                    "as": "s",
                    "require": {
                        "count": {"fact": "line", "as": "l", "at_least": 1, "require": leaf(0)}
                    },
                }
            },
            "nested_count",
        ),
        (
            {"exists": {"fact": "imaging_finding", "where": {"segment": {"same_as": "x.segment"}}}},
            "unknown_alias",
        ),
    ],
    ids=[
        "bool-as-int",
        "text-as-int",
        "unknown-level",
        "not-a-level",
        "not-numeric",
        "date-without-measure",
        "months-on-duration",
        "impossible-n-of",
        "alias-reused",
        "nested-count",
        "unknown-alias",
    ],
)
def test_misuse_is_reported(tmp_path, requires, code):
    with pytest.raises(PolicyError) as caught:
        build(tmp_path, document([clause("X-ONE", requires)], "misuse"))
    assert [p.code for p in caught.value.problems] == [code]
    assert caught.value.problems[0].location.line is not None
