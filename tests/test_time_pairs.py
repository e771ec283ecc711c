"""A time comparison between two dates is unknown, never false, when either date is absent.

Stop 24 (s24b-flex): with one rule layout of lumbar-fusion 2026.1, LF-DIABETES's "no diabetes
history with an HbA1c dated after the coded one" (history.hba1c_date after a1c.effective, two
bound facts compared through their pair fact) derived both false and unknown for a history with
no HbA1c date: an engine error on a lint-clean policy that came and went with unrelated rules.
The engine may match a field test whose field is absent, so each outcome must itself require
both dates; s24b-cotinine had fixed this for two dates of one fact only.
"""

from __future__ import annotations

from typing import Any

import pytest

from evaluator.compile import comparisons
from evaluator.compile.program import AllOf, Present, Test
from evaluator.errors import Collector, Location
from evaluator.language.conditions import Compare, parse_condition
from evaluator.language.dictionary import FieldInfo

DATE = FieldInfo("hba1c_date", "date")


def leaf(data: dict[str, Any]) -> Compare:
    parsed = parse_condition(data, "/requires", {})
    assert isinstance(parsed, Compare)
    return parsed


def required(test: Test) -> set[str]:
    """The fields a test requires present on every way it can match."""
    if isinstance(test, Present):
        return {test.field}
    if isinstance(test, AllOf):
        return set().union(*(required(t) for t in test.tests))
    return set()


@pytest.mark.parametrize(
    ("op", "pair"),
    [("after", True), ("before", True), ("within", True), ("after", False)],
    ids=["pair-after", "pair-before", "pair-within", "one-fact-after"],
)
def test_each_outcome_needs_both_dates(op: str, pair: bool) -> None:
    of = "a1c.effective" if pair else "history.quit_date"
    compare = leaf(
        {"fact": "history", "field": "hba1c_date", op: {"value": 1, "unit": "days"}, "of": of}
    )
    problems = Collector()
    outcomes = comparisons.lower(compare, DATE, (), problems, lambda _p: Location(), pair=pair)
    assert not problems
    both = set(comparisons.time_fields(compare, pair).present())
    assert len(both) == 2
    assert both <= required(outcomes.true)
    assert both <= required(outcomes.false)
