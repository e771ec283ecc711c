"""A disputed field read by a quantifier's `where` (domain rule 9, beside tests/test_disputed.py).

`every`, `some` and `count` over facts filtered by a field whose sources may disagree
(x-disputed: a diagnosis's status) take the facts that may pass the filter too, each gated by
the filter read on the bound fact: a fact whose status is disputed may or may not be in scope,
so it makes a `some` or a `count` at most unknown and an `every` unknown, never vacuously true
and never left out. Without a disputed fact every quantifier gives what it gave before (the
generated policies of tests/test_fuzz_policies.py check that against an oracle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_compiler import build, clause, document, run, truths  # type: ignore[import-not-found]

from evaluator.language.conditions import Truth

T, U, F = Truth.TRUE, Truth.UNKNOWN, Truth.FALSE
EXCLUDING = {"status": {"one_of": ["confirmed", "stated"]}}
NAMED = {"fact": "dx", "field": "name", "equals": "ankylosing_spondylitis"}
CLAUSES = {
    "Q-SOME": {"some": {"fact": "diagnosis", "as": "dx", "where": EXCLUDING, "require": NAMED}},
    "Q-EVERY": {"every": {"fact": "diagnosis", "as": "dx", "where": EXCLUDING, "require": NAMED}},
    "Q-EVERY-VACUOUS": {
        "every": {
            "fact": "diagnosis",
            "as": "dx",
            "where": EXCLUDING,
            "require": NAMED,
            "if_empty": "true",
        }
    },
    "Q-COUNT": {
        "count": {
            "fact": "diagnosis",
            "as": "dx",
            "where": EXCLUDING,
            "at_least": 1,
            "require": NAMED,
        }
    },
}


def _dx(i: int, name: str, status: str | None) -> dict[str, Any]:
    fact: dict[str, Any] = {"t": "diagnosis", "id": f"diagnosis:{i}", "name": name}
    if status == "disputed":
        fact["status_disputed"] = True  # what facts.py gives when the records disagree
    elif status is not None:
        fact["status"] = status
    return fact


AS, RA = "ankylosing_spondylitis", "rheumatoid_arthritis"
# (facts, the value of each clause)
CASES = {
    # (a count of fewer facts than it needs is unknown: more may exist)
    "none": ([], {"Q-SOME": F, "Q-EVERY": U, "Q-EVERY-VACUOUS": T, "Q-COUNT": U}),
    "AS confirmed": (
        [_dx(1, AS, "confirmed")],
        {"Q-SOME": T, "Q-EVERY": T, "Q-EVERY-VACUOUS": T, "Q-COUNT": T},
    ),
    "AS ruled out": (
        [_dx(1, AS, "ruled_out")],
        {"Q-SOME": F, "Q-EVERY": U, "Q-EVERY-VACUOUS": T, "Q-COUNT": U},
    ),
    "AS disputed": (
        [_dx(1, AS, "disputed")],
        {"Q-SOME": U, "Q-EVERY": U, "Q-EVERY-VACUOUS": U, "Q-COUNT": U},
    ),
    "RA disputed": (
        [_dx(1, RA, "disputed")],
        {"Q-SOME": F, "Q-EVERY": U, "Q-EVERY-VACUOUS": U, "Q-COUNT": F},
    ),
    "AS confirmed, RA disputed": (
        [_dx(1, AS, "confirmed"), _dx(2, RA, "disputed")],
        {"Q-SOME": T, "Q-EVERY": U, "Q-EVERY-VACUOUS": U, "Q-COUNT": T},
    ),
    "RA confirmed, AS disputed": (
        [_dx(1, RA, "confirmed"), _dx(2, AS, "disputed")],
        {"Q-SOME": U, "Q-EVERY": F, "Q-EVERY-VACUOUS": F, "Q-COUNT": U},
    ),
    "a status merely absent is out of scope, as before": (
        [_dx(1, AS, None)],
        {"Q-SOME": F, "Q-EVERY": U, "Q-EVERY-VACUOUS": T, "Q-COUNT": U},
    ),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root: Path = tmp_path_factory.mktemp("disputed")
    return build(root, document([clause(cid, cond) for cid, cond in CLAUSES.items()]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_quantifier_reads_a_disputed_field_as_unknown(name: str, compiled: Any) -> None:
    facts, want = CASES[name]
    assert truths(run(compiled, facts)) == want
