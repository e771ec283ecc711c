"""One decision per line, whichever way it is asked (issue 8), and the roll-up over lines.

A policy judges only the lines it governs but reads the facts of the lines it names under
`reads` (one operation): `evaluate --policy` and the per-line review give each clause the same
status. The roll-up follows domain.md section 4: pended while any line is pended.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data, load_case
from evaluator.decide.decision import Decision
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


def _statuses(decision: Decision | None) -> dict[str, str]:
    assert decision is not None
    return {c.id: c.status.value for c in decision.clauses}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_policy_mode_and_line_review_agree(path: Path) -> None:
    case = load_case(path)
    library = Library()
    for result in api.review_case(case, library).lines:
        if result.policy is None:
            continue
        alone = api.evaluate(case, result.policy)
        assert _statuses(alone) == _statuses(result.decision), result.line.id
        assert alone.determination == result.determination
        assert alone.alternative == result.decision.alternative  # type: ignore[union-attr]


def test_fusion_reads_the_decompression_line() -> None:
    # The founding case requests decompression L1-S1 on its own line: the fusion policy's imaging
    # correlation checks it (met: moderate stenosis at every level), it is not "not applicable".
    review = api.review_path(ROOT / "examples" / "cases" / "t12-s2-fusion.json")
    fusion = next(r for r in review.lines if r.line.id == "fusion")
    assert _statuses(fusion.decision)["LF-IMAGING-CORRELATION"] == "met"


def test_lines_of_kinds_not_read_are_left_out() -> None:
    # The decompression policy does not read fusion lines: a decompression only on the fusion
    # line is the fusion policy's to judge, so a decompression line with no levels of its own
    # has no segment to correlate.
    case = load_case(ROOT / "examples" / "cases" / "t12-s2-fusion.json")
    policy = Library().get("lumbar-decompression", case.request_date.lo)
    facts = api.facts_for(case, policy)
    assert {f.get("line") for f in facts if "line" in f} == {"decompression"}


def _two_lines(first: str, second: str) -> api.CaseReview:
    """A review of two lines, each the decision of the named example case."""
    library = Library()
    results = []
    for name in (first, second):
        case = load_case(ROOT / "examples" / "cases" / f"{name}.json")
        (result,) = [r for r in api.review_case(case, library).lines if r.policy is not None][:1]
        results.append(result)
    return api.CaseReview("two", "2025-06-20", tuple(results))


@pytest.mark.parametrize(
    ("first", "second", "overall", "x12"),
    [
        # certified + pended: pended, not a partial certification
        ("l4-l5-approvable", "missing-documentation-only", "insufficient_documentation", "A4"),
        # certified + not certified: partial
        ("l4-l5-approvable", "current-smoker", "partially_medically_necessary", "A2"),
        ("l4-l5-approvable", "l4-l5-approvable", "medically_necessary", "A1"),
        ("current-smoker", "current-smoker", "not_medically_necessary", "A3"),
        # not certified + pended: pended
        ("current-smoker", "missing-documentation-only", "insufficient_documentation", "A4"),
    ],
)
def test_roll_up(first: str, second: str, overall: str, x12: str) -> None:
    review = _two_lines(first, second)
    assert (review.overall.value, review.x12_action) == (overall, x12)


def test_a_line_no_policy_governs_pends_the_request() -> None:
    data = json.loads((ROOT / "examples" / "cases" / "l4-l5-approvable.json").read_text())
    data["request"]["lines"].append({"id": "scs", "procedure": "other", "cpt": ["63650"]})
    review = api.review_case(case_from_data(data, "x.json"), Library())
    assert [r.x12_action for r in review.lines] == ["A1", "A4"]
    assert (review.overall.value, review.x12_action) == ("no_policy", "A4")


def _quotes(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["quote"]] if isinstance(node.get("quote"), str) else []
        return own + [q for v in node.values() for q in _quotes(v)]
    if isinstance(node, list):
        return [q for v in node for q in _quotes(v)]
    return []


def test_founding_case_quotes_the_review_verbatim() -> None:
    # Issue 8: the founding example invents no finding; every quote is the review's own words.
    review = " ".join(
        (ROOT / "examples" / "reference" / "t12-s2-fusion-review.txt").read_text().split()
    )
    data = json.loads((ROOT / "examples" / "cases" / "t12-s2-fusion.json").read_text())
    quotes = _quotes(data)
    assert len(quotes) >= 10
    for quote in quotes:
        assert " ".join(quote.split()) in review, quote
