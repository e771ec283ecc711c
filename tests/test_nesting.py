"""Nested quantifiers: durable_rules' `dist` setting (trap 19) and the nesting-depth limit.

By default durable_rules lets one fact fill only one pattern of a rule, so nested quantifiers
over the same fact type missed the combinations where inner and outer binding are the same fact.
The renderer sets `dist: 0`; each nesting shape is checked here against a small oracle. Nesting
too deep corrupts the engine's heap (SIGABRT/SIGSEGV): those probes run in subprocesses so a
crash is a failing exit code, and the compiler refuses such policies (`engine_limit`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import durable_rules_engine as dre
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from test_compiler import (  # type: ignore[import-not-found]
    build,
    clause,
    document,
    run,
    truths,
    write,
)

from evaluator.cli.main import main
from evaluator.compile.compiler import compile_policy
from evaluator.compile.lowering import MAX_QUANTIFIER_DEPTH
from evaluator.errors import PolicyError
from evaluator.language.conditions import Truth
from evaluator.language.policies import load_policy
from evaluator.vocab.levels import parse_level

HERE = Path(__file__).parent
ROOT = HERE.parent
T, U, F = Truth.TRUE, Truth.UNKNOWN, Truth.FALSE
SEGMENTS = ("L1-L2", "L2-L3", "L3-L4")
CATCH_ALL = {"all": [{"m": {"$ex": {"t": 1}}}, {"n": {"t": "__never__"}}]}


def test_durable_rules_default_keeps_one_fact_out_of_two_patterns():
    """The trap itself, on the raw engine: a rule whose two patterns both match one fact fires
    only with `dist: 0` (so a future durable_rules that changes the default is noticed)."""
    fired = {}
    for dist in (None, 0):
        rule: dict[str, Any] = {"all": [{"a": {"t": "x"}}, {"b": {"$and": [{"t": "x"}]}}]}
        if dist is not None:
            rule["dist"] = dist
        handle = dre.create_ruleset(f"dist-{uuid.uuid4().hex[:8]}", json.dumps({"r": rule}))
        result = dre.assert_facts(handle, json.dumps([{"sid": "1", "id": "one", "t": "x"}]))
        count = 0
        if isinstance(result, tuple) and len(result) > 1:
            message = dre.start_action_for_state(handle, result[1])
            while message:
                count += 1
                following = dre.complete_and_start_action(handle, result[1])
                message = (None, following) if following else None
        # no delete_state: it can abort on a raw session (durable-rules.md trap 20)
        fired[dist] = count
    assert fired == {None: 0, 0: 1}


# One fused segment per value: its `upper` is at or above L3 (true), below it (false), absent
# (unknown). Each shape binds `a` and then `b` over the same type, joined on the segment or not.
def _inner(kind: str, joined: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fact": "fused_segment",
        "as": "b",
        "require": {
            "all": [
                {"fact": "b", "field": "upper", "at_or_above": "L3"},
                {"fact": "a", "field": "upper", "at_or_above": "L3"},
            ]
        },
    }
    if joined:
        body["where"] = {"segment": {"same_as": "a.segment"}}
    return {kind: body}


SHAPES = {
    f"N-{outer.upper()}-{inner.upper()}{'-J' if joined else ''}": (outer, inner, joined)
    for outer in ("every", "some")
    for inner in ("every", "some")
    for joined in (False, True)
}


def _shape(outer: str, inner: str, joined: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"fact": "fused_segment", "as": "a", "require": _inner(inner, joined)}
    if outer == "every":
        body["if_empty"] = "false"
    return {outer: body}


def _every(values: list[Truth], if_empty: Truth) -> Truth:
    return min(values) if values else if_empty


def _oracle(outer: str, inner: str, joined: bool, values: list[Truth]) -> Truth:
    def quantify(kind: str, items: list[Truth], empty: Truth) -> Truth:
        if kind == "every":
            return _every(items, empty)
        return max(items, default=F)

    per_a = []
    for a in values:
        others = [a] if joined else values
        # inner `every` over an empty set is not documented (the language's default)
        per_a.append(quantify(inner, [min(b, a) for b in others], U))
    return quantify(outer, per_a, F)


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # One policy per shape (all eight in one ruleset: `all_shapes` below).
    return {
        cid: build(
            tmp_path_factory.mktemp(cid.lower()),
            document([clause(cid, _shape(*shape))], cid.lower()),
        )
        for cid, shape in SHAPES.items()
    }


def _facts(values: list[Truth]) -> list[dict[str, Any]]:
    out = []
    for i, value in enumerate(values):
        fact: dict[str, Any] = {"t": "fused_segment", "id": f"fused_segment:{i}"}
        fact["segment"] = SEGMENTS[i]
        if value is not U:
            fact["upper"] = "L2" if value is T else "L4"
            fact["upper_index"] = parse_level(fact["upper"]).index
        out.append(fact)
    return out


@pytest.fixture(scope="module")
def all_shapes(tmp_path_factory: pytest.TempPathFactory) -> Any:
    clauses = [clause(cid, _shape(*shape)) for cid, shape in SHAPES.items()]
    return build(tmp_path_factory.mktemp("all-shapes"), document(clauses, "all-shapes"))


@settings(max_examples=20, deadline=None)
@given(values=st.lists(st.sampled_from((T, U, F)), max_size=3))
def test_eight_nesting_shapes_in_one_ruleset_match_the_oracle(all_shapes, values):
    """With all eight shapes in one ruleset durable_rules refused a single fact with error 303:
    the joins came first in each pattern, and one fact had more tests pending than the
    engine's stack of 64. Behind the equality tests it runs, and agrees with the oracle
    (tests/test_alpha_stack.py shows the old ruleset refused when compiled)."""
    found = truths(run(all_shapes, _facts(values)))
    assert found == {cid: _oracle(*shape, values) for cid, shape in SHAPES.items()}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_one_fact_fills_both_bindings(nested, shape):
    # One segment, true: every shape is true, which needs `a` and `b` to be the same fact.
    assert truths(run(nested[shape], _facts([T])))[shape] is T


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.sampled_from((T, U, F)), max_size=3))
def test_nesting_shapes_match_the_oracle(nested, values):
    for cid, shape in SHAPES.items():
        assert truths(run(nested[cid], _facts(values)))[cid] is _oracle(*shape, values), cid


# --- the depth limit ---------------------------------------------------------------------------


def _deep(depth: int, beside: bool, alternate: bool = False) -> dict[str, Any]:
    """Quantifiers `depth` deep, each joined to the one outside it; with `beside`, a comparison
    next to each nested quantifier (the shape that crashed soonest)."""

    def leaf(i: int) -> dict[str, Any]:
        return {"fact": f"s{i}", "field": "segment", "documented": True}

    def nest(d: int, i: int = 0) -> dict[str, Any]:
        fact = "imaging_finding" if alternate and i % 2 else "fused_segment"
        body: dict[str, Any] = {"fact": fact, "as": f"s{i}"}
        if i > 0:
            body["where"] = {"segment": {"same_as": f"s{i - 1}.segment"}}
        if d == 1:
            body["require"] = leaf(i)
        else:
            inner = nest(d - 1, i + 1)
            body["require"] = {"all": [leaf(i), inner]} if beside else inner
        return {"some": body}

    return nest(depth)


_PROBE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from tests.test_compiler import build, document, clause, run, truths
    condition = json.loads(sys.argv[1])
    compiled = build(Path(sys.argv[2]), document([clause("N-DEEP", condition)], "deep"))
    facts = [
        {{"t": kind, "id": f"{{kind}}:{{i}}", "segment": s}}
        for kind in ("fused_segment", "imaging_finding")
        for i, s in enumerate(("L1-L2", "L2-L3", "L3-L4"))
    ]
    print(truths(run(compiled, facts))["N-DEEP"].name)
    """
)


@pytest.mark.parametrize("beside", [False, True], ids=["chain", "beside"])
@pytest.mark.parametrize("alternate", [False, True], ids=["same-type", "two-types"])
def test_the_deepest_allowed_nesting_runs(tmp_path, beside, alternate):
    """At the limit the engine runs each shape without crashing (in a subprocess, so a crash is
    an exit code): the limit is safe, not only conservative."""
    condition = _deep(MAX_QUANTIFIER_DEPTH, beside, alternate)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(root=str(ROOT)), json.dumps(condition), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "TRUE"


def test_one_level_deeper_crashed_the_engine_and_is_refused(tmp_path):
    condition = _deep(MAX_QUANTIFIER_DEPTH + 1, beside=True)
    with pytest.raises(PolicyError) as raised:
        build(tmp_path, document([clause("N-DEEP", condition)], "deep"))
    problems = raised.value.problems
    assert [p.code for p in problems] == ["engine_limit"]
    pointer = "/sections/0/clauses/0/requires" + "/some/require/all/1" * MAX_QUANTIFIER_DEPTH
    assert problems[0].location.pointer == pointer
    assert problems[0].location.line is not None


def test_a_rule_binding_too_many_facts_is_refused(tmp_path):
    bindings = [{"fact": "fused_segment", "as": f"s{i}"} for i in range(MAX_QUANTIFIER_DEPTH + 1)]
    data = document(
        [clause("N-USE", {"exists": {"fact": "wide"}})],
        "wide",
        facts={"wide": {"description": "w", "fields": {"segment": "segment"}}},
        rules=[
            {
                "id": "make-wide",
                "description": "d",
                "for_each": bindings,
                "derive": {"fact": "wide", "set": {"segment": {"from": "s0.segment"}}},
            }
        ],
    )
    path = write(tmp_path, json.dumps(data), "wide")
    with pytest.raises(PolicyError) as raised:
        compile_policy(load_policy(path))
    assert "engine_limit" in [p.code for p in raised.value.problems]


def test_the_hostile_deep_policy_is_refused_by_validate():
    """tests/hostile/policies/nesting-depth-5/1.yaml, run as its sidecar says (until the shared
    hostile harness runs every sidecar)."""
    hostile = HERE / "hostile" / "policies" / "nesting-depth-5" / "1.yaml"
    result = CliRunner().invoke(main, ["validate", str(hostile)])
    assert result.exit_code == 2, result.output
    assert "1.yaml:27:79" in result.output
    assert "quantifiers nested 5 deep" in result.output
