"""A coded observation dated after the request is kept apart, as a `late_observation`
(facts.schema.json: a type whose `x-late-of` names the type it keeps late facts of).

Stop 26: a coded HbA1c of 9.5 % five days after the request was dropped with the rest of the
late observation (x-as-of-source), so it could neither contradict the diabetes history's
timely 7.0 % nor make LF-DIABETES apply beside a 'no diabetes' note, and lumbar-fusion 2025.1
approved (tests/test_review_s25.py pins both). HbA1c reflects the two to three months before
it: a late result at or above the limit contradicts control at the request (domain.md section
3 item 9, the ground of the late positive cotinine of stop 24), though it cannot show the
level before it, so the clause is not documented, never met and never not met.

Decided here and pinned: a late result below the limit, or one with no value in %, changes
nothing (it contradicts no control and shows none: the history still decides); no late
observation demonstrates what must precede the request (nothing reading `observation` sees
one); a late result never turns a denial into a pend. The FHIR mapping holds the same: a
result after the request never fills the diabetes history's `latest` HbA1c
(tests/test_fhir_latest.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library
from evaluator.read import resources, schemas
from tests.reviewing import VERSIONS, decide
from tests.test_review_s25 import a1c, diabetic, not_diabetic, odi, odis

# What a type keeping late facts apart may say differently from the type it keeps them of.
_OWN = {"description", "x-as-of-source", "x-late-of"}


def _keeping() -> list[tuple[str, str]]:
    defs = schemas.load_schema("facts")["$defs"]
    return [(name, spec["x-late-of"]) for name, spec in defs.items() if "x-late-of" in spec]


def test_observations_have_a_type_keeping_the_late_ones() -> None:
    assert ("late_observation", "observation") in _keeping()


@pytest.mark.parametrize(("keeping", "kept"), _keeping())
def test_a_type_keeping_late_facts_has_the_fields_of_the_type_it_keeps(
    keeping: str, kept: str
) -> None:
    # The late fact is made from what the case states, converted as the kept type converts
    # it (units, analyte ranges): the two types must agree on every field and unit, and the
    # keeping type is not itself dated as of its source (it would drop what it keeps).
    defs = schemas.load_schema("facts")["$defs"]
    late, kept_spec = defs[keeping], defs[kept]
    assert kept_spec["x-cardinality"] == late["x-cardinality"] == "many"
    assert "x-as-of-source" in kept_spec
    assert "x-as-of-source" not in late
    own = {k: v for k, v in late.items() if k not in _OWN}
    assert own == {k: v for k, v in kept_spec.items() if k not in _OWN}
    assert keeping in schemas.load_schema("facts")["properties"]["t"]["enum"]


def test_the_kept_type_s_fields_are_written_once() -> None:
    # The schema file states only what the keeping type says for itself; the loader gives it
    # the rest of the kept type's definition, so the two cannot drift apart.
    written = json.loads((resources.schemas_dir() / "facts.schema.json").read_text())["$defs"]
    for name, spec in written.items():
        if "x-late-of" in spec:
            assert set(spec) <= _OWN | {"type", "x-cardinality"}, name


def _facts(data: dict[str, Any], fact_type: str) -> list[dict[str, Any]]:
    case = case_from_data(data, "late.json")
    return [dict(f.fields) for f in case.facts if f.type == fact_type]


def _hba1c(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in facts if f.get("code") == "LOINC|4548-4"]


def test_an_observation_dated_after_the_request_is_kept_apart_with_its_values() -> None:
    data = diabetic(a1c(9.5, "2025-06-25"))
    case = case_from_data(data, "late.json")
    late = _hba1c(_facts(data, "late_observation"))
    # one late fact, with its value; no date (no fact carries one after the request:
    # tests/test_late_dates.py), being late is what its type says
    assert [(f["value_pct"], f.get("effective"), f.get("effective_lo")) for f in late] == [
        (9.5, None, None)
    ]
    # none in `observation`, which what must precede the request reads
    assert 9.5 not in [f.get("value_pct") for f in _hba1c(_facts(data, "observation"))]
    # the reviewer still sees the observation was left out for its date
    assert any(
        c.fact == "observation" and c.reason == "after_request" and "value_pct" in c.field
        for c in case.conflicts
    )


@pytest.mark.parametrize(
    "result",
    [
        a1c(9.5, "2025-06"),  # a month reaching past the request: it may be timely
        a1c(9.5, "2025-06-10", document="2025-06-25"),  # observed before, reported after
    ],
    ids=["possibly-late", "reported-late"],
)
def test_only_an_observation_surely_after_the_request_is_kept_apart(
    result: dict[str, Any],
) -> None:
    data = diabetic(result)
    assert _hba1c(_facts(data, "late_observation")) == []
    assert len(_hba1c(_facts(data, "observation"))) == 1


@pytest.mark.parametrize("policy", VERSIONS)
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        # at the limit exactly: at least 8.0 % contradicts control as 9.5 % does
        (lambda: diabetic(a1c(8.0, "2025-06-25")), "not_documented"),
        (lambda: not_diabetic(a1c(8.0, "2025-06-25")), "not_documented"),
        # a late result below the limit changes nothing: the history's timely 7.0 % decides
        # (met), and beside 'no diabetes' it makes no one diabetic (not applicable), as before
        (lambda: diabetic(a1c(7.9, "2025-06-25")), "met"),
        (lambda: not_diabetic(a1c(7.9, "2025-06-25")), "not_applicable"),
        (lambda: diabetic(_no_value(a1c(9.5, "2025-06-25"))), "met"),
        # nor does it show control where the history shows none: a history with no HbA1c is
        # not documented, one older than the 90 days not met, whatever the late result says
        (lambda: _history_without_hba1c(a1c(7.0, "2025-06-25")), "not_documented"),
        (lambda: diabetic(a1c(7.0, "2025-06-25"), history="2025-01-10"), "not_met"),
        # a late result never turns a denial into a pend: a timely 9.5 % still fails
        (lambda: diabetic(a1c(9.5, "2025-06-10"), a1c(9.5, "2025-06-25")), "not_met"),
        (lambda: diabetic(a1c(9.5, "2025-06-25"), history="2025-01-10"), "not_met"),
    ],
    ids=[
        "at-limit-beside-history",
        "at-limit-beside-no-diabetes-note",
        "below-beside-history",
        "below-beside-no-diabetes-note",
        "no-value-beside-history",
        "below-without-history-hba1c",
        "below-beside-old-history",
        "beside-timely-high",
        "high-beside-old-history",
    ],
)
def test_a_late_hba1c_is_weighed_but_never_demonstrates(
    case: Any, expected: str, policy: str, library: Library
) -> None:
    determination, statuses = decide(case(), library, policy)
    assert statuses["LF-DIABETES"] == expected
    if expected in ("not_met", "not_documented"):
        assert determination != "medically_necessary"


def _no_value(observation: dict[str, Any]) -> dict[str, Any]:
    del observation["value_quantity"]
    return observation


def _history_without_hba1c(*results: dict[str, Any]) -> dict[str, Any]:
    data = diabetic(*results)
    del data["diabetes"]["hba1c_pct"]
    return data


@pytest.mark.parametrize("policy", VERSIONS)
def test_a_late_observation_is_no_observation_for_a_clause_that_reads_them(
    policy: str, library: Library
) -> None:
    # An ODI of 42 % five days after the request shows nothing of the impairment before it:
    # the clause ends as with no ODI at all.
    late = decide(odis(odi(42, "2025-06-25")), library, policy)[1]
    none = decide(odis(), library, policy)[1]
    assert late["LF-FUNCTIONAL-IMPAIRMENT"] == none["LF-FUNCTIONAL-IMPAIRMENT"] != "met"
