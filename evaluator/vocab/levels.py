"""The spinal-level vocabulary: levels, motion segments and ranges, parsed and rendered in order."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

LEVELS: tuple[str, ...] = (
    *(f"C{n}" for n in range(1, 8)),
    *(f"T{n}" for n in range(1, 13)),
    *(f"L{n}" for n in range(1, 6)),
    *(f"S{n}" for n in range(1, 6)),
)

_INDEX: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}

# Two level tokens joined by a hyphen; the second may be bare digits ("L3-4"), borrowing the
# first's region letter. Anything looser (en dashes, "to") is left to the input schemas.
_PAIR = re.compile(r"\s*([A-Za-z]\d+)\s*-\s*([A-Za-z]?\d+)\s*", re.ASCII)


class LevelError(ValueError):
    """A spinal level, segment or range that is not in the vocabulary or is malformed."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.message = message
        self.text = text


@dataclass(frozen=True, order=True)
class Level:
    """One vertebral level; ``index`` is its position in cranial-to-caudal order."""

    index: int
    name: str

    def __post_init__(self) -> None:
        # Guards against hand-built levels whose index and name disagree, which would break order.
        if not (0 <= self.index < len(LEVELS)) or LEVELS[self.index] != self.name:
            raise LevelError(f'level index {self.index} does not name "{self.name}"', self.name)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, order=True)
class Segment:
    """A motion segment: two adjacent levels, the upper (cranial) one first."""

    upper: Level
    lower: Level

    def __post_init__(self) -> None:
        if self.lower.index != self.upper.index + 1:
            raise LevelError(
                f'"{self.upper.name}-{self.lower.name}" is not a motion segment '
                "(a segment joins two adjacent levels)",
                f"{self.upper.name}-{self.lower.name}",
            )

    @property
    def name(self) -> str:
        """The segment as written in reports, e.g. ``"L3-L4"``."""
        return f"{self.upper.name}-{self.lower.name}"

    def __str__(self) -> str:
        return self.name


def _level_at(index: int) -> Level:
    return Level(index, LEVELS[index])


def parse_level(text: str) -> Level:
    """Return the level named by ``text`` (case-insensitive, surrounding spaces ignored).

    Raises ``LevelError`` for anything outside C1-S5, including transitional anatomy (L6, T13).
    """
    name = text.strip().upper()
    index = _INDEX.get(name)
    if index is None:
        raise LevelError(f'unknown spinal level "{text.strip()}"', text)
    return _level_at(index)


def _parse_pair(text: str, what: str) -> tuple[Level, Level]:
    """Return the two levels of ``"X-Y"`` (or shorthand ``"L3-4"``), upper strictly above lower."""
    match = _PAIR.fullmatch(text)
    if match is None:
        try:
            single = parse_level(text)
        except LevelError:
            raise LevelError(
                f'unrecognised {what} "{text.strip()}" (write it like "L4-L5" or "L4-5")', text
            ) from None
        raise LevelError(
            f'"{single.name}" is a single level; a {what} needs two levels, e.g. "L4-L5"', text
        )
    first, second = match.group(1), match.group(2)
    if second.isdigit():
        second = first[0] + second
    try:
        upper, lower = parse_level(first), parse_level(second)
    except LevelError as error:
        raise LevelError(f'{error.message} in {what} "{text.strip()}"', text) from None
    if upper.index == lower.index:
        raise LevelError(
            f'"{text.strip()}" names {upper.name} twice; a {what} needs two different levels', text
        )
    if upper.index > lower.index:
        raise LevelError(
            f'"{text.strip()}" runs caudal to cranial; write the upper level first '
            f'("{lower.name}-{upper.name}")',
            text,
        )
    return upper, lower


def parse_segment(text: str) -> Segment:
    """Return the motion segment named by ``text``: ``"L3-L4"``, ``"L3-4"`` or ``"L5-S1"``.

    Raises ``LevelError`` for unknown levels, reversed order, or non-adjacent levels (a range).
    """
    upper, lower = _parse_pair(text, "motion segment")
    if lower.index != upper.index + 1:
        raise LevelError(
            f'"{text.strip()}" is a range, not a motion segment '
            "(a segment joins two adjacent levels; expand the range instead)",
            text,
        )
    return Segment(upper, lower)


def levels_of_range(text: str) -> tuple[Level, ...]:
    """Return every level from the range's upper level to its lower level, inclusive.

    Raises ``LevelError`` for unknown levels, a single level, or a range written caudal first.
    """
    upper, lower = _parse_pair(text, "range")
    return tuple(_level_at(i) for i in range(upper.index, lower.index + 1))


def expand_range(text: str) -> tuple[Segment, ...]:
    """Return the motion segments a range spans: ``"T12-S2"`` -> T12-L1, L1-L2, ... S1-S2.

    Raises ``LevelError`` for unknown levels, a single level, or a range written caudal first.
    """
    levels = levels_of_range(text)
    return tuple(Segment(a, b) for a, b in pairwise(levels))


def _runs(indices: Iterable[int]) -> list[tuple[int, int]]:
    """Return maximal runs of consecutive integers, sorted and de-duplicated, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(indices)):
        if runs and runs[-1][1] + 1 == i:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _coerce_segments(segments: Iterable[Segment | str]) -> Sequence[Segment]:
    return [s if isinstance(s, Segment) else parse_segment(s) for s in segments]


def format_segments(segments: Iterable[Segment | str]) -> str:
    """Return the segments as sorted ranges: {L3-L4, L4-L5, L5-S1} -> ``"L3-S1"``; none -> ``""``.

    Contiguous segments (each starting where the last ended) collapse into one range; separate
    runs are joined with ", ". Raises ``LevelError`` for a string that is not a motion segment.
    """
    # A segment is identified by its upper level, so runs of upper indices are runs of segments.
    runs = _runs(s.upper.index for s in _coerce_segments(segments))
    return ", ".join(f"{LEVELS[first]}-{LEVELS[last + 1]}" for first, last in runs)


def format_levels(levels: Iterable[Level | str]) -> str:
    """Return the levels as sorted ranges: {L1, L2, L3} -> ``"L1-L3"``, {L4} -> ``"L4"``.

    Raises ``LevelError`` for a string that is not a level.
    """
    indices = (lv.index if isinstance(lv, Level) else parse_level(lv).index for lv in levels)
    return ", ".join(
        LEVELS[first] if first == last else f"{LEVELS[first]}-{LEVELS[last]}"
        for first, last in _runs(indices)
    )
