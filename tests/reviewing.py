"""What the review test files (test_review_s22/s23/s24) share: the shipped examples they
mutate, and a decision read as (determination, each clause's status)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library

EXAMPLES = Path(__file__).parent.parent / "examples" / "cases"
VERSIONS = ["lumbar-fusion@2025.1", "lumbar-fusion@2026.1"]


def shipped(name: str) -> dict[str, Any]:
    """A shipped example case as data, requested on 2025-06-20 as every review assumes."""
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    assert data["request"]["date"] == "2025-06-20"
    return data


def decide(data: dict[str, Any], library: Library, policy: str) -> tuple[str, dict[str, str]]:
    """Return (the determination under `policy`, each clause's status)."""
    case = case_from_data(data, "review.json")
    decision = api.evaluate(case, api.select_policy(case, policy, library))
    return decision.determination.value, {c.id: c.status.value for c in decision.clauses}


def check_probe(
    data: dict[str, Any], clause: str, expected: str, library: Library, policy: str
) -> None:
    """Assert `clause` ends `expected` under `policy`, and that a clause not met never ends in
    an approval (the review's one question: can this approve wrongly?)."""
    determination, statuses = decide(data, library, policy)
    assert statuses[clause] == expected
    if expected != "met":
        assert determination != "medically_necessary"
