"""The texts findings keep by what they are made of (issue 10, stop 19) read as worked out
afresh: segment ranges, values in words and the documents of a set of sources, warm or cold,
whatever came before, and each memo stays bounded."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.decide import findings
from evaluator.language.describe import words
from evaluator.vocab.levels import LEVELS, LevelError, format_segments

_SEGMENTS = [f"{a}-{b}" for a, b in pairwise(LEVELS)]
_SOURCES = [
    "clinic_note 2025-01-15 p2",
    "clinic_note 2025-05-05",
    "mri_report 2025-04-01",
    "request_form",
    "operative_note 03/2025",
    " ",
    "",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*_SEGMENTS, "L4", "T13-L1", "l4-5"]), max_size=6))
def test_segment_ranges_are_format_segments(segments: list[str]) -> None:
    for _ in range(2):  # cold, then from the memo
        try:
            want: Any = format_segments(segments)
        except LevelError as error:
            want = ("LevelError", str(error))
        try:
            got: Any = findings.segment_ranges(segments)
        except LevelError as error:
            got = ("LevelError", str(error))
        assert got == want


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abmrilt_ 4", max_size=12))
def test_values_in_words_are_words(value: str) -> None:
    assert findings._words(value) == words(value)
    assert findings._words(value) == words(value)


_FACT = st.fixed_dictionaries(
    {"t": st.just("x"), "id": st.text(max_size=3)},
    optional={"src": st.one_of(st.sampled_from(_SOURCES), st.integers(), st.none())},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FACT, max_size=8), st.lists(_FACT, max_size=8))
def test_the_documents_of_a_pool_are_worked_out_from_its_own_sources(
    one: list[dict[str, Any]], two: list[dict[str, Any]]
) -> None:
    # two pools one after the other: the second never reads the first's documents unless it
    # has the same sources in the same order
    for facts in (one, two, one):
        want = findings._and(findings._documents(facts)) or findings.NOT_RECORDED
        assert findings.Pool(facts).documents() == want


def test_each_memo_is_bounded() -> None:
    for i in range(findings._MEMO_LIMIT + 10):
        findings._words(f"value_{i}")
        findings.Pool([{"t": "x", "id": "1", "src": f"note {i}"}]).documents()
    assert len(findings._WORDS) <= findings._MEMO_LIMIT
    assert len(findings._DOCUMENTS) <= findings._MEMO_LIMIT


def test_no_memo_keeps_a_long_text() -> None:
    """A memo is bounded in characters too: 4,096 entries of a case's longest strings (a case
    file may hold 4 MiB) would keep gigabytes alive in a long-running service. Such texts are
    worked out afresh, and read the same."""
    long = "clinic_note 2025-01-15 " + "x" * 100_000
    value = "a_" * 50_000
    for _ in range(2):
        assert findings.Pool([{"t": "x", "id": "1", "src": long}]).documents() == (
            findings._and(findings._documents([{"src": long}]))
        )
        assert findings._words(value) == words(value)
    assert long not in {s for key in findings._DOCUMENTS for s in key}
    assert value not in findings._WORDS
