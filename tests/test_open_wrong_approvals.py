"""Wrong approvals found by the stop-21 data review on the policy side, fixed at stop 22.

Each approved before its fix (lumbar-fusion 2025.1, amended in place): the suites in
policies/lumbar-fusion/tests/edges.yaml hold the same cases at the clauses' level.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent


def _determination(data: dict[str, Any]) -> str:
    review = api.review_case(case_from_data(data, "open.json"), Library())
    decision = review.lines[0].decision
    assert decision is not None
    return decision.determination.value


def _old_study_shows_the_compression() -> dict[str, Any]:
    """The approvable L4-L5 fusion (request 2025-06-20) whose recent MRI (2025-04-30) reads
    L4-5 as mild stenosis without compression, beside a 2023 MRI reading it severe."""
    data: dict[str, Any] = json.loads((ROOT / "examples/cases/l4-l5-approvable.json").read_text())
    old = copy.deepcopy(data["imaging"][0])
    old["id"], old["date"], old["source"]["date"] = "mri-2023", "2023-03-01", "2023-03-01"
    data["imaging"][0]["findings"][1].update(stenosis="mild", neural_compression=False)
    data["imaging"].append(old)
    return data


def test_the_recent_study_alone_does_not_approve() -> None:
    data = _old_study_shows_the_compression()
    data["imaging"].pop()
    assert _determination(data) != "medically_necessary"


def test_compression_shown_only_by_a_study_older_than_the_recency_does_not_approve() -> None:
    assert _determination(_old_study_shows_the_compression()) != "medically_necessary"
