"""SI-joint laterality and distinct blocks with many facts.

The side and identity checks are equality joins and derived facts (a non-equality join would
crash durable_rules, durable-rules.md trap 17); these cases give the engine many blocks and tests
at once, on both sides and listed repeatedly, and check it decides as the policy says.
"""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.language.model import Determination, Status
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
APPROVABLE = ROOT / "examples" / "cases" / "si-approvable-unilateral.json"
TESTS = ("distraction", "compression", "thigh_thrust", "faber", "gaenslen", "sacral_thrust")
MANY = 60


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(APPROVABLE.read_text(encoding="utf-8"))
    return data  # a right-sided request that meets every clause


def _statuses(data: dict[str, Any]) -> tuple[Determination, dict[str, Status]]:
    case = case_from_data(data, "scale.json")
    library = Library()
    decision = api.evaluate(case, library.get("si-joint-fusion", case.request_date.lo))
    return decision.determination, {c.id: c.status for c in decision.clauses}


def _block(day: date, side: str, relief: int = 80) -> dict[str, Any]:
    return {
        "side": side,
        "date": day.isoformat(),
        "image_guided": True,
        "contrast": True,
        "relief_pct": relief,
    }


def test_one_block_listed_many_times_is_one_block(base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    data["si_joint"]["diagnostic_blocks"] = [_block(date(2025, 3, 11), "right")] * MANY
    determination, statuses = _statuses(data)
    assert statuses["SI-DIAGNOSTIC-BLOCKS"] is Status.NOT_DOCUMENTED
    assert determination is Determination.INSUFFICIENT_DOCUMENTATION


def test_many_blocks_on_the_other_side_do_not_count(base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    start = date(2025, 1, 2)
    data["si_joint"]["diagnostic_blocks"] = [
        _block(start + timedelta(days=i), "left") for i in range(MANY)
    ]
    _, statuses = _statuses(data)
    assert statuses["SI-DIAGNOSTIC-BLOCKS"] is Status.NOT_MET


def test_many_distinct_blocks_and_one_low_one(base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    start = date(2025, 1, 2)
    blocks = [_block(start + timedelta(days=i), "right") for i in range(MANY)]
    blocks += [_block(start + timedelta(days=i), "left", 10) for i in range(MANY)]
    data["si_joint"]["diagnostic_blocks"] = blocks
    determination, statuses = _statuses(data)
    assert statuses["SI-DIAGNOSTIC-BLOCKS"] is Status.MET  # the low blocks are on the left
    assert determination is Determination.MEDICALLY_NECESSARY
    blocks.append(_block(start + timedelta(days=MANY + 1), "right", 74))
    _, statuses = _statuses(data)
    assert statuses["SI-DIAGNOSTIC-BLOCKS"] is Status.NOT_MET


def test_many_tests_on_the_wrong_side_never_approve(base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    tests = [
        {"test": name, "side": "left", "result": "positive"} for name in TESTS for _ in range(10)
    ]
    data["si_joint"]["provocative_tests"] = tests
    determination, statuses = _statuses(data)
    assert statuses["SI-PROVOCATIVE-TESTS"] is Status.NOT_DOCUMENTED
    assert determination is Determination.INSUFFICIENT_DOCUMENTATION
    # The same tests on the right side: met.
    for test in tests[: len(tests) // 2]:
        test["side"] = "right"
    _, statuses = _statuses(data)
    assert statuses["SI-PROVOCATIVE-TESTS"] is Status.MET
