"""Tests for the spinal-level vocabulary in evaluator.vocab.levels."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.vocab.levels import (
    LEVELS,
    Level,
    LevelError,
    Segment,
    expand_range,
    format_levels,
    format_segments,
    levels_of_range,
    parse_level,
    parse_segment,
)

# No example database: property runs must not leave files in the repository.
PROPERTY = settings(database=None, max_examples=200)


def names(items: tuple[Level, ...] | tuple[Segment, ...]) -> list[str]:
    return [item.name for item in items]


def test_levels_vocabulary_in_cranial_to_caudal_order() -> None:
    assert len(LEVELS) == 7 + 12 + 5 + 5
    assert LEVELS[:2] == ("C1", "C2")
    assert LEVELS[6:8] == ("C7", "T1")
    assert LEVELS[18:20] == ("T12", "L1")
    assert LEVELS[23:25] == ("L5", "S1")
    assert LEVELS[-1] == "S5"
    assert len(set(LEVELS)) == len(LEVELS)


@pytest.mark.parametrize(
    ("text", "name", "index"),
    [
        ("L4", "L4", 22),
        ("l4", "L4", 22),
        ("  s1 ", "S1", 24),
        ("C1", "C1", 0),
        ("t12", "T12", 18),
        ("S5", "S5", 28),
    ],
    ids=["upper", "lower-case", "spaces", "first", "two-digit", "last"],
)
def test_parse_level(text: str, name: str, index: int) -> None:
    level = parse_level(text)
    assert (level.name, level.index) == (name, index)
    assert str(level) == name


@pytest.mark.parametrize(
    "text",
    ["L6", "T13", "S6", "C8", "C0", "L04", "X1", "L", "", "L 4", "L4-L5"],
    ids=[
        "L6",
        "T13",
        "S6",
        "C8",
        "C0",
        "leading-zero",
        "region",
        "no-number",
        "empty",
        "inner-space",
        "segment",
    ],
)
def test_parse_level_rejects(text: str) -> None:
    with pytest.raises(LevelError) as info:
        parse_level(text)
    assert str(info.value) == f'unknown spinal level "{text.strip()}"'
    assert info.value.text == text


def test_level_error_is_a_value_error() -> None:
    assert issubclass(LevelError, ValueError)


def test_levels_order_by_index_not_name() -> None:
    # Alphabetically "L1" < "T12"; anatomically T12 is above L1.
    assert parse_level("T12") < parse_level("L1") < parse_level("L5") < parse_level("S1")
    assert sorted([parse_level("S1"), parse_level("C3"), parse_level("L2")]) == [
        parse_level("C3"),
        parse_level("L2"),
        parse_level("S1"),
    ]


def test_level_with_mismatched_index_is_rejected() -> None:
    with pytest.raises(LevelError):
        Level(0, "L4")


def test_segment_of_non_adjacent_levels_is_rejected() -> None:
    with pytest.raises(LevelError, match="adjacent"):
        Segment(parse_level("L3"), parse_level("L5"))


@pytest.mark.parametrize(
    ("text", "upper", "lower"),
    [
        ("L3-L4", "L3", "L4"),
        ("L3-4", "L3", "L4"),
        ("l3-l4", "L3", "L4"),
        (" L3 - L4 ", "L3", "L4"),
        ("L5-S1", "L5", "S1"),
        ("T12-L1", "T12", "L1"),
        ("C7-T1", "C7", "T1"),
        ("T9-10", "T9", "T10"),
    ],
    ids=[
        "full",
        "shorthand",
        "lower-case",
        "spaces",
        "lumbosacral",
        "thoracolumbar",
        "cervicothoracic",
        "shorthand-two-digit",
    ],
)
def test_parse_segment(text: str, upper: str, lower: str) -> None:
    segment = parse_segment(text)
    assert (segment.upper.name, segment.lower.name) == (upper, lower)
    assert segment.name == str(segment) == f"{upper}-{lower}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("L3-L5", '"L3-L5" is a range, not a motion segment'),
        ("L4-L3", '"L4-L3" runs caudal to cranial'),
        ("L4-L4", '"L4-L4" names L4 twice'),
        ("L5-6", 'unknown spinal level "L6" in motion segment "L5-6"'),
        ("L4", '"L4" is a single level'),
        ("L4/L5", 'unrecognised motion segment "L4/L5"'),
        ("", 'unrecognised motion segment ""'),
    ],
    ids=["range", "reversed", "same-level", "shorthand-L6", "single", "slash", "empty"],
)
def test_parse_segment_rejects(text: str, message: str) -> None:
    with pytest.raises(LevelError) as info:
        parse_segment(text)
    assert str(info.value).startswith(message)
    assert info.value.text == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("T12-S2", ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1", "S1-S2"]),
        ("L4-L5", ["L4-L5"]),
        ("L4-5", ["L4-L5"]),
        ("L3-5", ["L3-L4", "L4-L5"]),
        ("C6-T2", ["C6-C7", "C7-T1", "T1-T2"]),
        ("T11-L2", ["T11-T12", "T12-L1", "L1-L2"]),
        ("L4-S1", ["L4-L5", "L5-S1"]),
        ("C1-S5", [f"{a}-{b}" for a, b in pairwise(LEVELS)]),
    ],
    ids=[
        "founding-case",
        "one-segment",
        "shorthand",
        "shorthand-two",
        "across-C7-T1",
        "across-T12-L1",
        "across-L5-S1",
        "whole-spine",
    ],
)
def test_expand_range(text: str, expected: list[str]) -> None:
    assert names(expand_range(text)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("S1-L3", '"S1-L3" runs caudal to cranial; write the upper level first ("L3-S1")'),
        ("L4", '"L4" is a single level; a range needs two levels'),
        ("L4-L4", '"L4-L4" names L4 twice'),
        ("L4-L6", 'unknown spinal level "L6" in range "L4-L6"'),
        ("T13-L2", 'unknown spinal level "T13" in range "T13-L2"'),
        ("L4 to L5", 'unrecognised range "L4 to L5"'),
        ("L6", 'unrecognised range "L6"'),
    ],
    ids=["reversed", "single-level", "same-level", "L6", "T13", "words", "single-unknown"],
)
def test_expand_range_rejects(text: str, message: str) -> None:
    with pytest.raises(LevelError) as info:
        expand_range(text)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("L1-L3", ["L1", "L2", "L3"]),
        ("L5-S1", ["L5", "S1"]),
        ("L3-5", ["L3", "L4", "L5"]),
        ("T11-L1", ["T11", "T12", "L1"]),
    ],
    ids=["lumbar", "lumbosacral", "shorthand", "thoracolumbar"],
)
def test_levels_of_range(text: str, expected: list[str]) -> None:
    assert names(levels_of_range(text)) == expected


def test_levels_of_range_rejects_single_level() -> None:
    with pytest.raises(LevelError, match="single level"):
        levels_of_range("L4")


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (["L3-L4", "L4-L5", "L5-S1"], "L3-S1"),
        (["T12-L1", "L1-L2", "L4-L5"], "T12-L2, L4-L5"),
        (["L4-L5"], "L4-L5"),
        ([], ""),
        (["L5-S1", "L3-L4", "L4-L5", "L4-5"], "L3-S1"),
        (["C7-T1", "L5-S1"], "C7-T1, L5-S1"),
    ],
    ids=["contiguous", "two-runs", "single", "empty", "unsorted-duplicates", "separate"],
)
def test_format_segments(segments: list[str], expected: str) -> None:
    assert format_segments(segments) == expected


def test_format_segments_accepts_segment_objects() -> None:
    assert format_segments([*expand_range("L1-L3"), parse_segment("L3-L4")]) == "L1-L4"


def test_format_segments_rejects_a_range() -> None:
    with pytest.raises(LevelError, match="range, not a motion segment"):
        format_segments(["L3-L5"])


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        (["L1", "L2", "L3"], "L1-L3"),
        (["L4"], "L4"),
        ([], ""),
        (["S1", "l5", "L5", "T12", "L2"], "T12, L2, L5-S1"),
        (["C7", "T1"], "C7-T1"),
    ],
    ids=["run", "single", "empty", "unsorted-duplicates", "two-levels"],
)
def test_format_levels(levels: list[str], expected: str) -> None:
    assert format_levels(levels) == expected


def test_format_levels_accepts_level_objects() -> None:
    assert format_levels(levels_of_range("T11-L1")) == "T11-L1"


def test_format_levels_rejects_unknown_level() -> None:
    with pytest.raises(LevelError, match='unknown spinal level "L6"'):
        format_levels(["L5", "L6"])


# --- properties ------------------------------------------------------------------------------

index_pairs = st.tuples(st.integers(0, len(LEVELS) - 1), st.integers(0, len(LEVELS) - 1)).filter(
    lambda pair: pair[0] < pair[1]
)


@PROPERTY
@given(index_pairs, st.booleans())
def test_expand_then_format_gives_the_canonical_range(pair: tuple[int, int], short: bool) -> None:
    upper, lower = LEVELS[pair[0]], LEVELS[pair[1]]
    canonical = f"{upper}-{lower}"
    # Shorthand only exists within one region ("L3-5"); across regions the letter is needed.
    written = f"{upper}-{lower[1:]}" if short and upper[0] == lower[0] else canonical
    segments = expand_range(written)
    assert format_segments(segments) == canonical
    assert format_levels(levels_of_range(written)) == canonical
    assert len(segments) == pair[1] - pair[0]
    assert all(a.lower == b.upper for a, b in pairwise(segments))


@PROPERTY
@given(index_pairs)
def test_reversed_range_is_rejected(pair: tuple[int, int]) -> None:
    with pytest.raises(LevelError, match="caudal to cranial"):
        expand_range(f"{LEVELS[pair[1]]}-{LEVELS[pair[0]]}")


@PROPERTY
@given(st.sets(st.integers(0, len(LEVELS) - 2)))
def test_format_segments_round_trips(uppers: set[int]) -> None:
    segments = [Segment(Level(i, LEVELS[i]), Level(i + 1, LEVELS[i + 1])) for i in uppers]
    text = format_segments(segments)
    parts = text.split(", ") if text else []
    back = [s for part in parts for s in expand_range(part)]
    assert back == sorted(segments)


@PROPERTY
@given(st.sets(st.integers(0, len(LEVELS) - 1)))
def test_format_levels_round_trips(indices: set[int]) -> None:
    text = format_levels(LEVELS[i] for i in indices)
    parts = text.split(", ") if text else []
    back = [
        lv
        for part in parts
        for lv in (levels_of_range(part) if "-" in part else (parse_level(part),))
    ]
    assert [lv.index for lv in back] == sorted(indices)


@PROPERTY
@given(st.sampled_from(LEVELS), st.booleans(), st.text(" \t", max_size=3))
def test_parse_level_round_trips(name: str, lower: bool, pad: str) -> None:
    level = parse_level(pad + (name.lower() if lower else name) + pad)
    assert level.name == name
    assert LEVELS[level.index] == name
