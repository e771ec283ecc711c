"""Frozen dataclass instances made in a quarter of their constructor's time, for the few made
once per case (a document, a case, its service lines)."""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["made"]

_Made = TypeVar("_Made")


def made(cls: type[_Made], fields: dict[str, Any]) -> _Made:
    """Return ``cls(**fields)`` for a frozen dataclass with no ``__post_init__`` and no slots,
    ``fields`` naming every field in the class's order.

    The generated ``__init__`` sets each field with a call of ``object.__setattr__`` (frozen
    classes refuse plain assignment); the instance's dict takes them all at once. Each caller
    is checked against the constructor by a test (tests/test_cases.py, tests/test_source.py).
    """
    instance = object.__new__(cls)
    instance.__dict__.update(fields)
    return instance
