"""The narrower request an alternative is evaluated on (decide/alternatives.request).

It is built from the case's own data without changing it, and the alternative it is evaluated
for fails closed: with a fact it needs missing, empty, dated after the request or contradicted,
the alternative is never medically necessary and the line never A6.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.decide import alternatives
from evaluator.language.model import Determination
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
APPROVABLE = ROOT / "examples" / "cases" / "l4-l5-approvable.json"


def _three_levels() -> dict[str, Any]:
    """The approvable L4-L5 case fused L3-S1, with a slip at L4-L5 only: its narrower
    alternative (fusion L4-L5) is medically necessary (tests/test_alternative.py)."""
    data: dict[str, Any] = json.loads(APPROVABLE.read_text())
    data["case_id"] = "three-levels"
    data["request"]["lines"][0]["fusion"] = "L3-S1"
    for finding in data["imaging"][0]["findings"]:
        finding["spondylolisthesis"] = finding["level"] == "L4-L5"
    return data


def test_the_narrower_request_leaves_the_case_unchanged() -> None:
    case = case_from_data(_three_levels(), "three-levels.json")
    before = json.dumps(case.data, sort_keys=True)
    policy = api.select_policy(case, "lumbar-fusion", Library())
    decision = api.evaluate(case, policy)
    assert decision.alternative is not None
    assert decision.alternative.approvable  # the control: the alternative is offered
    narrower = alternatives.request(case, policy, decision.alternative)
    assert json.dumps(case.data, sort_keys=True) == before
    (line,) = narrower.data["request"]["lines"]
    assert (line["id"], line["fusion"], line["decompression"]) == ("fusion", ["L4-L5"], ["L4-L5"])
    assert case.data["request"]["lines"][0]["fusion"] == "L3-S1"
    assert narrower.path.endswith("#alternative")


def _missing(data: dict[str, Any]) -> None:
    del data["nicotine"]


def _empty(data: dict[str, Any]) -> None:
    data["imaging"][0]["findings"] = []


def _late(data: dict[str, Any]) -> None:
    data["imaging"][0]["date"] = "2025-07-30"
    data["imaging"][0]["source"]["date"] = "2025-07-30"


def _contradicted(data: dict[str, Any]) -> None:
    source = data["nicotine"]["source"]
    data["nicotine"]["status"] = {
        "statements": [
            {"value": "never", "source": source},
            {"value": "current", "source": {**source, "quote": "Smokes a few cigarettes a day."}},
        ]
    }


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "missing": _missing,
    "empty": _empty,
    "dated-after-request": _late,
    "contradicted": _contradicted,
}


@pytest.mark.parametrize("how", sorted(BROKEN))
def test_an_alternative_on_a_fact_it_cannot_rely_on_is_never_offered(how: str) -> None:
    data = copy.deepcopy(_three_levels())
    BROKEN[how](data)
    case = case_from_data(data, "three-levels.json")
    decision = api.evaluate(case, api.select_policy(case, "lumbar-fusion", Library()))
    assert decision.determination is not Determination.MEDICALLY_NECESSARY
    alt = decision.alternative
    assert alt is None or not alt.approvable, how
    if alt is not None and alt.decision is not None:
        assert alt.decision.determination is not Determination.MEDICALLY_NECESSARY
    assert decision.x12_action != "A6"
