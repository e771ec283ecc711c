"""Wrong decisions found by the stop-22 data review (domain.md; the shipped approvable examples
with one fact changed).

Fixed here (each test failed before its fix):
- the findings of a study documented as not performed counted beside a study that was performed
  (the request approved on images nobody took);
- a study taken after the request, its report written after it too, supplied the compression
  and the slip that approved a request made before it existed.
- (policies, amended in place) a same-day bilateral SI-joint fusion requested as a right and a
  left line was approved on each; a coded ankylosing spondylitis or rheumatoid arthritis in the
  record's conditions excluded nothing; 'no diabetes' beside a coded diabetes or an HbA1c of
  9.5 % waived the HbA1c check; lumbar-fusion 2026.1 read a grade 2 on a finding stating no
  slip as instability.

Left open as strict expected failures (policy side, owned elsewhere this session; the report to
the lead gives each proposed fix): see the reasons on the markers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from test_fhir_coded import (  # type: ignore[import-not-found]
    BUNDLE,
    mapped,
    odi,
    smoking,
    statuses,
    with_resources,
)

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library
from tests.reviewing import shipped

ROOT = Path(__file__).parent.parent


def _decompression() -> dict[str, Any]:
    """L4-L5 decompression, moderate stenosis at L4-L5 on a 2025-05-28 MRI: approved."""
    return shipped("ld-approvable-l4-l5")


def _fusion() -> dict[str, Any]:
    """L4-L5 fusion, severe stenosis and a slip at L4-L5 on a 2025-04-30 MRI: approved."""
    return shipped("l4-l5-approvable")


def _coded_condition(icd10: str) -> dict[str, Any]:
    """A confirmed, active ICD-10 condition in the record's coded `conditions`."""
    return {
        "code": {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": icd10},
        "clinical_status": "active",
        "verification_status": "confirmed",
        "source": {"document": "clinic_note", "date": "2025-05-05"},
    }


def _review(data: dict[str, Any], library: Library) -> tuple[str, dict[str, str], list[Any]]:
    """Return (the line's determination, each clause's status, the decision's conflicts)."""
    decision = api.review_case(case_from_data(data, "review.json"), library).lines[0].decision
    assert decision is not None
    statuses = {c.id: c.status.value for c in decision.clauses}
    return decision.determination.value, statuses, [dict(c) for c in decision.conflicts]


def test_the_baselines_approve(library: Library) -> None:
    # Each mutation below is one change from an approved case: the baseline must approve.
    assert _review(_decompression(), library)[0] == "medically_necessary"
    assert _review(_fusion(), library)[0] == "medically_necessary"


def _ct_without_findings(data: dict[str, Any]) -> None:
    data["imaging"].append(
        {
            "id": "ct-2025-06-10",
            "modality": "ct",
            "date": "2025-06-10",
            "source": {"document": "radiology_report", "date": "2025-06-10"},
            "findings": [],
        }
    )


@pytest.mark.parametrize("base", [_decompression, _fusion], ids=["decompression", "fusion"])
def test_findings_of_a_study_not_performed_show_nothing_beside_one_performed(
    base: Any, library: Library
) -> None:
    # domain.md section 3 item 1: a study documented as not performed demonstrates nothing.
    # With a CT performed (no level reported), the MRI's findings approved the request.
    data = base()
    data["imaging"][0]["performed"] = False
    _ct_without_findings(data)
    determination, statuses, conflicts = _review(data, library)
    assert determination != "medically_necessary"
    correlation = "LD-IMAGING-CORRELATION" if "LD-URGENT" in statuses else "LF-IMAGING-CORRELATION"
    # the MRI names the levels, but nothing it states counts: not documented, never met
    assert statuses[correlation] == "not_documented"
    left_out = [c for c in conflicts if c["fact"] == "imaging_finding"]
    # the reviewer is told which findings were not counted and why, one conflict each
    assert len(left_out) == len(data["imaging"][0]["findings"])
    assert {(c["values"], c["reason"]) for c in left_out} == {
        ("study not performed (radiology_report)", "sources_disagree")
    }


def test_a_study_not_performed_alone_still_denies(library: Library) -> None:
    # Leaving its findings out must not turn "no MRI or CT performed" (not met) into a pend.
    data = _decompression()
    data["imaging"][0]["performed"] = False
    assert _review(data, library)[1]["LD-IMAGING-CORRELATION"] == "not_met"


def _late(study: dict[str, Any], day: str = "2025-07-01") -> None:
    study["id"], study["date"] = f"mri-{day}", day
    study["source"] = {**study["source"], "date": day}


def test_a_study_taken_after_the_request_does_not_approve_a_decompression(
    library: Library,
) -> None:
    # The only MRI was taken (and reported) after the request: nothing dated after the request
    # can demonstrate what must precede it. Decompression has no imaging-recency clause, so its
    # findings alone approved.
    data = _decompression()
    _late(data["imaging"][0])
    determination, statuses, conflicts = _review(data, library)
    assert determination == "insufficient_documentation"
    assert statuses["LD-IMAGING-CORRELATION"] == "not_documented"
    assert {c["reason"] for c in conflicts if c["fact"] == "imaging_finding"} == {"after_request"}


def test_a_study_the_day_after_the_request_shows_nothing_and_the_request_day_does(
    library: Library,
) -> None:
    # the edge: a study on the request date itself is timely, the next day is not (the report
    # is written later in both, as is routine: only the study's own date decides)
    data = _decompression()
    for day, approved in [("2025-06-20", True), ("2025-06-21", False)]:
        _late(data["imaging"][0], day)
        data["imaging"][0]["source"]["date"] = "2025-06-23"
        assert (_review(data, library)[0] == "medically_necessary") is approved, day


def test_a_late_study_does_not_supply_what_the_timely_study_lacks(library: Library) -> None:
    # The timely MRI reads L4-L5 as mild without compression; an MRI after the request reads it
    # severe with a slip. LF-IMAGING-RECENT was met by the timely study, and the late study's
    # findings met imaging correlation and instability: approved.
    data = _fusion()
    late = copy.deepcopy(data["imaging"][0])
    data["imaging"][0]["findings"][1].update(
        stenosis="mild", neural_compression=False, spondylolisthesis=False
    )
    data["imaging"][0]["findings"][1].pop("listhesis_grade")
    data["imaging"][0]["findings"][1].pop("listhesis_mm")
    _late(late)
    data["imaging"].append(late)
    determination, statuses, _ = _review(data, library)
    assert determination == "not_medically_necessary"
    assert statuses["LF-IMAGING-CORRELATION"] == "not_met"
    assert statuses["LF-INSTABILITY"] == "not_met"


def test_a_late_study_date_with_a_report_dated_by_the_request_still_counts(
    library: Library,
) -> None:
    # The report (dated before the request) vouches that the images existed then; the study's
    # date contradicts it and alone is left out (not documented where a clause needs it).
    data = _decompression()
    data["imaging"][0]["date"] = "2025-07-01"
    determination, _, conflicts = _review(data, library)
    assert determination == "medically_necessary"
    assert [c["fact"] for c in conflicts] == ["imaging_study"]


# --- open: policy side (policies/_shared, owned by s22-policy this session) ---------------


def test_a_motor_deficit_documented_as_not_progressive_waives_nothing(library: Library) -> None:
    data = _fusion()
    data["nicotine"]["status"] = "current"
    assert _review(data, library)[0] == "not_medically_necessary"
    data["red_flags"].append(
        {"kind": "progressive_motor_deficit", "strength": 3, "progressive": True}
    )
    assert _review(data, library)[0] == "medically_necessary"  # waived, as it should be
    data["red_flags"][0]["progressive"] = False
    assert _review(data, library)[0] != "medically_necessary"
    # a deficit not stated to progress demonstrates no red flag either: the waiver must be shown
    del data["red_flags"][0]["progressive"]
    assert _review(data, library)[0] != "medically_necessary"


@pytest.mark.parametrize(
    "conflicting",
    [
        {"cotinine_ng_ml": 150},
        pytest.param({"quit_date": "2025-06-01"}),
        pytest.param(
            {
                "observations": {
                    "code": {"system": "http://loinc.org", "code": "72166-2"},
                    "value_code": {"system": "http://snomed.info/sct", "code": "449868002"},
                    "effective": "2025-05-01",
                    "source": {"document": "clinic_note", "date": "2025-05-01"},
                }
            },
        ),
        pytest.param(
            {
                "medications": {
                    "code": {
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": "311975",
                        "display": "nicotine 21 MG/24HR transdermal patch",
                    },
                    "status": "active",
                    "source": {"document": "clinic_note", "date": "2025-05-01"},
                }
            },
        ),
    ],
    ids=["cotinine-150", "quit-19-days-ago", "coded-current-smoker", "active-nicotine-patch"],
)
def test_a_never_user_with_a_conflicting_record_is_not_approved(
    conflicting: dict[str, Any], library: Library
) -> None:
    data = _fusion()
    for section, item in conflicting.items():
        if section in ("observations", "medications"):
            data.setdefault(section, []).append(item)
        else:
            data["nicotine"][section] = item
    determination, statuses, _ = _review(data, library)
    assert determination != "medically_necessary"
    # domain.md: a never-user WITH NO CONFLICTING RECORD. Each record below conflicts with
    # "never", so the never route fails and the abstinence route decides: a coded status or a
    # nicotine product leaves it to a cotinine (not documented, rule 9: pend with the request);
    # a cotinine above the limit, or a stated quit date under 6 weeks before the request, fails
    # it on the record (a cotinine cannot show the 6 weeks the quit date denies)
    expected = "not_documented" if set(conflicting) & {"observations", "medications"} else "not_met"
    assert statuses["LF-NICOTINE"] == expected


def test_a_never_user_s_coded_never_status_or_old_quit_date_conflicts_as_it_should(
    library: Library,
) -> None:
    # the edges of the conflict checks: a coded "never smoked" agrees with "never" (met); a
    # quit date a year back is a conflict the abstinence route settles with a cotinine at the
    # limit (met) and pends without one
    data = _fusion()
    data.setdefault("observations", []).append(
        {
            "code": {"system": "http://loinc.org", "code": "72166-2"},
            "value_code": {"system": "http://snomed.info/sct", "code": "266919005"},
            "effective": "2025-05-01",
            "source": {"document": "clinic_note", "date": "2025-05-01"},
        }
    )
    assert _review(data, library)[1]["LF-NICOTINE"] == "met"
    data["nicotine"]["quit_date"] = "2024-06-01"
    assert _review(data, library)[1]["LF-NICOTINE"] == "not_documented"
    data["nicotine"]["cotinine_ng_ml"] = 10
    assert _review(data, library)[1]["LF-NICOTINE"] == "met"


def test_a_never_user_with_a_high_cotinine_is_not_approved(library: Library) -> None:
    data = _fusion()
    data["nicotine"]["cotinine_ng_ml"] = 150
    assert _review(data, library)[0] != "medically_necessary"
    # the cotinine settles the conflicting record against "never" (a lab result outranks a
    # stated history, domain.md section 3 item 9) and fails the abstinence route: not met
    determination, statuses, _ = _review(data, library)
    assert determination == "not_medically_necessary"
    assert statuses["LF-NICOTINE"] == "not_met"
    # the edge: a cotinine at the limit contradicts nothing
    data["nicotine"]["cotinine_ng_ml"] = 10
    assert _review(data, library)[1]["LF-NICOTINE"] == "met"


def test_a_bilateral_si_fusion_needs_the_work_up_on_each_side(library: Library) -> None:
    data = shipped("si-approvable-unilateral")  # right-sided pain, tests and blocks
    data["request"]["lines"][0].update(side="bilateral", same_day=False)
    assert _review(data, library)[0] != "medically_necessary"


def test_an_old_low_odi_does_not_deny_a_current_high_one(library: Library) -> None:
    data = _fusion()  # ODI 42 % on 2025-06-02
    old = copy.deepcopy(data["observations"][0])
    old.update(effective="2024-06-01", value_quantity={"value": 20, "unit": "%"})
    old["source"] = {"document": "clinic_note", "date": "2024-06-01"}
    data["observations"].append(old)
    # the latest ODI decides (stop 25); every ODI had to reach 30 % before, a wrong denial
    assert _review(data, library)[0] == "medically_necessary"


def _odi(data: dict[str, Any], effective: str | None, value: float) -> None:
    extra = copy.deepcopy(data["observations"][0])
    extra.update(value_quantity={"value": value, "unit": "%"})
    extra.pop("effective", None)
    extra["source"] = {"document": "clinic_note"}
    if effective is not None:
        extra.update(effective=effective)
        extra["source"]["date"] = effective
    data["observations"].append(extra)


@pytest.mark.parametrize(
    ("effective", "value", "status"),
    [
        ("2025-06-10", 20, "not_met"),  # a later low score: the older 42 % shows nothing now
        ("2025-06-02", 20, "not_documented"),  # one day, disagreeing
        ("2025-06-02", 35, "met"),  # one day, agreeing
        (None, 20, "not_documented"),  # undated: it may be the latest
        (None, 35, "met"),  # undated and agreeing: changes nothing
    ],
)
def test_the_latest_odi_decides(
    effective: str | None, value: float, status: str, library: Library
) -> None:
    data = _fusion()  # ODI 42 % on 2025-06-02
    _odi(data, effective, value)
    assert _review(data, library)[1]["LF-FUNCTIONAL-IMPAIRMENT"] == status


def test_a_lumbar_decompression_at_a_cervical_level_is_not_approved(library: Library) -> None:
    data = _decompression()
    data["request"]["lines"][0]["decompression"] = "C5-C6"
    data["imaging"][0]["findings"].append({"level": "C5-C6", "stenosis": "moderate"})
    assert _review(data, library)[0] != "medically_necessary"


def test_one_report_grading_a_segment_twice_does_not_approve(library: Library) -> None:
    data = _decompression()
    data["imaging"][0]["findings"].append({"level": "L4-5", "stenosis": "none"})
    assert _review(data, library)[0] != "medically_necessary"


def test_a_newer_mri_without_the_stenosis_outweighs_an_older_one(library: Library) -> None:
    data = _decompression()
    newer = copy.deepcopy(data["imaging"][0])
    newer.update(id="mri-2025-06-10", date="2025-06-10")
    newer["source"] = {"document": "radiology_report", "date": "2025-06-10"}
    newer["findings"][1]["stenosis"] = "mild"
    data["imaging"].append(newer)
    # the latest MRI or CT naming the segment decides: the older MRI's moderate stenosis
    # approved beside the newer one reading L4-L5 mild
    determination, statuses, _ = _review(data, library)
    assert determination == "not_medically_necessary"
    assert statuses["LD-IMAGING-CORRELATION"] == "not_met"
    # the other way round, the newer MRI's stenosis decides (met)
    newer["findings"][1]["stenosis"] = "moderate"
    data["imaging"][0]["findings"][1]["stenosis"] = "mild"
    assert _review(data, library)[0] == "medically_necessary"


def test_flexion_extension_views_taken_after_the_request_show_no_instability(
    library: Library,
) -> None:
    # The fusion limited to L4-L5, unstable by 3.0 mm on flexion-extension films: approved.
    # Taken (and reported) after the request, the same films demonstrate nothing.
    data = shipped("dynamic-instability")
    data["request"]["lines"][0]["fusion"] = "L4-L5"
    assert _review(data, library)[0] == "medically_necessary"
    _late(data["imaging"][1])
    determination, statuses, conflicts = _review(data, library)
    assert determination == "not_medically_necessary"
    assert statuses["LF-INSTABILITY"] == "not_met"
    # each measured segment left out is named to the reviewer, none silently
    left_out = [c for c in conflicts if c["fact"] == "dynamic_study"]
    assert [(c["field"], c["reason"]) for c in left_out] == [
        ("segment, translation, angulation", "after_request")
    ] * 2


# --- FHIR in: a resource's status ------------------------------------------------------------


def _fhir(tmp_path: Path, *resources: dict[str, Any], status: str) -> Any:
    """The founding Bundle plus `resources`, each with `status`, mapped to a case."""
    for resource in resources:
        resource["status"] = status
    return mapped(with_resources(*resources), tmp_path)


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_an_observation_entered_in_error_or_cancelled_states_nothing(
    tmp_path: Path, status: str
) -> None:
    # FHIR: an entered-in-error record should never have existed; a cancelled observation was
    # never made. Read like a final one, an ODI of 42 % met functional impairment and a
    # never-smoker status met the nicotine clause.
    result = _fhir(
        tmp_path, odi("odi-1", 42, "2025-06-02"), smoking("smk-1", "266919005"), status=status
    )
    found = statuses(result)
    assert (found["LF-FUNCTIONAL-IMPAIRMENT"], found["LF-NICOTINE"]) == ("not_documented",) * 2
    # not silently: each is reported as not mapped, naming its status
    assert [u.message for u in result.unmapped] == [
        f"Observation with status `{status}` states nothing: not mapped"
    ] * 2
    final = statuses(
        _fhir(
            tmp_path, odi("odi-1", 42, "2025-06-02"), smoking("smk-1", "266919005"), status="final"
        )
    )
    assert (final["LF-FUNCTIONAL-IMPAIRMENT"], final["LF-NICOTINE"]) == ("met", "met")


def test_an_imaging_finding_entered_in_error_is_not_a_finding(tmp_path: Path) -> None:
    bundle = copy.deepcopy(BUNDLE)
    for entry in bundle["entry"]:
        if entry["resource"].get("id") == "mri-finding-L4-L5":
            entry["resource"]["status"] = "entered-in-error"
    result = mapped(bundle, tmp_path)
    levels = [f["level"] for study in result.data["imaging"] for f in study.get("findings", [])]
    assert "L4-L5" not in levels
    assert "L3-L4" in levels
    assert any("entered-in-error" in u.message for u in result.unmapped)


def test_a_procedure_not_done_is_no_course_of_therapy(tmp_path: Path) -> None:
    bundle = copy.deepcopy(BUNDLE)
    for entry in bundle["entry"]:
        if entry["resource"].get("id") == "physical-therapy":
            entry["resource"]["status"] = "not-done"
            entry["resource"]["performedPeriod"] = {"start": "2025-01-06", "end": "2025-03-28"}
    assert "physical_therapy" not in mapped(bundle, tmp_path).data["conservative_care"]


def test_a_grade_on_a_finding_without_a_slip_shows_no_instability(library: Library) -> None:
    data = _fusion()
    data["imaging"][0]["findings"][1].update(spondylolisthesis=False, listhesis_grade=2)
    case = case_from_data(data, "review.json")
    decision = api.evaluate(case, api.select_policy(case, "lumbar-fusion@2026.1", library))
    assert decision.determination.value != "medically_necessary"


@pytest.mark.parametrize("kind", ["tumour", "infection", "unstable_fracture"])
def test_only_cauda_equina_or_a_motor_deficit_waive_decompression_clauses(
    kind: str, library: Library
) -> None:
    data = _decompression()
    data["conservative_care"]["start"] = "2025-06-15"
    data["symptoms"][0]["kind"] = "axial_back_pain"
    data["red_flags"].append({"kind": kind})
    # domain.md section 1: for decompression only cauda equina syndrome or a progressive motor
    # deficit <= 3/5 waive the symptom and conservative-care clauses (the shared waiver let a
    # tumour, infection or unstable fracture waive them: approved)
    determination, statuses, _ = _review(data, library)
    assert determination == "not_medically_necessary"
    assert statuses["LD-URGENT"] == "not_applicable"
    assert statuses["LD-SYMPTOMS"] == "not_documented"  # no claudication or radicular pain
    assert statuses["LD-CONSERVATIVE-CARE"] == "not_met"
    # the same case with decompression's red flag is waived (the waiver still works)
    data["red_flags"][-1] = {"kind": "cauda_equina_syndrome"}
    assert _review(data, library)[0] == "medically_necessary"


def test_a_same_day_bilateral_si_fusion_split_into_two_lines_is_not_approved(
    library: Library,
) -> None:
    data = shipped("si-bilateral-same-day")
    line = data["request"]["lines"][0]
    assert (line["side"], line["same_day"]) == ("bilateral", True)
    data["request"]["lines"] = [
        {**line, "id": "si-right", "side": "right"},
        {**line, "id": "si-left", "side": "left"},
    ]
    review = api.review_case(case_from_data(data, "review.json"), library)
    determinations = {r.decision.determination.value for r in review.lines if r.decision}
    assert determinations != {"medically_necessary"}


@pytest.mark.parametrize(
    ("name", "study", "fusion", "clause"),
    [
        ("dynamic-instability", 1, "L4-L5", "LF-INSTABILITY"),
        ("deformity-construct", 1, None, "LF-DEFORMITY-MEASURED"),
    ],
    ids=["flexion-extension", "full-length-films"],
)
def test_measurements_of_a_study_not_performed_show_nothing(
    name: str, study: int, fusion: str | None, clause: str, library: Library
) -> None:
    # Flexion-extension views measuring 3.0 mm at L4-L5, or standing full-length films
    # measuring the deformity, on a study the record says was not performed: their numbers
    # demonstrated instability or deformity and approved (domain.md section 3 item 1).
    data = shipped(name)
    if fusion is not None:
        data["request"]["lines"][0]["fusion"] = fusion
    assert _review(data, library)[0] == "medically_necessary"
    data["imaging"][study]["performed"] = False
    determination, statuses, conflicts = _review(data, library)
    assert determination != "medically_necessary"
    assert statuses[clause] != "met"
    assert any(c["values"].startswith("study not performed") for c in conflicts)


@pytest.mark.parametrize("record", ["condition", "hba1c"])
def test_a_coded_diabetes_beside_a_note_saying_none_is_not_approved(
    record: str, library: Library
) -> None:
    data = _fusion()
    assert data["diabetes"]["diabetic"] is False
    if record == "condition":
        data["conditions"] = [_coded_condition("E11.9")]
    else:
        data["observations"].append(
            {
                "code": {"system": "http://loinc.org", "code": "4548-4"},
                "value_quantity": {"value": 9.5, "unit": "%"},
                "effective": "2025-05-01",
                "source": {"document": "lab_result", "date": "2025-05-01"},
            }
        )
    assert _review(data, library)[0] != "medically_necessary"


@pytest.mark.parametrize("code", ["M45.9", "M06.9"], ids=["spondylitis", "rheumatoid"])
def test_a_coded_inflammatory_arthropathy_excludes_si_fusion(code: str, library: Library) -> None:
    data = shipped("si-approvable-unilateral")
    data["conditions"] = [_coded_condition(code)]
    assert _review(data, library)[0] != "medically_necessary"


def test_a_medication_not_taken_is_no_conservative_care(tmp_path: Path) -> None:
    bundle = copy.deepcopy(BUNDLE)
    for entry in bundle["entry"]:
        if entry["resource"].get("id") == "med-1":
            entry["resource"]["status"] = "not-taken"
    components = mapped(bundle, tmp_path).data["conservative_care"]["components"]
    assert "prednisone" not in [c.get("detail") for c in components]


def test_a_high_cotinine_reported_in_the_request_s_month_does_not_approve(
    library: Library,
) -> None:
    data = _fusion()  # a never-user, no cotinine measured
    statement = {"value": 150, "source": {"document": "lab_result", "date": "2025-06"}}
    data["nicotine"]["cotinine_ng_ml"] = {"statements": [statement]}
    assert _review(data, library)[0] != "medically_necessary"


def test_a_high_cotinine_dated_before_the_request_is_not_met(library: Library) -> None:
    # the timely twin of the open case above: the route fails, the clause is not met
    data = _fusion()
    statement = {"value": 150, "source": {"document": "lab_result", "date": "2025-06-10"}}
    data["nicotine"]["cotinine_ng_ml"] = {"statements": [statement]}
    assert _review(data, library)[1]["LF-NICOTINE"] == "not_met"
