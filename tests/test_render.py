"""Tests for evaluator.render.decision: report order and wording, the JSON contract, determinism."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from evaluator import api
from evaluator.decide.decision import ClauseResult, Evidence, FactView
from evaluator.language.conditions import Truth
from evaluator.language.model import Reference, Status
from evaluator.render import decision as render

ROOT = Path(__file__).parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
SCHEMA = json.loads((ROOT / "schemas" / "decision.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def founding() -> Any:
    return api.evaluate_path(FOUNDING, "lumbar-fusion")


@pytest.fixture(scope="module")
def report(founding: Any) -> str:
    return render.decision_text(founding)


def validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def position(text: str, needle: str) -> int:
    assert needle in text, f"{needle!r} is missing from the report"
    return text.index(needle)


def test_text_report_starts_with_the_determination_and_x12_action(report: str) -> None:
    first = report.splitlines()[0]
    assert "NOT MEDICALLY NECESSARY" in first
    assert "physician review" in first
    assert report.splitlines()[1] == "X12 278 action: A3 (not certified)"


def test_text_report_order(report: str) -> None:
    order = [
        "CRITERIA NOT MET",
        "LF-INSTABILITY: Instability at every fused segment (not met)",
        "LF-SI-FIXATION:",
        "CRITERIA NOT DOCUMENTED",
        "LF-PHYSICAL-THERAPY:",
        "ALTERNATIVE THE FACTS SUPPORT",
        "DOCUMENTATION TO REQUEST",
        "CRITERIA MET",
        "LF-CONSERVATIVE-DURATION:",
        "NOT APPLICABLE",
        "LF-URGENT: Red-flag waiver",
        "REFERENCES",
    ]
    found = [position(report, needle) for needle in order]
    assert found == sorted(found)
    # References come last: nothing but citations after the heading.
    tail = report[position(report, "REFERENCES") :].splitlines()[2:]
    assert tail
    assert all(line.startswith(("  [", "      ")) for line in tail)


def test_text_report_evidence_reads_as_words(founding: Any, report: str) -> None:
    assert "[no] for T12-L3 and S1-S2: " in report
    assert "[not documented] physical therapy: supervised is yes" in report
    assert 'source: clinic note "There is no documentation of completion of formal' in report
    instability = next(c for c in founding.clauses if c.id == "LF-INSTABILITY")
    cited = ", ".join(str(n) for n in sorted(instability.citations))
    assert f"References: [{cited}]" in report
    assert "Recommendation: Limit fusion to the segments with demonstrated instability" in report
    assert "  - lumbar fusion: L3-S1" in report
    assert "  1. Physical therapy notes with start and end dates" in report
    for raw in ("_lo", "_hi", "before_request", "not_met", "not_documented", "\x1b["):
        assert raw not in report


def test_a_clause_with_no_evidence_says_so_rather_than_an_empty_heading(report: str) -> None:
    """LF-FUNCTIONAL-IMPAIRMENT has no ODI and no limitation on record: no evidence lines, no
    source. The report printed a bare "Evidence:" heading with nothing under it."""
    lines = report.splitlines()
    for at, line in enumerate(lines):
        if line.strip() == "Evidence:":
            assert lines[at + 1].lstrip().startswith(("- [", "- source:")), lines[at : at + 2]
    clause = report[position(report, "LF-FUNCTIONAL-IMPAIRMENT:") :]
    assert clause.index("Evidence: none in the records reviewed.") < clause.index("References:")


def test_text_report_cites_only_references_it_shows(founding: Any) -> None:
    inapplicable = next(c for c in founding.clauses if c.status is Status.NOT_APPLICABLE)
    decision = dataclasses.replace(
        founding,
        clauses=tuple(
            dataclasses.replace(c, citations=(99,)) if c is inapplicable else c
            for c in founding.clauses
        ),
        references=(*founding.references, Reference(99, "Cited by an inapplicable clause only.")),
    )
    text = render.decision_text(decision)
    references = text[position(text, "REFERENCES") :]
    assert "[99]" not in references
    shown = {
        n for c in founding.clauses if c.status is not Status.NOT_APPLICABLE for n in c.citations
    }
    assert shown
    for ref in founding.references:
        assert (f"[{ref.id}] " in references) == (ref.id in shown), ref.id


def test_text_report_states_the_review_note(report: str) -> None:
    flat = " ".join(report.split())
    assert "recommendation for physician review, not a denial" in flat
    assert "peer-to-peer" in flat
    assert "available on request" in flat


def clause(evidence: list[Evidence]) -> ClauseResult:
    return ClauseResult(
        "X", "s", "Section", "t", Status.NOT_MET, tuple(evidence), (), None, "do more", ()
    )


def fact(*values: tuple[str, Any], type_: str = "conservative_care") -> FactView:
    return FactView(type_, f"{type_}:1", tuple(sorted(values)), None)


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (
            fact(
                ("start", "12/2024"),
                ("start_days_before_request_lo", 171),
                ("start_days_before_request_hi", 201),
                ("start_months_before_request_lo", 5),
                ("start_months_before_request_hi", 6),
            ),
            "start 12/2024 (5-6 months before the request)",
        ),
        (
            fact(
                ("date", "2025-06-10"),
                ("date_days_before_request_lo", 10),
                ("date_days_before_request_hi", 10),
                ("date_months_before_request_lo", 0),
                ("date_months_before_request_hi", 0),
                type_="imaging_study",
            ),
            "date 2025-06-10 (10 days before the request)",
        ),
        (
            fact(("duration_lo", 41), ("duration_hi", 41), type_="physical_therapy"),
            "duration 41 days",
        ),
        (fact(("cobb_word", "very subtle"), type_="alignment"), "Cobb angle very subtle"),
        (fact(("supervised", False), type_="physical_therapy"), "supervised no"),
        (fact(("hba1c", 8.4), type_="diabetes"), "HbA1c 8.4%"),
    ],
    ids=["month-interval", "exact-days", "duration", "word", "boolean", "unit"],
)
def test_fact_values_in_words(view: FactView, expected: str) -> None:
    assert render.fact_text(view) == expected


def test_evidence_lines_merge_bindings_and_cap(founding: Any) -> None:
    same = [
        Evidence("an unstable segment is documented", Truth.FALSE, (("seg", s),), ())
        for s in ("T12-L1", "L1-L2", "L2-L3", "S1-S2")
    ]
    lines = render.evidence_lines(clause(same))
    assert len(lines) == 1
    assert lines[0].binding == "T12-L3 and S1-S2"
    assert lines[0].sentence == ("No, for T12-L3 and S1-S2: an unstable segment is documented.")
    many = [Evidence(f"condition {i}", Truth.UNKNOWN, (), ()) for i in range(9)]
    text = render.decision_text(dataclasses.replace(founding, clauses=(clause(many),)))
    assert "[not documented] condition 5" in text
    assert "condition 6" not in text
    assert "3 further findings are listed in the notice (--format html)" in text


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_json_validates_against_the_schema(path: Path) -> None:
    decision = api.evaluate_path(path)
    data = json.loads(json.dumps(render.decision_json(decision, "2025-06-20T00:00:00+00:00")))
    errors = sorted(validator().iter_errors(data), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_founding_json_contract(founding: Any) -> None:
    data = render.decision_json(founding, None)
    assert validator().is_valid(data)
    assert data["determination"] == "not_medically_necessary"
    assert data["x12_action"] == "A3"
    assert data["policy"]["id"] == "lumbar-fusion"
    statuses = {c["id"]: c["status"] for c in data["clauses"]}
    assert statuses["LF-INSTABILITY"] == "not_met"
    instability = next(c for c in data["clauses"] if c["id"] == "LF-INSTABILITY")
    assert {"condition", "value", "binding", "facts"} == set(instability["evidence"][0])
    assert instability["evidence"][0]["value"] == "false"
    assert instability["evidence"][0]["binding"] == {"seg": "T12-L1"}
    assert data["alternative"]["lines"][1]["levels"] == "L3-S1"
    assert "not a denial" in data["review_note"]


def test_schema_rejects_what_the_contract_forbids(founding: Any) -> None:
    data = render.decision_json(founding, None)
    data["determination"] = "denied"
    assert not validator().is_valid(data)
    data = render.decision_json(founding, None)
    data["surprise"] = 1
    assert not validator().is_valid(data)


def test_every_schema_property_is_described() -> None:
    undescribed = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    undescribed.append(f"{where}/properties/{name}")
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}/{i}")

    walk(SCHEMA, "")
    assert SCHEMA["$id"] == "https://necessity.dev/schemas/decision.schema.json"
    assert not undescribed


def test_json_is_deterministic_apart_from_evaluated_at() -> None:
    def run(stamp: str) -> str:
        data = render.decision_json(api.evaluate_path(FOUNDING, "lumbar-fusion"), stamp)
        assert data.pop("evaluated_at") == stamp
        return json.dumps(data, indent=2)

    first, second = run("2025-01-01T00:00:00+00:00"), run("2026-01-01T00:00:00+00:00")
    assert first == second
    assert list(json.loads(first))[:3] == ["case_id", "determination", "x12_action"]


def test_markdown_has_the_headings(founding: Any) -> None:
    markdown = render.decision_markdown(founding)
    assert markdown.startswith("# Not medically necessary: recommended for physician review\n")
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    for expected in (
        "## Clause summary",
        "## Criteria not met",
        "### Imaging and instability",
        "#### `LF-INSTABILITY`: Instability at every fused segment (not met)",
        "## Criteria not documented",
        "## Alternative the facts support",
        "## Documentation to request",
        "## Criteria met",
        "## Not applicable",
        "## References",
    ):
        assert expected in headings
    row = "| `LF-INSTABILITY` | Imaging and instability | Instability at every fused segment |"
    assert f"{row} not met |" in markdown
    assert "- **no** for T12-L3 and S1-S2: " in markdown
    assert "- \\[1\\] Resnick DK" in markdown  # references are a list, not one paragraph
    assert "\x02" not in markdown
    assert "\x06" not in markdown


def test_policies_renderings() -> None:
    found = api.list_policies()
    data = render.policies_json(found)
    entry = next(
        p for p in data["policies"] if p["id"] == "lumbar-fusion" and p["version"] == "2025.1"
    )
    assert entry["status"] == "active"
    assert entry["effective_from"] == "2025-01-01"
    assert "22612" in entry["procedures"][0]["cpt"]
    text = render.policies_text(found)
    assert "lumbar-fusion 2025.1 (active): Lumbar spinal fusion" in text
    assert f"sha256 {entry['sha256'][:12]}" in text
    assert render.policies_text([]) == "no policies found\n"
