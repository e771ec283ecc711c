"""A document only possibly dated after the request (a month reaching past it) is uncertain,
not late: it may have been written before the request.

Leaving its values out, as for a document dated after the request, failed open for `every`: in
odi-below-30 (every ODI must be at least 30 %) the ODI 24 % dated "2025-06" (the request:
2025-06-20) was dropped and the ODI 38 % alone approved the fusion. Such a fact is now kept
with the values it states unknown (left absent, with the `after_request` conflict that says
"possibly after"), so an `every` over it is not documented (pend), while a `some`, `count` or
`exists` can never be made true by it: absent fields are unknown to conditions and match no
`where`. What says which fact it is (an observation's code: what was measured, not what held)
stays, per the schema's `x-as-of-source.identified_by`.
"""

from __future__ import annotations

import calendar
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.cli.main import main
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
CASES = ROOT / "examples" / "cases"
APPROVED = "medically_necessary"
DENIED = "not_medically_necessary"


def _odi_24(effective: str | None, document_date: str | None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CASES / "odi-below-30.json").read_text())
    odi = data["observations"][1]
    assert odi["value_quantity"]["value"] == 24
    odi.pop("effective")
    if effective is not None:
        odi["effective"] = effective
    odi["source"].pop("date")
    if document_date is not None:
        odi["source"]["date"] = document_date
    return data


REPROS = {
    # the reviewer's two files: /tmp/s20rd/o-docmonth.json and o-undated-month.json
    "no effective date, a note of 2025-06": _odi_24(None, "2025-06"),
    "an undated note, effective 2025-06": _odi_24("2025-06", None),
}


@pytest.mark.parametrize("name", sorted(REPROS))
def test_a_possibly_late_odi_below_30_is_not_left_out_of_every(name: str, tmp_path: Path) -> None:
    path = tmp_path / "odi.json"
    path.write_text(json.dumps(REPROS[name]), encoding="utf-8")
    result = CliRunner().invoke(main, ["evaluate", "--format", "json", str(path)])
    assert result.exit_code == 3, result.output  # pended, never approved (exit 0)
    (line,) = json.loads(result.output)["lines"]
    assert line["determination"] == "insufficient_documentation"
    (clause,) = [c for c in line["clauses"] if c["id"] == "LF-FUNCTIONAL-IMPAIRMENT"]
    assert clause["status"] == "not_documented"


def test_a_possibly_late_score_keeps_what_was_measured_not_its_value() -> None:
    case = case_from_data(REPROS["no effective date, a note of 2025-06"], "odi.json")
    odis = [f for f in case.facts if f.type == "observation"]
    assert [f.fields.get("value_pct") for f in odis] == [38, None]
    assert odis[1].fields["code"] == odis[0].fields["code"]
    (conflict,) = case.conflicts
    assert conflict.reason == "after_request"
    assert "possibly after the request date 2025-06-20" in conflict.text


def test_a_score_clearly_after_the_request_is_still_left_out() -> None:
    # Definitely late keeps the stop-20 treatment: not emitted at all (it cannot have held).
    case = case_from_data(_odi_24(None, "2025-07-01"), "odi.json")
    assert [f.fields.get("value_pct") for f in case.facts if f.type == "observation"] == [38]


# --- the property, over every example and each of its documents -------------------------------


def _dated(node: Any, at: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (pointer, holder) for each object with a dated source of its own, but the
    request's."""
    if isinstance(node, dict):
        source = node.get("source")
        if isinstance(source, dict) and "date" in source and not at.startswith("/request"):
            yield at, node
        for key, value in node.items():
            yield from _dated(value, f"{at}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _dated(value, f"{at}/{i}")


def _redate(data: dict[str, Any], at: str, date: str) -> dict[str, Any]:
    """A copy of ``data`` with the document at ``at`` dated ``date``; an observation's
    effective date that was its document's (an ODI measured the day of its note) moves with it.
    A study's or an injection's own date is not moved: such dated facts hold as of their own
    date, a month-only one as an interval (test_late_dates.py), which is not what this
    property is about."""
    out = copy.deepcopy(data)
    holder = dict(_dated(out))[at]
    was = holder["source"]["date"]
    holder["source"]["date"] = date
    if holder.get("effective") == was:
        holder["effective"] = date
    return out


def _determinations(data: dict[str, Any], library: Library) -> list[str]:
    review = api.review_case(case_from_data(data, "redated.json"), library)
    return [line.decision.determination.value for line in review.lines if line.decision]


@pytest.mark.parametrize("example", sorted(p.name for p in CASES.glob("*.json")))
def test_a_month_reaching_past_the_request_never_approves_what_one_of_its_days_does_not(
    example: str, library: Library
) -> None:
    # A month-only date stands for each of its days. The month may approve a line only when
    # every reading of it does: its first day, the request day (the last timely one) and its
    # last day (clearly after the request, so the document's values are left out). The days
    # in between read as one of those (before or after the request); a duration that depends
    # on the exact day is an interval, compared at both ends.
    data = json.loads((CASES / example).read_text())
    request = data["request"]["date"]
    year, month, day = map(int, request.split("-"))
    last = calendar.monthrange(year, month)[1]
    assert day < last, "the request's month must reach past it"
    days = [f"{request[:7]}-01", request, f"{request[:7]}-{last:02d}"]
    # Nor may the month pend what every one of its days denies: a pend is the reviewer asked
    # for the exact date, which is right only where some day would decide otherwise.
    checked = 0
    for at, _ in _dated(data):
        month_only = _determinations(_redate(data, at, request[:7]), library)
        for i, determination in enumerate(month_only):
            if determination == DENIED:
                continue
            checked += 1
            readings = [_determinations(_redate(data, at, date), library)[i] for date in days]
            if determination == APPROVED:
                assert readings == [APPROVED] * 3, f"{at} dated {request[:7]} approves line {i}"
            else:
                assert readings != [DENIED] * 3, f"{at} dated {request[:7]} pends line {i}"
    assert checked or all(d == DENIED for d in _determinations(data, library))


# --- a statement in a month reaching past the request -----------------------------------------


def _therapy(letter: str, note: str, note_date: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CASES / "l4-l5-approvable.json").read_text())
    statements = [
        {"value": letter, "source": {"document": "surgeon_letter", "date": "2025-05-01"}},
        {"value": note, "source": {"document": "therapy_note", "date": note_date}},
    ]
    data["conservative_care"]["physical_therapy"]["status"] = {"statements": statements}
    return data


def test_a_late_or_possibly_late_not_done_note_outranks_the_timely_letter(
    library: Library,
) -> None:
    # A letter before the request says therapy was completed; a therapy note says it was not
    # done. Written by the request, the note (a primary record) outranks the letter and the
    # fusion is denied. Written after it, the note still counts (stop 22): therapy not done by
    # a later date was not done by the request, so "not done" can only make the case worse
    # (facts.schema.json physical_therapy x-as-of-source may_add). At stop 21 the late note
    # was left out and the letter alone approved; the note's month then pended.
    for date in ("2025-06-20", "2025-06-30", "2025-06", "2025-07-15"):
        data = _therapy("completed", "not_done", date)
        assert _determinations(data, library) == [DENIED], date
        case = case_from_data(data, "therapy.json")
        (therapy,) = [f for f in case.facts if f.type == "physical_therapy"]
        assert therapy.fields["status"] == "not_done"
        late = [c.reason for c in case.conflicts]
        assert late == ([] if date == "2025-06-20" else ["late_counted"]), date


@pytest.mark.parametrize("note", ["completed", "not_done"])
def test_a_possibly_late_statement_changing_nothing_leaves_the_timely_one(
    note: str, library: Library
) -> None:
    # The letter and the note agree: read either way, the status is the same, and the
    # month decides as the note's timely day does.
    data = _therapy(note, note, "2025-06")
    timely = _determinations(_therapy(note, note, "2025-06-20"), library)
    assert _determinations(data, library) == timely


def test_a_possibly_late_statement_never_takes_away_a_timely_value_that_makes_it_worse(
    library: Library,
) -> None:
    # A timely note records a current smoker; a note of "2025-06" says never. Read as timely,
    # the notes would disagree (the status unknown, a pend); but a value that only makes the
    # case worse (`may_add`), stated in time, is never taken away by a document that may be
    # later, as by one that is (the same denial as the note dated after the request).
    def smoker(date: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((CASES / "l4-l5-approvable.json").read_text())
        statements = [
            {"value": "current", "source": {"document": "clinic_note", "date": "2025-01-15"}},
            {"value": "never", "source": {"document": "clinic_note", "date": date}},
        ]
        data["nicotine"]["status"] = {"statements": statements}
        return data

    late = _determinations(smoker("2025-06-30"), library)
    assert late == [DENIED]
    assert _determinations(smoker("2025-06"), library) == late
    case = case_from_data(smoker("2025-06"), "smoker.json")
    (nicotine,) = [f for f in case.facts if f.type == "nicotine"]
    assert nicotine.fields["status"] == "current"
