"""How a coded value is spelt once it is a fact: ``SYSTEM|CODE``.

A value set's `codes` (policy.schema.json `$defs/value_set`) map a code system to its codes;
the policies' value sets (language/valuesets.py) and the case normaliser (a schema annotation
naming a shared module's value set, case/facts.py) both read them into this form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def value_set_codes(codes: Mapping[str, Iterable[object]]) -> tuple[str, ...]:
    """Return a value set's codes, each ``SYSTEM|CODE``, in the order the file lists them."""
    return tuple(
        f"{system}|{str(code).strip()}" for system, items in codes.items() for code in items
    )
