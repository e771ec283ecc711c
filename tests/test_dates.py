"""Tests for partial dates, month arithmetic and durations in evaluator.vocab.dates."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.vocab.dates import (
    DateError,
    Interval,
    PartialDate,
    add_months,
    days_between,
    months_between,
    parse_date,
    parse_duration,
    whole_months_between,
)

# No example database: property runs must not leave files in the repository.
PROPERTY = settings(database=None, max_examples=300)

D = date.fromisoformat


# --- parse_date ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "lo", "hi", "text"),
    [
        ("2025-06-15", "2025-06-15", "2025-06-15", "2025-06-15"),
        ("2024-12", "2024-12-01", "2024-12-31", "2024-12"),
        ("12/2024", "2024-12-01", "2024-12-31", "12/2024"),
        ("6/2025", "2025-06-01", "2025-06-30", "6/2025"),
        ("06/2025", "2025-06-01", "2025-06-30", "06/2025"),
        ("2024-02", "2024-02-01", "2024-02-29", "2024-02"),
        ("2025-02", "2025-02-01", "2025-02-28", "2025-02"),
        ("2024-02-29", "2024-02-29", "2024-02-29", "2024-02-29"),
        ("  2025-06-15 ", "2025-06-15", "2025-06-15", "2025-06-15"),
        (date(2025, 6, 15), "2025-06-15", "2025-06-15", "2025-06-15"),
    ],
    ids=[
        "exact",
        "iso-month",
        "slash-month",
        "slash-one-digit-month",
        "slash-padded-month",
        "leap-february",
        "common-february",
        "leap-day",
        "spaces",
        "date-object",
    ],
)
def test_parse_date(value: str | date, lo: str, hi: str, text: str) -> None:
    parsed = parse_date(value)
    assert parsed == PartialDate(D(lo), D(hi), text)
    assert parsed.exact == (lo == hi)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-02-30", 'impossible date "2025-02-30"'),
        ("2025-02-29", 'impossible date "2025-02-29"'),
        ("2025-13", 'impossible date "2025-13"'),
        ("2025-00", 'impossible date "2025-00"'),
        ("13/2024", 'impossible date "13/2024"'),
        ("2025-04-31", 'impossible date "2025-04-31"'),
        ("0000-01-01", 'impossible date "0000-01-01"'),
        ("Dec 2024", 'unrecognised date "Dec 2024" (use YYYY-MM-DD, YYYY-MM or MM/YYYY)'),
        ("06/15/2025", 'unrecognised date "06/15/2025" (use YYYY-MM-DD, YYYY-MM or MM/YYYY)'),
        ("2025-6-15", 'unrecognised date "2025-6-15" (use YYYY-MM-DD, YYYY-MM or MM/YYYY)'),
        ("2025/06/15", 'unrecognised date "2025/06/15" (use YYYY-MM-DD, YYYY-MM or MM/YYYY)'),
        ("2025", 'unrecognised date "2025" (use YYYY-MM-DD, YYYY-MM or MM/YYYY)'),
        ("", 'unrecognised date "" (use YYYY-MM-DD, YYYY-MM or MM/YYYY)'),
    ],
    ids=[
        "feb-30",
        "feb-29-common-year",
        "month-13",
        "month-0",
        "slash-month-13",
        "april-31",
        "year-0",
        "words",
        "us-day",
        "unpadded-iso",
        "slashed-iso",
        "year-only",
        "empty",
    ],
)
def test_parse_date_rejects(value: str, message: str) -> None:
    with pytest.raises(DateError) as info:
        parse_date(value)
    assert str(info.value) == message


def test_parse_date_rejects_datetime() -> None:
    with pytest.raises(DateError, match="not a date and time"):
        parse_date(datetime(2025, 6, 15, 9, 30))


def test_parse_date_rejects_non_string() -> None:
    with pytest.raises(DateError, match="unrecognised date 20250615"):
        parse_date(20250615)  # type: ignore[arg-type]


def test_date_error_is_a_value_error() -> None:
    assert issubclass(DateError, ValueError)


def test_partial_date_rejects_reversed_bounds() -> None:
    with pytest.raises(DateError):
        PartialDate(D("2025-06-02"), D("2025-06-01"), "x")


# --- calendar months -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        ("2024-01-31", 1, "2024-02-29"),
        ("2025-01-31", 1, "2025-02-28"),
        ("2024-01-31", 2, "2024-03-31"),
        ("2025-03-31", 1, "2025-04-30"),
        ("2024-12-15", 1, "2025-01-15"),
        ("2025-03-15", 3, "2025-06-15"),
        ("2025-03-15", 0, "2025-03-15"),
        ("2024-03-31", -1, "2024-02-29"),
        ("2025-01-31", -1, "2024-12-31"),
        ("2025-06-15", -18, "2023-12-15"),
        ("2024-02-29", 12, "2025-02-28"),
    ],
    ids=[
        "jan31-leap",
        "jan31-common",
        "clamp-does-not-stick",
        "to-30-day-month",
        "across-year",
        "three-months",
        "zero",
        "negative-clamped",
        "negative-across-year",
        "negative-many",
        "leap-day-plus-year",
    ],
)
def test_add_months(start: str, n: int, expected: str) -> None:
    assert add_months(D(start), n) == D(expected)


def test_add_months_out_of_range() -> None:
    with pytest.raises(DateError, match="out of range"):
        add_months(date(9999, 12, 1), 1)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("2025-03-15", "2025-06-15", 3),
        ("2025-03-16", "2025-06-15", 2),
        ("2025-03-14", "2025-06-15", 3),
        ("2025-06-15", "2025-06-15", 0),
        ("2025-06-15", "2025-06-14", -1),
        ("2025-06-15", "2025-03-15", -3),
        ("2025-06-15", "2025-03-14", -4),
        ("2024-01-31", "2024-02-29", 1),
        ("2024-01-31", "2024-02-28", 0),
        ("2024-12-31", "2025-06-15", 5),
        ("2024-12-01", "2025-06-15", 6),
    ],
    ids=[
        "exactly-3-inclusive-edge",
        "one-day-short-of-3",
        "one-day-over-3",
        "same-day",
        "one-day-back",
        "three-back",
        "three-back-and-a-day",
        "clamped-month-end-counts",
        "day-before-clamped-end",
        "last-of-dec-to-jun-15",
        "first-of-dec-to-jun-15",
    ],
)
def test_whole_months_between(a: str, b: str, expected: int) -> None:
    assert whole_months_between(D(a), D(b)) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("12/2024", "2025-06-15", Interval(5, 6)),
        ("2025-03-15", "2025-06-15", Interval(3, 3)),
        ("2025-03-16", "2025-06-15", Interval(2, 2)),
        ("2024-03", "2024-06-15", Interval(2, 3)),
        ("2024-03", "2024-06", Interval(2, 3)),
        ("2025-06-15", "2025-06", Interval(-1, 0)),
    ],
    ids=[
        "care-start-month-only",
        "exact-3",
        "exact-2",
        "straddles-3",
        "both-month-only",
        "same-month",
    ],
)
def test_months_between(a: str, b: str, expected: Interval) -> None:
    assert months_between(parse_date(a), parse_date(b)) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("2025-03-15", "2025-06-15", Interval(92, 92)),
        ("2025-06-15", "2025-03-15", Interval(-92, -92)),
        ("12/2024", "2025-06-15", Interval(166, 196)),
        ("2024-02", "2024-03-01", Interval(1, 29)),
        ("2025-06-15", "2025-06-15", Interval(0, 0)),
    ],
    ids=["exact", "reversed", "month-only-start", "leap-february", "same-day"],
)
def test_days_between(a: str, b: str, expected: Interval) -> None:
    assert days_between(parse_date(a), parse_date(b)) == expected


def test_interval_rejects_reversed_bounds() -> None:
    assert Interval(3, 3).lo == 3
    with pytest.raises(ValueError, match="above"):
        Interval(4, 3)


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "days"),
    [
        ("5 weeks 6 days", 41),
        ("6 weeks", 42),
        ("42 days", 42),
        ("1 week", 7),
        ("1 day", 1),
        ("0 days", 0),
        (" 6 Weeks ", 42),
        ("5 weeks, 6 days", 41),
        ("5 weeks and 6 days", 41),
        ("6 days 5 weeks", 41),
        ("2 wks", 14),
        ({"weeks": 5, "days": 6}, 41),
        ({"weeks": 6}, 42),
        ({"days": 42}, 42),
    ],
    ids=[
        "weeks-and-days",
        "weeks",
        "days",
        "one-week",
        "one-day",
        "zero",
        "case-and-spaces",
        "comma",
        "and",
        "days-first",
        "abbreviated",
        "mapping",
        "mapping-weeks",
        "mapping-days",
    ],
)
def test_parse_duration(value: str | Mapping[str, int], days: int) -> None:
    assert parse_duration(value) == days


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3 months", "not a fixed number of days"),
        ("1 month 2 weeks", "not a fixed number of days"),
        ("1 year", "not a fixed number of days"),
        ({"months": 3}, "not a fixed number of days"),
        ("about six weeks", 'unrecognised duration "about six weeks"'),
        ("6", 'unrecognised duration "6"'),
        ("", 'unrecognised duration ""'),
        ("-6 weeks", 'unrecognised duration "-6 weeks"'),
        ("1.5 weeks", 'unrecognised duration "1.5 weeks"'),
        ("6 fortnights", 'unrecognised duration "6 fortnights"'),
        ("6 weeks 2 weeks", "states weeks twice"),
        ({}, "empty duration"),
        ({"fortnights": 1}, 'unrecognised duration part "fortnights"'),
        ({"weeks": True}, 'unrecognised duration part "weeks"'),
        ({"weeks": "5"}, 'unrecognised duration part "weeks"'),
        ({"weeks": -1}, 'negative duration part "weeks"'),
    ],
    ids=[
        "months",
        "months-mixed",
        "years",
        "mapping-months",
        "words",
        "no-unit",
        "empty",
        "negative",
        "fraction",
        "unknown-unit",
        "unit-twice",
        "empty-mapping",
        "mapping-unknown-unit",
        "mapping-bool",
        "mapping-string",
        "mapping-negative",
    ],
)
def test_parse_duration_rejects(value: str | Mapping[str, object], message: str) -> None:
    with pytest.raises(DateError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert message in str(info.value)


# --- properties ------------------------------------------------------------------------------

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
months = st.tuples(st.integers(1900, 2100), st.integers(1, 12))


def month_partial(ym: tuple[int, int]) -> PartialDate:
    return parse_date(f"{ym[0]:04d}-{ym[1]:02d}")


@PROPERTY
@given(dates, dates)
def test_whole_months_is_the_largest_fitting_count(a: date, b: date) -> None:
    m = whole_months_between(a, b)
    assert add_months(a, m) <= b < add_months(a, m + 1)


@PROPERTY
@given(dates, st.integers(-1200, 1200))
def test_whole_months_inverts_add_months(a: date, n: int) -> None:
    assert whole_months_between(a, add_months(a, n)) == n


@PROPERTY
@given(dates, st.integers(-1200, 1200))
def test_add_months_lands_in_the_right_month_clamped(a: date, n: int) -> None:
    result = add_months(a, n)
    total = a.year * 12 + a.month - 1 + n
    assert (result.year, result.month) == (total // 12, total % 12 + 1)
    assert result.day == min(a.day, calendar.monthrange(result.year, result.month)[1])


@PROPERTY
@given(dates, dates)
def test_days_between_exact_dates_is_the_day_difference(a: date, b: date) -> None:
    assert days_between(parse_date(a), parse_date(b)) == Interval((b - a).days, (b - a).days)


@PROPERTY
@given(dates, dates)
def test_months_between_exact_dates_is_whole_months(a: date, b: date) -> None:
    m = whole_months_between(a, b)
    assert months_between(parse_date(a.isoformat()), parse_date(b)) == Interval(m, m)


@PROPERTY
@given(months, dates, st.integers(0, 30))
def test_month_only_bounds_contain_every_day_of_the_month(
    ym: tuple[int, int], b: date, offset: int
) -> None:
    a = month_partial(ym)
    day = min(a.lo + timedelta(days=offset), a.hi)
    months_iv, days_iv = months_between(a, parse_date(b)), days_between(a, parse_date(b))
    assert months_iv.lo <= whole_months_between(day, b) <= months_iv.hi
    assert days_iv.lo <= (b - day).days <= days_iv.hi
    # The bounds are attained: the first and last day of the month give them.
    assert {whole_months_between(a.lo, b), whole_months_between(a.hi, b)} == {
        months_iv.lo,
        months_iv.hi,
    }


@PROPERTY
@given(months)
def test_month_forms_agree_and_cover_the_whole_month(ym: tuple[int, int]) -> None:
    year, month = ym
    iso = month_partial(ym)
    for text in (f"{month}/{year}", f"{month:02d}/{year}"):
        slash = parse_date(text)
        assert (slash.lo, slash.hi) == (iso.lo, iso.hi)
    assert iso.lo == date(year, month, 1)
    assert (iso.hi + timedelta(days=1)).day == 1
    assert not iso.exact


@PROPERTY
@given(dates)
def test_exact_date_round_trips(d: date) -> None:
    parsed = parse_date(d.isoformat())
    assert parsed.exact
    assert parsed.lo == d


@PROPERTY
@given(st.integers(0, 520), st.integers(0, 6))
def test_duration_text_and_mapping_agree(weeks: int, days: int) -> None:
    expected = 7 * weeks + days
    assert parse_duration(f"{weeks} weeks {days} days") == expected
    assert parse_duration({"weeks": weeks, "days": days}) == expected
