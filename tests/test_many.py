"""Batches of cases (issue 10): `api.review_many` gives each case the review it gets alone, its
cases run one after another, each in an engine session of its own (tests/test_sessions.py),
and an engine error in one case stays that case's. (A batch worker reviews its chunk item by
item the same way: tests/test_batch*.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import Case, load_case
from evaluator.errors import EngineError
from evaluator.language.policies import Library
from evaluator.render import review as render_review

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "cases").glob("*.json"))
STAMP = "2026-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def examples() -> list[Case]:
    return [load_case(path) for path in EXAMPLES]


def _json(review: object) -> str:
    assert isinstance(review, api.CaseReview), review
    return json.dumps(render_review.review_json(review, STAMP), sort_keys=True)


def test_every_example_together_is_reviewed_as_alone(examples: list[Case]) -> None:
    library = Library()
    alone = [_json(api.review_case(case, library)) for case in examples]
    together = [_json(review) for review in api.review_many(examples, library)]
    assert together == alone


def test_an_engine_error_in_one_case_is_that_case_alone(
    examples: list[Case], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One case's facts make the engine fail (a number it cannot take): that case's result is
    the engine error, the others' reviews are what they are alone."""
    library = Library()
    alone = [_json(api.review_case(case, library)) for case in examples]
    broken = examples[3].case_id
    original = api.facts_for

    def facts_for(case: Case, *args: Any) -> list[dict[str, Any]]:
        facts = original(case, *args)
        if case.case_id == broken:
            facts.append({"t": "nicotine", "id": "nicotine:broken", "cotinine": float("inf")})
        return facts

    monkeypatch.setattr(api, "facts_for", facts_for)
    results = api.review_many(examples, library)
    assert isinstance(results[3], EngineError)
    assert "cannot be given to the engine" in str(results[3])
    assert [_json(r) for i, r in enumerate(results) if i != 3] == alone[:3] + alone[4:]


def _without_stamps(record: dict[str, Any]) -> dict[str, Any]:
    record = json.loads(json.dumps(record))
    record.get("result", {}).pop("evaluated_at", None)
    return record
