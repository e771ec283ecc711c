"""A FHIR Bundle of a case decides as the case file does, over varied facts (stop-22 review).

tests/test_fhir.py shows the founding Bundle gives the founding case's decision; here the same
change is made to both, the MRI's findings at every level drawn by Hypothesis (and a study,
finding or observation withdrawn in the Bundle states nothing), and the two must give the same
determination, clause statuses and alternative on every line. The examples other than the
founding case have no Bundle, and the Bundle mapping has no writer to make one.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.case.from_fhir import bundle_to_case
from evaluator.language.policies import Library
from evaluator.read import source

ROOT = Path(__file__).resolve().parent.parent
FOUNDING: dict[str, Any] = json.loads(
    (ROOT / "examples" / "cases" / "t12-s2-fusion.json")
    .read_text()
    .replace('"12/2024"', '"2024-12"')
)
BUNDLE: dict[str, Any] = json.loads(
    (ROOT / "examples" / "fhir" / "t12-s2-fusion-bundle.json").read_text()
)
LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
FIELD = "https://necessity.dev/fhir/StructureDefinition/case-field"
LIBRARY = Library()


def _outcome(review: api.CaseReview) -> list[tuple[str, str, dict[str, str], str | None]]:
    return [
        (
            line.line.id,
            line.determination,
            {c.id: c.status.value for c in line.decision.clauses} if line.decision else {},
            line.decision.alternative.summary
            if line.decision and line.decision.alternative
            else None,
        )
        for line in review.lines
    ]


def _field(path: str, value: Any) -> dict[str, Any]:
    kind = "valueBoolean" if isinstance(value, bool) else "valueCode"
    return {
        "url": FIELD,
        "extension": [{"url": "path", "valueString": path}, {"url": "value", kind: value}],
    }


def _both(findings: dict[str, tuple[str, bool]], tmp: Path) -> tuple[Any, Any]:
    """The founding case and its Bundle, each with the MRI's findings set to `findings`."""
    case = copy.deepcopy(FOUNDING)
    case["request"]["urgency"] = "standard"  # a Claim states its priority (test_fhir.py)
    study = next(s for s in case["imaging"] if s["id"] == "stenosis-study")
    study["findings"] = [
        {"level": level, "stenosis": grade, "spondylolisthesis": slip}
        for level, (grade, slip) in findings.items()
    ]
    bundle = copy.deepcopy(BUNDLE)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        level = resource.get("id", "").removeprefix("mri-finding-")
        if level in findings:
            grade, slip = findings[level]
            resource["extension"] = [_field("/stenosis", grade), _field("/spondylolisthesis", slip)]
    path = tmp / "bundle.json"
    path.write_text(json.dumps(bundle))
    return case_from_data(case, "case.json"), bundle_to_case(source.load(path)).case


def test_the_founding_bundle_and_case_agree(tmp_path: Path) -> None:
    study = next(s for s in FOUNDING["imaging"] if s["id"] == "stenosis-study")
    as_is = {
        f["level"]: (f["stenosis"], f.get("spondylolisthesis", False)) for f in study["findings"]
    }
    case, mapped = _both(as_is, tmp_path)
    assert _outcome(api.review_case(case, LIBRARY)) == _outcome(api.review_case(mapped, LIBRARY))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.tuples(
        *[
            st.tuples(st.sampled_from(["none", "mild", "moderate", "severe"]), st.booleans())
            for _ in LEVELS
        ]
    )
)
def test_the_bundle_decides_as_the_case_whatever_the_findings(
    tmp_path: Path, drawn: tuple[tuple[str, bool], ...]
) -> None:
    case, mapped = _both(dict(zip(LEVELS, drawn, strict=True)), tmp_path)
    assert _outcome(api.review_case(case, LIBRARY)) == _outcome(api.review_case(mapped, LIBRARY))
