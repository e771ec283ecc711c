"""A disputed imaging finding (one report reading a segment twice, facts.schema.json
imaging_finding x-one-per study and segment) read as a reviewer expects: conflicting
documentation is not documented (domain.md rule 9), never a denial, and the not-documented text
is true of a disputed reading as of a segment no report names. Each test changes one thing in a
shipped approvable example (tests/test_review_s22.py)."""

from __future__ import annotations

from typing import Any

from test_review_s22 import _decompression, _fusion  # type: ignore[import-not-found]

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library


def _clause(data: dict[str, Any], library: Library, clause: str) -> tuple[str, str, str | None]:
    """Return (the line's determination, the clause's status, its finding)."""
    decision = api.review_case(case_from_data(data, "review.json"), library).lines[0].decision
    assert decision is not None
    (found,) = [c for c in decision.clauses if c.id == clause]
    return decision.determination.value, found.status.value, found.finding


def _slip_read_twice(data: dict[str, Any], **second: Any) -> None:
    """Add a second reading of L4-L5 to the one MRI report, as its first reading but `second`."""
    findings = data["imaging"][0]["findings"]
    (first,) = [f for f in findings if f["level"] == "L4-L5"]
    findings.append({**first, "level": "L4-5", **second})


def test_a_disputed_stenosis_grade_is_not_said_to_be_unreported(library: Library) -> None:
    data = _decompression()  # moderate stenosis at L4-L5 on the one MRI
    data["imaging"][0]["findings"].append({"level": "L4-5", "stenosis": "none"})
    assert _clause(data, library, "LD-IMAGING-CORRELATION") == (
        "insufficient_documentation",
        "not_documented",
        "Imaging gives no settled reading of L4-L5, proposed for decompression; the imaging "
        "reports name L4-L5.",
    )


def test_a_segment_no_report_names_still_reads_as_unnamed(library: Library) -> None:
    data = _decompression()
    data["request"]["lines"][0]["decompression"] = "L4-S1"
    data["imaging"][0]["findings"] = [
        f for f in data["imaging"][0]["findings"] if f["level"] != "L5-S1"
    ]
    assert _clause(data, library, "LD-IMAGING-CORRELATION") == (
        "insufficient_documentation",
        "not_documented",
        "Imaging gives no settled reading of L5-S1, proposed for decompression; the imaging "
        "reports name L3-L5.",
    )


def test_a_slip_stated_and_denied_in_one_report_pends(library: Library) -> None:
    data = _fusion()  # severe stenosis and a slip at L4-L5: approved
    _slip_read_twice(data, spondylolisthesis=False)
    assert _clause(data, library, "LF-INSTABILITY") == (
        "insufficient_documentation",
        "not_documented",
        "The imaging reports both state and deny a spondylolisthesis at L4-L5, or grade it "
        "differently, or flexion-extension films that may be the latest disagree on the motion "
        "there or describe it without measuring it, and no other route shows instability there.",
    )


def test_a_slip_stated_twice_alike_still_meets(library: Library) -> None:
    data = _fusion()
    _slip_read_twice(data)
    assert _clause(data, library, "LF-INSTABILITY")[:2] == ("medically_necessary", "met")


def test_a_slip_denied_with_nothing_against_it_still_fails(library: Library) -> None:
    data = _fusion()
    (at,) = [f for f in data["imaging"][0]["findings"] if f["level"] == "L4-L5"]
    at["spondylolisthesis"] = False
    assert _clause(data, library, "LF-INSTABILITY")[:2] == ("not_medically_necessary", "not_met")
    _slip_read_twice(data)  # denied twice alike: still no dispute
    assert _clause(data, library, "LF-INSTABILITY")[:2] == ("not_medically_necessary", "not_met")


def test_a_slip_never_stated_demonstrates_nothing(library: Library) -> None:
    data = _fusion()
    (at,) = [f for f in data["imaging"][0]["findings"] if f["level"] == "L4-L5"]
    del at["spondylolisthesis"]
    at.pop("listhesis_mm", None)
    assert _clause(data, library, "LF-INSTABILITY")[:2] == ("not_medically_necessary", "not_met")
