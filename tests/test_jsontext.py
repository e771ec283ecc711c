"""canonical_json writes the bytes of its definition, json.dumps (sorted keys, compact, UTF-8),
for any JSON document: orjson's text where it is the same, the standard library's elsewhere."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.read.digest import canonical_sha256
from evaluator.read.jsontext import canonical_json


def definition(data: Any) -> bytes:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def same_as_definition(data: Any) -> None:
    try:
        expected = definition(data)
    except (TypeError, ValueError, RecursionError) as error:
        with pytest.raises(type(error)):
            canonical_json(data)
        return
    assert canonical_json(data) == expected


# Any character, astral ones and lone surrogates among them (which neither may write).
TEXT = st.text(st.characters(), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(DOCUMENTS)
def test_any_json_document_gives_the_bytes_of_the_definition(data):
    same_as_definition(data)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8))
def test_any_finite_float_gives_the_bytes_of_the_definition(floats):
    same_as_definition({"values": floats})


def _around(value: float, steps: int = 50) -> list[float]:
    below, above, out = value, value, [value]
    for _ in range(steps):
        below, above = math.nextafter(below, 0.0), math.nextafter(above, math.inf)
        out += [below, above]
    return out


# Where repr changes between positional and exponent forms, and orjson's does elsewhere.
@pytest.mark.parametrize("boundary", [1e-4, 1e-5, 1e-7, 1e15, 1e16, 1e17, 5e-324, 1.8e308])
def test_floats_on_the_boundaries_of_their_forms(boundary):
    floats = [x for x in _around(boundary) if math.isfinite(x)]
    same_as_definition(floats + [-x for x in floats])


class Colour(enum.StrEnum):
    RED = "red"


class Count(enum.IntEnum):
    ONE = 1


class Record(dict[str, Any]):
    pass


@pytest.mark.parametrize(
    "data",
    [
        {"é": "ü", "a": '\u2028\u0000\u001f\u007f"\\/', "\U0001f600": 1, "\ue000": 2},
        {"big": 2**64, "small": -(2**63) - 1, "edge": 2**64 - 1},
        {"lone": "\ud800"},
        {1: "a", "b": 2},
        {True: 1},
        {"tuple": (1, 2.5, "x")},
        Record(a=1, b=[Record(c=0.1)]),
        {"colour": Colour.RED, "count": Count.ONE},
        {"values": [0.1, 7.0, 8.1, -0.0, 0.0, 1e-05, 1e16, 123456789.123]},
        json.loads("[" * 40 + "]" * 40),
        {"deep": json.loads("[" * 300 + "]" * 300)},
        {"set": {1, 2}},
        {"nan": math.nan},
        {"inf": [math.inf, -math.inf, None]},
    ],
    ids=lambda data: next(iter(data)) if isinstance(data, dict) and data else "nested",
)
def test_awkward_values(data):
    same_as_definition(data)


def test_canonical_sha256_hashes_the_definition():
    data = {"b": [1, 2.5, "é"], "a": {"z": None, "y": True}}
    assert canonical_sha256(data) == hashlib.sha256(definition(data)).hexdigest()
