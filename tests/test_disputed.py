"""Conflicting documentation on a deciding fact is not documented (domain.md section 3, rule 9).

Two timely records that disagree on a diagnosis's status ("confirmed" vs "ruled out", or even
"stated" vs "confirmed") leave the status undocumented. Left merely absent, the two-valued
`exists ... where` read it as "no such diagnosis" and approved what the record may exclude, so
stop 20 kept the excluding value (`keep_worse`) and denied instead. Neither is the convention:
the status is disputed, and the facts say so as data (facts.schema.json `x-disputed` names the
marker field the fact then carries), which a `where` on that field reads as unknown: an
exclusion clause over a disputed diagnosis is not documented and the case pends. A late
document's worse value still counts (`may_add`, `keep_worse`): a late confirmation after a
timely ruling-out still denies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library
from evaluator.read import schemas

ROOT = Path(__file__).parent.parent
EXCLUDED = ROOT / "examples" / "cases" / "si-ankylosing-spondylitis.json"  # confirmed, 2016
ARTHROPATHY = "SI-NO-INFLAMMATORY-ARTHROPATHY"


def _review(data: dict[str, Any], library: Library) -> tuple[str, str, list[Any]]:
    """Return (the line's determination, the arthropathy clause's status, the conflicts)."""
    decision = api.review_case(case_from_data(data, "disputed.json"), library).lines[0].decision
    assert decision is not None
    status = next(c.status.value for c in decision.clauses if c.id == ARTHROPATHY)
    return decision.determination.value, status, [dict(c) for c in decision.conflicts]


def _spondylitis(*said: tuple[str, str, str]) -> Callable[[dict[str, Any]], None]:
    """Make the ankylosing spondylitis diagnosis's status the statements (value, document,
    date) given."""

    def change(data: dict[str, Any]) -> None:
        (diagnosis,) = [d for d in data["diagnoses"] if d["name"] == "ankylosing_spondylitis"]
        diagnosis["status"] = {
            "statements": [
                {"value": v, "source": {"document": doc, "date": when}} for v, doc, when in said
            ]
        }

    return change


def _base() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXCLUDED.read_text())
    assert data["request"]["date"] == "2025-06-20"
    return data


# Timely records that disagree, each of the same rank (primary records: clinic note, radiology
# report): each denied at stop 20 (`worse_kept`), each a pend by rule 9.
DISPUTED = {
    "confirmed and ruled out": (
        ("confirmed", "clinic_note", "2025-02-03"),
        ("ruled_out", "clinic_note", "2025-05-01"),
    ),
    "stated and confirmed": (
        ("stated", "clinic_note", "2025-02-03"),
        ("confirmed", "radiology_report", "2025-05-01"),
    ),
    "two letters, stated and ruled out": (
        ("stated", "surgeon_letter", "2025-02-03"),
        ("ruled_out", "surgeon_letter", "2025-05-01"),
    ),
}


@pytest.mark.parametrize("name", sorted(DISPUTED))
def test_timely_records_that_disagree_on_a_diagnosis_pend(name: str, library: Library) -> None:
    data = _base()
    _spondylitis(*DISPUTED[name])(data)
    determination, status, conflicts = _review(data, library)
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    # the reviewer is told what disagrees, and that it was left undocumented
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("diagnosis", "status", "sources_disagree")
    ]


def test_the_disputed_status_is_marked_on_the_fact_and_left_absent() -> None:
    data = _base()
    _spondylitis(*DISPUTED["confirmed and ruled out"])(data)
    case = case_from_data(data, "disputed.json")
    (fact,) = [
        f
        for f in case.facts
        if f.type == "diagnosis" and f.fields["name"] == "ankylosing_spondylitis"
    ]
    assert "status" not in fact.fields
    assert fact.fields["status_disputed"] is True


def test_the_pend_names_the_disputed_diagnosis_as_its_evidence(library: Library) -> None:
    # The clause's evidence is the disputed fact itself (the unknown `exists` matched it), and
    # the conflict says what disagrees. (A documentation request for the clause needs policy
    # text: si-joint-fusion 2025.1 has none for this clause, and adding it would change every
    # SI example's golden file through the policy hash.)
    data = _base()
    _spondylitis(*DISPUTED["confirmed and ruled out"])(data)
    decision = api.review_case(case_from_data(data, "disputed.json"), library).lines[0].decision
    assert decision is not None
    (clause,) = [c for c in decision.clauses if c.id == ARTHROPATHY]
    (evidence,) = clause.evidence
    assert evidence.value.name == "UNKNOWN"
    (fact,) = evidence.facts
    values = dict(fact.values)
    assert (fact.type, values["name"], values["status_disputed"]) == (
        "diagnosis",
        "ankylosing_spondylitis",
        True,
    )
    (conflict,) = decision.conflicts
    assert conflict["values"] == "confirmed (clinic_note), ruled_out (clinic_note)"


def test_a_single_ruling_out_still_approves_the_clause(library: Library) -> None:
    data = _base()
    _spondylitis(("ruled_out", "clinic_note", "2025-05-01"))(data)
    determination, status, conflicts = _review(data, library)
    assert (determination, status, conflicts) == ("medically_necessary", "met", [])


def test_a_primary_record_still_outranks_a_letter(library: Library) -> None:
    # Not a conflict: primary records outrank summaries (rule 9's second sentence).
    data = _base()
    _spondylitis(
        ("stated", "surgeon_letter", "2025-02-03"), ("ruled_out", "clinic_note", "2025-05-01")
    )(data)
    assert _review(data, library) == ("medically_necessary", "met", [])


def test_agreeing_records_still_exclude(library: Library) -> None:
    data = _base()
    _spondylitis(
        ("confirmed", "clinic_note", "2025-02-03"), ("confirmed", "radiology_report", "2025-05-01")
    )(data)
    assert _review(data, library)[:2] == ("not_medically_necessary", "not_met")


@pytest.mark.parametrize(
    "late",
    ["confirmed", "stated"],
)
def test_a_late_worse_value_after_a_timely_ruling_out_still_denies(
    late: str, library: Library
) -> None:
    # A late document may add an exclusion (may_add): where it disagrees with a timely
    # record, the worse value decides (keep_worse), as at stop 20.
    data = _base()
    _spondylitis(("ruled_out", "clinic_note", "2025-02-03"), (late, "clinic_note", "2025-07-01"))(
        data
    )
    determination, status, conflicts = _review(data, library)
    assert (determination, status) == ("not_medically_necessary", "not_met")
    assert [(c["field"], c["reason"]) for c in conflicts] == [
        ("status", "late_counted"),
        ("status", "worse_kept"),
    ]


def test_a_late_value_beside_timely_records_that_disagree_still_denies(library: Library) -> None:
    data = _base()
    _spondylitis(
        ("confirmed", "clinic_note", "2025-02-03"),
        ("ruled_out", "clinic_note", "2025-05-01"),
        ("confirmed", "clinic_note", "2025-07-01"),
    )(data)
    assert _review(data, library)[:2] == ("not_medically_necessary", "not_met")


def test_a_disputed_diagnosis_of_another_name_changes_nothing(library: Library) -> None:
    # The exclusion names three diagnoses: a dispute over another one's status is not deciding.
    data = _base()
    data["diagnoses"] = [d for d in data["diagnoses"] if d["name"] != "ankylosing_spondylitis"]
    data["diagnoses"].append(
        {
            "name": "lumbar_stenosis",
            "status": {
                "statements": [
                    {"value": v, "source": {"document": "clinic_note", "date": when}}
                    for v, when in (("confirmed", "2025-02-03"), ("ruled_out", "2025-05-01"))
                ]
            },
        }
    )
    determination, status, _ = _review(data, library)
    assert (determination, status) == ("medically_necessary", "met")


def test_a_dispute_never_hides_an_undisputed_exclusion(library: Library) -> None:
    # A disputed spondylitis beside a confirmed rheumatoid arthritis: the exclusion stands.
    data = _base()
    _spondylitis(*DISPUTED["confirmed and ruled out"])(data)
    data["diagnoses"].append(
        {
            "name": "rheumatoid_arthritis",
            "status": "confirmed",
            "source": {"document": "clinic_note", "date": "2025-03-01"},
        }
    )
    assert _review(data, library)[:2] == ("not_medically_necessary", "not_met")


def test_the_marker_is_schema_data() -> None:
    # One place says which fields a `where` reads as unknown when disputed, and how the fact
    # says so: the field's annotation; no longer keep_worse alone.
    status = schemas.load_schema("facts")["$defs"]["diagnosis"]["properties"]["status"]
    assert status["x-disputed"] == "status_disputed"
