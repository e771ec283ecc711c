"""Events reported only in a note written after the request do not count.

"Nothing dated after the request can demonstrate what must precede it." An injection, a
therapy course, an SI diagnostic block or a conservative-care episode dated before the request
but whose only source document is dated after it counted as if the record had shown it at the
request, and could approve. Their fact types are now ``x-as-of-source`` (facts.schema.json):
the values a late document states are left out with an ``after_request`` conflict, so the
clause pends or fails, never approves. The same event from a timely document still counts, and
so does an event a timely document reports beside a late one. Imaging studies are left as they
are: a radiology report signed after its study is routine.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library
from evaluator.read import schemas

CASES = Path(__file__).parent.parent / "examples" / "cases"
SI = CASES / "si-approvable-unilateral.json"
LF = CASES / "l4-l5-approvable.json"
REQUEST = "2025-06-20"  # both examples' request date
LATE = "2025-07-01"
EVENTS = ("conservative_care", "care_component", "physical_therapy", "diagnostic_block")


def _review(data: dict[str, Any], library: Library) -> tuple[str, dict[str, str], list[Any]]:
    """Return (the line's determination, each clause's status, the conflicts)."""
    decision = api.review_case(case_from_data(data, "late.json"), library).lines[0].decision
    assert decision is not None
    statuses = {c.id: c.status.value for c in decision.clauses}
    return decision.determination.value, statuses, [dict(c) for c in decision.conflicts]


def _late(source: dict[str, Any], when: str = LATE) -> None:
    source["date"] = when
    source["quote"] = "Late note: " + source.get("quote", "")


def _blocks_late(data: dict[str, Any]) -> None:
    for block in data["si_joint"]["diagnostic_blocks"]:
        _late(block["source"])


def _second_block_late(data: dict[str, Any]) -> None:
    _late(data["si_joint"]["diagnostic_blocks"][1]["source"])


def _injection_late(data: dict[str, Any]) -> None:
    (injection,) = [
        c for c in data["conservative_care"]["components"] if c["kind"] == "si_joint_injection"
    ]
    _late(injection["source"])


def _therapy_late(data: dict[str, Any]) -> None:
    _late(data["conservative_care"]["physical_therapy"]["source"])


def _episode_late(data: dict[str, Any]) -> None:
    _late(data["conservative_care"]["source"])


def _epidural_late(data: dict[str, Any]) -> None:
    (injection,) = [
        c for c in data["conservative_care"]["components"] if c["kind"] == "epidural_injection"
    ]
    _late(injection["source"])


# (example, change, the clause that relied on the event): each approved before, reported
# only by a note written after the request.
REPORTED_LATE: dict[str, tuple[Path, Callable[[dict[str, Any]], None], str]] = {
    "both SI blocks": (SI, _blocks_late, "SI-DIAGNOSTIC-BLOCKS"),
    "the second SI block": (SI, _second_block_late, "SI-DIAGNOSTIC-BLOCKS"),
    "the SI-joint injection": (SI, _injection_late, "SI-CONSERVATIVE"),
    "the SI therapy course": (SI, _therapy_late, "SI-CONSERVATIVE"),
    "the SI conservative-care episode": (SI, _episode_late, "SI-CONSERVATIVE"),
    "the lumbar therapy course": (LF, _therapy_late, "LF-PHYSICAL-THERAPY"),
    "the lumbar conservative-care episode": (LF, _episode_late, "LF-CONSERVATIVE-DURATION"),
}


@pytest.mark.parametrize("name", sorted(REPORTED_LATE))
def test_an_event_reported_only_after_the_request_does_not_approve(
    name: str, library: Library
) -> None:
    example, change, clause = REPORTED_LATE[name]
    data = json.loads(example.read_text())
    assert data["request"]["date"] == REQUEST
    determination, statuses, _ = _review(data, library)
    assert (determination, statuses[clause]) == ("medically_necessary", "met")
    change(data)
    determination, statuses, conflicts = _review(data, library)
    assert determination != "medically_necessary"
    assert statuses[clause] in ("not_met", "not_documented")
    # the reviewer is told which document came too late
    assert any(
        c["reason"] == "after_request" and c["values"].startswith(LATE) for c in conflicts
    ), conflicts


def test_an_event_from_a_document_on_the_request_day_still_counts(library: Library) -> None:
    data = json.loads(SI.read_text())
    for block in data["si_joint"]["diagnostic_blocks"]:
        block["source"]["date"] = REQUEST
    data["conservative_care"]["physical_therapy"]["source"]["date"] = REQUEST
    determination, _, conflicts = _review(data, library)
    assert (determination, conflicts) == ("medically_necessary", [])


@pytest.mark.parametrize("which", [0, 1])
def test_an_event_a_timely_document_reports_counts_beside_a_late_report(
    which: int, library: Library
) -> None:
    # The same block reported again by a note after the request (in either order): the
    # timely report shows it, the late one is left out (and listed for the reviewer).
    data = json.loads(SI.read_text())
    blocks = data["si_joint"]["diagnostic_blocks"]
    again = copy.deepcopy(blocks[1])
    _late(again["source"])
    blocks.insert(which, again)
    determination, statuses, conflicts = _review(data, library)
    assert (determination, statuses["SI-DIAGNOSTIC-BLOCKS"]) == ("medically_necessary", "met")
    assert [(c["fact"], c["reason"]) for c in conflicts] == [("diagnostic_block", "after_request")]


def test_an_injection_a_timely_document_reports_counts_beside_a_late_report(
    library: Library,
) -> None:
    data = json.loads(SI.read_text())
    components = data["conservative_care"]["components"]
    (injection,) = [c for c in components if c["kind"] == "si_joint_injection"]
    again = copy.deepcopy(injection)
    _late(again["source"])
    components.append(again)
    determination, statuses, _ = _review(data, library)
    assert (determination, statuses["SI-CONSERVATIVE"]) == ("medically_necessary", "met")


def test_an_undated_report_still_counts(library: Library) -> None:
    # The examples' components are often quoted from an undated note: an undated source
    # counts, as for every other fact type (carried over; domain call not made here).
    data = json.loads(LF.read_text())
    (injection,) = [
        c for c in data["conservative_care"]["components"] if c["kind"] == "epidural_injection"
    ]
    assert "date" not in injection["source"]
    assert _review(data, library)[0] == "medically_necessary"


def test_a_late_therapy_note_leaves_the_course_not_documented(library: Library) -> None:
    # The course's every value came from the late note: the fact is kept empty (one per case),
    # so the therapy clause is not documented (pend), with one conflict naming what was left out.
    data = json.loads(LF.read_text())
    _therapy_late(data)
    determination, statuses, conflicts = _review(data, library)
    assert (determination, statuses["LF-PHYSICAL-THERAPY"]) == (
        "insufficient_documentation",
        "not_documented",
    )
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("physical_therapy", "status, supervised, start, end, duration, visits", "after_request")
    ]


@pytest.mark.parametrize("example", [LF, SI])
def test_a_therapy_not_done_reported_only_after_the_request_is_not_done(
    example: Path, library: Library
) -> None:
    # Stop 22 (point 4): the course is reported only by a note written after the request,
    # saying therapy was not done. Not done by then, it was not done by the request: "not
    # done" can only make the case worse, so it counts (may_add) and the lumbar fusion is
    # denied (the therapy clause not met) where stop 21 pended; SI-CONSERVATIVE, where active
    # exercise may stand in for therapy, is not met or not documented, never met.
    data = json.loads(example.read_text())
    data["conservative_care"]["physical_therapy"] = {
        "status": "not_done",
        "source": {"document": "therapy_note", "date": LATE, "quote": "Therapy not done."},
    }
    determination, statuses, _ = _review(data, library)
    if example == LF:
        assert (determination, statuses["LF-PHYSICAL-THERAPY"]) == (
            "not_medically_necessary",
            "not_met",
        )
    else:
        assert determination != "medically_necessary"
        assert statuses["SI-CONSERVATIVE"] != "met"


def test_a_late_report_of_a_completed_course_still_adds_nothing(library: Library) -> None:
    # The other side of may_add: "completed" from a late note never demonstrates the course.
    data = json.loads(LF.read_text())
    _therapy_late(data)
    assert _review(data, library)[1]["LF-PHYSICAL-THERAPY"] == "not_documented"


def test_the_rule_is_schema_data_and_imaging_is_left_alone() -> None:
    defs = schemas.load_schema("facts")["$defs"]
    for event in EVENTS:
        # a therapy course's "not done" may still come from a late note (it only makes the
        # case worse, stop 22); nothing else an event's late report states counts. A therapy
        # course or a care component that begins after the request had not happened by it,
        # however timely its note (begun_by, stop 27: tests/test_review_s27.py)
        expected = {
            "physical_therapy": {"may_add": {"status": ["not_done"]}, "begun_by": ["start"]},
            "care_component": {"begun_by": ["start"]},
        }.get(event, True)
        assert defs[event]["x-as-of-source"] == expected, event
    # a radiology report signed after its study is routine: studies are dated by the study
    assert "x-as-of-source" not in defs["imaging_study"]
