"""FHIR in: a MedicationStatement the patient did not take (status `not-taken`) is no
conservative-care medication (fhir_mapping.yaml `skip_status`); a coded one stays in the case's
coded `medications`, with its status, so nothing the record states is dropped silently."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from test_fhir_coded import BUNDLE, mapped, with_resources  # type: ignore[import-not-found]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _statement(status: str, coded: bool) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": "gabapentin"}
    if coded:
        concept["coding"] = [{"system": RXNORM, "code": "25480"}]
    return {
        "resourceType": "MedicationStatement",
        "id": "gabapentin",
        "status": status,
        "subject": {"reference": "Patient/patient-1"},
        "medicationCodeableConcept": concept,
        "effectivePeriod": {"start": "2025-01-15", "end": "2025-04-01"},
    }


def _details(data: dict[str, Any]) -> list[Any]:
    return [c.get("detail") for c in data["conservative_care"]["components"]]


@pytest.mark.parametrize("status", ["not-taken", "intended", "unknown"])
def test_an_uncoded_medication_not_taken_is_reported_not_mapped(
    status: str, tmp_path: Path
) -> None:
    # `intended`: planned, not yet taken; `unknown`: whether it was taken is not known
    result = mapped(with_resources(_statement(status, coded=False)), tmp_path)
    assert "gabapentin" not in _details(result.data)
    assert [(u.expression, u.message) for u in result.unmapped] == [
        (
            f"Bundle.entry[{len(BUNDLE['entry'])}].resource.status",
            f"MedicationStatement with status `{status}` states no "
            "/conservative_care/components/-: not mapped",
        )
    ]


def test_a_coded_medication_not_taken_is_kept_with_its_status(tmp_path: Path) -> None:
    result = mapped(with_resources(_statement("not-taken", coded=True)), tmp_path)
    assert "gabapentin" not in _details(result.data)
    assert result.unmapped == ()
    assert result.data["medications"] == [
        {
            "code": {"system": RXNORM, "code": "25480"},
            "status": "not-taken",
            "period": {"start": "2025-01-15", "end": "2025-04-01"},
        }
    ]


def test_a_medication_taken_is_still_conservative_care(tmp_path: Path) -> None:
    for status in ("active", "completed", "stopped"):
        result = mapped(with_resources(_statement(status, coded=False)), tmp_path)
        assert "gabapentin" in _details(result.data), status
        assert result.unmapped == ()


def test_the_founding_bundle_s_medications_are_unchanged(tmp_path: Path) -> None:
    result = mapped(copy.deepcopy(BUNDLE), tmp_path)
    assert {"prednisone", "diclofenac"} <= set(_details(result.data))
