"""Nothing dated after the request can demonstrate what must precede it: late documents.

A nicotine status, a cotinine level or a quit date has no date of its own: it holds as of the
document that states it. A clinic note written after the request saying "never smoked" (or a
later lab's low cotinine outranking an earlier letter's high one) made the shared nicotine
clause met and approved the line; a late note saying "not diabetic" waived the HbA1c clause the
same way, and an SI examination written up after the request (pain localised, provocative
tests positive, competing conditions excluded on imaging) approved an SI-joint fusion, and a
red flag first documented after the request waived an urgent fusion's clauses. A fact type
annotated ``x-as-of-source`` in facts.schema.json (nicotine, diabetes, si_pain,
provocative_test, imaging_exclusion, red_flag, condition, symptom, observation, diagnosis)
now leaves out every value a document dated after the request states (or possibly after it: a
month reaching past the request date), with one ``after_request`` conflict per late fact or
statement, as a date after the request is (test_late_dates.py); an observation's values hold
as of its effective date when it has one. A late document may add an exclusion (a diagnosis
named: ``may_add``), never take one away.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.cli.main import main
from evaluator.language.policies import Library
from evaluator.read import schemas

ROOT = Path(__file__).parent.parent
CASES = ROOT / "examples" / "cases"
# One approvable example per policy using the shared nicotine clause (or the same clause).
APPROVABLE = {
    "LF-NICOTINE": CASES / "l4-l5-approvable.json",
    "SI-NICOTINE": CASES / "si-approvable-unilateral.json",
}
REQUEST = "2025-06-20"  # the request date of both


def _review(data: dict[str, Any], clause: str, library: Library) -> tuple[str, str, list[Any]]:
    """Return (the line's determination, the clause's status, the decision's conflicts)."""
    decision = api.review_case(case_from_data(data, "late.json"), library).lines[0].decision
    assert decision is not None
    status = next(c.status.value for c in decision.clauses if c.id == clause)
    return decision.determination.value, status, [dict(c) for c in decision.conflicts]


def _source(document: str, date: str) -> dict[str, str]:
    return {"document": document, "date": date}


def _never_dated(date: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["nicotine"]["source"]["date"] = date

    return change


def _late_primary_never(data: dict[str, Any]) -> None:
    # A letter before the request says current; a clinic note after it says never. The primary
    # record would outrank the letter, but it was written too late to show anything.
    data["nicotine"] = {
        "status": {
            "statements": [
                {"value": "current", "source": _source("surgeon_letter", "2025-05-01")},
                {"value": "never", "source": _source("clinic_note", "2025-07-01")},
            ]
        }
    }


def _late_low_cotinine(data: dict[str, Any]) -> None:
    data["nicotine"] = {
        "status": "former",
        "quit_date": "2025-01-01",
        "cotinine_ng_ml": {
            "statements": [
                {"value": 40, "source": _source("surgeon_letter", "2025-05-01")},
                {"value": 5, "source": _source("lab_result", "2025-07-01")},
            ]
        },
    }


def _late_former_with_quit_date(data: dict[str, Any]) -> None:
    # Status, cotinine and quit date all from one note written after the request.
    data["nicotine"] = {
        "status": "former",
        "quit_date": "2025-01-01",
        "cotinine_ng_ml": 5,
        "source": _source("clinic_note", "2025-06-21"),
    }


LATE = {
    "never, from a note a day after the request": (_never_dated("2025-06-21"), "not_documented"),
    "never, from a note in a month reaching past it": (_never_dated("2025-06"), "not_documented"),
    "never, from a note a year later": (_never_dated("2026-06"), "not_documented"),
    "a late primary never outranking an earlier letter": (_late_primary_never, "not_met"),
    "a late lab's low cotinine outranking a letter": (_late_low_cotinine, "not_met"),
    "former, quit and cotinine from a late note": (_late_former_with_quit_date, "not_documented"),
}


@pytest.mark.parametrize("clause", sorted(APPROVABLE))
@pytest.mark.parametrize("name", sorted(LATE))
def test_nicotine_stated_after_the_request_does_not_approve(
    clause: str, name: str, library: Library
) -> None:
    data = json.loads(APPROVABLE[clause].read_text())
    assert data["request"]["date"] == REQUEST
    assert _review(data, clause, library)[:2] == ("medically_necessary", "met")
    change, expected = LATE[name]
    late = copy.deepcopy(data)
    change(late)
    determination, status, conflicts = _review(late, clause, library)
    assert status == expected
    assert determination != "medically_necessary"
    flagged = [c for c in conflicts if c["fact"] == "nicotine" and c["reason"] == "after_request"]
    assert flagged, conflicts
    assert all(f"the request date {REQUEST}" in c["values"] for c in flagged)


def test_the_cli_pends_a_late_never_smoker_note_and_says_why(tmp_path: Path) -> None:
    # (not a hostile case file: those are the bases of the recorded normaliser mutations)
    data = json.loads(APPROVABLE["LF-NICOTINE"].read_text())
    _never_dated("2025-07-01")(data)
    path = tmp_path / "late-never.json"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code == 3, result.output  # pended: not documented, never approved
    text = " ".join(result.output.split())
    assert (
        "nicotine status: dated 2025-07-01 (clinic_note, after the request date 2025-06-20), so"
        " it cannot show anything that must precede the request"
    ) in text


@pytest.mark.parametrize(
    ("date", "kept"),
    [("2025-06-20", True), ("2025-06-21", False), ("2025-05", True), ("2025-06", False)],
)
def test_the_request_day_is_kept_and_a_day_after_left_out(date: str, kept: bool) -> None:
    data = json.loads(APPROVABLE["LF-NICOTINE"].read_text())
    _never_dated(date)(data)
    case = case_from_data(data, "late.json")
    (nicotine,) = [f for f in case.facts if f.type == "nicotine"]
    assert ("status" in nicotine.fields) is kept
    assert str(nicotine.fields["src"]).startswith(
        f"clinic_note {date}"
    )  # provenance kept either way
    late = [c for c in case.conflicts if c.reason == "after_request"]
    assert [(c.fact, c.field, c.pointer) for c in late] == (
        [] if kept else [("nicotine", "status", "/nicotine/source/date")]
    )


@pytest.mark.parametrize(
    ("timely", "late", "expected"),
    [
        ("never", "never", ("medically_necessary", "met")),
        ("current", "never", ("not_medically_necessary", "not_met")),
        # Stop 27: a late ex-smoker is left out of the status too, but kept apart
        # (late_status): smoking at some time contradicts "never" whatever its date, so the
        # never-user route fails and the clause pends (tests/test_late_smoking_status.py);
        # before, it approved.
        ("never", "former", ("insufficient_documentation", "not_documented")),
    ],
)
def test_a_timely_statement_still_decides_when_a_late_one_is_left_out(
    timely: str, late: str, expected: tuple[str, str], library: Library
) -> None:
    data = json.loads(APPROVABLE["LF-NICOTINE"].read_text())
    data["nicotine"] = {
        "status": {
            "statements": [
                {"value": timely, "source": _source("clinic_note", "2025-01-15")},
                {"value": late, "source": _source("clinic_note", "2025-07-01")},
            ]
        }
    }
    # Two primary records disagreeing would pend; the late one has no say in the status.
    case = case_from_data(data, "late.json")
    (nicotine,) = [f for f in case.facts if f.type == "nicotine"]
    assert nicotine.fields["status"] == timely
    determination, status, conflicts = _review(data, "LF-NICOTINE", library)
    assert (determination, status) == expected
    assert [(c["field"], c["reason"]) for c in conflicts] == [("status", "after_request")]


@pytest.mark.parametrize("document", ["clinic_note", "surgeon_letter"])
def test_a_late_current_smoker_note_still_has_a_say(document: str, library: Library) -> None:
    # A note written after the request saying "current smoker" can only make the case worse
    # (x-as-of-source `may_add` on nicotine): beside a timely "never" it was left out and the
    # case approved; it counts as if timely, so two primary records disagree (pend), and a
    # letter is outranked by the timely note as it would be on any date.
    data = json.loads(APPROVABLE["LF-NICOTINE"].read_text())
    data["nicotine"] = {
        "status": {
            "statements": [
                {"value": "never", "source": _source("clinic_note", "2025-01-15")},
                {"value": "current", "source": _source(document, "2025-07-01")},
            ]
        }
    }
    determination, status, conflicts = _review(data, "LF-NICOTINE", library)
    if document == "surgeon_letter":
        # outranked, but the reviewer still sees what it said and when
        assert (determination, status) == ("medically_necessary", "met")
        assert [(c["field"], c["reason"]) for c in conflicts] == [("status", "late_counted")]
        return
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    assert [(c["field"], c["reason"]) for c in conflicts] == [
        ("status", "late_counted"),  # it has a say as if timely (test_late_review.py)
        ("status", "sources_disagree"),
    ]
    # and alone it shows a current smoker: not met
    data["nicotine"] = {"status": "current", "source": _source("clinic_note", "2025-07-01")}
    assert _review(data, "LF-NICOTINE", library)[:2] == ("not_medically_necessary", "not_met")


@pytest.mark.parametrize("late", ["statement", "document"])
def test_a_late_note_saying_not_diabetic_does_not_approve(late: str, library: Library) -> None:
    # The HbA1c clause applies to a diabetic: a note written after the request saying the
    # patient is not diabetic (outranking an earlier letter, or alone) must not waive it.
    data = json.loads(APPROVABLE["LF-NICOTINE"].read_text())
    if late == "statement":
        data["diabetes"] = {
            "diabetic": {
                "statements": [
                    {"value": True, "source": _source("surgeon_letter", "2025-05-01")},
                    {"value": False, "source": _source("clinic_note", "2025-07-01")},
                ]
            }
        }
    else:
        data["diabetes"]["source"]["date"] = "2025-07-01"
    determination, status, conflicts = _review(data, "LF-DIABETES", library)
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    assert [(c["fact"], c["reason"]) for c in conflicts] == [("diabetes", "after_request")]


def test_a_late_note_saying_diabetic_still_has_a_say(library: Library) -> None:
    # Diabetic can only make the case worse (the HbA1c clause then applies): beside a timely
    # "not diabetic" the late note was left out and the clause not applicable (approved).
    data = json.loads(APPROVABLE["LF-NICOTINE"].read_text())
    assert _review(data, "LF-DIABETES", library)[:2] == ("medically_necessary", "not_applicable")
    data["diabetes"] = {
        "diabetic": {
            "statements": [
                {"value": False, "source": _source("clinic_note", "2025-05-01")},
                {"value": True, "source": _source("clinic_note", "2025-07-01")},
            ]
        }
    }
    determination, status, conflicts = _review(data, "LF-DIABETES", library)
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    assert [(c["fact"], c["reason"]) for c in conflicts] == [
        ("diabetes", "late_counted"),
        ("diabetes", "sources_disagree"),
    ]


def _late_si_exam(part: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for item in data["si_joint"][part]:
            item["source"]["date"] = "2025-07-15"

    return change


def _late_third_and_fourth_positive_tests(data: dict[str, Any]) -> None:
    # Three positive tests are the minimum: two in a note before the request, the third and
    # fourth (thigh thrust, FABER) and the two negatives in a note after it.
    for item in data["si_joint"]["provocative_tests"][2:]:
        item["source"]["date"] = "2025-07-15"


LATE_SI = {
    "pain located by a late note": ("SI-PAIN-LOCATION", _late_si_exam("pain")),
    "provocative tests from a late note": (
        "SI-PROVOCATIVE-TESTS",
        _late_si_exam("provocative_tests"),
    ),
    "the third and fourth positive tests from a late note": (
        "SI-PROVOCATIVE-TESTS",
        _late_third_and_fourth_positive_tests,
    ),
}


@pytest.mark.parametrize("name", sorted(LATE_SI))
def test_an_si_examination_after_the_request_does_not_approve(name: str, library: Library) -> None:
    # The SI pain's location and the provocative tests have no date of their own either: an
    # examination written up after the request approved the fusion before x-as-of-source.
    data = json.loads(APPROVABLE["SI-NICOTINE"].read_text())
    clause, change = LATE_SI[name]
    assert _review(data, clause, library)[:2] == ("medically_necessary", "met")
    change(data)
    determination, status, conflicts = _review(data, clause, library)
    assert status != "met"
    assert determination != "medically_necessary"
    flagged = [c for c in conflicts if c["reason"] == "after_request"]
    assert flagged, conflicts
    assert all(f"the request date {REQUEST}" in c["values"] for c in flagged)


def _late_exclusions(data: dict[str, Any]) -> None:
    for item in data["si_joint"]["imaging_exclusions"]:
        item["source"]["date"] = "2025-07-10"


def _late_red_flag(data: dict[str, Any]) -> None:
    (flag,) = data["red_flags"]
    flag["source"]["date"] = "2025-07-02"


def _late_activity_limitation(data: dict[str, Any]) -> None:
    (limitation,) = data["conditions"]
    limitation["source"]["date"] = "2025-07-10"  # its onset (2025-03) is no date of its status


# An imaging report read after the request (every competing condition excluded) approved an
# SI-joint fusion; a cauda equina red flag first documented after the request waived the
# conservative-care, therapy and nicotine clauses of an urgent fusion; a coded limitation of
# activities (active, confirmed) in a note written after the request made the functional
# impairment clause met.
LATE_OTHER = {
    "imaging exclusions from a late report": (
        CASES / "si-approvable-unilateral.json",
        "SI-IMAGING-EXCLUSIONS",
        _late_exclusions,
        "imaging_exclusion",
    ),
    "an activity limitation coded in a late note": (
        CASES / "activity-limitation-coded.json",
        "LF-FUNCTIONAL-IMPAIRMENT",
        _late_activity_limitation,
        "condition",
    ),
    "a red flag first documented after the request": (
        CASES / "urgent-cauda-equina.json",
        "LF-URGENT",
        _late_red_flag,
        "red_flag",
    ),
}


@pytest.mark.parametrize("name", sorted(LATE_OTHER))
def test_a_late_exclusion_or_red_flag_does_not_approve(name: str, library: Library) -> None:
    path, clause, change, fact = LATE_OTHER[name]
    data = json.loads(path.read_text())
    assert data["request"]["date"] == REQUEST
    assert _review(data, clause, library)[:2] == ("medically_necessary", "met")
    change(data)
    determination, status, conflicts = _review(data, clause, library)
    assert status != "met"
    assert determination != "medically_necessary"
    flagged = [c for c in conflicts if c["fact"] == fact and c["reason"] == "after_request"]
    assert flagged, conflicts


# The fact types whose values hold as of their document; `condition`, `observation` and
# `diagnosis` are also words the evaluator uses for other things (a FHIR Claim's diagnosis, the
# unit table's observation), so only the others are looked for in its code.
AS_OF_SOURCE = (
    "nicotine",
    "diabetes",
    "si_pain",
    "provocative_test",
    "imaging_exclusion",
    "red_flag",
    "symptom",
)
# (and events reported only after the request: tests/test_late_events.py)
EVENTS = {"conservative_care", "care_component", "physical_therapy", "diagnostic_block"}
AS_OF_SOURCE_ALL = {*AS_OF_SOURCE, "condition", "observation", "diagnosis", *EVENTS}


def test_the_rule_is_schema_data_not_code() -> None:
    # The builder reads the annotation; nothing in evaluator/ names the fact types.
    defs = schemas.load_schema("facts")["$defs"]
    assert {name for name, d in defs.items() if d.get("x-as-of-source")} == AS_OF_SOURCE_ALL
    code = "\n".join(p.read_text() for p in (ROOT / "evaluator").rglob("*.py"))
    for name in AS_OF_SOURCE:
        assert f'"{name}"' not in code
        assert f"'{name}'" not in code


# --- a diagnosis: a late document may add an exclusion, never take one away ------------------

EXCLUDED = CASES / "si-ankylosing-spondylitis.json"  # ankylosing spondylitis, confirmed
ARTHROPATHY = "SI-NO-INFLAMMATORY-ARTHROPATHY"


def _spondylitis(*said: tuple[str, str, str]) -> Callable[[dict[str, Any]], None]:
    """Make the ankylosing spondylitis diagnosis's status the statements (value, document,
    date) given."""

    def change(data: dict[str, Any]) -> None:
        (diagnosis,) = [d for d in data["diagnoses"] if d["name"] == "ankylosing_spondylitis"]
        statements = [{"value": v, "source": _source(doc, when)} for v, doc, when in said]
        diagnosis["status"] = {"statements": statements}

    return change


def _late_spondylitis_note(data: dict[str, Any]) -> None:
    # The whole diagnosis first named in a note written after the request.
    (diagnosis,) = [d for d in data["diagnoses"] if d["name"] == "ankylosing_spondylitis"]
    diagnosis["source"]["date"] = "2025-07-01"


# Each was approved before the direction-aware rule (x-as-of-source `may_add` on diagnosis):
# a primary note written after the request outranked an earlier letter, disagreed with an
# earlier note (leaving the status absent, which `exists` reads as no such diagnosis), or was
# the only status of a diagnosis an earlier record names.
TAKEN_AWAY = {
    "a letter names it before, a note rules it out after": _spondylitis(
        ("stated", "surgeon_letter", "2025-02-03"), ("ruled_out", "clinic_note", "2025-07-01")
    ),
    "a note confirms it before, a note rules it out after": _spondylitis(
        ("confirmed", "clinic_note", "2025-02-03"), ("ruled_out", "clinic_note", "2025-07-01")
    ),
    "ruled out only by a note in a month reaching past the request": _spondylitis(
        ("ruled_out", "clinic_note", "2025-06"),
    ),
    "a note rules it out before, a note confirms it after": _spondylitis(
        ("ruled_out", "clinic_note", "2025-02-03"), ("confirmed", "clinic_note", "2025-07-01")
    ),
    "a note names it before, a note confirms it after": _spondylitis(
        ("stated", "clinic_note", "2025-02-03"), ("confirmed", "clinic_note", "2025-07-01")
    ),
    # (not approved before either: kept so that the late exclusion is never dropped)
    "named only by a note after the request": _late_spondylitis_note,
}


@pytest.mark.parametrize("name", sorted(TAKEN_AWAY))
def test_a_late_document_never_takes_an_exclusion_away(name: str, library: Library) -> None:
    data = json.loads(EXCLUDED.read_text())
    assert data["request"]["date"] == REQUEST
    assert _review(data, ARTHROPATHY, library)[:2] == ("not_medically_necessary", "not_met")
    TAKEN_AWAY[name](data)
    determination, status, conflicts = _review(data, ARTHROPATHY, library)
    assert (determination, status) == ("not_medically_necessary", "not_met")
    late = [c for c in conflicts if c["reason"] in ("after_request", "late_counted")]
    if name != "named only by a note after the request":
        # the reviewer is told which statement came too late, whichever way it went
        assert [(c["fact"], c["field"]) for c in late] == [("diagnosis", "status")], conflicts


def test_a_ruling_out_on_the_request_day_still_counts(library: Library) -> None:
    data = json.loads(EXCLUDED.read_text())
    # a primary note on the request day outranks the earlier letter: nothing was too late
    _spondylitis(("stated", "surgeon_letter", "2025-02-03"), ("ruled_out", "clinic_note", REQUEST))(
        data
    )
    determination, status, conflicts = _review(data, ARTHROPATHY, library)
    assert (determination, status, conflicts) == ("medically_necessary", "met", [])


def test_a_late_ruling_out_of_a_diagnosis_never_named_before_changes_nothing(
    library: Library,
) -> None:
    # Nothing to take away: a late note ruling out a diagnosis no earlier record names leaves
    # the case as it was (its status left out, the diagnosis named by nothing that counts).
    data = json.loads(EXCLUDED.read_text())
    data["diagnoses"] = [d for d in data["diagnoses"] if d["name"] != "ankylosing_spondylitis"]
    assert _review(data, ARTHROPATHY, library)[:2] == ("medically_necessary", "met")
    data["diagnoses"].append(
        {
            "name": "ankylosing_spondylitis",
            "status": "ruled_out",
            "source": _source("clinic_note", "2025-07-01"),
        }
    )
    determination, status, conflicts = _review(data, ARTHROPATHY, library)
    assert (determination, status) == ("medically_necessary", "met")
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("diagnosis", "status", "after_request")
    ]


@pytest.mark.parametrize(
    "said",
    [
        (("stated", "clinic_note", "2025-02-03"), ("confirmed", "radiology_report", "2025-05-01")),
        (("confirmed", "clinic_note", "2025-02-03"), ("ruled_out", "clinic_note", "2025-05-01")),
    ],
    ids=["named and confirmed", "confirmed and ruled out"],
)
def test_records_that_disagree_before_the_request_never_lose_an_exclusion(
    said: tuple[tuple[str, str, str], ...], library: Library
) -> None:
    # Not late, the same hole: primary records that disagree left the status absent, and
    # `exists` read an absent status as no such diagnosis, approving a fusion the record
    # excludes. Stop 20 kept the excluding value (a denial); by domain rule 9 the status is
    # not documented: the fact says it is disputed (x-disputed) and the exclusion reads it as
    # unknown, so the case pends (tests/test_disputed.py), never approves.
    data = json.loads(EXCLUDED.read_text())
    _spondylitis(*said)(data)
    determination, status, conflicts = _review(data, ARTHROPATHY, library)
    assert (determination, status) == ("insufficient_documentation", "not_documented")
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("diagnosis", "status", "sources_disagree")
    ]


def test_the_direction_is_schema_data() -> None:
    # One place says which late values only add: the diagnosis type's annotation.
    defs = schemas.load_schema("facts")["$defs"]
    assert defs["diagnosis"]["x-as-of-source"] == {
        "may_add": {"name": True, "status": ["confirmed", "stated"]},
        "keep_worse": True,
    }
    assert defs["nicotine"]["x-as-of-source"] == {"may_add": {"status": ["current"]}}
    assert defs["diabetes"]["x-as-of-source"] == {"may_add": {"diabetic": [True]}}
    # every value it names is one the field may take
    for name in ("diagnosis", "nicotine", "diabetes"):
        for field, values in defs[name]["x-as-of-source"]["may_add"].items():
            spec = defs[name]["properties"][field]
            assert values is True or set(values) < set(spec.get("enum", [True, False]))


# --- a score with no date of its own, symptoms, noise --------------------------------------

SCORED = CASES / "l4-l5-approvable.json"  # ODI 42 % on 2025-06-02
IMPAIRMENT = "LF-FUNCTIONAL-IMPAIRMENT"


def _odi(effective: str | None, document_date: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        (score,) = data["observations"]
        score.pop("effective")
        if effective is not None:
            score["effective"] = effective
        score["source"]["date"] = document_date

    return change


LATE_ODI = {
    "no effective date, from a note after the request": _odi(None, "2025-07-01"),
    "no effective date, from a note in a month reaching past it": _odi(None, "2025-06"),
    "measured after the request": _odi("2025-07-01", "2025-07-01"),
    "measured in a month reaching past the request": _odi("2025-06", "2025-07-01"),
}


@pytest.mark.parametrize("name", sorted(LATE_ODI))
def test_a_score_measured_or_written_after_the_request_does_not_approve(
    name: str, library: Library
) -> None:
    data = json.loads(SCORED.read_text())
    assert _review(data, IMPAIRMENT, library)[:2] == ("medically_necessary", "met")
    LATE_ODI[name](data)
    determination, status, conflicts = _review(data, IMPAIRMENT, library)
    assert status == "not_documented"
    assert determination == "insufficient_documentation"
    assert [(c["fact"], c["reason"]) for c in conflicts] == [("observation", "after_request")]


@pytest.mark.parametrize(
    "change",
    [_odi(None, REQUEST), _odi(REQUEST, "2025-07-01"), _odi("2025-06-02", "2025-08-01")],
    ids=["undated, written on the request day", "measured on the request day", "written later"],
)
def test_a_score_measured_by_the_request_day_still_counts(
    change: Callable[[dict[str, Any]], None], library: Library
) -> None:
    # A score's own date, when it has one, says when it held: written up later it still counts.
    data = json.loads(SCORED.read_text())
    change(data)
    assert _review(data, IMPAIRMENT, library) == ("medically_necessary", "met", [])


SYMPTOMATIC = CASES / "ld-approvable-l4-l5.json"  # radicular pain since 2025-03, concordant


@pytest.mark.parametrize(("date", "approved"), [("2025-07-10", False), (REQUEST, True)])
def test_symptoms_from_a_note_after_the_request_do_not_approve(
    date: str, approved: bool, library: Library
) -> None:
    # The note gives an onset months before the request, but it is the late note that says
    # so: it cannot demonstrate symptoms (or their match with the imaging) before the request.
    data = json.loads(SYMPTOMATIC.read_text())
    assert data["request"]["date"] == REQUEST
    (symptom,) = data["symptoms"]
    assert symptom["onset"] < REQUEST
    symptom["source"]["date"] = date
    determination, status, conflicts = _review(data, "LD-SYMPTOMS", library)
    if approved:
        assert (determination, status, conflicts) == ("medically_necessary", "met", [])
        return
    assert status == "not_documented"
    assert determination == "insufficient_documentation"
    assert [(c["fact"], c["field"], c["reason"]) for c in conflicts] == [
        ("symptom", "kind, side, concordant, onset", "after_request")
    ]


def test_a_late_examination_lists_each_late_test_once(library: Library) -> None:
    # Six provocative tests in one note written after the request listed 18 conflicts, one per
    # field per test; each test's values are one line.
    data = json.loads(APPROVABLE["SI-NICOTINE"].read_text())
    _late_si_exam("provocative_tests")(data)
    conflicts = _review(data, "SI-PROVOCATIVE-TESTS", library)[2]
    late = [c for c in conflicts if c["reason"] == "after_request"]
    assert len(data["si_joint"]["provocative_tests"]) == 6
    assert [(c["fact"], c["field"]) for c in late] == [
        ("provocative_test", "test, side, result")
    ] * 6
    case = case_from_data(data, "late.json")
    assert [c.ref for c in case.conflicts] == [f"provocative_test:{i}" for i in range(1, 7)]
    assert [c.pointer for c in case.conflicts] == [
        f"/si_joint/provocative_tests/{i}/source/date" for i in range(6)
    ]


def test_the_cli_shows_a_late_examination_once_per_test(tmp_path: Path) -> None:
    data = json.loads(APPROVABLE["SI-NICOTINE"].read_text())
    _late_si_exam("provocative_tests")(data)
    path = tmp_path / "late-exam.json"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code in (1, 3), result.output  # never approved
    text = " ".join(result.output.split())
    line = (
        "provocative test test, side, result: dated 2025-07-15 (clinic_note, after the request"
        " date 2025-06-20)"
    )
    assert text.count(line) == 6


# --- every example, every document dated after the request -----------------------------------

_ORDER = {"not_medically_necessary": 0, "insufficient_documentation": 1, "medically_necessary": 2}


def _sources(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every document a case cites (a `source`), but the request's own."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        if path and path[-1] == "source" and "document" in value and path[0] != "request":
            found.append(path)
        for key, item in value.items():
            found += _sources(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _sources(item, (*path, i))
    return found


def _overall(data: dict[str, Any], library: Library) -> int:
    """The case's worst line determination, as a rank (approved highest)."""
    review = api.review_case(case_from_data(data, "late.json"), library)
    return min(
        (_ORDER[r.decision.determination.value] for r in review.lines if r.decision is not None),
        default=_ORDER["medically_necessary"],
    )


@pytest.mark.parametrize("path", sorted(CASES.glob("*.json")), ids=lambda p: p.name)
def test_no_document_dated_after_the_request_turns_a_case_into_an_approval(
    path: Path, library: Library
) -> None:
    # Each document of each example in turn dated 25 days after the request: a case that was
    # not approved never becomes approved.
    data = json.loads(path.read_text())
    before = _overall(data, library)
    if before == _ORDER["medically_necessary"]:
        return
    late = str(date.fromisoformat(data["request"]["date"]) + timedelta(days=25))
    approved = []
    for where in _sources(data):
        changed = copy.deepcopy(data)
        source = changed
        for key in where:
            source = source[key]
        source["date"] = late
        if _overall(changed, library) == _ORDER["medically_necessary"]:
            approved.append("/".join(map(str, where)))
    assert approved == []
