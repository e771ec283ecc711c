"""`plain.copied` makes what `copy.deepcopy` makes of a document's data (read/plain.py)."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from evaluator.read.plain import copied

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def _collections(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(c for each in value.values() for c in _collections(each))]
    if isinstance(value, list):
        return [value, *(c for each in value for c in _collections(each))]
    return []


@given(_DATA)
def test_a_copy_is_equal_and_shares_no_collection(data: Any) -> None:
    made = copied(data)
    assert made == copy.deepcopy(data)
    assert type(made) is type(data)
    originals = {id(c) for c in _collections(data)}
    assert not originals & {id(c) for c in _collections(made)}


def test_what_is_not_plain_data_is_left_to_deepcopy() -> None:
    class Mapping(dict[str, Any]):
        pass

    inner = [1, 2]
    data: dict[str, Any] = {
        "a": (inner, inner),
        "b": Mapping(x=[3]),
        "c": [datetime.date(2025, 1, 2)],
    }
    made = copied(data)
    assert made == data
    assert type(made["b"]) is Mapping
    assert made["b"]["x"] is not data["b"]["x"]
    assert made["a"][0] is made["a"][1]  # deepcopy keeps what a tuple shares
    assert made["a"][0] is not inner
