"""Tests for evaluator.language.conditions: parsing each operator, and the operator tables agreeing.

policy-language.md asks that every operator have a schema entry, a lowering to the engine, a
plain-language rendering and a diff rendering, and that a test assert the tables agree. The
schema side is read from schemas/policy.schema.json here, never restated.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any

import pytest

from evaluator.audit import diff
from evaluator.compile.comparisons import NEVER, lower
from evaluator.errors import Collector, Location
from evaluator.language import describe
from evaluator.language.conditions import (
    CONDITION_KEYS,
    INTERNAL,
    LEVEL_OPS,
    OP_SYMBOLS,
    THRESHOLD_OPS,
    All,
    AnyOf,
    Binding,
    ClauseIs,
    Compare,
    Condition,
    Count,
    Demonstrated,
    Every,
    Exists,
    NOf,
    Not,
    Op,
    PolicyIs,
    Some,
    Threshold,
    Truth,
    WhereEq,
    WhereOneOf,
    WhereSameAs,
    children,
    parse_condition,
    walk,
)
from evaluator.language.dictionary import case_fact_types
from evaluator.read.schemas import validate_data

HERE = Path(__file__).parent
SCHEMA = json.loads((HERE.parent / "schemas" / "policy.schema.json").read_text())
DEFS = SCHEMA["$defs"]
SETTINGS = {"fe_translation": Threshold(3.0, "mm", "fe_translation")}

# One schema-valid comparison per operator, on a field of the kind the operator is for.
OP_SAMPLES: dict[Op, dict[str, Any]] = {
    Op.AT_LEAST: {
        "fact": "nicotine",
        "field": "cotinine",
        "at_least": {"value": 10, "unit": "ng/mL"},
    },
    Op.MORE_THAN: {"fact": "alignment", "field": "sva", "more_than": {"value": 50, "unit": "mm"}},
    Op.AT_MOST: {
        "fact": "nicotine",
        "field": "cotinine",
        "at_most": {"value": 10, "unit": "ng/mL"},
    },
    Op.LESS_THAN: {"fact": "diabetes", "field": "hba1c", "less_than": {"value": 8.0, "unit": "%"}},
    Op.EQUALS: {"fact": "nicotine", "field": "status", "equals": "never"},
    Op.NOT_EQUALS: {"fact": "nicotine", "field": "status", "not_equals": "current"},
    Op.ONE_OF: {"fact": "nicotine", "field": "status", "one_of": ["never", "former"]},
    Op.NOT_ONE_OF: {"fact": "nicotine", "field": "status", "not_one_of": ["current"]},
    Op.ABOVE: {"fact": "line", "field": "upper", "above": "L1"},
    Op.AT_OR_ABOVE: {"fact": "line", "field": "upper", "at_or_above": "L1"},
    Op.BELOW: {"fact": "line", "field": "lower", "below": "L5"},
    Op.AT_OR_BELOW: {"fact": "line", "field": "lower", "at_or_below": "S1"},
    Op.DOCUMENTED: {"fact": "nicotine", "field": "cotinine", "documented": True},
    Op.WITHIN: {
        "fact": "diabetes",
        "field": "hba1c_date",
        "within": {"value": 90, "unit": "days"},
        "of": "request",
    },
    Op.BEFORE: {
        "fact": "physical_therapy",
        "field": "start",
        "before": {"value": 8, "unit": "weeks"},
        "of": "physical_therapy.end",
    },
    Op.AFTER: {
        "fact": "physical_therapy",
        "field": "end",
        "after": {"value": 2, "unit": "months"},
        "of": "physical_therapy.start",
    },
    Op.APART: {
        "fact": "diagnostic_block",
        "field": "date",
        "apart": {"value": 1, "unit": "days"},
        "of": "service",
    },
    Op.SAME_SIDE_AS: {"fact": "si_pain", "field": "side", "same_side_as": "ln.side"},
}
LEAF = OP_SAMPLES[Op.EQUALS]
BINDING = {"fact": "fused_segment", "as": "seg", "where": {"line": "fusion"}}
# One schema-valid condition per compound key (CONDITION_KEYS).
KEY_SAMPLES: dict[str, dict[str, Any]] = {
    "all": {"all": [LEAF, OP_SAMPLES[Op.AT_MOST]]},
    "any": {"any": [LEAF, OP_SAMPLES[Op.AT_MOST]]},
    "not": {"not": LEAF},
    "n_of": {"n_of": {"at_least": 1, "of": [LEAF, OP_SAMPLES[Op.AT_MOST]]}},
    "demonstrated": {"demonstrated": LEAF},
    "every": {"every": {**BINDING, "require": {"fact": "seg", "field": "upper", "above": "L1"}}},
    "some": {"some": {**BINDING, "require": {"fact": "seg", "field": "upper", "above": "L1"}}},
    "count": {
        "count": {
            **BINDING,
            "at_least": 2,
            "require": {"fact": "seg", "field": "upper", "above": "L1"},
        }
    },
    "latest": {
        "latest": {
            "fact": "alignment",
            "as": "films",
            "by": "date",
            "require": {"fact": "films", "field": "cobb", "at_least": {"value": 30, "unit": "deg"}},
        }
    },
    "exists": {"exists": {"fact": "red_flag", "where": {"kind": "tumour"}}},
    "clause": {"clause": "LF-URGENT", "is": "met"},
    "policy": {"policy": "si-joint-fusion", "is": "medically_necessary"},
    "distinct": {"distinct": ["first", "second"]},
}


def parse(data: dict[str, Any], pointer: str = "/c") -> Condition:
    return parse_condition(data, pointer, SETTINGS)


def as_policy(condition: dict[str, Any]) -> dict[str, Any]:
    """Return a minimal policy document whose one clause requires `condition`."""
    clause = {
        "id": "T-ONE",
        "title": "t",
        "requires": condition,
        "cites": [1],
        "recommendation": "r",
    }
    return {
        "id": "p",
        "version": "1",
        "title": "t",
        "status": "active",
        "effective": {"from": "2025-01-01"},
        "procedures": [{"procedure": "lumbar_fusion"}],
        "references": [{"id": 1, "citation": "c"}],
        "settings": {"fe_translation": {"value": 3.0, "unit": "mm", "description": "d"}},
        "sections": [{"id": "s", "title": "S", "clauses": [clause]}],
    }


def schema_operators() -> set[str]:
    """The comparison operators: the keys the schema's `compare` requires one of."""
    return {key for alternative in DEFS["compare"]["oneOf"] for key in alternative["required"]}


def schema_compound_keys() -> set[str]:
    """The compound condition keys: for each `cond_<key>` alternative of `condition`, <key>."""
    keys = set()
    for alternative in DEFS["condition"]["oneOf"]:
        name = alternative["$ref"].rsplit("/", 1)[1]
        if name == "compare":
            continue
        assert name.startswith("cond_"), f"unexpected condition alternative `{name}`"
        key = name.removeprefix("cond_")
        assert key in DEFS[name]["required"], f"`{name}` does not require `{key}`"
        keys.add(key)
    return keys


# --- the tables agree ---------------------------------------------------------------------------


def test_op_values_equal_schema_comparison_operators():
    assert {op.value for op in Op} == schema_operators()


def test_every_schema_operator_is_a_described_compare_property():
    properties = DEFS["compare"]["properties"]
    for op in schema_operators():
        assert op in properties, op
        assert properties[op].get("description") or properties[op].get("$ref"), op


def test_condition_keys_equal_schema_compound_keys():
    assert len(CONDITION_KEYS) == len(set(CONDITION_KEYS))
    assert set(CONDITION_KEYS) == schema_compound_keys()


def test_condition_keys_never_collide_with_comparison_operators():
    assert not set(CONDITION_KEYS) & {op.value for op in Op}


def test_every_op_has_a_symbol_and_words():
    assert set(OP_SYMBOLS) == set(Op)
    assert set(describe._OP_WORDS) == set(Op)


def test_samples_cover_every_operator_and_key():
    # A new operator or key fails here until it gets a sample (and so the checks below).
    assert set(OP_SAMPLES) == set(Op)
    assert set(KEY_SAMPLES) == set(CONDITION_KEYS)


@pytest.mark.parametrize(
    "data",
    [*OP_SAMPLES.values(), *KEY_SAMPLES.values()],
    ids=[*(op.value for op in OP_SAMPLES), *KEY_SAMPLES],
)
def test_samples_are_schema_valid(data):
    validate_data(as_policy(data), "policy")


def test_samples_cover_every_condition_class():
    produced = {type(parse(d)) for d in [*OP_SAMPLES.values(), *KEY_SAMPLES.values()]}
    # an internal node is made only inside another's expansion, never parsed on its own
    assert produced == set(typing.get_args(Condition)) - set(INTERNAL)
    assert {type(n) for d in KEY_SAMPLES.values() for n in walk(parse(d))} >= set(INTERNAL)


@pytest.mark.parametrize("op", list(Op), ids=[op.value for op in Op])
def test_every_op_lowers(op):
    leaf = parse(OP_SAMPLES[op])
    assert isinstance(leaf, Compare)
    info = case_fact_types()[leaf.fact].fields[leaf.field]
    problems = Collector()
    outcomes = lower(leaf, info, ("mild",), problems, lambda p: Location(pointer=p))
    assert not problems, [str(p) for p in problems.problems]
    assert outcomes.true != NEVER
    assert outcomes.unknown != NEVER


@pytest.mark.parametrize("op", list(Op), ids=[op.value for op in Op])
def test_every_op_renders(op):
    leaf = parse(OP_SAMPLES[op])
    assert isinstance(leaf, Compare)
    text = describe.leaf_text(leaf)
    assert describe._OP_WORDS[op] in text
    assert text.startswith(describe.words(leaf.fact))


@pytest.mark.parametrize(
    "data",
    [*OP_SAMPLES.values(), *KEY_SAMPLES.values()],
    ids=[*(op.value for op in OP_SAMPLES), *KEY_SAMPLES],
)
def test_leaf_and_head_text_do_not_fall_through(data):
    # leaf_text hands compound nodes to head_text and head_text hands leaves back: a kind that
    # neither handles recurses forever.
    condition = parse(data)
    try:
        head, leaf = describe.head_text(condition), describe.leaf_text(condition)
    except RecursionError:
        pytest.fail(f"describe has no rendering for {type(condition).__name__}")
    assert head == leaf
    assert head.strip()
    assert head.endswith(":") == bool(children(condition))


# The diff rendering: each operator swapped for another of its kind (same operand).
_PARTNER = {
    Op.AT_LEAST: Op.MORE_THAN,
    Op.MORE_THAN: Op.AT_LEAST,
    Op.AT_MOST: Op.LESS_THAN,
    Op.LESS_THAN: Op.AT_MOST,
    Op.EQUALS: Op.NOT_EQUALS,
    Op.NOT_EQUALS: Op.EQUALS,
    Op.ONE_OF: Op.NOT_ONE_OF,
    Op.NOT_ONE_OF: Op.ONE_OF,
    Op.ABOVE: Op.AT_OR_ABOVE,
    Op.AT_OR_ABOVE: Op.ABOVE,
    Op.BELOW: Op.AT_OR_BELOW,
    Op.AT_OR_BELOW: Op.BELOW,
    Op.WITHIN: Op.BEFORE,
    Op.BEFORE: Op.AFTER,
    Op.AFTER: Op.APART,
    Op.APART: Op.WITHIN,
    Op.SAME_SIDE_AS: Op.EQUALS,
}


@pytest.mark.parametrize("op", list(Op), ids=[op.value for op in Op])
def test_every_op_has_a_diff_rendering(op):
    leaf = parse(OP_SAMPLES[op])
    assert isinstance(leaf, Compare)
    assert diff.condition_changes(leaf, leaf) == []
    if op is Op.DOCUMENTED:
        changed = dataclasses.replace(leaf, operand=False)
        (line,) = diff.condition_changes(leaf, changed)
        assert line.startswith(f"{describe.words(leaf.fact)} {describe.field_label(leaf.field)}")
        assert line.endswith("-> documented no")
        return
    partner = _PARTNER[op]
    lines = diff.condition_changes(leaf, dataclasses.replace(leaf, op=partner))
    assert f"`{OP_SYMBOLS[op]}` -> `{OP_SYMBOLS[partner]}`" in lines
    assert any(describe.words(op.value) in line for line in lines)


@pytest.mark.parametrize("key", list(KEY_SAMPLES))
def test_every_condition_key_has_a_diff_rendering(key):
    condition = parse(KEY_SAMPLES[key])
    assert diff.condition_changes(condition, condition) == []
    other = parse(KEY_SAMPLES["any" if key != "any" else "all"])
    lines = diff.condition_changes(condition, other)
    assert lines
    assert all(" -> " in line or line.startswith(("added:", "removed:")) for line in lines)


# --- parsing: comparisons -----------------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(THRESHOLD_OPS), ids=sorted(o.value for o in THRESHOLD_OPS))
def test_parse_threshold_operator(op):
    leaf = parse(OP_SAMPLES[op])
    assert isinstance(leaf, Compare)
    assert leaf.op is op
    raw = OP_SAMPLES[op][op.value]
    assert leaf.operand == Threshold(raw["value"], raw["unit"])
    assert (leaf.fact, leaf.field, leaf.pointer) == (
        OP_SAMPLES[op]["fact"],
        OP_SAMPLES[op]["field"],
        "/c",
    )


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (Op.EQUALS, "never"),
        (Op.NOT_EQUALS, "current"),
        (Op.ONE_OF, ("never", "former")),
        (Op.NOT_ONE_OF, ("current",)),
        (Op.ABOVE, "L1"),
        (Op.AT_OR_ABOVE, "L1"),
        (Op.BELOW, "L5"),
        (Op.AT_OR_BELOW, "S1"),
        (Op.DOCUMENTED, None),
    ],
    ids=str,
)
def test_parse_value_operator(op, expected):
    leaf = parse(OP_SAMPLES[op])
    assert isinstance(leaf, Compare)
    assert leaf.op is op
    assert leaf.operand == expected
    assert op not in THRESHOLD_OPS
    assert (op in LEVEL_OPS) == (op.value in ("above", "at_or_above", "below", "at_or_below"))


def test_parse_threshold_from_setting():
    leaf = parse(
        {"fact": "dynamic_study", "field": "translation", "at_least": {"setting": "fe_translation"}}
    )
    assert isinstance(leaf, Compare)
    assert leaf.operand == Threshold(3.0, "mm", "fe_translation")


def test_parse_unknown_setting_leaves_a_marker_for_the_compiler():
    leaf = parse(
        {"fact": "dynamic_study", "field": "translation", "at_least": {"setting": "fe_translatoin"}}
    )
    assert isinstance(leaf, Compare)
    assert isinstance(leaf.operand, Threshold)
    assert math.isnan(leaf.operand.value)
    assert leaf.operand.setting == "fe_translatoin"


@pytest.mark.parametrize(
    ("word", "truth"),
    [
        (None, Truth.UNKNOWN),
        ("unknown", Truth.UNKNOWN),
        ("true", Truth.TRUE),
        ("false", Truth.FALSE),
    ],
    ids=["default", "unknown", "true", "false"],
)
def test_parse_if_absent(word, truth):
    data = dict(LEAF, **({"if_absent": word} if word else {}))
    leaf = parse(data)
    assert isinstance(leaf, Compare)
    assert leaf.if_absent is truth


def test_parse_compare_options():
    leaf = parse(
        {
            "fact": "alignment",
            "field": "pelvic_incidence",
            "minus": "lumbar_lordosis",
            "more_than": {"value": 20, "unit": "deg"},
            "note": "PI-LL",
        }
    )
    assert isinstance(leaf, Compare)
    assert (leaf.minus, leaf.note, leaf.measure) == ("lumbar_lordosis", "PI-LL", None)
    dated = parse(
        {
            "fact": "conservative_care",
            "field": "start",
            "measure": "time_before_request",
            "at_least": {"value": 3, "unit": "months"},
        }
    )
    assert isinstance(dated, Compare)
    assert dated.measure == "time_before_request"


def test_parse_where_kinds_in_file_order():
    leaf = parse(
        {
            "fact": "imaging_finding",
            "where": {
                "segment": {"same_as": "seg.segment"},
                "modality": {"one_of": ["mri", "ct"]},
                "spondylolisthesis": True,
            },
            "field": "stenosis",
            "equals": "severe",
        }
    )
    assert isinstance(leaf, Compare)
    assert leaf.where == (
        WhereSameAs("segment", "seg", "segment"),
        WhereOneOf("modality", ("mri", "ct")),
        WhereEq("spondylolisthesis", True),
    )


# --- parsing: compound conditions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("all", All),
        ("any", AnyOf),
        ("not", Not),
        ("n_of", NOf),
        ("demonstrated", Demonstrated),
        ("every", Every),
        ("some", Some),
        ("count", Count),
        ("exists", Exists),
        ("clause", ClauseIs),
        ("policy", PolicyIs),
    ],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_parse_compound(key, kind):
    node = parse(dict(KEY_SAMPLES[key], note="why"), "/x")
    assert type(node) is kind
    assert node.pointer == "/x"
    assert node.note == "why"


def test_parse_compound_fields_and_pointers():
    node = parse(
        {"all": [{"not": LEAF}, {"n_of": {"at_least": 2, "of": [LEAF, LEAF, LEAF]}}]}, "/r"
    )
    assert isinstance(node, All)
    negation, n_of = node.parts
    assert isinstance(negation, Not)
    assert negation.pointer == "/r/all/0"
    assert negation.part.pointer == "/r/all/0/not"
    assert isinstance(n_of, NOf)
    assert n_of.at_least == 2
    assert [p.pointer for p in n_of.parts] == [f"/r/all/1/n_of/of/{i}" for i in range(3)]


@pytest.mark.parametrize("key", ["every", "some", "count"], ids=str)
def test_parse_quantifier_binding(key):
    node = parse(KEY_SAMPLES[key], "/q")
    assert isinstance(node, Every | Some | Count)
    assert node.binding == Binding(
        "fused_segment", "seg", (WhereEq("line", "fusion"),), f"/q/{key}"
    )
    assert isinstance(node.require, Compare)
    assert node.require.pointer == f"/q/{key}/require"
    if isinstance(node, Count):
        assert node.at_least == 2


def test_parse_exists_and_clause_reference():
    exists = parse(KEY_SAMPLES["exists"])
    assert exists == Exists("red_flag", (WhereEq("kind", "tumour"),), "/c")
    ref = parse(KEY_SAMPLES["clause"])
    assert ref == ClauseIs("LF-URGENT", "met", "/c")
    other = parse(KEY_SAMPLES["policy"])
    assert other == PolicyIs("si-joint-fusion", "medically_necessary", "/c")


def test_walk_visits_parents_before_children():
    node = parse({"any": [{"not": LEAF}, KEY_SAMPLES["every"]]})
    kinds = [type(n).__name__ for n in walk(node)]
    assert kinds == ["AnyOf", "Not", "Compare", "Every", "Compare"]
    assert children(parse(LEAF)) == ()
