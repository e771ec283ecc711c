"""Two items of a case that describe one thing and disagree pend (domain.md section 3, rule 9).

A case lists what imaging excluded and which provocative tests were positive as items, one per
source: two radiology reports may each say whether a tumour is excluded, and a later exam may
repeat a test. Such items are several sources on one fact, but each became a fact of its own,
and a comparison over several facts is true when any of them makes it true (docs/authoring.md):
a report showing a tumour beside one excluding it approved SI-IMAGING-EXCLUSIONS, and two tests
negative at a later exam left the earlier positives to approve SI-PROVOCATIVE-TESTS. The schema
now says which fields name the one thing such items describe (facts.schema.json `x-one-per`):
a field they disagree on is left absent with a `sources_disagree` conflict, a primary record
outranking a summary, as for statements that disagree.

Also here, left as expected failures for the lead (found by the stop-21 data review, not fixed:
see the report): a low-relief SI block reported in a note dated only by the request's month
approves, where its first day and the request day deny (rule 5: the readings disagree, pend).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_compiler import build, clause, document, run, truths  # type: ignore[import-not-found]

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.cli.main import main
from evaluator.language.conditions import Truth
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
APPROVED = ROOT / "examples" / "cases" / "si-approvable-unilateral.json"  # 2025-06-20
EXCLUSIONS = "SI-IMAGING-EXCLUSIONS"
TESTS = "SI-PROVOCATIVE-TESTS"
BLOCKS = "SI-DIAGNOSTIC-BLOCKS"


def _base() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(APPROVED.read_text())
    assert data["request"]["date"] == "2025-06-20"
    return data


def _review(data: dict[str, Any], library: Library, clause: str) -> tuple[str, str, list[Any]]:
    """Return (the line's determination, the clause's status, the conflicts)."""
    decision = api.review_case(case_from_data(data, "items.json"), library).lines[0].decision
    assert decision is not None
    status = next(c.status.value for c in decision.clauses if c.id == clause)
    return decision.determination.value, status, [dict(c) for c in decision.conflicts]


def _with_tumour(status: str, document: str, date: str = "2025-03-01") -> dict[str, Any]:
    """The approvable case with one more report on the tumour (its own is excluded, a
    radiology report of 2025-01-28)."""
    data = _base()
    data["si_joint"]["imaging_exclusions"].append(
        {"condition": "tumour", "status": status, "source": {"document": document, "date": date}}
    )
    return data


def test_two_timely_reports_that_disagree_on_an_exclusion_pend(library: Library) -> None:
    # Approved before: the report excluding the tumour made the comparison true.
    determination, status, conflicts = _review(
        _with_tumour("present", "radiology_report"), library, EXCLUSIONS
    )
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    assert [(c["fact"], c["field"], c["values"], c["reason"]) for c in conflicts] == [
        (
            "imaging_exclusion",
            "status",
            "excluded (radiology_report), present (radiology_report)",
            "sources_disagree",
        )
    ]


def test_the_cli_pends_the_case_and_tells_the_reviewer(tmp_path: Path) -> None:
    path = tmp_path / "reports-disagree.json"
    path.write_text(json.dumps(_with_tumour("present", "radiology_report")))
    result = CliRunner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code == 3, result.output  # insufficient documentation: pended
    assert "CONFLICTING DOCUMENTATION" in result.output
    assert "imaging exclusion status: the records disagree" in result.output


def test_the_disputed_field_is_left_absent_on_each_item() -> None:
    case = case_from_data(_with_tumour("present", "radiology_report"), "items.json")
    found = [f.fields for f in case.facts if f.type == "imaging_exclusion"]
    tumour = [fields for fields in found if fields["condition"] == "tumour"]
    assert len(tumour) == 2
    assert all("status" not in fields for fields in tumour)
    # marked (x-disputed), so that an `exists` testing the status reads them as unknown
    assert all(fields["status_disputed"] is True for fields in tumour)
    # the other conditions keep theirs
    others = [fields for fields in found if fields["condition"] != "tumour"]
    assert len(others) == 4
    assert all(fields["status"] == "excluded" for fields in others)


def test_an_exists_over_the_disputed_field_is_unknown_not_false(tmp_path: Path) -> None:
    # A policy may read the exclusion as "no imaging shows a tumour": left merely absent, the
    # disputed status would make that true (two-valued `where`) and approve.
    policy = document(
        [
            clause(
                "NO-TUMOUR",
                {
                    "not": {
                        "exists": {
                            "fact": "imaging_exclusion",
                            "where": {"condition": "tumour", "status": "present"},
                        }
                    }
                },
            )
        ]
    )
    compiled = build(tmp_path, policy)
    case = case_from_data(_with_tumour("present", "radiology_report"), "items.json")
    found = [f.as_dict() for f in case.facts if f.type == "imaging_exclusion"]
    assert truths(run(compiled, found)) == {"NO-TUMOUR": Truth.UNKNOWN}
    undisputed = case_from_data(_with_tumour("present", "surgeon_letter"), "items.json")
    found = [f.as_dict() for f in undisputed.facts if f.type == "imaging_exclusion"]
    assert truths(run(compiled, found)) == {"NO-TUMOUR": Truth.TRUE}


def test_a_primary_record_showing_a_tumour_outranks_a_letter_excluding_it(
    library: Library,
) -> None:
    data = _with_tumour("present", "radiology_report")
    data["si_joint"]["imaging_exclusions"][0]["source"]["document"] = "surgeon_letter"
    assert _review(data, library, EXCLUSIONS)[:2] == ("not_medically_necessary", "not_met")


def test_a_letter_showing_a_tumour_is_outranked_by_the_radiology_report(
    library: Library,
) -> None:
    assert _review(_with_tumour("present", "surgeon_letter"), library, EXCLUSIONS) == (
        "medically_necessary",
        "met",
        [],
    )


def test_a_report_restating_the_exclusion_changes_nothing(library: Library) -> None:
    assert _review(_with_tumour("excluded", "clinic_note"), library, EXCLUSIONS) == (
        "medically_necessary",
        "met",
        [],
    )


def test_a_report_clearly_after_the_request_disputes_nothing(library: Library) -> None:
    # It is left out as after_request (it holds as of its document); it never takes away the
    # timely report's value, which still decides.
    data = _base()
    data["si_joint"]["imaging_exclusions"][0]["status"] = "present"
    data["si_joint"]["imaging_exclusions"].append(
        {
            "condition": "tumour",
            "status": "excluded",
            "source": {"document": "radiology_report", "date": "2025-07-01"},
        }
    )
    determination, status, conflicts = _review(data, library, EXCLUSIONS)
    assert (determination, status) == ("not_medically_necessary", "not_met")
    assert [c["reason"] for c in conflicts] == ["after_request"]


def test_a_report_possibly_after_the_request_that_disagrees_pends(library: Library) -> None:
    # Dated by the request's month: read on its first day the reports disagree (pend), on its
    # last day it is left out and the exclusion stands (approve); the readings disagree (rule
    # 5). It crashed the normaliser once: its marker was named among the values left out.
    determination, status, _ = _review(
        _with_tumour("present", "radiology_report", "2025-06"), library, EXCLUSIONS
    )
    assert (determination, status) == ("insufficient_documentation", "not_documented")


def test_a_later_exam_with_two_tests_negative_pends(library: Library) -> None:
    # Four positive tests at the first exam; the later exam finds distraction and compression
    # negative: two positive are undisputed, two disputed, so three positive is not documented.
    data = _base()
    for test in ("distraction", "compression"):
        data["si_joint"]["provocative_tests"].append(
            {
                "test": test,
                "side": "right",
                "result": "negative",
                "source": {"document": "clinic_note", "date": "2025-05-06"},
            }
        )
    determination, status, conflicts = _review(data, library, TESTS)
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("provocative_test", "result", "sources_disagree"),
        ("provocative_test", "result", "sources_disagree"),
    ]


def test_the_same_test_on_the_other_side_is_another_fact(library: Library) -> None:
    data = _base()
    data["si_joint"]["provocative_tests"].append(
        {
            "test": "distraction",
            "side": "left",
            "result": "negative",
            "source": {"document": "clinic_note", "date": "2025-05-06"},
        }
    )
    assert _review(data, library, TESTS) == ("medically_necessary", "met", [])


def _bilateral_distraction(*results: tuple[str, str]) -> dict[str, Any]:
    """The approvable case with distraction read again at a later exam, once per (side, result)."""
    data = _base()
    for side, result in results:
        data["si_joint"]["provocative_tests"].append(
            {
                "test": "distraction",
                "side": side,
                "result": result,
                "source": {"document": "clinic_note", "date": "2025-05-06"},
            }
        )
    return data


def test_a_bilateral_reading_is_a_source_on_each_side(library: Library) -> None:
    # A bilateral test describes the left and the right joint (facts.schema.json x-covers): a
    # bilateral negative disputes the right-side positive, as a right-side negative does.
    data = _bilateral_distraction(("bilateral", "negative"))
    _, status, conflicts = _review(data, library, TESTS)
    assert status == "met"  # three positives stand undisputed beside the disputed one
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("provocative_test", "result", "sources_disagree"),
    ]


def test_two_bilateral_readings_that_disagree_are_one_conflict(library: Library) -> None:
    # grouped on the bilateral key and on each side's, they are settled once
    data = _bilateral_distraction(("bilateral", "negative"), ("bilateral", "positive"))
    case = case_from_data(data, "items.json")
    both = [
        f.fields
        for f in case.facts
        if f.type == "provocative_test"
        and f.fields["test"] == "distraction"
        and f.fields["side"] == "bilateral"
    ]
    assert len(both) == 2
    assert all("result" not in fields for fields in both)
    _, _, conflicts = _review(data, library, TESTS)
    assert len(conflicts) == 1


def test_a_bilateral_pain_record_is_a_source_on_each_side(library: Library) -> None:
    # si_pain x-one-per side, a bilateral record on each side's (x-covers): a bilateral exam
    # placing the pain over a broader region, Fortin negative, disputes the right's localised pain
    data = _base()
    data["si_joint"]["pain"].append(
        {
            "side": "bilateral",
            "location": "broader_region",
            "fortin_positive": False,
            "source": {"document": "clinic_note", "date": "2025-05-06"},
        }
    )
    determination, status, _ = _review(data, library, "SI-PAIN-LOCATION")
    assert (determination, status) == ("insufficient_documentation", "not_documented")


def _symptom_said_again(concordant: bool, onset: str | None = None) -> dict[str, Any]:
    """The approvable decompression case (left radicular pain matching the L4-5 stenosis, a
    clinic note of 2025-06-03) with the same symptom stated again by a note of 2025-06-01."""
    data: dict[str, Any] = json.loads(
        (ROOT / "examples/cases/ld-approvable-l4-l5.json").read_text()
    )
    (symptom,) = data["symptoms"]
    again = {**copy.deepcopy(symptom), "concordant": concordant}
    again["source"] = {"document": "clinic_note", "date": "2025-06-01"}
    if onset is not None:
        again["onset"] = onset
    data["symptoms"].append(again)
    return data


def test_a_later_note_saying_the_symptom_does_not_match_the_imaging_pends(
    library: Library,
) -> None:
    determination, status, conflicts = _review(_symptom_said_again(False), library, "LD-SYMPTOMS")
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("symptom", "concordant", "sources_disagree")
    ]


def test_a_symptom_with_no_side_stated_again_with_another_concordance_pends(
    library: Library,
) -> None:
    # Neither says which side: they may be the one symptom, so the disagreement counts.
    data = _symptom_said_again(False)
    for symptom in data["symptoms"]:
        del symptom["side"]
    assert _review(data, library, "LD-SYMPTOMS")[:2] == (
        "insufficient_documentation",
        "not_documented",
    )


def test_a_symptom_stated_twice_alike_still_approves(library: Library) -> None:
    assert _review(_symptom_said_again(True), library, "LD-SYMPTOMS") == (
        "medically_necessary",
        "met",
        [],
    )


# --- the property, over every example's items that may describe one thing ----------------------

# The case lists whose fact types say x-one-per, with the field an item decides and its values.
ONE_PER = {
    ("si_joint", "imaging_exclusions"): ("status", ("excluded", "present")),
    ("si_joint", "provocative_tests"): ("result", ("positive", "negative", "not_performed")),
    ("si_joint", "pain"): ("fortin_positive", (True, False)),
    ("symptoms",): ("concordant", (True, False)),
}
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


def _determinations(data: dict[str, Any], library: Library) -> list[str]:
    review = api.review_case(case_from_data(data, "items.json"), library)
    return [line.decision.determination.value for line in review.lines if line.decision]


def _listed(data: dict[str, Any], keys: tuple[str, ...]) -> list[Any]:
    node: Any = data
    for key in keys:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, list) else []


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_an_item_said_again_otherwise_never_approves_what_either_reading_does_not(
    example: str, library: Library
) -> None:
    # Each item stated again by the same document with another value: the case may approve a
    # line only when the case with the item alone, and the case with the other value alone,
    # both approve it (the records disagree: rule 9 pends where the readings differ).
    data = json.loads((ROOT / "examples" / "cases" / example).read_text())
    before = _determinations(data, library)
    for keys, (field, values) in ONE_PER.items():
        for i, item in enumerate(_listed(data, keys)):
            for value in values:
                if field not in item or item[field] == value:
                    continue
                replaced = copy.deepcopy(data)
                _listed(replaced, keys)[i][field] = value
                both = copy.deepcopy(data)
                _listed(both, keys).append({**copy.deepcopy(item), field: value})
                readings = zip(before, _determinations(replaced, library), strict=True)
                for line, (said, other) in enumerate(readings):
                    if (said, other) != ("medically_necessary", "medically_necessary"):
                        got = _determinations(both, library)[line]
                        assert got != "medically_necessary", (keys, i, value, line)


# --- left for the lead: found, not fixed ---------------------------------------------------------


def _low_block(reported: str) -> dict[str, Any]:
    """The approvable case with a third right block, on 2025-05-20 (before the request), of
    50 % relief, reported by an operative note dated ``reported``."""
    data = _base()
    data["si_joint"]["diagnostic_blocks"].append(
        {
            "side": "right",
            "date": "2025-05-20",
            "image_guided": True,
            "contrast": True,
            "relief_pct": 50,
            "source": {"document": "operative_note", "date": reported},
        }
    )
    return data


@pytest.mark.parametrize("reported", ["2025-06-01", "2025-06-20"])
def test_a_timely_report_of_a_low_relief_block_denies(reported: str, library: Library) -> None:
    assert _review(_low_block(reported), library, BLOCKS)[:2] == (
        "not_medically_necessary",
        "not_met",
    )


def test_a_low_relief_block_reported_in_the_requests_month_does_not_approve(
    library: Library,
) -> None:
    # Approved at stop 21: the block's values were left out (its report may be dated after the
    # request) and SI-DIAGNOSTIC-BLOCKS read them through `not demonstrated`. Read as of the
    # month's first day the report denies; as of its last, a late report's values are left
    # out and the clause is met: they disagree, so the clause is not documented (rule 5).
    assert _review(_low_block("2025-06"), library, BLOCKS)[:2] == (
        "insufficient_documentation",
        "not_documented",
    )


@pytest.mark.parametrize("missing", ["side", "relief_pct"])
def test_a_low_relief_block_without_its_side_or_relief_does_not_approve(
    missing: str, library: Library
) -> None:
    # Approved at stop 22 (found with the one above): a block with no side in a one-sided
    # request, or with no relief, is not documented (domain.md section 2), not ignored; the
    # two good blocks beside it do not decide what it may show.
    data = _low_block("2025-06-01")
    del data["si_joint"]["diagnostic_blocks"][-1][missing]
    assert _review(data, library, BLOCKS)[:2] == ("insufficient_documentation", "not_documented")


def test_the_case_cannot_mark_a_field_disputed_itself() -> None:
    # The marker is the normaliser's (facts.schema.json x-disputed), never the case's: a case
    # stating it is refused by case.schema.json, so it can neither force nor hide a dispute.
    data = copy.deepcopy(_base())
    data["diagnoses"][0]["status_disputed"] = True
    with pytest.raises(Exception, match="status_disputed"):
        case_from_data(data, "items.json")


ARTHROPATHY = "SI-NO-INFLAMMATORY-ARTHROPATHY"


def _spondylitis(*statements: tuple[str, str]) -> dict[str, Any]:
    """The approvable case with ankylosing spondylitis listed once per (status, date) note."""
    data = _base()
    data["diagnoses"] += [
        {
            "name": "ankylosing_spondylitis",
            "status": status,
            "source": {"document": "clinic_note", "date": date},
        }
        for status, date in statements
    ]
    return data


@pytest.mark.parametrize("second", ["ruled_out", "stated"])
def test_one_diagnosis_listed_twice_with_statuses_that_disagree_pends(
    second: str, library: Library
) -> None:
    # Denied before (found at stop 21): each item was a diagnosis of its own, and the
    # confirmed one excluded the fusion while the other note disputed it (rule 9).
    determination, status, conflicts = _review(
        _spondylitis(("confirmed", "2025-03-01"), (second, "2025-04-01")), library, ARTHROPATHY
    )
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("diagnosis", "status", "sources_disagree")
    ]


@pytest.mark.parametrize(
    "second",
    [
        ("confirmed", "2025-04-01"),  # listed twice alike: still excludes
        ("ruled_out", "2025-07-01"),  # a late note ruling it out disputes nothing
    ],
    ids=["alike", "late-ruling-out"],
)
def test_one_diagnosis_listed_again_without_a_timely_dispute_still_excludes(
    second: tuple[str, str], library: Library
) -> None:
    determination, status, _ = _review(
        _spondylitis(("confirmed", "2025-03-01"), second), library, ARTHROPATHY
    )
    assert (determination, status) == ("not_medically_necessary", "not_met")


def test_a_report_after_the_request_showing_a_tumour_still_denies(library: Library) -> None:
    # Approved before (found by the stop-21 data review): a report dated after the request was
    # left out whatever it said. A tumour shown can only make the case worse, so a late report
    # may still add it (x-as-of-source may_add, with the condition that names it:
    # identified_by), as a late note may add a diagnosis, and the timely report excluding it
    # is outweighed (worse_kept), not disputed.
    determination, status, conflicts = _review(
        _with_tumour("present", "radiology_report", "2025-07-01"), library, EXCLUSIONS
    )
    assert (determination, status) == ("not_medically_necessary", "not_met")
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("imaging_exclusion", "status", "worse_kept")
    ]


def test_a_report_after_the_request_excluding_a_tumour_adds_nothing(library: Library) -> None:
    # A late report may add what makes the case worse, nothing else: a late "excluded" alone
    # is left out whole (no fact naming the condition without its status).
    data = _base()
    data["si_joint"]["imaging_exclusions"] = [
        {
            "condition": "tumour",
            "status": "excluded",
            "source": {"document": "radiology_report", "date": "2025-07-01"},
        }
    ]
    determination, status, conflicts = _review(data, library, EXCLUSIONS)
    assert determination != "medically_necessary"
    assert status != "met"
    assert [c["reason"] for c in conflicts] == ["after_request"]
