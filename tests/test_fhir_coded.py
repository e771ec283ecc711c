"""FHIR R4 in, coded: Observation, Condition, Procedure and MedicationStatement/Request in a PAS
request Bundle (as entries, or contained in the Claim and pointed at by supportingInfo) reach the
case's coded sections, diabetes and nicotine through evaluator/case/fhir_mapping.yaml alone."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.case.from_fhir import Mapped, bundle_to_case, mapping
from evaluator.cli.main import main
from evaluator.errors import SchemaError
from evaluator.language.policies import Library
from evaluator.read import source

ROOT = Path(__file__).resolve().parent.parent
BUNDLE: dict[str, Any] = json.loads(
    (ROOT / "examples" / "fhir" / "t12-s2-fusion-bundle.json").read_text()
)
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
CLINIC_NOTE = {"reference": "DocumentReference/doc-clinic-pain"}


def observation(rid: str, code: str, system: str = LOINC, **elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": "Patient/patient-1"},
        "code": {"coding": [{"system": system, "code": code}]},
        **elements,
    }


def odi(rid: str, value: float, when: str) -> dict[str, Any]:
    return observation(
        rid,
        "97909-6",
        valueQuantity={"value": value, "unit": "%", "system": UCUM, "code": "%"},
        effectiveDateTime=when,
    )


def condition(rid: str, code: str, verification: str = "confirmed") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": "Patient/patient-1"},
        "code": {"coding": [{"system": ICD10, "code": code}]},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification,
                }
            ]
        },
    }


def smoking(rid: str, snomed: str) -> dict[str, Any]:
    return observation(
        rid,
        "72166-2",
        valueCodeableConcept={"coding": [{"system": SNOMED, "code": snomed}]},
        effectiveDateTime="2025-05-05",
        derivedFrom=[CLINIC_NOTE],
    )


def with_resources(*resources: dict[str, Any], contained: bool = False) -> dict[str, Any]:
    """The founding Bundle plus `resources`: as Bundle entries, or contained in the Claim and
    listed in Claim.supportingInfo (valueReference `#id`), as PAS allows both."""
    bundle: dict[str, Any] = copy.deepcopy(BUNDLE)
    if not contained:
        bundle["entry"] += [
            {"fullUrl": f"urn:example:{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ]
        return bundle
    claim = bundle["entry"][0]["resource"]
    claim["contained"] = list(resources)
    info = claim.setdefault("supportingInfo", [])
    for resource in resources:
        info.append(
            {
                "sequence": len(info) + 1,
                "category": {
                    "coding": [
                        {
                            "system": "http://hl7.org/us/davinci-pas/CodeSystem/PASSupportingInfoType",
                            "code": "additionalInformation",
                        }
                    ]
                },
                "valueReference": {"reference": f"#{resource['id']}"},
            }
        )
    return bundle


def mapped(bundle: dict[str, Any], tmp_path: Path) -> Mapped:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return bundle_to_case(source.load(path))


def statuses(result: Mapped, policy: str = "lumbar-fusion@2025.1") -> dict[str, str]:
    decision = api.evaluate(result.case, api.select_policy(result.case, policy, Library()))
    return {c.id: c.status.value for c in decision.clauses}


# --- the coded sections ----------------------------------------------------------------------


def test_an_observation_maps_every_element_to_the_coded_section(tmp_path):
    full = observation(
        "odi-1",
        "97909-6",
        valueQuantity={"value": 42, "unit": "percent", "system": UCUM, "code": "%"},
        effectiveDateTime="2025-06-02T10:30:00Z",
        bodySite={
            "coding": [
                {"system": SNOMED, "code": "37822005", "display": "Lumbar spine"},
                {"system": SNOMED, "code": "7771000"},  # left: a side, not the site
            ]
        },
        method={"coding": [{"system": SNOMED, "code": "273249006", "display": "Questionnaire"}]},
        derivedFrom=[CLINIC_NOTE],
    )
    coded = observation(
        "finding",
        "301867009",
        system=SNOMED,
        valueCodeableConcept={"coding": [{"system": SNOMED, "code": "10828004"}]},
        effectivePeriod={"start": "2025-05-01", "end": "2025-05-14T09:00:00Z"},
    )
    flag = observation("flag", "Z73.6", system=ICD10, valueBoolean=True)
    result = mapped(with_resources(full, coded, flag), tmp_path)
    assert result.unmapped == ()
    first, second, third = result.data["observations"]
    assert first == {
        "code": {"system": LOINC, "code": "97909-6"},
        # the UCUM code, not the display unit
        "value_quantity": {"value": 42, "unit": "%"},
        "effective": "2025-06-02",
        "body_site": {"system": SNOMED, "code": "37822005", "display": "Lumbar spine"},
        "side": "left",
        "method": {"system": SNOMED, "code": "273249006", "display": "Questionnaire"},
        "source": {
            "document": "clinic_note",
            "quote": next(
                e["resource"]["description"]
                for e in BUNDLE["entry"]
                if e["resource"].get("id") == "doc-clinic-pain"
            ),
        },
    }
    assert second == {
        "code": {"system": SNOMED, "code": "301867009"},
        "value_code": {"system": SNOMED, "code": "10828004"},
        "effective_period": {"start": "2025-05-01", "end": "2025-05-14"},
    }
    assert third == {"code": {"system": ICD10, "code": "Z73.6"}, "value_boolean": True}


def test_condition_procedure_and_medications_map_to_their_coded_sections(tmp_path):
    prior_fusion = {
        "resourceType": "Procedure",
        "id": "prior-fusion",
        "status": "completed",
        "subject": {"reference": "Patient/patient-1"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "22612"}]},
        "performedPeriod": {"start": "2019-03-04T08:00:00Z", "end": "2019-03-04T12:00:00Z"},
        "bodySite": [
            {
                "coding": [
                    {
                        "system": "https://necessity.dev/fhir/CodeSystem/spinal-level",
                        "code": "L5-S1",
                    }
                ]
            }
        ],
    }
    gabapentin = {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "25480"}]
    }
    statement = {
        "resourceType": "MedicationStatement",
        "id": "gabapentin",
        "status": "completed",
        "subject": {"reference": "Patient/patient-1"},
        "medicationCodeableConcept": {**gabapentin, "text": "gabapentin"},
        "effectivePeriod": {"start": "2025-01-15", "end": "2025-04-01"},
    }
    request = {
        "resourceType": "MedicationRequest",
        "id": "duloxetine",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/patient-1"},
        "authoredOn": "2025-05-05",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "72625"}]
        },
        "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2025-05-05"}}}}],
    }
    result = mapped(
        with_resources(condition("limitation", "Z73.6"), prior_fusion, statement, request),
        tmp_path,
    )
    assert result.unmapped == ()
    assert result.data["conditions"] == [
        {
            "code": {"system": ICD10, "code": "Z73.6"},
            "clinical_status": "active",
            "verification_status": "confirmed",
        }
    ]
    assert result.data["past_procedures"] == [
        {
            "code": {"system": "http://www.ama-assn.org/go/cpt", "code": "22612"},
            "date": "2019-03-04",
            "levels": "L5-S1",
        }
    ]
    assert result.data["medications"] == [
        {
            "code": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "25480"},
            "status": "completed",
            "period": {"start": "2025-01-15", "end": "2025-04-01"},
        },
        {
            "code": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "72625"},
            "status": "active",
            "period": {"start": "2025-05-05"},
        },
    ]
    # The MedicationStatement is conservative care as before, and now also a coded medication.
    components = result.data["conservative_care"]["components"]
    assert {
        "kind": "medication",
        "detail": "gabapentin",
        "start": "2025-01-15",
        "end": "2025-04-01",
    } in components


def test_resources_contained_in_the_claim_are_mapped_through_supporting_info(tmp_path):
    result = mapped(
        with_resources(odi("odi-c", 42, "2025-06-02"), condition("lim-c", "Z73.6"), contained=True),
        tmp_path,
    )
    assert result.unmapped == ()
    assert [o["code"]["code"] for o in result.data["observations"]] == ["97909-6"]
    assert [c["code"]["code"] for c in result.data["conditions"]] == ["Z73.6"]


def test_supporting_info_pointing_nowhere_is_reported(tmp_path):
    bundle = with_resources(odi("odi-c", 42, "2025-06-02"), contained=True)
    claim = bundle["entry"][0]["resource"]
    claim["supportingInfo"][-1]["valueReference"] = {"reference": "#missing"}
    result = mapped(bundle, tmp_path)
    index = len(claim["supportingInfo"]) - 1
    assert [(u.expression, u.message) for u in result.unmapped] == [
        (
            f"Bundle.entry[0].resource.supportingInfo[{index}].valueReference",
            "reference '#missing' is not in the Bundle",
        )
    ]


def test_a_result_in_a_unit_that_does_not_convert_is_reported_not_a_failed_request(tmp_path):
    blood = observation(
        "glucose",
        "2345-7",
        valueQuantity={"value": 5.4, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
    )
    odd = observation(
        "odd", "97909-6", valueQuantity={"value": 3, "system": UCUM, "code": "[in_i]"}
    )
    result = mapped(with_resources(blood, odd), tmp_path)
    assert result.data["observations"][0]["value_quantity"] == {"value": 5.4, "unit": "mmol/L"}
    assert "value_quantity" not in result.data["observations"][1]
    assert [u.message for u in result.unmapped] == [
        "unit `[in_i]` does not convert; the result is not mapped"
    ]


def test_a_code_in_no_case_system_is_reported(tmp_path):
    local = observation("local", "ODI", system="http://example.org/local")
    result = mapped(with_resources(local), tmp_path)
    assert "observations" not in result.data
    assert [u.message for u in result.unmapped] == [
        "Observation with code http://example.org/local|ODI is not mapped to a case field"
    ]


# --- diabetes and nicotine -------------------------------------------------------------------


def hba1c(rid: str, value: float, when: str, unit: str = "%") -> dict[str, Any]:
    return observation(
        rid,
        "4548-4",
        valueQuantity={"value": value, "unit": unit, "system": UCUM, "code": unit},
        effectiveDateTime=when,
        derivedFrom=[{"reference": "DocumentReference/doc-clinic-pain"}],
    )


def test_diabetes_and_the_latest_hba1c_fill_the_diabetes_section(tmp_path):
    # The newer result listed first: the older one must not replace it.
    result = mapped(
        with_resources(
            hba1c("a1c-new", 7.2, "2025-05-20"),
            hba1c("a1c-old", 9.1, "2024-11-02"),
            condition("t2dm", "E11.9"),
        ),
        tmp_path,
    )
    assert result.unmapped == ()
    diabetes = result.data["diabetes"]
    assert (diabetes["diabetic"], diabetes["hba1c_pct"], diabetes["hba1c_date"]) == (
        True,
        7.2,
        "2025-05-20",
    )
    # Each is kept in the coded sections as well.
    assert [o["code"]["code"] for o in result.data["observations"]] == ["4548-4", "4548-4"]
    assert [c["code"]["code"] for c in result.data["conditions"]] == ["E11.9"]
    assert statuses(result)["LF-DIABETES"] == "met"


def test_an_hba1c_of_8_with_diabetes_is_not_met(tmp_path):
    result = mapped(
        with_resources(hba1c("a1c", 8.0, "2025-05-20"), condition("t2dm", "E11.65")), tmp_path
    )
    assert statuses(result)["LF-DIABETES"] == "not_met"


def test_an_hba1c_in_mmol_per_mol_is_reported_and_not_read_as_percent(tmp_path):
    result = mapped(
        with_resources(hba1c("a1c", 53, "2025-05-20", unit="mmol/mol"), condition("t2dm", "E11.9")),
        tmp_path,
    )
    assert "hba1c_pct" not in result.data["diabetes"]
    assert "a quantity in `mmol/mol` is not mapped (only `%` is)" in [
        u.message for u in result.unmapped
    ]
    # Diabetic with no usable HbA1c: not documented, never met.
    assert statuses(result)["LF-DIABETES"] == "not_documented"


def test_a_newer_hba1c_that_cannot_be_read_never_dates_an_older_value(tmp_path):
    # The newer result is in mmol/mol (reported); the older % result keeps its own date, so it
    # can never look recent. An undated result does not replace a dated one either.
    result = mapped(
        with_resources(
            hba1c("a1c-old", 7.1, "2024-11-02"),
            hba1c("a1c-new", 60, "2025-05-20", unit="mmol/mol"),
            observation(
                "a1c-undated",
                "4548-4",
                valueQuantity={"value": 6.5, "unit": "%", "system": UCUM, "code": "%"},
            ),
        ),
        tmp_path,
    )
    assert result.data["diabetes"] == {
        "hba1c_pct": 7.1,
        "hba1c_date": "2024-11-02",
        "source": result.data["diabetes"]["source"],
    }


def test_diabetes_confirmed_in_one_record_and_refuted_in_another_is_a_conflict(tmp_path):
    result = mapped(
        with_resources(condition("dm1", "E11.9"), condition("dm2", "E11.9", "refuted")), tmp_path
    )
    assert [s["value"] for s in result.data["diabetes"]["diabetic"]["statements"]] == [
        True,
        False,
    ]
    assert statuses(result)["LF-DIABETES"] == "not_documented"


def test_refuted_diabetes_is_not_diabetic_and_entered_in_error_states_nothing(tmp_path):
    refuted = mapped(with_resources(condition("dm", "E11.9", "refuted")), tmp_path)
    assert refuted.data["diabetes"] == {"diabetic": False}
    withdrawn = mapped(with_resources(condition("dm", "E11.9", "entered-in-error")), tmp_path)
    assert "diabetic" not in withdrawn.data.get("diabetes", {})


def test_diabetes_refuted_after_the_request_waives_nothing(tmp_path):
    # Refuted diabetes makes the patient not diabetic, which leaves the HbA1c clause nothing to
    # ask; refuted in a record made after the request (2025-06-20) it was read the same way.
    late = condition("dm", "E11.9", "refuted")
    late["recordedDate"] = "2025-07-01T10:00:00Z"
    result = mapped(with_resources(late), tmp_path)
    assert result.data["diabetes"] == {
        "diabetic": False,
        "source": {"document": "other", "date": "2025-07-01"},
    }
    assert ("diabetes", "diabetic", "after_request") in {
        (c.fact, c.field, c.reason) for c in result.case.conflicts
    }
    assert statuses(result)["LF-DIABETES"] == "not_documented"
    timely = condition("dm", "E11.9", "refuted")
    timely["recordedDate"] = "2025-05-01"
    kept = mapped(with_resources(timely), tmp_path)
    assert kept.data["diabetes"]["diabetic"] is False
    assert not kept.case.conflicts


def test_an_activity_limitation_recorded_after_the_request_shows_no_impairment(tmp_path):
    limitation = condition("limits", "Z73.6")
    limitation["recordedDate"] = "2025-07-01"
    result = mapped(with_resources(limitation), tmp_path)
    (coded,) = result.data["conditions"]
    assert coded["source"] == {"document": "other", "date": "2025-07-01"}
    assert statuses(result)["LF-FUNCTIONAL-IMPAIRMENT"] != "met"
    limitation["recordedDate"] = "2025-05-01"
    assert statuses(mapped(with_resources(limitation), tmp_path))["LF-FUNCTIONAL-IMPAIRMENT"] == (
        "met"
    )


def test_a_never_smoker_status_documents_nicotine(tmp_path):
    result = mapped(with_resources(smoking("smoking", "266919005")), tmp_path)
    assert result.unmapped == ()
    nicotine = result.data["nicotine"]
    assert nicotine["status"] == "never"
    assert nicotine["source"]["document"] == "clinic_note"
    assert statuses(result)["LF-NICOTINE"] == "met"


def test_disagreeing_smoking_statuses_are_a_conflict_not_the_last_one_read(tmp_path):
    result = mapped(
        with_resources(smoking("s1", "449868002"), smoking("s2", "266919005")), tmp_path
    )
    status = result.data["nicotine"]["status"]
    assert [s["value"] for s in status["statements"]] == ["current", "never"]
    assert statuses(result)["LF-NICOTINE"] == "not_documented"


@pytest.mark.parametrize("document", [True, False])
@pytest.mark.parametrize(
    "when",
    [
        {"effectiveDateTime": "2025-07-01"},
        {"effectiveDateTime": "2025-07-01T09:30:00Z"},
        {"effectivePeriod": {"start": "2025-06-01", "end": "2025-07-01"}},
    ],
)
def test_a_never_smoker_status_observed_after_the_request_does_not_document_nicotine(
    tmp_path, when, document
):
    # A smoking status has no date of its own in the case; it was mapped without its
    # Observation's effective time, so a status observed after the request (2025-06-20) made
    # the nicotine clause met, with or without a DocumentReference behind it.
    late = smoking("smoking", "266919005")
    del late["effectiveDateTime"]
    late.update(when)
    if not document:
        del late["derivedFrom"]
    result = mapped(with_resources(late), tmp_path)
    assert result.data["nicotine"]["source"]["date"] == "2025-07-01"
    assert result.data["nicotine"]["source"]["document"] == ("clinic_note" if document else "other")
    assert ("nicotine", "status", "after_request") in {
        (c.fact, c.field, c.reason) for c in result.case.conflicts
    }
    assert statuses(result)["LF-NICOTINE"] == "not_documented"


def test_a_late_never_smoker_status_has_no_say_beside_a_timely_current_one(tmp_path):
    late = smoking("s2", "266919005")
    late["effectiveDateTime"] = "2025-07-01"
    result = mapped(with_resources(smoking("s1", "449868002"), late), tmp_path)
    dates = [s["source"]["date"] for s in result.data["nicotine"]["status"]["statements"]]
    assert dates == ["2025-05-05", "2025-07-01"]
    assert statuses(result)["LF-NICOTINE"] == "not_met"


def test_an_unknown_smoking_status_is_reported_and_leaves_nicotine_undocumented(tmp_path):
    result = mapped(with_resources(smoking("s1", "266927001")), tmp_path)
    assert "nicotine" not in result.data
    assert [u.message for u in result.unmapped] == [f"value {SNOMED}|266927001 is not mapped"]
    assert statuses(result)["LF-NICOTINE"] == "not_documented"


# --- the new fusion clauses from FHIR ------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "status"),
    [
        ((), "not_documented"),
        ((odi("odi", 42, "2025-06-02"),), "met"),
        ((odi("odi", 29.9, "2025-06-02"),), "not_met"),
        ((condition("limitation", "Z73.6"),), "met"),
    ],
    ids=["none", "odi-42", "odi-29.9", "coded-limitation"],
)
def test_functional_impairment_is_judged_from_the_bundle(tmp_path, resources, status):
    result = mapped(with_resources(*resources), tmp_path)
    assert statuses(result)["LF-FUNCTIONAL-IMPAIRMENT"] == status


def test_the_cli_reads_a_coded_bundle_like_the_case_it_maps_to(tmp_path):
    bundle = with_resources(
        odi("odi", 42, "2025-06-02"), smoking("smoking", "266919005"), contained=True
    )
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    case_path = tmp_path / "case.json"
    case_path.write_text(json.dumps(bundle_to_case(source.load(path)).data))
    outputs = []
    for given in (path, case_path):
        result = CliRunner().invoke(main, ["evaluate", str(given), "--format", "json"])
        data = json.loads(result.stdout)
        data.pop("evaluated_at")
        for line in data["lines"]:
            line.get("provenance", {}).pop("case_sha256", None)
        outputs.append((result.exit_code, data))
    assert outputs[0] == outputs[1]


def test_the_mapping_value_sets_are_value_sets_of_the_policy_language():
    import jsonschema  # noqa: PLC0415

    from evaluator.read import schemas  # noqa: PLC0415

    policy = schemas.load_schema("policy")
    spec = {"$defs": policy["$defs"], **policy["$defs"]["value_set"]}
    for name, value_set in mapping()["value_sets"].items():
        jsonschema.validate(value_set, spec)
        assert name.isidentifier()


def test_a_bundle_the_fhir_models_reject_is_invalid(tmp_path):
    bad = observation("odi", "97909-6", valueQuantity={"value": "forty-two"})
    with pytest.raises(SchemaError) as raised:
        mapped(with_resources(bad), tmp_path)
    assert {p.code for p in raised.value.problems} == {"fhir_invalid"}


# --- late documents: a score, symptoms and a diagnosis (facts.schema.json x-as-of-source) -----

LATE_NOTE = {"reference": "DocumentReference/doc-late"}


def late_note() -> dict[str, Any]:
    """A progress note written after the founding request date (2025-06-20)."""
    return {
        "resourceType": "DocumentReference",
        "id": "doc-late",
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]},
        "subject": {"reference": "Patient/patient-1"},
        "date": "2025-07-01T09:00:00Z",
        "description": "a note written after the request",
        "content": [{"attachment": {"contentType": "text/plain", "title": "Progress note"}}],
    }


def undated_odi_in_the_late_note() -> dict[str, Any]:
    score = odi("odi", 42, "2025-07-01")
    del score["effectiveDateTime"]
    score["derivedFrom"] = [LATE_NOTE]
    return score


@pytest.mark.parametrize(
    "resources",
    [(odi("odi", 42, "2025-07-01"),), (undated_odi_in_the_late_note(), late_note())],
    ids=["observed after the request", "undated, in a note after the request"],
)
def test_an_odi_of_after_the_request_shows_no_impairment(tmp_path, resources):
    # An ODI's value held when it was observed, or (with no time of its own) when its note was
    # written: either after the request (2025-06-20), it made the clause met.
    result = mapped(with_resources(*resources), tmp_path)
    assert [(c.fact, c.reason) for c in result.case.conflicts] == [("observation", "after_request")]
    assert statuses(result)["LF-FUNCTIONAL-IMPAIRMENT"] == "not_documented"
    timely = mapped(with_resources(odi("odi", 42, "2025-06-20"), late_note()), tmp_path)
    assert statuses(timely)["LF-FUNCTIONAL-IMPAIRMENT"] == "met"


def test_symptoms_in_a_note_after_the_request_are_not_documented(tmp_path):
    bundle = with_resources(late_note())
    (symptom,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "symptom-radicular"
    ]
    symptom["derivedFrom"] = [LATE_NOTE]
    symptom["effectiveDateTime"] = "2025-01-15"  # the onset the late note gives
    result = mapped(bundle, tmp_path)
    (said,) = result.data["symptoms"]
    assert (said["onset"], said["source"]["date"]) == ("2025-01-15", "2025-07-01")
    # kind, side and onset all left out, so no symptom fact at all: an empty one would enter
    # a scope as a symptom not documented (test_late_review.py)
    assert [f for f in result.case.facts if f.type == "symptom"] == []
    assert [(c.fact, c.field, c.reason) for c in result.case.conflicts] == [
        ("symptom", "kind, onset", "after_request")
    ]


def spondylitis(rid: str, verification: str, recorded: str) -> dict[str, Any]:
    found = condition(rid, "M45.9", verification)
    found["recordedDate"] = recorded
    return found


def spondylitis_only(*resources: dict[str, Any]) -> dict[str, Any]:
    """The founding Bundle without its own ankylosing spondylitis Condition, plus
    `resources`: the Conditions of one diagnosis are one diagnosis (`stated: [status]`)."""
    bundle = with_resources(*resources)
    bundle["entry"] = [
        e for e in bundle["entry"] if e["resource"].get("id") != "ankylosing-spondylitis"
    ]
    return bundle


def _spondylitis_facts(result: Mapped) -> list[dict[str, Any]]:
    return [
        dict(f.fields)
        for f in result.case.facts
        if f.type == "diagnosis" and f.fields.get("name") == "ankylosing_spondylitis"
    ]


def test_a_spondylitis_refuted_after_the_request_takes_nothing_away(tmp_path):
    result = mapped(
        spondylitis_only(
            spondylitis("as-1", "confirmed", "2025-02-03"),
            spondylitis("as-2", "refuted", "2025-07-01"),
        ),
        tmp_path,
    )
    # one diagnosis, its status as each record states it
    (said,) = [d for d in result.data["diagnoses"] if d["name"] == "ankylosing_spondylitis"]
    assert [(s["value"], s["source"]["date"]) for s in said["status"]["statements"]] == [
        ("confirmed", "2025-02-03"),
        ("ruled_out", "2025-07-01"),
    ]
    # the refutation recorded after the request is left out; the earlier confirmation stands
    assert [d.get("status") for d in _spondylitis_facts(result)] == ["confirmed"]
    assert [(c.fact, c.field, c.reason) for c in result.case.conflicts] == [
        ("diagnosis", "status", "after_request")
    ]
    # confirmed after the request, it adds an exclusion and counts
    late = mapped(spondylitis_only(spondylitis("as-3", "confirmed", "2025-07-01")), tmp_path)
    assert [d.get("status") for d in _spondylitis_facts(late)] == ["confirmed"]
    assert not late.case.conflicts


SI_POLICY = "si-joint-fusion@2025.1"
ARTHROPATHY = "SI-NO-INFLAMMATORY-ARTHROPATHY"


@pytest.mark.parametrize("other", ["refuted", "provisional"], ids=["refuted", "provisional"])
def test_conditions_that_disagree_on_a_spondylitis_before_the_request_pend(tmp_path, other):
    # Domain rule 9 through FHIR: two Conditions of one diagnosis recorded before the request,
    # confirmed and refuted (or provisional: stated), were two diagnoses, and the confirmed
    # one excluded the SI-joint fusion; they are one diagnosis whose records disagree, so the
    # exclusion is not documented (pend), never decided by one of them.
    result = mapped(
        spondylitis_only(
            spondylitis("as-1", "confirmed", "2025-02-03"),
            spondylitis("as-2", other, "2025-05-01"),
        ),
        tmp_path,
    )
    (fact,) = _spondylitis_facts(result)
    assert "status" not in fact
    assert fact["status_disputed"] is True
    assert [(c.fact, c.field, c.reason) for c in result.case.conflicts] == [
        ("diagnosis", "status", "sources_disagree")
    ]
    assert statuses(result, SI_POLICY)[ARTHROPATHY] == "not_documented"


def test_conditions_that_agree_on_a_spondylitis_still_exclude(tmp_path):
    result = mapped(
        spondylitis_only(
            spondylitis("as-1", "confirmed", "2025-02-03"),
            spondylitis("as-2", "confirmed", "2025-05-01"),
        ),
        tmp_path,
    )
    assert [d.get("status") for d in _spondylitis_facts(result)] == ["confirmed"]
    assert not result.case.conflicts
    assert statuses(result, SI_POLICY)[ARTHROPATHY] == "not_met"


def test_a_single_refuted_spondylitis_does_not_exclude(tmp_path):
    result = mapped(spondylitis_only(spondylitis("as-1", "refuted", "2025-05-01")), tmp_path)
    assert [d.get("status") for d in _spondylitis_facts(result)] == ["ruled_out"]
    assert statuses(result, SI_POLICY)[ARTHROPATHY] == "met"


def test_a_spondylitis_confirmed_after_a_timely_refutation_still_excludes(tmp_path):
    result = mapped(
        spondylitis_only(
            spondylitis("as-1", "refuted", "2025-02-03"),
            spondylitis("as-2", "confirmed", "2025-07-01"),
        ),
        tmp_path,
    )
    assert [(c.field, c.reason) for c in result.case.conflicts] == [
        ("status", "late_counted"),
        ("status", "worse_kept"),
    ]
    assert statuses(result, SI_POLICY)[ARTHROPATHY] == "not_met"


def test_a_current_smoker_status_observed_after_the_request_still_has_a_say(tmp_path):
    # It can only make the case worse: beside a timely never-smoker status it was left out and
    # the nicotine clause met; it counts as if timely, so the two disagree (pend).
    late = smoking("s2", "449868002")
    late["effectiveDateTime"] = "2025-07-01"
    result = mapped(with_resources(smoking("s1", "266919005"), late), tmp_path)
    assert [(c.fact, c.field, c.reason) for c in result.case.conflicts] == [
        ("nicotine", "status", "late_counted"),
        ("nicotine", "status", "sources_disagree"),
        # its copy among the coded observations is as of its effective time: its date is left
        # out, but a status reporting use still adds (x-as-of-source may_add, since
        # s26-straddle; before, the whole copy was left out)
        ("observation", "effective", "after_request"),
    ]
    assert statuses(result)["LF-NICOTINE"] == "not_documented"
