"""FHIR R4 in: when conservative care was performed. A Procedure performed at one instant
(`performedDateTime`) or a MedicationStatement taken at one (`effectiveDateTime`) happened that
day and ended then: the course or component it maps to starts and ends on that day. Before
(stop 27), the instant became a start with no end, which the case reads as a course ongoing up
to the request, so one therapy session in January counted as five months of supervised therapy
and met LF-PHYSICAL-THERAPY.

An open `performedPeriod` / `effectivePeriod` (a start, no end) stays open: FHIR's Period says a
missing end means the period is ongoing, and MedicationStatement.effective[x] leaves the end out
while the medication is still taken. A physical-therapy course counts an open end up to the
request only where the record calls it ongoing (tests/test_review_s26_period.py pins the rest).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from test_fhir_coded import BUNDLE, mapped, statuses  # type: ignore[import-not-found]

from tests.reviewing import VERSIONS

CASE_FIELD = "https://necessity.dev/fhir/StructureDefinition/case-field"


def _field(path: str, **value: Any) -> dict[str, Any]:
    return {
        "url": CASE_FIELD,
        "extension": [{"url": "path", "valueString": path}, {"url": "value", **value}],
    }


def _bundle(when: dict[str, Any], therapy_status: str = "ongoing") -> dict[str, Any]:
    """The founding Bundle with its conservative care, injection, therapy and medications
    performed or taken as `when` says, the therapy supervised with status `therapy_status`."""
    bundle: dict[str, Any] = copy.deepcopy(BUNDLE)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind == "Procedure":
            resource.pop("performedPeriod", None)
            resource.update({f"performed{k}": v for k, v in when.items()})
        elif kind == "MedicationStatement":
            resource.update({f"effective{k}": v for k, v in when.items()})
        if resource.get("id") == "physical-therapy":
            resource["status"] = "completed"
            resource["extension"] = [
                _field("/status", valueCode=therapy_status),
                _field("/supervised", valueBoolean=True),
            ]
    return bundle


@pytest.mark.parametrize("when", ["2025-01-10", "2025-01-10T09:30:00Z"], ids=["date", "instant"])
def test_a_procedure_performed_at_an_instant_ended_that_day(when: str, tmp_path: Path) -> None:
    result = mapped(_bundle({"DateTime": when}), tmp_path)
    care = result.data["conservative_care"]
    day = {"start": "2025-01-10", "end": "2025-01-10"}
    assert {k: care[k][:10] for k in ("start", "end")} == day
    therapy = care["physical_therapy"]
    assert {k: therapy[k][:10] for k in ("start", "end")} == day
    components = care["components"]
    assert [c["kind"] for c in components] == ["epidural_injection"] + ["medication"] * 3
    for component in components:
        assert {k: component[k][:10] for k in ("start", "end")} == day


@pytest.mark.parametrize("policy", VERSIONS)
def test_one_ongoing_therapy_session_is_not_months_of_therapy(policy: str, tmp_path: Path) -> None:
    # One supervised session on 2025-01-10, the record calling the therapy ongoing: the session
    # shows one day of therapy, not 161 days up to the request of 2025-06-20.
    result = mapped(_bundle({"DateTime": "2025-01-10"}), tmp_path)
    assert statuses(result, policy)["LF-PHYSICAL-THERAPY"] == "not_met"


@pytest.mark.parametrize("policy", VERSIONS)
def test_an_open_period_of_ongoing_therapy_lasts_until_the_request(
    policy: str, tmp_path: Path
) -> None:
    # FHIR Period: a missing end means the period is ongoing; the record calls it ongoing too.
    result = mapped(_bundle({"Period": {"start": "2025-01-10"}}), tmp_path)
    care = result.data["conservative_care"]
    assert "end" not in care
    assert "end" not in care["physical_therapy"]
    assert all("end" not in c for c in care["components"])
    assert statuses(result, policy)["LF-PHYSICAL-THERAPY"] == "met"


@pytest.mark.parametrize("policy", VERSIONS)
def test_an_open_period_of_completed_therapy_has_no_duration(policy: str, tmp_path: Path) -> None:
    # Completed with no end: when it ended is not on record, so no duration is counted.
    bundle = _bundle({"Period": {"start": "2025-01-10"}}, therapy_status="completed")
    result = mapped(bundle, tmp_path)
    assert statuses(result, policy)["LF-PHYSICAL-THERAPY"] == "not_documented"
