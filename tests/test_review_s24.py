"""Findings of the stop-23 review left without tests, decided here against domain.md (the
shipped examples with one fact changed). Earlier reviews: tests/test_review_s22.py,
tests/test_review_s23.py.

Fixed here (each test failed before its fix):
- (lumbar-fusion 2025.1 and 2026.1, amended in place) supervised therapy "mentioned only" with
  dates making 8 weeks met LF-PHYSICAL-THERAPY: a mention is not a documented course;
- (the shared nicotine module, amended in place) a never-user's cotinine of 150 ng/mL reported
  the day after the request was left out and read as never measured, so "never" met the clause;
- (the case schema) a pelvic incidence of -40 degrees made a PI-LL mismatch with a negative
  lordosis and approved a deformity construct: now a located input error;
- (number handling, a wrong denial) facts and rules kept 4 decimals, so an HbA1c of 7.99999 %
  became 8.0 and failed "below 8.0 %": a float Python writes without an exponent is now kept
  as stated;
- (the shared nicotine module, amended in place twice; found in this stop's fresh pass) a
  cotinine from before the quit date met the abstinence route: the cotinine now has its own
  date (cotinine_date, else its document's, x-source-date-of) and the route needs it on or
  after the quit date (undated: not documented); a positive cotinine after the request beside
  a timely low one met it: the late value is kept apart (late_cotinine, x-late-of) and above
  10 ng/mL leaves the route not documented. A comparison of two dates of one fact with one
  absent derived both false and unknown (an engine error): now unknown.

Left open (strict expected failures; the reasons say where the fix belongs): one segment
requested on two service lines is certified on each.

Decided as no defect, and pinned: two bilateral diagnostic blocks are two blocks on each side
(a bilateral block injects both joints; one bilateral block is one per side, never two); two
fusion lines where only L4-L5 is unstable are both "modified" (A6) with the narrower fusion of
L4-L5 on its own line as the alternative, which is medically necessary.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.compile.ruleset import number
from evaluator.errors import InputError
from evaluator.language.policies import Library
from evaluator.vocab import units
from tests.reviewing import VERSIONS, decide, shipped

ROOT = Path(__file__).parent.parent


def _review(data: dict[str, Any], library: Library) -> api.CaseReview:
    return api.review_case(case_from_data(data, "review.json"), library)


# --- 1. physical therapy only mentioned ---------------------------------------------------------


@pytest.mark.parametrize("policy", VERSIONS)
def test_therapy_only_mentioned_with_dates_is_not_documented(policy: str, library: Library) -> None:
    # domain.md section 3 item 1: PT "mentioned only" is a fact the submission is silent on.
    # The course route read the status only as "not not_done", so supervised therapy
    # mentioned with dates making 8 weeks met LF-PHYSICAL-THERAPY and approved (2025.1).
    data = shipped("l4-l5-approvable")
    therapy = data["conservative_care"]["physical_therapy"]
    assert decide(data, library, policy)[1]["LF-PHYSICAL-THERAPY"] == "met"
    therapy["status"] = "mentioned_only"
    determination, statuses = decide(data, library, policy)
    assert determination != "medically_necessary"
    assert statuses["LF-PHYSICAL-THERAPY"] == "not_documented"
    # without dates, as before: not documented
    for key in ("start", "end", "visits"):
        del therapy[key]
    assert decide(data, library, policy)[1]["LF-PHYSICAL-THERAPY"] == "not_documented"


@pytest.mark.parametrize("status", ["ongoing", "completed"])
def test_a_documented_course_still_meets_the_therapy_clause(status: str, library: Library) -> None:
    data = shipped("l4-l5-approvable")
    therapy = data["conservative_care"]["physical_therapy"]
    therapy["status"] = status
    assert decide(data, library, VERSIONS[0]) == (
        "medically_necessary",
        decide(shipped("l4-l5-approvable"), library, VERSIONS[0])[1],
    )


# --- 2. bilateral diagnostic blocks ------------------------------------------------------------


def _bilateral_blocks(*dates: str) -> dict[str, Any]:
    """The bilateral SI-joint fusion example, staged, its blocks replaced by bilateral blocks
    (each injecting both joints, 80 % relief) on `dates`."""
    data = shipped("si-bilateral-same-day")
    data["request"]["lines"][0]["same_day"] = False
    block = data["si_joint"]["diagnostic_blocks"][0]
    data["si_joint"]["diagnostic_blocks"] = [
        {**copy.deepcopy(block), "side": "bilateral", "date": date} for date in dates
    ]
    return data


def _si(data: dict[str, Any], library: Library) -> tuple[str, str]:
    decision = _review(data, library).lines[0].decision
    assert decision is not None
    statuses = {c.id: c.status.value for c in decision.clauses}
    return decision.determination.value, statuses["SI-DIAGNOSTIC-BLOCKS"]


def test_two_bilateral_blocks_are_two_blocks_on_each_side(library: Library) -> None:
    # domain.md section 2: two blocks on separate dates on the side to be fused, bilateral:
    # each side. A bilateral block injects both joints, so it is one block on each side: two
    # on separate dates confirm each joint, and the staged bilateral request is approved.
    assert _si(_bilateral_blocks("2025-03-11", "2025-03-25"), library) == (
        "medically_necessary",
        "met",
    )


@pytest.mark.parametrize(
    "dates", [("2025-03-11",), ("2025-03-11", "2025-03-11")], ids=["one", "two-the-same-day"]
)
def test_one_bilateral_block_is_never_counted_as_two(
    dates: tuple[str, ...], library: Library
) -> None:
    # one block (or one session listed twice) on each side: one short of two on either side
    determination, status = _si(_bilateral_blocks(*dates), library)
    assert determination != "medically_necessary"
    assert status != "met"


def test_a_bilateral_block_and_a_right_block_leave_the_left_joint_short(library: Library) -> None:
    data = _bilateral_blocks("2025-03-11")
    right = {**data["si_joint"]["diagnostic_blocks"][0], "side": "right", "date": "2025-04-15"}
    data["si_joint"]["diagnostic_blocks"].append(right)
    assert _si(data, library) == ("not_medically_necessary", "not_met")


# --- 3. one segment on two service lines -------------------------------------------------------


def _second_line(data: dict[str, Any], **line: Any) -> None:
    lines = data["request"]["lines"]
    lines.append({**copy.deepcopy(lines[0]), "id": "second", **line})


@pytest.mark.parametrize(
    ("example", "line", "pointer"),
    [
        ("l4-l5-approvable", {}, "/request/lines/1/fusion"),
        ("l4-l5-approvable", {"fusion": "L4-S1"}, "/request/lines/1/fusion"),
        ("si-approvable-unilateral", {}, "/request/lines/1/side"),
        ("si-approvable-unilateral", {"side": "bilateral"}, "/request/lines/1/side"),
    ],
    ids=["same-line-twice", "overlapping-fusion", "same-joint", "bilateral"],
)
def test_one_segment_requested_on_two_lines_is_an_input_error(
    example: str, line: dict[str, Any], pointer: str, library: Library
) -> None:
    data = shipped(example)
    _second_line(data, **line)
    with pytest.raises(InputError) as raised:
        _review(data, library)
    assert pointer in str(raised.value)


# --- 4. pelvic incidence -----------------------------------------------------------------------


def _deformity(**alignment: Any) -> dict[str, Any]:
    """The T10-to-pelvis construct whose standing full-length films measure Cobb 10 and SVA
    20 mm (no significant deformity by either), with `alignment` for PI and LL."""
    data = shipped("deformity-construct")
    data["imaging"][1]["alignment"].update(cobb_deg=10, sva_mm=20, **alignment)
    return data


@pytest.mark.parametrize("value", [-40, 0, 180])
def test_a_pelvic_incidence_no_pelvis_has_is_an_input_error(value: int, library: Library) -> None:
    # Pelvic incidence is an anatomical angle, always positive (about 35 to 85 degrees); -40
    # beside a lordosis of -70 made a PI-LL mismatch of 30 degrees and approved the construct
    # (tests/hostile/cases/pelvic-incidence-minus-40.json for the CLI).
    data = _deformity(pelvic_incidence_deg=value, lumbar_lordosis_deg=-70)
    with pytest.raises(InputError) as raised:
        decide(data, library, VERSIONS[0])
    assert "/imaging/1/alignment/pelvic_incidence_deg" in str(raised.value)


def test_a_pelvic_incidence_in_range_still_decides(library: Library) -> None:
    # PI 95 beside LL 70: a mismatch of 25 degrees, significant; PI 85: 15, not significant
    significant = decide(
        _deformity(pelvic_incidence_deg=95, lumbar_lordosis_deg=70), library, VERSIONS[0]
    )
    assert significant[1]["LF-DEFORMITY-SIGNIFICANT"] == "met"
    small = decide(
        _deformity(pelvic_incidence_deg=85, lumbar_lordosis_deg=70), library, VERSIONS[0]
    )
    assert small[1]["LF-DEFORMITY-SIGNIFICANT"] == "not_met"


# --- 5. a cotinine reported after the request --------------------------------------------------


def _cotinine(data: dict[str, Any], value: float, date: str) -> dict[str, Any]:
    data["nicotine"]["cotinine_ng_ml"] = {
        "statements": [{"value": value, "source": {"document": "lab_result", "date": date}}]
    }
    return data


@pytest.mark.parametrize("policy", VERSIONS)
@pytest.mark.parametrize("date", ["2025-06-21", "2025-09-01"])
def test_a_positive_cotinine_after_the_request_contradicts_never(
    date: str, policy: str, library: Library
) -> None:
    # domain.md section 3 item 9: conflicting documentation on a deciding fact is not
    # documented. The late result cannot show what held before the request, so it was left
    # out and "never" alone met the clause: approved beside a cotinine of 150 ng/mL.
    data = _cotinine(shipped("l4-l5-approvable"), 150, date)
    determination, statuses = decide(data, library, policy)
    assert determination != "medically_necessary"
    assert statuses["LF-NICOTINE"] == "not_documented"


def test_a_late_cotinine_in_the_si_joint_policy(library: Library) -> None:
    data = _cotinine(shipped("si-approvable-unilateral"), 150, "2025-06-21")
    decision = _review(data, library).lines[0].decision
    assert decision is not None
    assert decision.determination.value == "insufficient_documentation"
    assert {c.id: c.status.value for c in decision.clauses}["SI-NICOTINE"] == "not_documented"


@pytest.mark.parametrize(
    ("nicotine", "value", "date", "expected"),
    [
        ({"status": "never"}, 150, "2025-06-19", "not_met"),  # timely: the lab result decides
        ({"status": "never"}, 150, "2025-06-20", "not_met"),  # the request's day is timely
        ({"status": "never"}, 5, "2025-06-19", "met"),
        # a late low cotinine cannot show abstinence before the request either
        ({"status": "former", "quit_date": "2024-11-01"}, 5, "2025-06-21", "not_documented"),
        ({"status": "former", "quit_date": "2024-11-01"}, 5, "2025-06-19", "met"),
    ],
)
def test_the_edges_of_a_cotinine_beside_the_request(
    nicotine: dict[str, str], value: float, date: str, expected: str, library: Library
) -> None:
    data = shipped("l4-l5-approvable")
    data["nicotine"].update(nicotine)
    _cotinine(data, value, date)
    for policy in VERSIONS:
        assert decide(data, library, policy)[1]["LF-NICOTINE"] == expected, policy


# --- 6. numbers kept as stated -----------------------------------------------------------------


def _lab_hba1c(data: dict[str, Any], value: float) -> None:
    data.setdefault("observations", []).append(
        {
            "code": {"system": "http://loinc.org", "code": "4548-4"},
            "value_quantity": {"value": value, "unit": "%"},
            "effective": "2025-06-10",
            "source": {"document": "lab_result", "date": "2025-06-10"},
        }
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7.99999, "met"), (7.999999999999, "met"), (8.0, "not_met"), (8.000000000001, "not_met")],
)
@pytest.mark.parametrize("where", ["history", "lab"])
def test_an_hba1c_just_below_the_limit_is_below_it(
    value: float, expected: str, where: str, library: Library
) -> None:
    # domain.md section 1: HbA1c < 8.0 %. Facts and rule values were rounded to 4 decimals (to
    # keep exponent notation from the engine), so 7.99999 became 8.0: a wrong denial.
    data = shipped("diabetic-hba1c-8")
    if where == "history":
        data["diabetes"]["hba1c_pct"] = value
    else:
        data["diabetes"]["hba1c_pct"] = 7.0
        _lab_hba1c(data, value)
    assert decide(data, library, VERSIONS[0])[1]["LF-DIABETES"] == expected


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (7.99999, 7.99999),
        (0.0001, 0.0001),
        (123456.123456789, 123456.123456789),
        (8.0, 8),  # a whole number goes to the engine as an integer
        (0.00004, 0),  # written 4e-05, which the engine cannot parse
        (-0.00006, -0.0001),
    ],
)
def test_the_engine_gets_a_float_as_stated_unless_python_writes_an_exponent(
    value: float, kept: float
) -> None:
    assert number(value) == kept
    assert "e" not in json.dumps(number(value))
    assert units.plain(value) == kept


# --- 7. two fusion lines, one unstable segment -------------------------------------------------


def test_two_fusion_lines_with_one_unstable_segment_offer_that_line(library: Library) -> None:
    # The policy judges the lines it governs as one operation (domain.md section 3 item 1):
    # LF-INSTABILITY fails at L3-L4, so neither line is approvable as asked, and the narrower
    # alternative, L4-L5 on its own line with the other line dropped, is medically necessary:
    # that line is a candidate for A6 (modified, for the physician reviewer), not denied; the
    # dropped line, which the alternative leaves out entirely, is not certified (A3: nothing
    # on it is approvable; stop 27, tests/test_review_s27.py).
    data = shipped("l4-l5-approvable")
    _second_line(data, id="fusion-l3", fusion="L3-L4")
    del data["request"]["lines"][1]["decompression"]
    review = _review(data, library)
    assert [line.x12_action for line in review.lines] == ["A6", "A3"]
    decision = review.lines[0].decision
    assert decision is not None
    assert decision.alternative is not None
    assert decision.alternative.approvable
    fused = [
        (x.line, x.segments) for x in decision.alternative.lines if x.procedure == "lumbar_fusion"
    ]
    assert fused == [("fusion", ("L4-L5",))]


# --- the fresh pass: left open ------------------------------------------------------------------


def test_a_cotinine_from_before_the_quit_date_does_not_show_abstinence(library: Library) -> None:
    data = shipped("l4-l5-approvable")
    data["nicotine"] = {"status": "former", "quit_date": "2025-04-01"}
    _cotinine(data, 5, "2025-06-01")
    assert decide(data, library, VERSIONS[0])[1]["LF-NICOTINE"] == "met"
    _cotinine(data, 5, "2023-01-10")
    assert decide(data, library, VERSIONS[0])[1]["LF-NICOTINE"] != "met"


def test_a_positive_cotinine_after_the_request_contradicts_abstinence(library: Library) -> None:
    data = shipped("l4-l5-approvable")
    data["nicotine"] = {"status": "former", "quit_date": "2025-03-01"}
    timely = {"value": 5, "source": {"document": "lab_result", "date": "2025-06-01"}}
    late = {"value": 150, "source": {"document": "lab_result", "date": "2025-06-25"}}
    data["nicotine"]["cotinine_ng_ml"] = {"statements": [timely]}
    assert decide(data, library, VERSIONS[0])[1]["LF-NICOTINE"] == "met"
    data["nicotine"]["cotinine_ng_ml"] = {"statements": [timely, late]}
    assert decide(data, library, VERSIONS[0])[1]["LF-NICOTINE"] == "not_documented"


QUIT = {"status": "former", "quit_date": "2025-04-01"}
LETTER = {"document": "surgeon_letter", "date": "2025-06-10"}


@pytest.mark.parametrize(
    ("cotinine", "expected"),
    [
        # undated: nothing shows it followed the quit date (the compiled comparison of two
        # dates of one fact also derived both false and unknown without one: an engine error)
        ({"cotinine_ng_ml": 5}, "not_documented"),
        ({"cotinine_ng_ml": 5, "cotinine_date": "2025-04-01"}, "met"),  # the quit day counts
        ({"cotinine_ng_ml": 5, "cotinine_date": "2025-03-31"}, "not_documented"),
        ({"cotinine_ng_ml": 11, "cotinine_date": "2025-04-02"}, "not_met"),
        # its document's date when it states none; its own date over the document's
        ({"cotinine_ng_ml": 5, "source": LETTER}, "met"),
        ({"cotinine_ng_ml": 5, "cotinine_date": "2024-12-01", "source": LETTER}, "not_documented"),
        # a month that may precede the quit date (2025-04-15) does not show it followed it
        (
            {"cotinine_ng_ml": 5, "cotinine_date": "2025-04", "quit_date": "2025-04-15"},
            "not_documented",
        ),
        ({"cotinine_ng_ml": 5, "cotinine_date": "2025-05", "quit_date": "2025-04-15"}, "met"),
    ],
)
@pytest.mark.parametrize("policy", VERSIONS)
def test_the_cotinine_is_dated_on_or_after_the_quit_date(
    cotinine: dict[str, Any], expected: str, policy: str, library: Library
) -> None:
    data = shipped("l4-l5-approvable")
    data["nicotine"] = {**QUIT, **cotinine}
    assert decide(data, library, policy)[1]["LF-NICOTINE"] == expected


@pytest.mark.parametrize(
    ("timely", "late", "expected"),
    [
        (5, [8], "met"),  # a late low cotinine changes nothing
        (5, [10], "met"),
        (5, [11], "not_documented"),
        (150, [5], "not_met"),  # nor takes away what held at the request
        (None, [150], "not_documented"),
        (5, [5, 150], "not_documented"),
        (5, [3, 7], "not_documented"),  # late reports that disagree: unknown
    ],
)
def test_a_late_cotinine_beside_a_timely_one(
    timely: float | None, late: list[float], expected: str, library: Library
) -> None:
    data = shipped("l4-l5-approvable")
    data["nicotine"] = {"status": "former", "quit_date": "2025-03-01"}
    statements = [
        {"value": v, "source": {"document": "lab_result", "date": "2025-06-25"}} for v in late
    ]
    if timely is not None:
        statements.insert(
            0, {"value": timely, "source": {"document": "lab_result", "date": "2025-06-01"}}
        )
    data["nicotine"]["cotinine_ng_ml"] = {"statements": statements}
    for policy in VERSIONS:
        assert decide(data, library, policy)[1]["LF-NICOTINE"] == expected, policy
    si = shipped("si-approvable-unilateral")
    si["nicotine"] = data["nicotine"]
    decision = _review(si, library).lines[0].decision
    assert decision is not None
    assert {c.id: c.status.value for c in decision.clauses}["SI-NICOTINE"] == expected
