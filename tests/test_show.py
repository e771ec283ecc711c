"""Tests for evaluator/authoring/show.py, the describe wording it uses, and `necessity show`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from evaluator.authoring import show
from evaluator.cli.main import main
from evaluator.decide.findings import fill_settings
from evaluator.language import describe
from evaluator.language.conditions import Threshold, parse_condition
from evaluator.language.model import Policy
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs" / "policies"
LIBRARY = Library(ROOT / "policies")
POLICIES = LIBRARY.all()
IDS = [p.ref for p in POLICIES]


@pytest.fixture(scope="module")
def lumbar() -> Policy:
    return LIBRARY.get("lumbar-fusion@2025.1")


@pytest.fixture(scope="module")
def markdown(lumbar: Policy) -> str:
    return show.policy_markdown(lumbar)


@pytest.fixture(scope="module")
def text(lumbar: Policy) -> str:
    return show.policy_text(lumbar)


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["show", *args], prog_name="necessity")


# --- content -------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_every_clause_appears_with_its_title(policy: Policy) -> None:
    rendered = show.policy_markdown(policy), show.policy_text(policy)
    for clause in policy.clauses:
        for output in rendered:
            assert f"{clause.id}: {fill_settings(clause.title, policy.settings)}" in output


@pytest.mark.parametrize(
    "phrase",
    [
        "conservative care: start is at least 3 months (setting conservative_care_minimum) before"
        " the request",
        "physical therapy: duration is at least 6 weeks (setting physical_therapy_minimum)",
        "physical therapy: end is at most 12 months (setting physical_therapy_recency) before"
        " the request",
        "the latest alignments (standing: yes; full length: yes) by date",
        "the alignment: sagittal vertical axis (SVA) is more than 50 mm",
        "the alignment: Cobb angle is at least 30 degrees",
        "pelvic incidence (PI) minus lumbar lordosis (LL) is more than 20 degrees",
        "nicotine: cotinine is at most 10 ng/mL",
        "diabetes: HbA1c is less than 8 % (setting hba1c_limit)",
        "the red flag: strength is at most 3/5",
        "translation is at least 3 mm (setting fe_translation)",
        "facet resection is at least 50 %",
    ],
)
def test_thresholds_show_their_edge_and_unit(markdown: str, text: str, phrase: str) -> None:
    assert phrase in markdown
    assert phrase in " ".join(text.split())  # the text format wraps long lines


def test_settings_show_value_unit_and_description(markdown: str) -> None:
    assert "- `fe_translation`: 3 mm. Dynamic instability: translation" in markdown
    assert "- `fe_angulation`: 10 degrees. " in markdown
    assert "below every threshold: minimal, mild, slight, subtle, very subtle" in markdown


def test_header_names_version_status_dates_and_codes(lumbar: Policy, markdown: str) -> None:
    assert markdown.startswith(f"# {lumbar.title}\n")
    assert "- **Policy:** `lumbar-fusion@2025.1`" in markdown
    assert "- **Status:** active" in markdown
    assert "- **In force:** from 2025-01-01 until further notice" in markdown
    assert "- lumbar fusion (CPT 22533, 22558, " in markdown


def test_clause_parts(markdown: str) -> None:
    part = markdown[markdown.index("#### LF-INSTABILITY") : markdown.index("### Deformity")]
    assert (
        "**Requires:**\n\n- for every fused segment (counts as no when there is none):\n"
        "  - any of:\n    - there is an unstable segment"
    ) in part
    assert "**If the records cannot decide it:** not documented; the request is pended" in part
    assert (
        "**Documents requested when a missing document could change the status:**\n\n"
        "- Flexion-extension radiographs at \\[unsupported fused segments\\]"
    ) in part
    # a `{type.field}` template shows what the decision fills in
    assert "instability (\\[alternative fusion segments\\])" in part
    assert re.search(r"\*\*References:\*\* \[1\], \[2\]", part)


def test_waiver_and_applicability(markdown: str) -> None:
    part = markdown[markdown.index("#### LF-NICOTINE") : markdown.index("#### LF-DIABETES")]
    assert "**Waived (not applicable) when:**\n\n- clause LF-URGENT is met" in part
    assert "**Applies when:**\n\n- any of:\n  - diabetes: diabetic is yes" in markdown


def test_derived_facts_and_their_rules(markdown: str) -> None:
    part = markdown[markdown.index("## Derived facts") : markdown.index("## Alternative")]
    assert "### unstable segment" in part
    assert "- `unstable-motion`: Dynamic instability" in part
    assert "  - for each fused segment, when:" in part
    assert "      - dynamic study at the same segment as the fused segment: translation" in part
    assert "  - gives an unstable segment (segment from the fused segment; route: " in part


def test_alternative(markdown: str) -> None:
    part = markdown[markdown.index("## Alternative") : markdown.index("## References")]
    assert "- there is an unsupported fused segment" in part
    assert "- lumbar fusion at the alternative fusion segments" in part


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_references_are_numbered_with_their_doi(policy: Policy) -> None:
    output = show.policy_markdown(policy)
    listed = output[output.index("\n## References\n") :]
    for ref in policy.references:
        assert f"- [{ref.id}] " in listed
        if ref.doi:
            assert f"(https://doi.org/{ref.doi})" in listed
    cited = {n for clause in policy.clauses for n in clause.cites}
    assert cited <= {r.id for r in policy.references}


# --- formats -------------------------------------------------------------------------------------


def test_markdown_headings(lumbar: Policy, markdown: str) -> None:
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings[0] == f"# {lumbar.title}"
    for expected in ("## Procedures", "## Settings", "## Criteria", "## References"):
        assert expected in headings
    for section in lumbar.sections:
        assert f"### {section.title}" in headings
    assert [h for h in headings if h.startswith("#### ")] == [
        f"#### {c.id}: {fill_settings(c.title, lumbar.settings)}" for c in lumbar.clauses
    ]


def test_text_format_is_plain_and_wrapped(lumbar: Policy, text: str) -> None:
    lines = text.splitlines()
    assert lines[:2] == [lumbar.title, "=" * len(lumbar.title)]
    assert "Criteria\n--------" in text
    assert "Urgent indications\n~~~~~~~~~~~~~~~~~~" in text
    assert "Policy:   lumbar-fusion@2025.1" in text
    assert not any(line.startswith("#") for line in lines)
    assert "**" not in text
    assert "`" not in text
    assert max(len(line) for line in lines) <= show.WIDTH


def test_text_does_not_split_a_number_from_its_unit(text: str) -> None:
    assert not re.search(r"\n *(%|mm|degrees|ng/mL|days|weeks|months)(?![A-Za-z])", text)


# --- describe wording ----------------------------------------------------------------------------


def cond(data: dict[str, Any]) -> Any:
    return parse_condition(data, "/c", {})


def test_a_join_names_the_bound_fact() -> None:
    every = cond(
        {
            "every": {
                "fact": "decompressed_segment",
                "as": "seg",
                "require": {
                    "fact": "imaging_finding",
                    "where": {"segment": {"same_as": "seg.segment"}, "modality": "mri"},
                    "field": "stenosis",
                    "one_of": ["moderate", "severe"],
                },
            }
        }
    )
    assert describe.outline(every, aliases={}) == [
        "- for every decompressed segment:",
        "  - imaging finding at the same segment as the decompressed segment (modality: MRI):"
        " stenosis is one of moderate or severe",
    ]
    # without aliases (evidence, which shows the bound value beside it) the name is kept
    assert describe.outline(every)[0] == "- for every decompressed segment (seg):"


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (Threshold(1, "months"), "1 month"),
        (Threshold(3.0, "mm"), "3 mm"),
        (Threshold(30, "deg"), "30 degrees"),
        (Threshold(8.0, "%"), "8 %"),
        (Threshold(3, "grade"), "3/5"),
        (Threshold(2, "count"), "2"),
        (Threshold(3.0, "mm", "fe_translation"), "3 mm (setting fe_translation)"),
    ],
)
def test_threshold_text(threshold: Threshold, expected: str) -> None:
    assert describe.threshold_text(threshold) == expected


def test_a_value_that_starts_with_not_is_quoted() -> None:
    leaf = cond({"fact": "physical_therapy", "field": "status", "not_equals": "not_done"})
    assert describe.leaf_text(leaf) == 'physical therapy: status is not "not done"'


def test_demonstrated_does_not_claim_every_unknown_counts_as_no() -> None:
    """A value the records state but leave unsettled (x-disputed) stays not documented under
    `demonstrated` (docs/authoring.md), so the rendering must not say "not documented counts as
    no": only a value no record states does."""
    shown = describe.outline(
        cond(
            {
                "demonstrated": {
                    "fact": "nicotine",
                    "field": "cotinine_ng_ml",
                    "more_than": {"value": 10, "unit": "ng/mL"},
                }
            }
        )
    )
    assert shown[0] == "- demonstrated in the records (a value no record states counts as no):"


# --- the published document and the command ------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
def test_published_document_is_up_to_date(policy: Policy, update_golden: bool) -> None:
    path = DOCS / f"{policy.id}-{policy.version}.md"
    current = show.policy_markdown(policy)
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(current, encoding="utf-8")
    assert path.is_file(), f"{path.name} is missing: run `make docs`"
    assert path.read_text(encoding="utf-8") == current, f"{path.name} is stale: run `make docs`"


def test_show_prints_markdown_by_default(markdown: str) -> None:
    result = run("lumbar-fusion")
    assert result.exit_code == 0, result.output
    assert result.stdout == markdown


def test_show_text_for_a_named_version(text: str) -> None:
    result = run("lumbar-fusion@2025.1", "--format", "text")
    assert result.exit_code == 0, result.output
    assert result.stdout == text


def test_show_unknown_policy_exits_2() -> None:
    result = run("no-such-policy")
    assert result.exit_code == 2
    assert "unknown policy `no-such-policy`" in result.stderr


def test_show_unknown_version_exits_2() -> None:
    result = run("lumbar-fusion@1999.1")
    assert result.exit_code == 2
    assert "has no version `1999.1`" in result.stderr


def test_show_from_a_policies_dir(tmp_path: Path) -> None:
    folder = tmp_path / "lumbar-fusion"
    folder.mkdir()
    source = ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml"
    (folder / "2025.1.yaml").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    result = run("lumbar-fusion", "--policies-dir", str(tmp_path), "--format", "text")
    assert result.exit_code == 0, result.output
    assert "LF-INSTABILITY: Instability at every fused segment" in result.stdout
