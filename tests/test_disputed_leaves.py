"""Still two-valued on a disputed field (x-disputed, stop 21): a comparison leaf's own `where`
and a derivation rule's `for_each` (left for the lead at stop 22, reproduced here).

`exists`, `some`, `count` and `every` read a fact whose filtered field is disputed (its sources
disagree: `status_disputed`) as one that may or may not pass the filter (tests/
test_disputed_quantifiers.py). A comparison leaf's `where` and a rule's `for_each` still read it
as one that does not pass: a policy that asks "no confirmed ankylosing spondylitis" through
either is met when the records dispute whether it was confirmed, and approves what the record
may exclude (domain rule 9 wants not documented). No shipped policy decides through either
shape today (lumbar-fusion's `stated-diagnosis` rule feeds a rationale only); each test is a
strict expected failure, so the day the lowering reads them three-valued it passes and its
marker comes off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_compiler import build, clause, document, run, truths  # type: ignore[import-not-found]

from evaluator.language.conditions import Truth

T, U, F = Truth.TRUE, Truth.UNKNOWN, Truth.FALSE
AS, RA = "ankylosing_spondylitis", "rheumatoid_arthritis"
EXCLUDING = {"status": {"one_of": ["confirmed", "stated"]}}
# "No excluding diagnosis of ankylosing spondylitis", once through a comparison leaf whose own
# `where` tests the disputed field, once through a derived fact whose `for_each` does.
LEAF = {"fact": "diagnosis", "where": EXCLUDING, "field": "name", "equals": AS}
RULES = [
    {
        "id": "excluding-diagnosis",
        "description": "An excluding diagnosis of ankylosing spondylitis.",
        "for_each": [{"fact": "diagnosis", "as": "dx", "where": {**EXCLUDING, "name": AS}}],
        "derive": {"fact": "excluding", "set": {"name": {"from": "dx.name"}}},
    }
]
FACTS = {"excluding": {"description": "An excluding diagnosis.", "fields": {"name": "string"}}}
CLAUSES = {
    "Q-LEAF": {"not": LEAF},
    "Q-FOR-EACH": {"not": {"exists": {"fact": "excluding"}}},
}


def _dx(i: int, name: str, status: str) -> dict[str, Any]:
    fact: dict[str, Any] = {"t": "diagnosis", "id": f"diagnosis:{i}", "name": name}
    if status == "disputed":
        fact["status_disputed"] = True  # what facts.py gives when the records disagree
    else:
        fact["status"] = status
    return fact


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root: Path = tmp_path_factory.mktemp("disputed-leaves")
    policy = document(
        [clause(cid, cond) for cid, cond in CLAUSES.items()], facts=FACTS, rules=RULES
    )
    return build(root, policy)


# (facts, the value of each clause) where the records agree
AGREED = {
    "AS confirmed": ([_dx(1, AS, "confirmed")], {"Q-LEAF": F, "Q-FOR-EACH": F}),
    # (a comparison over no fact passing its `where` is unknown: nothing was compared)
    "AS ruled out": ([_dx(1, AS, "ruled_out")], {"Q-LEAF": U, "Q-FOR-EACH": T}),
    "RA confirmed, AS ruled out": (
        [_dx(1, RA, "confirmed"), _dx(2, AS, "ruled_out")],
        {"Q-LEAF": T, "Q-FOR-EACH": T},
    ),
}


@pytest.mark.parametrize("name", sorted(AGREED))
def test_undisputed_diagnoses_decide_both_shapes(name: str, compiled: Any) -> None:
    # The control: where the records agree, each shape gives what it gives today.
    facts, want = AGREED[name]
    assert truths(run(compiled, facts)) == want


@pytest.mark.xfail(
    strict=True,
    reason="open: a comparison leaf's own `where` is two-valued on a disputed field, so a "
    "disputed AS beside a confirmed RA reads as 'no confirmed AS' (met: a wrong approval)",
)
def test_a_leaf_whose_where_reads_a_disputed_status_is_not_met_on_it(compiled: Any) -> None:
    facts = [_dx(1, RA, "confirmed"), _dx(2, AS, "disputed")]
    assert truths(run(compiled, facts))["Q-LEAF"] == U


@pytest.mark.xfail(
    strict=True,
    reason="open: a rule's `for_each` is two-valued on a disputed field (a fact is derived "
    "or not), so a disputed AS derives nothing and 'no excluding diagnosis' is met",
)
def test_a_derivation_over_a_disputed_status_is_not_met_on_it(compiled: Any) -> None:
    assert truths(run(compiled, [_dx(1, AS, "disputed")]))["Q-FOR-EACH"] == U
