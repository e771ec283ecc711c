"""Value sets and coded quantities in policies (issue 11, point 1): expansion at load, units."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.authoring import fmt, lint, show
from evaluator.case.cases import case_from_data
from evaluator.errors import PolicyError, SchemaError
from evaluator.language.model import Status
from evaluator.language.policies import load_policy
from evaluator.read import schemas
from evaluator.vocab import units

LOINC = "http://loinc.org"
SPAN = "8302-2"  # stands in for any length measurement
GLUCOSE = "2345-7"


def policy_data(
    requires: dict[str, Any], value_sets: dict[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "coded-demo",
        "version": "2025.1",
        "title": "Coded demo",
        "status": "active",
        "effective": {"from": "2025-01-01"},
        "procedures": [{"procedure": "lumbar_fusion"}],
        "references": [{"id": 1, "citation": "A test source."}],
        "sections": [
            {
                "id": "s",
                "title": "S",
                "clauses": [
                    {
                        "id": "C-CODED",
                        "title": "Coded criterion",
                        "requires": requires,
                        "cites": [1],
                        "recommendation": "Document it.",
                    }
                ],
            }
        ],
    }
    if value_sets is not None:
        data["value_sets"] = value_sets
    return data


def write_policy(root: Path, data: dict[str, Any]) -> Path:
    path = root / "policies" / data["id"] / f"{data['version']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return Path(path)


def write_shared(root: Path, name: str, body: dict[str, Any]) -> None:
    folder = root / "policies" / "_shared" / "valuesets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(json.dumps({"name": name, **body}), encoding="utf-8")


LENGTH_SET = {"purpose": "A length.", "unit": "mm", "codes": {"LOINC": [SPAN]}}


def compare(op: str, value: float, unit: str, value_set: str = "span") -> dict[str, Any]:
    return {
        "fact": "observation",
        "where": {"code": {"in_value_set": value_set}},
        "field": "value",
        op: {"value": value, "unit": unit},
    }


def case_with(*observations: dict[str, Any]) -> Any:
    data = {
        "case_id": "coded",
        "request": {
            "date": "2025-06-01",
            "lines": [{"id": "l1", "procedure": "lumbar_fusion", "fusion": "L4-L5"}],
        },
        "observations": list(observations),
    }
    return case_from_data(copy.deepcopy(data), "coded.json")


def quantity(code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "code": {"system": LOINC, "code": code},
        "value_quantity": {"value": value, "unit": unit},
    }


def status(policy_path: Path, *observations: dict[str, Any]) -> Status:
    decision = api.evaluate(case_with(*observations), load_policy(policy_path))
    (result,) = [c for c in decision.clauses if c.id == "C-CODED"]
    return result.status


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (40, "mm", Status.MET),  # the edge counts for at_least
        (4, "cm", Status.MET),  # the same length in cm
        (39.99, "mm", Status.NOT_MET),
        (3.999, "cm", Status.NOT_MET),
        (0.04, "m", Status.MET),
    ],
)
def test_a_threshold_in_cm_compares_lengths_in_any_unit(tmp_path, value, unit, expected):
    path = write_policy(tmp_path, policy_data(compare("at_least", 4, "cm"), {"span": LENGTH_SET}))
    assert status(path, quantity(SPAN, value, unit)) is expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (100, "[lb_av]", Status.MET),  # exactly the threshold, in the threshold's own unit
        (99.999, "[lb_av]", Status.NOT_MET),
        (45.3592, "kg", Status.MET),
        (45359.2, "g", Status.MET),
        (45.359, "kg", Status.NOT_MET),
    ],
)
def test_an_inexact_factor_keeps_the_edge(tmp_path, value, unit, expected):
    weight = "29463-7"
    sets = {"weight": {"purpose": "Body weight.", "unit": "kg", "codes": {"LOINC": [weight]}}}
    path = write_policy(tmp_path, policy_data(compare("at_least", 100, "[lb_av]", "weight"), sets))
    assert status(path, quantity(weight, value, unit)) is expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (126.112, "mg/dL", Status.NOT_MET),  # exactly 7 mmol/L: less_than excludes the edge
        (126.1, "mg/dL", Status.MET),
        (6.99, "mmol/L", Status.MET),
        (7, "mmol/L", Status.NOT_MET),
    ],
)
def test_glucose_converts_between_mmol_per_litre_and_mg_per_decilitre(
    tmp_path, value, unit, expected
):
    sets = {"glucose": {"purpose": "Glucose.", "unit": "mg/dL", "codes": {"LOINC": [GLUCOSE]}}}
    path = write_policy(tmp_path, policy_data(compare("less_than", 7, "mmol/L", "glucose"), sets))
    assert status(path, quantity(GLUCOSE, value, unit)) is expected


def test_a_code_not_in_the_set_is_not_documented(tmp_path):
    path = write_policy(tmp_path, policy_data(compare("at_least", 4, "cm"), {"span": LENGTH_SET}))
    assert status(path, quantity("39156-5", 50, "mm")) is Status.NOT_DOCUMENTED
    assert status(path) is Status.NOT_DOCUMENTED


def test_a_shared_value_set_is_read_and_hashed(tmp_path):
    write_shared(tmp_path, "span", LENGTH_SET)
    path = write_policy(tmp_path, policy_data(compare("at_least", 4, "cm")))
    policy = load_policy(path)
    assert policy.value_sets["span"].codes == (f"LOINC|{SPAN}",)
    assert status(path, quantity(SPAN, 45, "mm")) is Status.MET
    write_shared(tmp_path, "span", {**LENGTH_SET, "codes": {"LOINC": [SPAN, "1-8"]}})
    assert load_policy(path).content_sha256 != policy.content_sha256


def test_an_unknown_value_set_is_a_located_error(tmp_path):
    write_shared(tmp_path, "span", LENGTH_SET)
    path = write_policy(tmp_path, policy_data(compare("at_least", 4, "cm", "spam")))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    (problem,) = caught.value.problems
    assert problem.code == "unknown_value_set"
    assert problem.location.pointer == "/sections/0/clauses/0/requires/where/code/in_value_set"
    assert problem.location.line is not None
    assert "did you mean `span`" in problem.message


def test_a_threshold_unit_that_does_not_convert_to_the_set_is_an_error(tmp_path):
    path = write_policy(
        tmp_path, policy_data(compare("at_least", 4, "kg/m2"), {"span": LENGTH_SET})
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    (problem,) = caught.value.problems
    assert problem.code == "unit_mismatch"
    assert problem.location.pointer == "/sections/0/clauses/0/requires/at_least"


def test_an_unknown_threshold_unit_is_a_schema_error(tmp_path):
    path = write_policy(
        tmp_path, policy_data(compare("at_least", 4, "furlong"), {"span": LENGTH_SET})
    )
    with pytest.raises(SchemaError) as caught:
        load_policy(path)
    assert (
        caught.value.problems[0].location.pointer == "/sections/0/clauses/0/requires/at_least/unit"
    )


def test_an_unknown_code_system_in_a_value_set_is_a_schema_error(tmp_path):
    sets = {"span": {**LENGTH_SET, "codes": {"LOINK": [SPAN]}}}
    path = write_policy(tmp_path, policy_data(compare("at_least", 4, "cm"), sets))
    with pytest.raises(SchemaError) as caught:
        load_policy(path)
    assert str(caught.value.problems[0].location.pointer).startswith("/value_sets/span/codes")


def test_a_quantity_compared_without_a_threshold_is_an_error(tmp_path):
    requires = {
        "fact": "observation",
        "where": {"code": {"in_value_set": "span"}},
        "field": "value",
        "equals": 4,
    }
    path = write_policy(tmp_path, policy_data(requires, {"span": LENGTH_SET}))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems[0].code == "quantity_needs_threshold"


def test_a_bound_observation_converts_too(tmp_path):
    requires = {
        "some": {
            "fact": "observation",
            "as": "obs",
            "where": {"code": {"in_value_set": "span"}},
            "require": {"fact": "obs", "field": "value", "at_least": {"value": 4, "unit": "cm"}},
        }
    }
    path = write_policy(tmp_path, policy_data(requires, {"span": LENGTH_SET}))
    assert status(path, quantity(SPAN, 40, "mm")) is Status.MET
    assert status(path, quantity(SPAN, 39, "mm")) is Status.NOT_MET


def test_an_observation_a_rule_binds_converts_too(tmp_path):
    # A rule's `for_each` binds beside its `when`, not above it: the threshold on the bound
    # observation's `value` was not pointed at its unit's field ("fact `observation` has no
    # field `value`"), so a rule could not weigh a coded quantity (stop 26: LF-DIABETES's
    # late-hba1c-at-limit).
    data = policy_data(
        {
            "count": {
                "fact": "long_span",
                "as": "span",
                "at_least": 1,
                "require": {"fact": "span", "field": "long", "equals": True},
            }
        },
        {"span": LENGTH_SET},
    )
    data["facts"] = {
        "long_span": {"description": "A span of 4 cm or more.", "fields": {"long": "boolean"}}
    }
    data["rules"] = [
        {
            "id": "long-span",
            "for_each": [
                {"fact": "observation", "as": "obs", "where": {"code": {"in_value_set": "span"}}}
            ],
            "when": {"fact": "obs", "field": "value", "at_least": {"value": 4, "unit": "cm"}},
            "derive": {"fact": "long_span", "set": {"long": True}},
        }
    ]
    path = write_policy(tmp_path, data)
    assert status(path, quantity(SPAN, 40, "mm")) is Status.MET
    assert status(path, quantity(SPAN, 39, "mm")) is Status.NOT_DOCUMENTED


def test_every_unit_of_the_facts_table_is_a_threshold_unit():
    enum = schemas.load_schema("policy")["$defs"]["threshold"]["oneOf"][0]["properties"]["unit"][
        "enum"
    ]
    assert set(units.known_units("observation")) <= set(enum)


def test_show_renders_the_value_sets(tmp_path):
    path = write_policy(tmp_path, policy_data(compare("at_least", 4, "cm"), {"span": LENGTH_SET}))
    text = show.policy_text(load_policy(path))
    assert "Value sets" in text
    assert "- span: A length. Compared in mm. Codes: LOINC|8302-2" in text


def test_fmt_orders_a_value_sets_keys(tmp_path):
    sets = {"span": {"codes": {"LOINC": [SPAN]}, "unit": "mm", "purpose": "A length."}}
    path = write_policy(tmp_path, policy_data(compare("at_least", 4, "cm"), sets))
    once = fmt.format_text(path.read_text(encoding="utf-8"))
    assert fmt.format_text(once) == once
    assert once.index("purpose:") < once.index("unit:") < once.index("codes:")


@pytest.mark.parametrize(
    ("system", "code", "bad"),
    [
        ("LOINC", "39156-5", False),
        ("LOINC", "39156-4", True),  # wrong check digit
        ("LOINC", "39156", True),
        ("ICD10CM", "E66.01", False),
        ("ICD10CM", "E6601", True),
        ("CPT", "22612", False),
        ("CPT", "2261", True),
        ("SNOMEDCT", "238136002", False),
        ("RXNORM", "197696", False),
        ("RXNORM", "RX1", True),
    ],
)
def test_lint_reports_a_code_that_cannot_be_in_its_system(tmp_path, system, code, bad):
    sets = {"span": {**LENGTH_SET, "codes": {"LOINC": [SPAN], system: [code]}}}
    if system == "LOINC":
        sets["span"]["codes"] = {"LOINC": [SPAN, code]}
    path = write_policy(tmp_path, policy_data(compare("at_least", 4, "cm"), sets))
    findings = [f for f in lint.lint_paths([path]).findings if f.code == "unknown_code"]
    if not bad:
        assert findings == []
        return
    (finding,) = findings
    index = 1 if system == "LOINC" else 0
    assert finding.problem.location.pointer == f"/value_sets/span/codes/{system}/{index}"
    assert f"`{code}` is not a {system} code" in finding.problem.message
