"""Nothing dated after the request can demonstrate what must precede it (issue 7, point 2).

A physical-therapy course whose end date had a one-digit year typo (after the request) counted
as a long course and the line was approved. Every date field of every fact is checked by the
policy-independent fact builder: a date after the request date is left undocumented (with its
distances and the fact's durations) and a conflict tells the reviewer why.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.case.facts import fact_kinds
from evaluator.cli.main import main
from evaluator.errors import CaseError
from evaluator.language.policies import Library
from evaluator.vocab.dates import parse_date

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
APPROVABLE = ROOT / "examples" / "cases" / "l4-l5-approvable.json"
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


def _late_pt() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(APPROVABLE.read_text())
    data["conservative_care"]["physical_therapy"]["end"] = "2052-04-18"  # typo for 2025
    return data


def test_a_therapy_course_ending_after_the_request_does_not_approve():
    """tests/hostile/cases/pt-end-after-request.json, run as its sidecar says."""
    path = ROOT / "tests" / "hostile" / "cases" / "pt-end-after-request.json"
    assert json.loads(path.read_text())["conservative_care"] == _late_pt()["conservative_care"]
    assert CliRunner().invoke(main, ["evaluate", str(APPROVABLE)]).exit_code == 0
    result = CliRunner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code == 3, result.output  # pended: not documented, never approved
    text = " ".join(result.output.split())
    assert "physical therapy end: dated 2052-04-18 (after the request date 2025-06-20)" in text
    review = api.review_case(case_from_data(_late_pt(), "late.json"), Library())
    decision = review.lines[0].decision
    assert decision is not None
    therapy = next(c for c in decision.clauses if c.id == "LF-PHYSICAL-THERAPY")
    assert therapy.status.value == "not_documented"
    assert {
        "fact": "physical_therapy",
        "field": "end",
        "values": "2052-04-18 (after the request date 2025-06-20)",
        "reason": "after_request",
    } in [dict(c) for c in decision.conflicts]


def _date_pointers(data: Any, pointer: str = "") -> Iterator[str]:
    """Yield the pointer of every date the case states, except the request date and the
    documents' own dates (provenance, not facts)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key != "source":
                yield from _date_pointers(value, f"{pointer}/{key}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _date_pointers(value, f"{pointer}/{i}")
    elif isinstance(data, str) and _DATE.match(data) and pointer != "/request/date":
        yield pointer


def _set(data: Any, pointer: str, value: str) -> None:
    *path, last = pointer.strip("/").split("/")
    for key in path:
        data = data[int(key)] if isinstance(data, list) else data[key]
    data[int(last) if isinstance(data, list) else last] = value


CASES = [(p, ptr) for p in EXAMPLES for ptr in _date_pointers(json.loads(p.read_text()))]
DATE_FIELDS = {
    (t, f) for t, fields in fact_kinds().items() for f, kind in fields.items() if kind == "date"
}


def test_the_examples_state_dates_of_most_kinds():
    # the generality check below is only as good as the dates the examples state
    assert len(CASES) >= 40


@pytest.mark.parametrize(("path", "pointer"), CASES, ids=[f"{p.stem}{q}" for p, q in CASES])
def test_every_date_after_the_request_is_flagged_and_left_out(path, pointer):
    data = json.loads(path.read_text())
    late = copy.deepcopy(data)
    _set(late, pointer, "2052" + _get(data, pointer)[4:])
    try:
        case = case_from_data(late, path.name)
    except CaseError as error:  # e.g. a start now after its end: refused, which is also safe
        codes = {p.code for p in error.problems}
    else:
        codes = set()
    if codes:
        assert codes == {"bad_date"}
        return
    request = parse_date(data["request"]["date"]).hi.toordinal()
    for fact in case.facts:
        for t, field in DATE_FIELDS:
            lo = fact.fields.get(f"{field}_lo")
            if fact.type == t and isinstance(lo, int):
                assert lo <= request, (fact.type, field)
    flagged = [c for c in case.conflicts if c.reason == "after_request"]
    # A study taken after the request shows nothing: each part it reports (a finding, views,
    # the alignment) is left out too, flagged at the study's date.
    parts = [c for c in flagged if c.values[0][1].startswith("study, ")]
    assert all(c.pointer == pointer for c in parts), parts
    flagged = [c for c in flagged if c not in parts]
    assert len(flagged) == 1, case.conflicts
    assert flagged[0].values[0][0].startswith("2052")
    assert flagged[0].pointer.rstrip("/").startswith(pointer.rsplit("/statements", 1)[0])


def _get(data: Any, pointer: str) -> str:
    for key in pointer.strip("/").split("/"):
        data = data[int(key)] if isinstance(data, list) else data[key]
    assert isinstance(data, str)
    return data


def test_a_late_date_also_leaves_out_the_durations_it_bounds():
    case = case_from_data(_late_pt(), "late.json")
    (therapy,) = [f for f in case.facts if f.type == "physical_therapy"]
    assert not any(k.startswith(("end", "duration")) for k in therapy.fields)
    assert therapy.fields["start"] == "2025-02-21"
