"""`count` against its reference semantics over every vector of child values up to six.

docs/authoring.md: true when N children are true; false when N are documented but fewer than N
are true or unknown; otherwise unknown. Each vector runs case after case in one process, so
counted matches an earlier case left behind would show here as a wrong value.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_compiler import (  # type: ignore[import-not-found]
    ELEMENT,
    L3,
    Compiled,
    build,
    clause,
    count_oracle,
    document,
    run,
    truths,
)

from evaluator.language.conditions import Truth

T, U, F = Truth.TRUE, Truth.UNKNOWN, Truth.FALSE
SEGMENTS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1", "S1-S2")
NS = range(1, 5)
# A count whose range is filtered: only the segments of one service line are counted.
FILTERED = {"fact": "fused_segment", "as": "seg", "where": {"line": "in"}}
CLAUSES = {
    **{
        f"C-{n}": {
            "count": {"fact": "fused_segment", "as": "seg", "at_least": n, "require": ELEMENT}
        }
        for n in NS
    },
    "C-WHERE": {"count": {**FILTERED, "at_least": 2, "require": ELEMENT}},
}
VECTORS = [list(v) for size in range(7) for v in itertools.product((T, U, F), repeat=size)]


@pytest.fixture(scope="module")
def counts(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    clauses = [clause(cid, cond) for cid, cond in CLAUSES.items()]
    return build(tmp_path_factory.mktemp("counts"), document(clauses, "counts"))


def facts_for(values: Sequence[Truth], filtered: Sequence[bool] = ()) -> list[dict[str, Any]]:
    """One fused segment per value: above L3 (true), below it (false), no upper (unknown);
    `filtered[i]` False leaves segment i out of C-WHERE's range."""
    out = []
    for i, value in enumerate(values):
        fact: dict[str, Any] = {"t": "fused_segment", "id": f"fused_segment:{i}"}
        fact["segment"] = SEGMENTS[i]
        fact["line"] = "in" if i >= len(filtered) or filtered[i] else "out"
        if value is not U:
            fact["upper_index"] = L3 - 1 if value is T else L3 + 1
        out.append(fact)
    return out


def expected(values: Sequence[Truth], filtered: Sequence[bool] = ()) -> dict[str, Truth]:
    inside = [v for i, v in enumerate(values) if i >= len(filtered) or filtered[i]]
    return {
        **{f"C-{n}": count_oracle(n, list(values)) for n in NS},
        "C-WHERE": count_oracle(2, inside),
    }


def test_the_reference_semantics_on_every_vector_up_to_six(counts: Compiled) -> None:
    for values in VECTORS:
        assert truths(run(counts, facts_for(values))) == expected(values), values


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.sampled_from((T, U, F)), max_size=6),
    filtered=st.lists(st.booleans(), max_size=6),
)
def test_a_filtered_range_counts_only_its_facts(
    counts: Compiled, values: list[Truth], filtered: list[bool]
) -> None:
    assert truths(run(counts, facts_for(values, filtered))) == expected(values, filtered)
