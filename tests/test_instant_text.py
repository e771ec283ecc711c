"""How a finding tells the date of a result observed over a period (stop 26 review).

Since stop 26 such a result's date is the period's days, written "START..END" in the facts
(case.schema.json x-bounds-instant). The finding printed it as written: "The Oswestry Disability
Index recorded on ..2025-06-10 is 20%", which tells a physician nothing (the notice's plain
language) and reads as a day. A date is now told in words wherever a finding shows one.
"""

from __future__ import annotations

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library
from evaluator.vocab.dates import instant_text, within
from tests.reviewing import VERSIONS
from tests.test_review_s25 import odi, odis


@pytest.mark.parametrize(
    ("start", "end", "told"),
    [
        ("2025-05-01", "2025-06-10", "a day from 2025-05-01 to 2025-06-10"),
        (None, "2025-06-10", "a day up to 2025-06-10"),
        ("2025-05", None, "a day since 2025-05"),
    ],
)
def test_an_instant_within_a_period_is_told_in_words(
    start: str | None, end: str | None, told: str
) -> None:
    assert instant_text(within(start, end)) == told


@pytest.mark.parametrize("written", ["2025-06-10", "2025-06", "06/2025"])
def test_a_day_or_month_is_told_as_written(written: str) -> None:
    assert instant_text(written) == written


@pytest.mark.parametrize(
    ("start", "end", "told"),
    [
        (None, "2025-06-10", "recorded on a day up to 2025-06-10 is 20%"),
        ("2025-05-01", "2025-06-10", "recorded on a day from 2025-05-01 to 2025-06-10 is 20%"),
    ],
)
def test_the_finding_tells_the_period_of_a_low_odi(
    start: str | None, end: str | None, told: str, library: Library
) -> None:
    result = odi(20, "2025-06-10")
    del result["effective"]
    result["effective_period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    case = case_from_data(odis(result), "review.json")
    decision = api.evaluate(case, api.select_policy(case, VERSIONS[0], library))
    (clause,) = (c for c in decision.clauses if c.id == "LF-FUNCTIONAL-IMPAIRMENT")
    assert clause.status.value == "not_met"
    assert clause.finding is not None
    finding = " ".join(clause.finding.split())
    assert told in finding
    assert ".." not in finding
