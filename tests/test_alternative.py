"""The alternative is evaluated, not assumed, and documentation requests can change outcomes.

Issue 8: the narrower request is built from the requested lines (their segments replaced by the
alternative's) and evaluated by the same policy; only a medically necessary alternative makes
the line A6. Expected results are worked out by hand from policies/lumbar-fusion/2025.1.yaml.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.decide.decision import Decision
from evaluator.language import policies
from evaluator.language.model import Policy
from evaluator.language.policies import Library
from evaluator.render import decision as render

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "cases"
FUSION = ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml"


def _base() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / "l4-l5-approvable.json").read_text())
    return data


def _three_levels(slips: tuple[str, ...], nicotine: str = "never") -> dict[str, Any]:
    """The approvable L4-L5 case, fused L3-S1 with a slip only at `slips` (all levels named)."""
    data = copy.deepcopy(_base())
    data["case_id"] = "three-levels"
    data["request"]["lines"][0]["fusion"] = "L3-S1"
    findings = data["imaging"][0]["findings"]
    for finding in findings:
        finding["spondylolisthesis"] = finding["level"] in slips
    data["nicotine"]["status"] = nicotine
    return data


def _decide(data: dict[str, Any]) -> Decision:
    case = case_from_data(data, f"{data['case_id']}.json")
    return api.evaluate(case, api.select_policy(case, "lumbar-fusion", Library()))


def test_medically_necessary_alternative_makes_the_line_a6() -> None:
    # L3-L4 and L5-S1 have no slip (named without one, no flexion-extension films): fusion
    # L3-S1 is not met; decompression L4-L5 with fusion L4-L5 meets every clause.
    decision = _decide(_three_levels(("L4-L5",)))
    assert decision.determination.value == "not_medically_necessary"
    alt = decision.alternative
    assert alt is not None
    assert alt.decision is not None
    assert alt.decision.determination.value == "medically_necessary"
    assert alt.approvable
    assert decision.x12_action == "A6"
    (decompression, fusion) = alt.lines
    assert (fusion.line, fusion.procedure, fusion.levels) == ("fusion", "lumbar_fusion", "L4-L5")
    # the line bills 22633 (combined technique): one level is 22633 alone
    assert fusion.cpt == (("22633", 1),)
    assert decompression.cpt == (("63047", 1),)
    data = render.decision_json(decision)["alternative"]
    assert data["offered"] is True
    assert data["lines"][1]["determination"] == "medically_necessary"


def test_review_of_one_line_with_an_approvable_alternative_is_a6() -> None:
    case = case_from_data(_three_levels(("L4-L5",)), "three-levels.json")
    review = api.review_case(case, Library())
    assert [r.x12_action for r in review.lines] == ["A6"]
    assert (review.overall.value, review.x12_action) == ("modified", "A6")


def test_alternative_failing_another_clause_is_not_offered() -> None:
    # A current smoker: the narrower fusion fails LF-NICOTINE too, so it is not approvable.
    decision = _decide(_three_levels(("L4-L5",), nicotine="current"))
    alt = decision.alternative
    assert alt is not None
    assert alt.decision is not None
    assert alt.decision.determination.value == "not_medically_necessary"
    assert not alt.approvable
    assert decision.x12_action == "A3"
    failing = render.decision_json(decision)["alternative"]["failing_clauses"]
    assert [c["id"] for c in failing] == ["LF-NICOTINE"]
    assert "not offered" in render.decision_text(decision)


def test_skip_levels_are_separate_constructs() -> None:
    # Slips at L3-L4 and L5-S1, none at L4-L5: two constructs, never "L3-S1".
    decision = _decide(_three_levels(("L3-L4", "L5-S1")))
    alt = decision.alternative
    assert alt is not None
    fusion = next(x for x in alt.lines if x.procedure == "lumbar_fusion")
    assert fusion.constructs == ("L3-L4", "L5-S1")
    assert fusion.levels == "L3-L4 and L5-S1"
    assert fusion.cpt == (("22633", 1), ("22634", 1))
    assert "L3-L4 and L5-S1" in alt.summary


def test_founding_alternative_is_pended_for_its_documents() -> None:
    # Decompression L1-S1 with fusion L3-S1: every slip level is fused, no pelvic fixation and
    # no SI line; physical therapy, functional impairment, the MRI's date, nicotine and diabetes
    # status are still not documented.
    decision = api.evaluate_path(EXAMPLES / "t12-s2-fusion.json", "lumbar-fusion")
    alt = decision.alternative
    assert alt is not None
    assert alt.decision is not None
    assert alt.decision.determination.value == "insufficient_documentation"
    assert decision.x12_action == "A3"
    assert {x.procedure: (x.line, x.levels) for x in alt.lines} == {
        "lumbar_decompression": ("decompression", "L1-S1"),
        "lumbar_fusion": ("fusion", "L3-S1"),
    }
    statuses = {c.id: c.status.value for c in alt.decision.clauses}
    assert statuses["LF-INSTABILITY"] == "met"
    assert statuses["LF-SI-FIXATION"] == "not_applicable"
    assert statuses["LF-PHYSICAL-THERAPY"] == "not_documented"
    assert [r.clause for r in alt.decision.documentation_requests] == [
        "LF-PHYSICAL-THERAPY",
        "LF-FUNCTIONAL-IMPAIRMENT",
        "LF-IMAGING-RECENT",
        "LF-NICOTINE",
        "LF-DIABETES",
    ]
    fusion = next(x for x in alt.lines if x.procedure == "lumbar_fusion")
    assert fusion.cpt == (("22612", 1), ("22614", 2))
    assert "would qualify once" in render.decision_text(decision)


def test_flexion_extension_films_are_requested_at_the_unsupported_segments() -> None:
    # LF-INSTABILITY counts missing facts as not met, but films could still change it.
    decision = api.evaluate_path(EXAMPLES / "t12-s2-fusion.json", "lumbar-fusion")
    requests = {r.clause: r.document for r in decision.documentation_requests}
    assert requests["LF-INSTABILITY"].startswith(
        "Flexion-extension radiographs at T12-L1, L1-L2, L2-L3 and S1-S2"
    )


def test_no_request_when_the_documented_facts_decide_against() -> None:
    # A current smoker is not met on documented facts: no nicotine document could change it.
    decision = api.evaluate_path(EXAMPLES / "current-smoker.json", "lumbar-fusion")
    assert "LF-NICOTINE" not in {r.clause for r in decision.documentation_requests}


@pytest.fixture
def same_document_policy(tmp_path: Path) -> Policy:
    text = FUSION.read_text(encoding="utf-8")
    # the nicotine clause takes its documents from the shared module: the policy overrides them
    text = text.replace(
        "        use: nicotine.nicotine-free\n",
        "        use: nicotine.nicotine-free\n"
        "        documentation:\n"
        "          - Primary care notes.\n",
    ).replace(
        "          - Diabetes status and a recent HbA1c result.",
        "          - Primary care notes.",
    )
    path = tmp_path / "lumbar-fusion" / "2025.1.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    return policies.load_policy(path)


def test_identical_requests_are_merged(same_document_policy: Policy) -> None:
    case = case_from_data(json.loads((EXAMPLES / "t12-s2-fusion.json").read_text()), "t12.json")
    decision = api.evaluate(case, same_document_policy)
    merged = [r for r in decision.documentation_requests if r.document == "Primary care notes."]
    assert len(merged) == 1
    assert merged[0].clauses == ("LF-NICOTINE", "LF-DIABETES")
    assert render.decision_json(decision)["documentation_requests"][-2]["clauses"] == [
        "LF-NICOTINE",
        "LF-DIABETES",
    ]


@pytest.mark.parametrize(
    ("case", "clause", "specific"),
    [
        ("diabetic-hba1c-8", "LF-DIABETES", "HbA1c is 8.0 %"),
        ("conservative-one-day-short", "LF-CONSERVATIVE-DURATION", "began 2025-03-21"),
    ],
)
def test_rationale_names_the_value_that_failed(case: str, clause: str, specific: str) -> None:
    decision = api.evaluate_path(EXAMPLES / f"{case}.json", "lumbar-fusion")
    rationale = next(c.rationale for c in decision.clauses if c.id == clause)
    assert rationale is not None
    assert specific in rationale
