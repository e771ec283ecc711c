"""A join on a field its bound fact may lack never decides a case (evaluator/compile/joins.py).

durable_rules reads a negated join whose bound fact lacks the joined field as true ("no finding
at ds.segment" for a study that names no segment), whatever facts the case has. The compiler
refuses such a join unless the fact dictionary (schemas/facts.schema.json, `required`) or the
policy's derivation rules guarantee the field: these tests reproduce the engine's behaviour,
show the wrong approval it gives when the check is off, and check that nothing shipped joins
on a field a case may omit.
"""

from __future__ import annotations

import copy
import json
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner
from test_compiler import build, clause, document, run, truths  # type: ignore[import-not-found]
from test_engine import run_python  # type: ignore[import-not-found]

from evaluator import api
from evaluator.case.cases import case_from_data, load_case
from evaluator.cli.main import ExitCode, main
from evaluator.compile import joins
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import (
    KEY,
    STAGE,
    AllOf,
    AnyTest,
    EmitStatus,
    Eq,
    Join,
    Pattern,
    Program,
    Rule,
    Test,
)
from evaluator.errors import NecessityError, PolicyError
from evaluator.language import dictionary
from evaluator.language.conditions import Truth
from evaluator.language.model import Policy, Status
from evaluator.language.plans import load_plan
from evaluator.language.policies import load_policy, with_plan

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "cases" / "dynamic-instability.json"


# --- the engine's behaviour ------------------------------------------------------------------


def joined_program(negated: bool) -> Program:
    """One rule, as the compiler lowers `every dynamic_study as ds: (not) exists finding at
    ds.segment`: the bound study, then a finding pattern joined to it on the segment."""
    marker = Pattern(STAGE, AllOf((Eq("t", STAGE), Eq("s", 1))))
    study = Pattern("ds", Eq("t", "dynamic_study"))
    finding = AllOf((Eq("t", "imaging_finding"), Join("segment", "ds", "segment")))
    rule = Rule(
        "r0",
        1,
        (marker, study, Pattern("f", finding, negated=negated)),
        EmitStatus("X", Status.MET),
        "hand",
    )
    return Program(f"joined-{uuid.uuid4().hex[:8]}", 1, (rule,), {}, {}, None)


@pytest.mark.parametrize("negated", [True, False], ids=["negated", "positive"])
def test_the_engine_on_a_join_whose_bound_fact_lacks_the_field(negated: bool) -> None:
    # The finding is at L4-L5. A study at L4-L5 joins it, one at L3-L4 does not; a study with
    # no segment joins nothing, so the negated join holds although the case has a finding at
    # L4-L5, where the study may well have looked: the engine's answer, and the language's (an
    # absent side relates no fact), which is why the compiler must not let it decide a case.
    # Untraced runs after the first share a session (the several-cases ruleset), traced ones
    # run alone: both agree. In a fresh interpreter: such a join was reported to crash
    # durable_rules, and a crash must fail this test, not end pytest.
    programs = pickle.dumps(joined_program(negated))
    done = run_python(
        f"""
        import pickle
        from evaluator.engine.durable import Engine
        program = pickle.loads({programs!r})
        finding = {{"t": "imaging_finding", "id": "f:1", "segment": "L4-L5"}}
        for trace in (False, True):
            for segment in ("L4-L5", "L3-L4", None):
                study = {{"t": "dynamic_study", "id": "d:1", "study": "xr"}}
                if segment:
                    study["segment"] = segment
                found = Engine.get().run(program, [study, finding], trace=trace).statuses
                print(segment, sorted(found))
        """
    )
    assert done.returncode == 0, f"the engine crashed ({done.returncode}): {done.stderr[-2000:]}"
    met = "['X']"
    expected = (
        ["L4-L5 []", f"L3-L4 {met}", f"None {met}"]
        if negated
        else [f"L4-L5 {met}", "L3-L4 []", "None []"]
    )
    assert done.stdout.splitlines() == expected * 2, done.stdout


# --- a policy that joins on a field a case may omit ------------------------------------------

NO_SLIP = {
    "every": {
        "fact": "dynamic_study",
        "as": "ds",
        "require": {
            "not": {
                "exists": {
                    "fact": "imaging_finding",
                    "where": {"segment": {"same_as": "ds.segment"}, "spondylolisthesis": True},
                }
            }
        },
    }
}


def no_slip_policy(root: Path, pid: str) -> Path:
    path = root / "policies" / pid / "1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document([clause("NO-SLIP", NO_SLIP)], pid), indent=1))
    return path


def slip_case(segments: list[str] | None) -> dict[str, Any]:
    """The dynamic-instability example with a listhesis at L4-L5 on MRI and flexion-extension
    views that name `segments` (None: performed, no segment named)."""
    data: dict[str, Any] = copy.deepcopy(json.loads(EXAMPLE.read_text()))
    mri, views = data["imaging"]
    (l45,) = [f for f in mri["findings"] if f["level"] == "L4-L5"]
    l45["spondylolisthesis"] = True
    views["flexion_extension"] = {"performed": True}
    if segments is not None:
        views["flexion_extension"]["segments"] = [{"level": s} for s in segments]
    return data


def status(policy: Policy, data: dict[str, Any]) -> Status:
    decision = api.evaluate(case_from_data(data, "slip.json"), policy, alternative=False)
    (result,) = decision.clauses
    return result.status


def test_a_negated_join_on_an_optional_field_is_refused_where_it_is_written(tmp_path: Path):
    path = no_slip_policy(tmp_path, "no-slip")
    with pytest.raises(PolicyError) as raised:
        compile_policy(load_policy(path))
    (problem,) = raised.value.problems
    assert problem.code == "optional_join"
    assert problem.location.pointer == (
        "/sections/0/clauses/0/requires/every/require/not/exists/where/segment"
    )
    assert problem.location.line is not None
    assert "`ds.segment` may be missing" in problem.message
    # the product: no decision, for any case
    for segments in (None, ["L4-L5"]):
        with pytest.raises(PolicyError) as raised:
            status(load_policy(path), slip_case(segments))
        assert [p.code for p in raised.value.problems] == ["optional_join"]


def test_the_cli_gives_no_determination_for_such_a_policy(tmp_path: Path):
    no_slip_policy(tmp_path, "no-slip-cli")
    case = tmp_path / "slip.json"
    case.write_text(json.dumps(slip_case(None)))
    args = ["evaluate", case, "--policy", "no-slip-cli", "--policies-dir", tmp_path / "policies"]
    result = CliRunner().invoke(main, [str(a) for a in args], prog_name="necessity")
    assert result.exit_code == ExitCode.INVALID_INPUT, result.output
    assert "1.yaml:" in result.output
    assert "`ds.segment` may be missing" in result.output
    assert "medically_necessary" not in result.output.replace("not_medically_necessary", "")
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("cache_folder")
def test_without_the_check_a_case_omitting_the_field_would_be_met(tmp_path: Path):
    # What the check prevents: the study names no segment, so "no listhesis at its segment"
    # holds although the MRI shows one at L4-L5 (met: a wrong approval). Naming the segment
    # makes the same join find it (not met). A policy id of its own and a cache folder of its
    # own: the program compiled unchecked is never found by another test (api.program_for
    # keeps programs by content, in the process and on disk).
    policy = load_policy(no_slip_policy(tmp_path, "no-slip-unchecked"))
    with mock.patch.object(joins, "check", return_value=None):
        assert status(policy, slip_case(None)) is Status.MET
        assert status(policy, slip_case(["L4-L5"])) is Status.NOT_MET
        assert status(policy, slip_case(["L3-L4"])) is Status.MET


def test_a_join_on_a_required_field_still_decides(tmp_path: Path):
    # The same clause over fused segments, whose `segment` every schema-valid case gives.
    tree = json.loads(json.dumps(NO_SLIP).replace("dynamic_study", "fused_segment"))
    compiled = build(tmp_path, document([clause("NO-SLIP", tree)], "no-slip-fused"))
    seg = {"t": "fused_segment", "id": "s:1", "line": "l1", "segment": "L4-L5"}
    seg.update(upper="L4", lower="L5")
    slip: dict[str, Any] = {"t": "imaging_finding", "id": "f:1", "study": "mri", "modality": "mri"}
    slip.update(segment="L4-L5", spondylolisthesis=True)
    assert truths(run(compiled, [seg, slip])) == {"NO-SLIP": Truth.FALSE}
    assert truths(run(compiled, [seg, {**slip, "segment": "L3-L4"}])) == {"NO-SLIP": Truth.TRUE}


def derived_policy(root: Path, when: dict[str, Any] | None, pid: str) -> Path:
    rule: dict[str, Any] = {
        "id": "blocks",
        "for_each": [{"fact": "diagnostic_block", "as": "b"}],
        "derive": {"fact": "block_day", "set": {"date": {"from": "b.date"}}},
    }
    if when is not None:
        rule["when"] = when
    every = {
        "every": {
            "fact": "block_day",
            "as": "d",
            "require": {
                "not": {
                    "exists": {
                        "fact": "diagnostic_block",
                        "where": {"date": {"same_as": "d.date"}, "image_guided": False},
                    }
                }
            },
        }
    }
    data = document(
        [clause("NO-BLIND-BLOCK-DAY", every)],
        pid,
        facts={"block_day": {"description": "a block day", "fields": {"date": "date"}}},
        rules=[rule],
    )
    path = root / "policies" / pid / "1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def test_a_derived_field_is_sure_only_when_its_rule_makes_it_so(tmp_path: Path):
    copied = load_policy(derived_policy(tmp_path, None, "copied"))
    with pytest.raises(PolicyError) as raised:
        compile_policy(copied)
    assert [p.code for p in raised.value.problems] == ["optional_join"]
    for when in (
        {"fact": "b", "field": "date", "documented": True},
        {
            "all": [
                {"fact": "b", "field": "side", "documented": True},
                {"fact": "b", "field": "date", "documented": True},
            ]
        },
    ):
        sure = load_policy(derived_policy(tmp_path / uuid.uuid4().hex, when, "documented"))
        compile_policy(sure)
    # Neither a `documented` under `any`/`not`, nor one about another field, vouches for it.
    unsure_whens: list[dict[str, Any]] = [
        {
            "any": [
                {"fact": "b", "field": "date", "documented": True},
                {"fact": "b", "field": "side", "documented": True},
            ]
        },
        {"not": {"fact": "b", "field": "date", "documented": True}},
        {"fact": "b", "field": "side", "documented": True},
    ]
    for when in unsure_whens:
        unsure = load_policy(derived_policy(tmp_path / uuid.uuid4().hex, when, "unsure"))
        with pytest.raises(PolicyError) as raised:
            compile_policy(unsure)
        assert [p.code for p in raised.value.problems] == ["optional_join"], when


def test_a_type_derived_from_itself_does_not_vouch_for_itself(tmp_path: Path):
    data = json.loads(derived_policy(tmp_path, None, "loop").read_text())
    data["rules"] = [
        {
            "id": "again",
            "for_each": [{"fact": "block_day", "as": "x"}],
            "derive": {"fact": "block_day", "set": {"date": {"from": "x.date"}}},
        }
    ]
    path = tmp_path / "policies" / "loop" / "1.yaml"
    path.write_text(json.dumps(data, indent=1))
    policy = load_policy(path)
    types = dictionary.with_derived(policy.derived)
    assert joins.carried_fields(policy, types)["block_day"] == joins.ALWAYS


# --- the schemas' `required` is what every case gives ------------------------------------------


def case_files() -> Iterator[Path]:
    for folder in ("examples/cases", "tests/cases", "tests/fixtures/cases"):
        yield from sorted((ROOT / folder).glob("*.json"))
        yield from sorted((ROOT / folder).glob("*.yaml"))


def test_every_fact_of_every_case_carries_what_its_type_requires() -> None:
    required = joins.required_fields()
    assert required["fused_segment"] >= {"segment"}  # what the shipped joins read
    seen: set[str] = set()
    for path in case_files():
        try:
            case = load_case(path)
        except NecessityError:
            continue
        for fact in case.facts:
            missing = required[fact.type] - {"t"} - set(fact.as_dict())
            assert not missing, (path.name, fact.type, fact.id, missing)
            if required[fact.type] - joins.ALWAYS:
                seen.add(fact.type)
    # (no case file plans a resection: the minimal case below has one)
    assert seen >= {"fused_segment", "decompressed_segment", "imaging_finding"}


def test_a_minimal_case_gives_the_required_fields() -> None:
    # Every optional part left out: a fusion and a decompression line with their ranges, a
    # resection and a finding with only their level, a study with only its id and modality.
    data = {
        "case_id": "minimal",
        "request": {
            "date": "2025-06-20",
            "lines": [
                {
                    "id": "l1",
                    "procedure": "lumbar_fusion",
                    "fusion": "L4-L5",
                    "resections": [{"level": "L4-L5"}],
                },
                {"id": "l2", "procedure": "lumbar_decompression", "decompression": "L3-L4"},
            ],
        },
        "imaging": [{"id": "s", "modality": "mri", "findings": [{"level": "L4-L5"}]}],
    }
    facts = case_from_data(data, "minimal.json").facts
    required = joins.required_fields()
    kinds = {f.type for f in facts}
    assert kinds >= {t for t, fields in required.items() if fields - joins.ALWAYS}
    for fact in facts:
        assert required[fact.type] - {"t"} <= set(fact.as_dict()), fact


# --- nothing shipped joins on a field a case may omit ----------------------------------------


def shipped() -> Iterator[tuple[str, Policy]]:
    paths = sorted(
        [*(ROOT / "policies").glob("*/[0-9]*.yaml"), *(ROOT / "benchmarks").rglob("[0-9]*.yaml")]
    )
    for path in paths:
        policy = load_policy(path)
        yield f"{path.parent.name}/{path.stem}", policy
        for plan_path in sorted((path.parent / "plans").glob("*.yaml")):
            plan = load_plan(plan_path)
            if plan.base_policy == policy.id and plan.base_version in (None, policy.version):
                yield f"{path.parent.name}/{path.stem}+{plan_path.stem}", with_plan(policy, plan)


SHIPPED = list(shipped())


def _types_of(test: Test) -> set[str]:
    if isinstance(test, Eq) and test.field == "t":
        return {str(test.value)}
    if isinstance(test, AllOf):
        return set().union(*(_types_of(t) for t in test.tests))
    if isinstance(test, AnyTest):
        return set().union(*(_types_of(t) for t in test.tests))
    return set()


def _joins(test: Test) -> Iterator[Join]:
    if isinstance(test, Join):
        yield test
    elif isinstance(test, AllOf | AnyTest):
        for part in test.tests:
            yield from _joins(part)


@pytest.mark.parametrize(("name", "policy"), SHIPPED, ids=[n for n, _ in SHIPPED])
def test_no_shipped_join_reads_a_field_a_case_may_omit(name: str, policy: Policy) -> None:
    types = dictionary.with_derived(policy.derived)
    carried = joins.carried_fields(policy, types)
    sites = list(joins.join_sites(policy, types))
    assert all(s.field in carried[s.fact] for s in sites), name
    # The rules the engine gets, folded or not: every join reads, on the fact bound to its
    # alias, a field every fact of that alias's type carries (or one the engine writes on
    # every fact: `key`, a value fact's keys).
    engine_fields = {KEY, "n", "v", "f", *(f"k{i}" for i in range(1, 17))}
    read = set()
    for fold in (True, False):
        program = compile_policy(policy, fold=fold)
        for rule in program.rules:
            kinds = {p.alias: _types_of(p.test) for p in rule.patterns}
            for pattern in rule.patterns:
                for join in _joins(pattern.test):
                    if join.other in engine_fields:
                        continue
                    bound = kinds[join.alias]
                    assert bound, (name, rule.name, join)
                    for kind in bound:
                        assert join.other in carried.get(kind, joins.ALWAYS), (name, rule, join)
                        read.add((kind, join.other))
    # not vacuous: a policy that writes joins has them checked in its rules
    assert read >= {(s.fact, s.field) for s in sites}, (name, read)


def test_the_shipped_joins_are_the_ones_expected() -> None:
    found = {
        (s.fact, s.field)
        for _, policy in SHIPPED
        for s in joins.join_sites(policy, dictionary.with_derived(policy.derived))
    }
    assert found == {
        ("fused_segment", "segment"),
        ("decompressed_segment", "segment"),
        ("distinct_block", "date"),
        # lumbar-fusion reads a finding with its study's date (stop 22): imaging_study requires
        # `study` (facts.schema.json), the join the correlation and the slip route make
        ("imaging_finding", "study"),
    }
    names = {n.split("+")[0].split("/")[0] for n, _ in SHIPPED}
    assert names >= {"lumbar-fusion", "lumbar-decompression", "si-joint-fusion", "bench-fusion"}
    assert any("+" in n for n, _ in SHIPPED)  # the plans too
    assert any(p.imports for _, p in SHIPPED)  # and the modules they import
