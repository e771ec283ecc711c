"""An observation over a period (case `effective_period`, FHIR `effectivePeriod`) happened some
time in it: its instant is the period's days (case.schema.json `x-bounds-instant`), so its
order against a day the period holds is unknown, while a period wholly before or after a rival
still orders definitely (domain.md section 3 items 5 and 9).

Before (stop 25 review, a wrong approval): the instant was the period's start, so a 9.5 %
HbA1c observed from 2025-05-01 to 2025-06-10 beside the diabetes history's 7.0 % of 2025-05-30
read as the older one, and a 20 % ODI over that period beside 42 % on 2025-06-02 too: both met,
and lumbar-fusion 2025.1 approved (tests/test_review_s25.py). Every case here is requested on
2025-06-20.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_fhir_coded import (  # type: ignore[import-not-found]
    UCUM,
    condition,
    mapped,
    observation,
    statuses,
    with_resources,
)

from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library
from evaluator.vocab.dates import DateError, PartialDate, parse_instant, within
from tests.reviewing import VERSIONS, check_probe
from tests.test_review_s25 import a1c, diabetic, odi, odis


def over(result: dict[str, Any], start: str | None, end: str | None) -> dict[str, Any]:
    """`result` observed over a period (a bound None: left out) instead of on one day."""
    del result["effective"]
    result["effective_period"] = {
        bound: day for bound, day in (("start", start), ("end", end)) if day is not None
    }
    return result


# --- the instant's interval --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "lo", "hi"),
    [
        ("2025-05-01", "2025-06-10", date(2025, 5, 1), date(2025, 6, 10)),
        ("2025-05", "2025-06", date(2025, 5, 1), date(2025, 6, 30)),
        ("2025-05-01", None, date(2025, 5, 1), date.max),
        (None, "2025-06-10", date.min, date(2025, 6, 10)),
        ("2025-06-10", "2025-06-10", date(2025, 6, 10), date(2025, 6, 10)),
    ],
    ids=["days", "months", "open-end", "open-start", "one-day"],
)
def test_an_instant_within_a_period_may_be_any_of_its_days(
    start: str | None, end: str | None, lo: date, hi: date
) -> None:
    text = within(start, end)
    assert parse_instant(text) == PartialDate(lo, hi, text)


@pytest.mark.parametrize("text", ["..", "2025-06-10..2025-05-01", "2025-13..2025-06-10"])
def test_an_instant_within_no_period_is_no_date(text: str) -> None:
    with pytest.raises(DateError):
        parse_instant(text)


def test_a_fact_observed_over_a_period_is_dated_by_all_of_its_days() -> None:
    data = odis(over(odi(20, "2025-06-10"), "2025-05-01", "2025-06-10"))
    (fact,) = [f for f in case_from_data(data, "period.json").facts if f.type == "observation"]
    assert fact.fields["effective"] == "2025-05-01..2025-06-10"
    assert fact.fields["effective_lo"] == date(2025, 5, 1).toordinal()  # the start before
    assert fact.fields["effective_hi"] == date(2025, 6, 10).toordinal()
    assert fact.fields["effective_end"] == "2025-06-10"


# --- decisions ---------------------------------------------------------------------------------

Case = Callable[[], dict[str, Any]]

# (id, case, clause, its status under both versions); wherever it is not met, never an approval
PROBES: list[tuple[str, Case, str, str]] = [
    # 9.5 % over a period straddling the start of the 90-day window (2025-03-22): it may have
    # been measured within it (met before: read as of 2025-02-01, outside it, and approved)
    (
        "hba1c-straddling-the-window",
        lambda: diabetic(over(a1c(9.5, "2025-06-10"), "2025-02-01", "2025-06-10")),
        "LF-DIABETES",
        "not_documented",
    ),
    # 20 % over a period with no end from 2025-06-01, stated in a document of that day, beside
    # 42 % on 2025-06-10: either may be the latest (met before, and approved)
    (
        "odi-open-period-beside-a-later-day",
        lambda: odis(over(odi(20, "2025-06-01"), "2025-06-01", None), odi(42, "2025-06-10")),
        "LF-FUNCTIONAL-IMPAIRMENT",
        "not_documented",
    ),
    # a lone 42 % over a period with no end and no document date may be after the request:
    # nothing dated after it demonstrates what must precede it (met before, and approved)
    (
        "odi-open-period-undated-source",
        lambda: odis(over(odi(42, "2025-06-01", document=None), "2025-06-01", None)),
        "LF-FUNCTIONAL-IMPAIRMENT",
        "not_documented",
    ),
    # --- periods wholly before or after their rival still order definitely ---
    (
        "hba1c-period-before-the-history",
        lambda: diabetic(over(a1c(9.5, "2025-05-15"), "2025-04-01", "2025-05-15")),
        "LF-DIABETES",
        "met",
    ),
    (
        "hba1c-period-after-the-history",
        lambda: diabetic(over(a1c(9.5, "2025-06-10"), "2025-06-01", "2025-06-10")),
        "LF-DIABETES",
        "not_met",
    ),
    (
        "hba1c-period-ending-on-the-historys-day",
        lambda: diabetic(over(a1c(9.5, "2025-05-30"), "2025-05-01", "2025-05-30")),
        "LF-DIABETES",
        "not_documented",
    ),
    (
        "odi-period-before-a-later-day",
        lambda: odis(
            over(odi(20, "2025-05-20"), "2025-05-01", "2025-05-20"), odi(42, "2025-06-02")
        ),
        "LF-FUNCTIONAL-IMPAIRMENT",
        "met",
    ),
    (
        "odi-period-after-an-earlier-day",
        lambda: odis(
            over(odi(20, "2025-06-10"), "2025-06-03", "2025-06-10"), odi(42, "2025-06-02")
        ),
        "LF-FUNCTIONAL-IMPAIRMENT",
        "not_met",
    ),
    # --- a period reaching past the request demonstrates nothing ---
    (
        "odi-period-past-the-request",
        lambda: odis(over(odi(42, "2025-06-25"), "2025-06-01", "2025-06-25")),
        "LF-FUNCTIONAL-IMPAIRMENT",
        "not_documented",
    ),
    # but it may have been measured by the request, after 2025-06-10: the latest is unknown
    # (not met until s26-straddle, which dropped it as definitely late, dated by its end)
    (
        "odi-period-past-the-request-beside-a-timely-day",
        lambda: odis(
            over(odi(42, "2025-06-25"), "2025-06-01", "2025-06-25"), odi(20, "2025-06-10")
        ),
        "LF-FUNCTIONAL-IMPAIRMENT",
        "not_documented",
    ),
    # starting after the request, it is surely late and left out: the timely 20 % decides
    (
        "odi-period-after-the-request-beside-a-timely-day",
        lambda: odis(
            over(odi(42, "2025-06-25"), "2025-06-21", "2025-06-25"), odi(20, "2025-06-10")
        ),
        "LF-FUNCTIONAL-IMPAIRMENT",
        "not_met",
    ),
]


@pytest.mark.parametrize("policy", VERSIONS)
@pytest.mark.parametrize(
    ("case", "clause", "expected"),
    [probe[1:] for probe in PROBES],
    ids=[probe[0] for probe in PROBES],
)
def test_a_period_orders_only_where_all_of_its_days_do(
    case: Case, clause: str, expected: str, policy: str, library: Library
) -> None:
    check_probe(case(), clause, expected, library, policy)


# --- FHIR: the diabetes history's HbA1c date -----------------------------------------------------


def _hba1c(rid: str, value: float, **when: Any) -> dict[str, Any]:
    found: dict[str, Any] = observation(
        rid,
        "4548-4",
        valueQuantity={"value": value, "unit": "%", "system": UCUM, "code": "%"},
        derivedFrom=[{"reference": "DocumentReference/doc-clinic-pain"}],
        **when,
    )
    return found


def _period(start: str, end: str) -> dict[str, Any]:
    return {"effectivePeriod": {"start": start, "end": end}}


@pytest.mark.parametrize(
    ("results", "date_written", "status"),
    [
        # reaching past the request: dated 2025-05-01 it met the clause and 2025.1 approved
        ([_hba1c("a", 7.0, **_period("2025-05-01", "2025-06-25"))], None, "not_documented"),
        # straddling the window's start (2025-03-22): it may be older than 90 days
        ([_hba1c("a", 7.0, **_period("2025-02-01", "2025-06-10"))], None, "not_documented"),
        # within one month: that month holds it, and the month is within the window
        ([_hba1c("a", 7.0, **_period("2025-05-02", "2025-05-20"))], "2025-05", "met"),
        ([_hba1c("a", 7.0, **_period("2025-05-20", "2025-05-20T16:00:00Z"))], "2025-05-20", "met"),
        # a month holding the other's day: either may be the latest (statements that disagree)
        (
            [
                _hba1c("a", 7.0, **_period("2025-05-02", "2025-05-28")),
                _hba1c("b", 9.5, effectiveDateTime="2025-05-20"),
            ],
            "2025-05",
            "not_documented",
        ),
    ],
    ids=["past-the-request", "straddling-the-window", "one-month", "one-day", "beside-a-day"],
)
def test_the_history_is_dated_by_what_holds_the_whole_period(
    results: list[dict[str, Any]], date_written: str | None, status: str, tmp_path: Path
) -> None:
    result = mapped(with_resources(*results, condition("t2dm", "E11.9")), tmp_path)
    diabetes = result.data["diabetes"]
    assert diabetes.get("hba1c_date") == date_written
    assert statuses(result)["LF-DIABETES"] == status
    # a period no date holds is said so, not silently dropped
    assert any(u.expression.endswith(".effectivePeriod") for u in result.unmapped) == (
        date_written is None
    )
