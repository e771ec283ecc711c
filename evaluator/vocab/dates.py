"""Partial dates as day intervals, calendar-month arithmetic, and durations in days."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

_DATE_FORMS = "use YYYY-MM-DD, YYYY-MM or MM/YYYY"
_ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_ISO_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)
_SLASH_MONTH = re.compile(r"(\d{1,2})/(\d{4})", re.ASCII)

_DAYS_PER_UNIT = {"week": 7, "weeks": 7, "wk": 7, "wks": 7, "day": 1, "days": 1}
# Calendar units have no fixed length in days, so a duration stated in them cannot be an integer
# number of days; the caller should state dates instead (which month arithmetic handles).
_CALENDAR_UNITS = frozenset({"month", "months", "mo", "mos", "year", "years", "yr", "yrs"})
_DURATION_PART = re.compile(r"(\d+)\s*([a-z]+)", re.ASCII)
_DURATION_FORMS = 'use e.g. "6 weeks", "42 days" or "5 weeks 6 days"'


class DateError(ValueError):
    """A date or duration that is malformed, impossible, or stated in an unusable unit."""

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.text = text


@dataclass(frozen=True)
class PartialDate:
    """A date known to lie in ``lo..hi`` (inclusive); exact dates have ``lo == hi``."""

    lo: date
    hi: date
    text: str

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise DateError(f'date "{self.text}" has lo {self.lo} after hi {self.hi}', self.text)

    @property
    def exact(self) -> bool:
        """True when the date is known to the day."""
        return self.lo == self.hi


@dataclass(frozen=True)
class Interval:
    """An inclusive integer range ``lo..hi`` (days or whole months); exact when ``lo == hi``."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"interval lo {self.lo} is above hi {self.hi}")


def _day(year: int, month: int, day: int, text: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise DateError(f'impossible date "{text}"', text) from None


def _month(year: int, month: int, text: str) -> PartialDate:
    first = _day(year, month, 1, text)
    return PartialDate(first, first.replace(day=calendar.monthrange(year, month)[1]), text)


def parse_date(value: str | date) -> PartialDate:
    """Return the day interval a date covers: one day, or a whole month for "2024-12" / "12/2024".

    Accepts a ``datetime.date`` as an exact date. Raises ``DateError`` for a ``datetime`` (a time
    of day is not a date), an unrecognised form, or an impossible date ("2025-02-30", "2025-13").
    """
    # datetime subclasses date; accepting it would silently drop the time and the time zone.
    if isinstance(value, datetime):
        raise DateError(f'expected a date, not a date and time "{value.isoformat()}"', str(value))
    if isinstance(value, date):
        return PartialDate(value, value, value.isoformat())
    if not isinstance(value, str):
        raise DateError(f"unrecognised date {value!r} ({_DATE_FORMS})", repr(value))
    text = value.strip()
    if match := _ISO_DAY.fullmatch(text):
        day = _day(int(match[1]), int(match[2]), int(match[3]), text)
        return PartialDate(day, day, text)
    if match := _ISO_MONTH.fullmatch(text):
        return _month(int(match[1]), int(match[2]), text)
    if match := _SLASH_MONTH.fullmatch(text):
        return _month(int(match[2]), int(match[1]), text)
    raise DateError(f'unrecognised date "{text}" ({_DATE_FORMS})', text)


# An instant known only to lie within a period: "START..END", either end left out when open
# ("START..", "..END"). No case writes one; the facts of an observation over a period read its
# instant so (case.schema.json x-bounds-instant), and only `parse_instant` reads it.
_UNTIL = ".."


def within(start: str | None, end: str | None) -> str:
    """Return the text of an instant within the period ``start``..``end`` (None: open)."""
    return f"{start or ''}{_UNTIL}{end or ''}"


def instant_text(value: str) -> str:
    """Return a date as a reader is told it: a day or month as written; an instant within a
    period in words ("a day from 2025-05-01 to 2025-06-10", "a day up to 2025-06-10", "a day
    since 2025-05-01"), since "..2025-06-10" tells a physician nothing (plain language)."""
    if _UNTIL not in value:
        return value
    start, _, end = value.partition(_UNTIL)
    if start and end:
        return f"a day from {start} to {end}"
    return f"a day up to {end}" if end else f"a day since {start}"


def parse_instant(value: str | date) -> PartialDate:
    """Return what `parse_date` does, or for an instant within a period (`within`) the days
    from its start's first to its end's last; an open end leaves every day that side possible,
    so no order against a day past the start (before the end) is ever known.

    Raises ``DateError`` as `parse_date` does, and for a period ending before it starts.
    """
    if not isinstance(value, str) or _UNTIL not in value:
        return parse_date(value)
    text = value.strip()
    first, _, last = text.partition(_UNTIL)
    if not first and not last:
        raise DateError(f'a period with neither start nor end "{text}"', text)
    lo = parse_date(first).lo if first else date.min
    hi = parse_date(last).hi if last else date.max
    if hi < lo:
        raise DateError(f'period "{text}" ends before it starts', text)
    return PartialDate(lo, hi, text)


def add_months(d: date, n: int) -> date:
    """Return ``d`` moved by ``n`` calendar months (``n`` may be negative), clamped to month end.

    Jan 31 + 1 month is Feb 29 in a leap year, else Feb 28. Raises ``DateError`` if the result
    falls outside the years 1-9999.
    """
    year, month0 = divmod(d.year * 12 + d.month - 1 + n, 12)
    if not date.min.year <= year <= date.max.year:
        raise DateError(f"{d.isoformat()} plus {n} months is out of range", d.isoformat())
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(d.day, last))


def whole_months_between(a: date, b: date) -> int:
    """Return the largest ``m`` with ``add_months(a, m) <= b`` (negative when ``b`` precedes ``a``).

    So 2025-03-15 to 2025-06-15 is 3 months and 2025-03-16 to 2025-06-15 is 2.
    """
    # add_months(a, m) lands in a distinct month for each m, so it is strictly increasing in m.
    # The candidate landing in b's own month is the answer unless its (clamped) day is past b's,
    # in which case the month before is: it lies in an earlier month, so is certainly <= b.
    m = (b.year - a.year) * 12 + (b.month - a.month)
    return m if add_months(a, m) <= b else m - 1


def months_to_reach(a: date, b: date) -> int:
    """Return the smallest ``m`` with ``add_months(a, m) >= b``: whole months rounded up.

    "Ended within 12 months before the request" means ``add_months(end, 12) >= request``,
    which is ``months_to_reach(end, request) <= 12``; rounding down would let 12 months and
    a day pass.
    """
    m = whole_months_between(a, b)
    return m if add_months(a, m) == b else m + 1


# Days in a month position: more than any month has, so positions of different months never meet.
MONTH_SLOTS = 32


def month_position(day: date, *, as_end: bool = False) -> int:
    """Return ``32 * month number + day of month``: whole months become a difference of two.

    ``whole_months_between(a, b) >= n`` exactly when ``position(b, as_end=True) - position(a)
    >= 32 * n``, and ``months_to_reach(a, b) <= n`` exactly when ``position(b) - position(a) <=
    32 * n``: the day of month differs by at most 30, less than one month's 32. ``as_end``
    counts the last day of a month as day 31, since a month added to the 31st lands on the last
    day of a shorter month (``add_months`` clamps).
    """
    last = calendar.monthrange(day.year, day.month)[1]
    mday = 31 if as_end and day.day == last else day.day
    return MONTH_SLOTS * (day.year * 12 + day.month - 1) + mday


def days_between(a: PartialDate, b: PartialDate) -> Interval:
    """Return the bounds on ``b - a`` in days (end minus start) over every day each may be."""
    return Interval((b.lo - a.hi).days, (b.hi - a.lo).days)


def months_between(a: PartialDate, b: PartialDate) -> Interval:
    """Return the bounds on whole calendar months from ``a`` to ``b`` over every day each may be."""
    # whole_months_between falls as its start rises and rises with its end, so the extremes are
    # at the interval corners.
    return Interval(whole_months_between(a.hi, b.lo), whole_months_between(a.lo, b.hi))


def months_to_reach_between(a: PartialDate, b: PartialDate) -> Interval:
    """Return the bounds on `months_to_reach` from ``a`` to ``b`` over every day each may be."""
    return Interval(months_to_reach(a.hi, b.lo), months_to_reach(a.lo, b.hi))


def _duration_from_mapping(value: Mapping[str, int]) -> int:
    if not value:
        raise DateError(f"empty duration ({_DURATION_FORMS})", "{}")
    total = 0
    for unit, amount in value.items():
        if unit in _CALENDAR_UNITS:
            raise DateError(
                f'duration uses "{unit}", but months and years are not a fixed number of days '
                "(use weeks or days, or give start and end dates)",
                repr(dict(value)),
            )
        # bool is an int subclass; True weeks is a data error, not one week.
        if unit not in ("weeks", "days") or isinstance(amount, bool) or not isinstance(amount, int):
            raise DateError(f'unrecognised duration part "{unit}": {amount!r}', repr(dict(value)))
        if amount < 0:
            raise DateError(f'negative duration part "{unit}": {amount}', repr(dict(value)))
        total += amount * _DAYS_PER_UNIT[unit]
    return _plausible_days(total, repr(dict(value)))


# A documented duration longer than a lifetime is a typo; checking it also keeps int() from
# meeting a number of thousands of digits.
MAX_DURATION_DAYS = 36_525 * 2


def _plausible_days(days: int, text: str) -> int:
    if days > MAX_DURATION_DAYS:
        raise DateError(f"duration {text} is longer than {MAX_DURATION_DAYS} days", text)
    return days


def parse_duration(value: str | Mapping[str, int]) -> int:
    """Return a documented duration in days: "5 weeks 6 days" or {"weeks": 5, "days": 6} -> 41.

    Raises ``DateError`` for months or years (not a fixed number of days), a unit given twice,
    or anything else unrecognised.
    """
    if isinstance(value, Mapping):
        return _duration_from_mapping(value)
    if not isinstance(value, str):
        raise DateError(f"unrecognised duration {value!r} ({_DURATION_FORMS})", repr(value))
    text = value.strip()
    # Separators between parts carry no meaning: "5 weeks, 6 days", "5 weeks and 6 days".
    rest = re.sub(r"\s*(,|\band\b)\s*", " ", text.lower())
    parts = _DURATION_PART.findall(rest)
    if not parts or _DURATION_PART.sub("", rest).strip():
        raise DateError(f'unrecognised duration "{text}" ({_DURATION_FORMS})', text)
    total = 0
    seen: set[int] = set()
    for amount, unit in parts:
        if unit in _CALENDAR_UNITS:
            raise DateError(
                f'duration "{text}" uses {unit}, but months and years are not a fixed number of '
                "days (use weeks or days, or give start and end dates)",
                text,
            )
        per_unit = _DAYS_PER_UNIT.get(unit)
        if per_unit is None:
            raise DateError(f'unrecognised duration "{text}" ({_DURATION_FORMS})', text)
        if per_unit in seen:
            raise DateError(f'duration "{text}" states {unit} twice', text)
        seen.add(per_unit)
        if len(amount) > len(str(MAX_DURATION_DAYS)):
            return _plausible_days(MAX_DURATION_DAYS + 1, f'"{text[:40]}"')
        total += int(amount) * per_unit
    return _plausible_days(total, f'"{text}"')
