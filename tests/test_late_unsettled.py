"""A value stated but left out as possibly late is unknown, not one never documented.

The shared nicotine module's never-user route needs "no cotinine above 10 ng/mL" and "no quit
date" on record: `not: demonstrated:`, since a cotinine never measured, or a quit date a
never-user does not have, must not fail it. A value stated only by a document dated by the
request's month (possibly after the request) is left out of the facts; it read as never
documented, `demonstrated` made it false and `not` true, and a never-user with a cotinine of
150 in such a lab result was approved (stop 22, open). The fact now carries the field's
x-disputed marker (facts.schema.json) when a possibly late document leaves the value out,
and `demonstrated` keeps the unknown of a condition reading such a field, so the route is not
documented (domain rule 5: a month reaching past the request is not documented; rule 9).
A value no source states keeps the old reading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import Program
from evaluator.engine.durable import Engine
from evaluator.language.model import Policy
from evaluator.language.policies import Library

CASES = Path(__file__).parent.parent / "examples" / "cases"
# The approvable examples of the policies that place the shared nicotine clause (a never-user,
# no cotinine measured, requested 2025-06-20).
APPROVABLE = {
    "LF-NICOTINE": CASES / "l4-l5-approvable.json",
    "SI-NICOTINE": CASES / "si-approvable-unilateral.json",
}


_PROGRAMS: dict[tuple[Any, bool], Program] = {}


@pytest.fixture(autouse=True, params=[True, False], ids=["folded", "per-node"])
def fold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs on the folded programs and on the per-node ones: both read the marker."""

    def program_for(policy: Policy) -> Program:
        key = (policy.ref, request.param)
        if key not in _PROGRAMS:
            _PROGRAMS[key] = compile_policy(policy, fold=request.param)
            Engine.get().prepare(_PROGRAMS[key])
        return _PROGRAMS[key]

    monkeypatch.setattr(api, "program_for", program_for)


def _case(clause: str, nicotine: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(APPROVABLE[clause].read_text())
    assert data["request"]["date"] == "2025-06-20"
    data["nicotine"] = nicotine
    return data


def _review(data: dict[str, Any], clause: str, library: Library) -> tuple[str, str]:
    decision = api.review_case(case_from_data(data, "unsettled.json"), library).lines[0].decision
    assert decision is not None
    status = next(c.status.value for c in decision.clauses if c.id == clause)
    return decision.determination.value, status


def _never(**fields: Any) -> dict[str, Any]:
    source = {"document": "clinic_note", "date": "2025-01-15"}
    return {"status": "never", "source": source, **fields}


def _cotinine(value: float, dated: str) -> dict[str, Any]:
    return {"statements": [{"value": value, "source": {"document": "lab_result", "date": dated}}]}


@pytest.mark.parametrize("clause", list(APPROVABLE))
def test_a_never_user_with_no_cotinine_measured_meets_the_clause(
    clause: str, library: Library
) -> None:
    assert _review(_case(clause, _never()), clause, library) == ("medically_necessary", "met")


@pytest.mark.parametrize("clause", list(APPROVABLE))
def test_a_high_cotinine_in_a_lab_result_of_the_request_s_month_pends(
    clause: str, library: Library
) -> None:
    data = _case(clause, _never(cotinine_ng_ml=_cotinine(150, "2025-06")))
    assert _review(data, clause, library) == ("insufficient_documentation", "not_documented")


@pytest.mark.parametrize("clause", list(APPROVABLE))
def test_a_high_cotinine_measured_before_the_request_is_not_met(
    clause: str, library: Library
) -> None:
    data = _case(clause, _never(cotinine_ng_ml=_cotinine(150, "2025-06-10")))
    assert _review(data, clause, library) == ("not_medically_necessary", "not_met")


@pytest.mark.parametrize("clause", list(APPROVABLE))
def test_a_low_cotinine_in_the_request_s_month_pends_too(clause: str, library: Library) -> None:
    # A low value passes no route the record would not pass without it: unknown all the same,
    # as the never-user route cannot tell which it is.
    data = _case(clause, _never(cotinine_ng_ml=_cotinine(3, "2025-06")))
    assert _review(data, clause, library)[1] == "not_documented"


def _quit(dated: str) -> dict[str, Any]:
    """A never-user (a timely statement) with a timely cotinine of 3 ng/mL, whose quit date
    of 2025-06-10 (19 days before the request) a note dated `dated` states."""
    status = {
        "statements": [
            {"value": "never", "source": {"document": "clinic_note", "date": "2025-01-15"}}
        ]
    }
    return {
        "status": status,
        "cotinine_ng_ml": _cotinine(3, "2025-06-10"),
        "quit_date": "2025-06-10",
        "source": {"document": "clinic_note", "date": dated},
    }


@pytest.mark.parametrize("clause", list(APPROVABLE))
def test_a_quit_date_in_a_note_of_the_request_s_month_pends(clause: str, library: Library) -> None:
    assert _review(_case(clause, _quit("2025-06")), clause, library) == (
        "insufficient_documentation",
        "not_documented",
    )


@pytest.mark.parametrize("clause", list(APPROVABLE))
def test_a_timely_quit_date_leaves_the_abstinence_route_to_decide(
    clause: str, library: Library
) -> None:
    # 19 days of abstinence: the never-user route fails on the quit date, the other is short
    data = _case(clause, _quit("2025-06-15"))
    assert _review(data, clause, library) == ("not_medically_necessary", "not_met")


def _nicotine_fact(nicotine: dict[str, Any]) -> dict[str, Any]:
    case = case_from_data(_case("LF-NICOTINE", nicotine), "unsettled.json")
    (fact,) = (f for f in case.facts if f.type == "nicotine")
    return dict(fact.fields)


def test_the_fact_says_which_values_a_possibly_late_document_left_out() -> None:
    fields = _nicotine_fact(_never(cotinine_ng_ml=_cotinine(150, "2025-06")))
    assert "cotinine" not in fields
    assert fields["cotinine_disputed"] is True
    fields = _nicotine_fact(_quit("2025-06"))
    assert "quit_date" not in fields
    assert "cotinine_disputed" not in fields
    assert fields["quit_date_disputed"] is True


def test_a_value_never_stated_or_clearly_late_carries_no_marker() -> None:
    # Dated after the request, it shows nothing of what held at the request: as if never
    # stated (x-as-of-source), not unknown.
    for nicotine in (_never(), _never(cotinine_ng_ml=_cotinine(150, "2025-07-10"))):
        fields = _nicotine_fact(nicotine)
        assert not {"cotinine", "cotinine_disputed", "quit_date_disputed"} & set(fields)


# Each shape of reading a marked field under `not: demonstrated:` (x-disputed): by a `where`,
# through a name bound inside, and compared on a type with several facts.
SHAPES = """\
id: shapes
version: "1"
title: Shapes
status: active
effective: {from: "2025-01-01"}
procedures: [{procedure: si_joint_fusion}]
references:
  - {id: 1, citation: A guideline.}
sections:
  - id: s
    title: S
    clauses:
      - id: BY-WHERE
        title: By a where
        requires:
          not:
            demonstrated:
              exists:
                fact: diagnosis
                where: {name: ankylosing_spondylitis, status: confirmed}
        cites: [1]
        recommendation: Document it.
      - id: BY-BINDING
        title: Through a bound name
        requires:
          not:
            demonstrated:
              some:
                fact: diagnosis
                as: d
                where: {name: ankylosing_spondylitis}
                require: {fact: d, field: status, equals: confirmed}
        cites: [1]
        recommendation: Document it.
      - id: BY-COMPARISON
        title: Compared
        requires:
          not:
            demonstrated:
              fact: diagnosis
              field: status
              equals: confirmed
              where: {name: ankylosing_spondylitis}
        cites: [1]
        recommendation: Document it.
"""


def _statements(*said: tuple[str, str]) -> dict[str, Any]:
    """A diagnosis status as clinic notes (value, date) state it."""
    return {
        "statements": [
            {"value": v, "source": {"document": "clinic_note", "date": when}} for v, when in said
        ]
    }


@pytest.mark.parametrize(
    ("status", "dated", "expected"),
    [
        # timely records that disagree: the status is disputed (marked), so unknown
        (
            _statements(("confirmed", "2025-02-03"), ("ruled_out", "2025-05-01")),
            None,
            "not_documented",
        ),
        # the diagnosis and its status in a note of the request's month: possibly late (marked)
        ("ruled_out", "2025-06", "not_documented"),
        # the same note after the request: as if never stated
        ("ruled_out", "2025-07-01", "met"),
        (_statements(("ruled_out", "2025-05-01")), None, "met"),
        (_statements(("confirmed", "2025-05-01")), None, "not_met"),
    ],
)
def test_every_shape_of_reading_a_marked_field_keeps_its_unknown(
    tmp_path: Path, status: Any, dated: str | None, expected: str
) -> None:
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "1.yaml").write_text(SHAPES)
    data = json.loads((CASES / "si-ankylosing-spondylitis.json").read_text())
    (diagnosis,) = [d for d in data["diagnoses"] if d["name"] == "ankylosing_spondylitis"]
    diagnosis["status"] = status
    if dated is not None:
        diagnosis["source"]["date"] = dated
    decision = api.evaluate(case_from_data(data, "shapes.json"), Library(tmp_path).get("shapes"))
    assert {c.id: c.status.value for c in decision.clauses} == dict.fromkeys(
        ("BY-WHERE", "BY-BINDING", "BY-COMPARISON"), expected
    )
