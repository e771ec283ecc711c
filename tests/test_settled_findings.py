"""One imaging report naming a segment more than once (facts.schema.json: imaging_finding is
x-one-per study and segment). The findings are sources on one thing: where they disagree the
field is not documented (domain.md rule 9), primary records outranking summaries, and never
does the favourable one silently win. Each test changes one thing in a shipped approvable
example (tests/test_review_s22.py)."""

from __future__ import annotations

import copy
from typing import Any

from test_review_s22 import (  # type: ignore[import-not-found]
    _decompression,
    _fusion,
    _review,
)

from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library


def _findings(data: dict[str, Any], segment: str) -> list[dict[str, Any]]:
    """The imaging_finding facts of the case at one segment, as the engine sees them."""
    facts = case_from_data(data, "review.json").facts
    return [
        f.as_dict() for f in facts if f.type == "imaging_finding" and f.fields["segment"] == segment
    ]


def _letter(date: str = "2025-06-02") -> dict[str, Any]:
    return {"document": "surgeon_letter", "date": date}


def test_a_segment_graded_twice_in_one_report_is_not_documented(library: Library) -> None:
    data = _decompression()  # moderate stenosis at L4-L5 on the one MRI
    data["imaging"][0]["findings"].append({"level": "L4-5", "stenosis": "none"})
    determination, statuses, conflicts = _review(data, library)
    assert determination == "insufficient_documentation"
    assert statuses["LD-IMAGING-CORRELATION"] == "not_documented"
    assert conflicts == [
        {
            "fact": "imaging_finding",
            "field": "stenosis",
            "values": "moderate (radiology_report), none (radiology_report)",
            "reason": "sources_disagree",
        }
    ]
    # each finding is left without the grade, marked so that a `where` on it reads unknown
    found = _findings(data, "L4-L5")
    assert len(found) == 2
    assert all("stenosis" not in f and f["stenosis_disputed"] is True for f in found)
    # what they agree on (no compression, no slip) stays
    assert all(f["neural_compression"] is False for f in found)


def test_a_segment_named_twice_alike_still_approves(library: Library) -> None:
    data = _decompression()
    data["imaging"][0]["findings"].append({"level": "L4-5", "stenosis": "moderate"})
    determination, _, conflicts = _review(data, library)
    assert determination == "medically_necessary"
    assert conflicts == []


def test_other_segments_and_other_studies_are_not_settled_together(library: Library) -> None:
    data = _decompression()
    other = copy.deepcopy(data["imaging"][0])
    other.update(id="ct-2025-05-28", modality="ct")
    other["findings"] = [{"level": "L4-L5", "stenosis": "moderate"}]
    data["imaging"].append(other)
    determination, _, conflicts = _review(data, library)
    assert determination == "medically_necessary"
    assert conflicts == []


def test_a_primary_report_outranks_a_letter_restating_the_segment(library: Library) -> None:
    # The letter's grade gives way: the report's decides, either way, with no pend.
    data = _decompression()
    data["imaging"][0]["findings"][1]["stenosis"] = "mild"
    restated = {"level": "L4-L5", "stenosis": "severe", "source": _letter()}
    data["imaging"][0]["findings"].append(restated)
    determination, statuses, _ = _review(data, library)
    assert determination == "not_medically_necessary"
    assert statuses["LD-IMAGING-CORRELATION"] == "not_met"
    assert {f["stenosis"] for f in _findings(data, "L4-L5")} == {"mild"}
    data["imaging"][0]["findings"][1]["stenosis"] = "moderate"
    restated["stenosis"] = "none"
    assert _review(data, library)[0] == "medically_necessary"


def test_a_re_reading_after_the_request_disputes_nothing(library: Library) -> None:
    # left out as written too late (restated_late): it neither approves nor pends
    data = _decompression()
    data["imaging"][0]["findings"][1]["stenosis"] = "mild"
    late = {"level": "L4-L5", "stenosis": "severe", "source": _letter("2025-07-01")}
    data["imaging"][0]["findings"].append(late)
    assert _review(data, library)[1]["LD-IMAGING-CORRELATION"] == "not_met"


def test_a_slip_stated_and_denied_in_one_report_does_not_approve(library: Library) -> None:
    data = _fusion()  # severe stenosis and a slip at L4-L5
    findings = data["imaging"][0]["findings"]
    (at,) = [f for f in findings if f["level"] == "L4-L5"]
    assert at.get("spondylolisthesis") is True
    denied = {"stenosis": "severe", "neural_compression": True, "spondylolisthesis": False}
    findings.append({"level": "L4-5", **denied})
    determination, _, conflicts = _review(data, library)
    assert determination != "medically_necessary"
    assert [c["field"] for c in conflicts if c["fact"] == "imaging_finding"] == [
        "spondylolisthesis"
    ]
