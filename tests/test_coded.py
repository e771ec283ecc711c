"""Coded case sections (issue 11, point 1): facts driven by the schemas' annotations, units."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator.case.cases import case_from_data
from evaluator.case.facts import Fact
from evaluator.cli.main import main
from evaluator.errors import CaseError, SchemaError

HOSTILE = Path(__file__).parent / "hostile" / "cases"
LOINC = "http://loinc.org"
BASE: dict[str, Any] = {
    "case_id": "coded",
    "request": {
        "date": "2025-06-01",
        "lines": [{"id": "l1", "procedure": "lumbar_fusion", "fusion": "L4-L5"}],
    },
}


def observation(code: str, value: float, unit: str, **more: Any) -> dict[str, Any]:
    return {
        "code": {"system": LOINC, "code": code},
        "value_quantity": {"value": value, "unit": unit},
        **more,
    }


def facts_of(**sections: Any) -> list[Fact]:
    data = copy.deepcopy(BASE) | sections
    return [
        f
        for f in case_from_data(data, "coded.json").facts
        if f.type not in ("case", "request", "line", "fused_segment")
    ]


@pytest.mark.parametrize(
    ("code", "value", "unit", "field", "expected"),
    [
        ("39156-5", 40, "kg/m2", "value_kg_m2", 40),
        ("8302-2", 4, "cm", "value_mm", 40),
        ("8302-2", 1.8, "m", "value_mm", 1800),
        ("8302-2", 3.5, "mm", "value_mm", 3.5),
        ("4548-4", 7.1, "%", "value_pct", 7.1),
        ("2345-7", 7, "mmol/L", "value_mg_dl", 126.112),  # glucose: 18.016 mg/dL per mmol/L
        ("2345-7", 126, "mg/dL", "value_mg_dl", 126),
        ("2093-3", 5, "mmol/L", "value_mg_dl", 193.35),  # cholesterol: 38.67
        ("99999-9", 5, "mmol/L", "value_mmol_l", 5),  # no analyte conversion: stays mmol/L
    ],
)
def test_a_quantity_lands_in_the_field_of_its_unit(code, value, unit, field, expected):
    (fact,) = facts_of(observations=[observation(code, value, unit)])
    assert fact.type == "observation"
    assert fact.fields["code"] == f"LOINC|{code}"
    assert fact.fields[field] == pytest.approx(expected)
    assert not [k for k in fact.fields if k.startswith("value_") and k != field]


def test_an_unknown_unit_is_a_located_case_error():
    with pytest.raises(CaseError) as caught:
        facts_of(observations=[observation("39156-5", 41, "stone")])
    (problem,) = caught.value.problems
    assert problem.code == "unknown_unit"
    assert problem.location.pointer == "/observations/0/value_quantity/unit"
    assert '"stone"' in problem.message
    assert "kg/m2" in problem.message


@pytest.mark.parametrize(
    ("code", "value", "unit", "message"),
    [
        ("97909-6", 420, "%", "420 % is impossible for LOINC|97909-6 (0 to 100 %)"),
        ("97909-6", -1, "{score}", "-1 {score} is impossible for LOINC|97909-6 (0 to 100 {score})"),
        ("4548-4", -3, "%", "-3 % is impossible for LOINC|4548-4 (2 to 25 %)"),
        ("39156-5", 0.3, "kg/m2", "0.3 kg/m2 is impossible for LOINC|39156-5 (5 to 250 kg/m2)"),
    ],
)
def test_a_value_outside_its_analytes_range_is_a_located_case_error(
    code: str, value: float, unit: str, message: str
) -> None:
    # an ODI of 420 % was 'at least 30 %' and approved a fusion: the range is data (x-analytes)
    with pytest.raises(CaseError) as caught:
        facts_of(observations=[observation(code, value, unit)])
    (problem,) = caught.value.problems
    assert (problem.code, problem.message) == ("out_of_range", message)
    assert problem.location.pointer == "/observations/0/value_quantity/value"


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [
        ("97909-6", 0, "%"),
        ("97909-6", 100, "{score}"),
        ("4548-4", 25, "%"),
        ("39156-5", 5, "kg/m2"),
    ],
)
def test_a_value_at_its_analytes_bounds_is_taken(code: str, value: float, unit: str) -> None:
    (fact,) = facts_of(observations=[observation(code, value, unit)])
    assert value in fact.fields.values()


def test_an_unknown_code_system_is_a_schema_error():
    bad = observation("39156-5", 41, "kg/m2")
    bad["code"]["system"] = "http://example.org/codes"
    with pytest.raises(SchemaError) as caught:
        facts_of(observations=[bad])
    assert caught.value.problems[0].location.pointer == "/observations/0/code/system"


def test_conditions_procedures_and_medications_become_facts():
    facts = facts_of(
        conditions=[
            {
                "code": {"system": "http://snomed.info/sct", "code": "238136002"},
                "clinical_status": "active",
                "verification_status": "confirmed",
                "onset": "2020-01",
            }
        ],
        past_procedures=[
            {
                "code": {"system": "http://www.ama-assn.org/go/cpt", "code": "22612"},
                "date": "2019-03",
                "levels": "L3-L5",
            }
        ],
        medications=[
            {
                "code": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197696"},
                "status": "completed",
                "period": {"start": "2025-01-01", "end": "2025-03-01"},
            }
        ],
    )
    by_type = {f.type: f.fields for f in facts}
    assert by_type["condition"]["code"] == "SNOMEDCT|238136002"
    assert by_type["condition"]["verification_status"] == "confirmed"
    assert by_type["past_procedure"]["upper"] == "L3"
    assert by_type["past_procedure"]["lower"] == "L5"
    assert by_type["medication"]["taken"] == "2025-01-01"
    assert by_type["medication"]["taken_end"] == "2025-03-01"
    assert by_type["medication"]["taken_end_days_before_request_lo"] == 92


@pytest.mark.parametrize(
    ("status", "ongoing"), [("active", True), ("completed", False), ("stopped", False)]
)
def test_an_active_medication_without_an_end_lasts_until_the_request(status, ongoing):
    """Issue 11 point 2: an ongoing course lasts until the request date (x-ongoing-while in the
    case schema says which status makes a period ongoing); a finished one without an end date
    has no end, so nothing can be measured up to it."""
    (fact,) = facts_of(
        medications=[
            {
                "code": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197696"},
                "status": status,
                "period": {"start": "2025-03-01"},
            }
        ]
    )
    if ongoing:
        assert fact.fields["taken_end"] == "2025-06-01"
        assert fact.fields["taken_end_days_before_request_lo"] == 0
        assert fact.fields["taken_end_days_before_request_hi"] == 0
    else:
        assert "taken_end" not in fact.fields


def test_a_period_ending_before_it_starts_is_a_bad_date():
    with pytest.raises(CaseError) as caught:
        facts_of(
            medications=[
                {
                    "code": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1"},
                    "period": {"start": "2025-03-01", "end": "2025-01-01"},
                }
            ]
        )
    assert caught.value.problems[0].code == "bad_date"


def test_an_observation_after_the_request_demonstrates_nothing():
    facts = facts_of(observations=[observation("39156-5", 35, "kg/m2", effective="2025-07-01")])
    # as of its effective date, every value is left out: no observation fact at all, which
    # would enter an `every` as one not documented (test_late_review.py)
    assert [f for f in facts if f.type == "observation"] == []
    (conflict,) = [f for f in facts if f.type == "conflict"]
    assert conflict.fields["reason"] == "after_request"


def test_the_hostile_unknown_unit_case_exits_2_with_the_unit_located():
    """tests/hostile/cases/observation-unknown-unit.json, run as its sidecar says."""
    path = HOSTILE / "observation-unknown-unit.json"
    result = CliRunner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code == 2, result.output
    assert '(/observations/0/value_quantity/unit): unknown unit "stone"' in result.output
    assert f"{path}:" in result.output
    assert "Traceback" not in result.output
