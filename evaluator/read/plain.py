"""Plain document data: what `source.load` makes of a file (dicts, lists, strings, numbers,
booleans and None, each collection held once), copied."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["copied"]

_SCALARS = frozenset({str, int, float, bool, type(None)})


def copied(value: Any) -> Any:
    """Return a deep copy of `value`, as `copy.deepcopy` makes it of plain data, in a fraction
    of the time (a cold `evaluate` copies its policies' data several times over).

    Anything but plain data (a subclass, a tuple, a date) is left to `copy.deepcopy`. Unlike
    it, a collection held twice is copied twice: plain data, as read, holds none.
    """
    kind = type(value)
    if kind is dict:
        return {key: copied(each) for key, each in value.items()}
    if kind is list:
        return [copied(each) for each in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)
