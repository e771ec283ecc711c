"""The reviewer's notice: structure (parsed as CommonMark), wording, escaping, goldens, browser."""

from __future__ import annotations

import html
import itertools
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt
from markdown_it.token import Token

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.cli.main import main
from evaluator.decide import evidence
from evaluator.language.policies import Library
from evaluator.render import decision as render
from evaluator.render import notice
from evaluator.render import review as render_review
from tests import chromium

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
CONFLICT = ROOT / "examples" / "cases" / "conflicting-nicotine.json"
GOLDEN = Path(__file__).parent / "golden" / "notice"
HOSTILE = Path(__file__).parent / "hostile" / "notice-markup.json"
# Engine notation a physician must never read in evidence (issue 12).
NOTATION = [
    re.compile(r"\b[a-z_]+ = "),  # `seg = T12-L3`
    re.compile(r"\(counts as (yes|no) when there is none\)"),
    re.compile(r"\(setting [a-z0-9_]+\)"),
    re.compile(r"\.\.\. and \d+ more"),
    re.compile(r"\bundetermined\b"),
    re.compile(r"\b(not_met|not_documented|_lo|_hi|before_request)\b"),
    re.compile("[\x02-\x06]"),
]


def review(path: Path) -> api.CaseReview:
    return api.review_case(load_case(path), Library())


def tokens(markdown: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(markdown)


def words_of(token: Token) -> str:
    """Return an inline token as a reader sees it: text without markup or escapes."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def headings(markdown: str) -> list[tuple[int, str]]:
    toks = tokens(markdown)
    return [
        (int(t.tag[1]), words_of(toks[i + 1]))
        for i, t in enumerate(toks)
        if t.type == "heading_open"
    ]


@pytest.fixture(scope="module")
def founding_md() -> str:
    return notice.to_markdown(notice.review_notice(review(FOUNDING)))


@pytest.fixture(scope="module")
def conflict_md() -> str:
    return notice.to_markdown(notice.review_notice(review(CONFLICT)))


@pytest.mark.parametrize("path", [FOUNDING, CONFLICT], ids=["founding", "conflict"])
def test_headings_nest(path: Path) -> None:
    found = headings(notice.to_markdown(notice.review_notice(review(path))))
    assert found[0] == (1, "Medical necessity review notice")
    assert [level for level, _ in found].count(1) == 1
    for (before, _), (after, text) in itertools.pairwise(found):
        assert after <= before + 1, f"{text!r} skips a level after h{before}"


def test_each_line_decision_sits_under_its_line(founding_md: str) -> None:
    found = headings(founding_md)
    lines = [i for i, (level, text) in enumerate(found) if level == 2 and text.startswith("Line ")]
    assert [found[i][1].split(" ")[1] for i in lines] == ["decompression", "fusion", "si-fusion"]
    fusion = found[lines[1] : lines[2]]
    # Everything about the fusion line is below its h2; its failed clauses are h4 under h3.
    assert all(level > 2 for level, _ in fusion[1:])
    assert (3, "Criteria not met") in fusion
    assert (4, "Instability at every fused segment (not met)") in fusion
    assert (3, "Narrower alternative, once the documents arrive") in fusion
    assert (3, "Documents to send") in fusion
    assert (3, "References") in fusion
    tail = [text for level, text in found if level == 2][-3:]
    assert tail == ["Peer-to-peer discussion", "Appeal rights", "Abbreviations"]


def section(markdown: str, heading: str) -> list[Token]:
    """Return the tokens after the first heading with this text up to the next heading."""
    toks = tokens(markdown)
    start = next(
        i
        for i, t in enumerate(toks)
        if t.type == "inline" and words_of(t) == heading and toks[i - 1].type == "heading_open"
    )
    end = next(
        (i for i in range(start + 2, len(toks)) if toks[i].type == "heading_open"), len(toks)
    )
    return toks[start + 2 : end]


def test_references_are_a_real_list(founding_md: str) -> None:
    body = section(founding_md, "References")
    items = [t for t in body if t.type == "list_item_open"]
    assert body[0].type == "bullet_list_open"
    texts = [words_of(t) for t in body if t.type == "inline"]
    assert len(items) == len(texts) == 3
    assert all(re.match(r"\[\d+\] \S", t) for t in texts)


def test_summary_has_the_overall_result_and_each_line_action(founding_md: str) -> None:
    body = section(founding_md, "Summary")
    text = " ".join(words_of(t) for t in body if t.type == "inline")
    # The decompression line is pended (symptom correlation not documented), so the request is.
    assert "Overall result: Pended: documents needed." in text
    assert text.count("X12 278 action A4 (pended)") == 2
    assert text.count("X12 278 action A3 (not certified)") == 2


def test_determination_is_a_recommendation_for_physician_review(founding_md: str) -> None:
    flat = " ".join(founding_md.split())
    assert "recommended for physician review" in flat
    assert "an algorithm may not be the sole basis of a denial" in flat
    assert "not a denial" in flat
    assert "denied" not in flat.lower()


def test_failed_clause_names_its_criterion_finding_and_references(founding_md: str) -> None:
    body = section(founding_md, "Instability at every fused segment (not met)")
    text = "\n".join(words_of(t) for t in body if t.type == "inline")
    assert (
        "Criterion: Lumbar spinal fusion, with or without decompression (policy lumbar-fusion, "
        "version 2025.1), clause LF-INSTABILITY: Instability at every fused segment"
    ) in text
    assert "Finding: Fusion is proposed at T12-L3 and S1-S2 without instability shown" in text
    assert "No, for T12-L3 and S1-S2: there is an unstable segment" in text
    assert 'Radiology report "the documented multilevel stenosis' in text
    assert "References: [1], [2], [5], [6], [8]" in text
    assert "What would make it approvable: Limit fusion to the segments" in text


def test_alternative_approvable_and_documents_name_their_clauses(founding_md: str) -> None:
    alternative = " ".join(
        words_of(t)
        for t in section(founding_md, "Narrower alternative, once the documents arrive")
        if t.type == "inline"
    )
    assert "Lumbar fusion: L3-S1" in alternative
    assert "LF-INSTABILITY" in alternative
    # The decompression line (pended) comes first; the fusion line's steps name their clause.
    assert "(clause LF-INSTABILITY:" in founding_md
    # The first "Documents to send" is the decompression line's (one document); every item
    # names its clause.
    documents = section(founding_md, "Documents to send")
    assert documents[0].type == "ordered_list_open"
    items = [words_of(t) for t in documents if t.type == "inline"]
    assert len(items) == 1
    assert all(re.search(r"\(clause L[DF]-[A-Z-]+: ", item) for item in items)
    assert "Flexion-extension radiographs at T12-L1, L1-L2, L2-L3 and S1-S2" in founding_md


def test_conflicting_sources_side_by_side(conflict_md: str) -> None:
    body = section(conflict_md, "Conflicting records")
    cells = [words_of(t) for t in body if t.type == "inline"]
    head = cells.index("Nicotine status")
    assert cells[head + 1 : head + 5] == ["Clinic note", "Therapy note", "never", "current"]
    finding = " ".join(
        words_of(t)
        for t in section(conflict_md, "Nicotine free (not documented)")
        if t.type == "inline"
    )
    assert "the clinic note says never and the therapy note says current" in finding


def test_placeholders_for_peer_to_peer_and_appeal(founding_md: str) -> None:
    for heading in ("Peer-to-peer discussion", "Appeal rights"):
        text = " ".join(words_of(t) for t in section(founding_md, heading) if t.type == "inline")
        assert re.search(r"\[[a-z][^\]]+\]", text), heading


def test_abbreviations_used_are_explained(founding_md: str) -> None:
    explained = " ".join(
        words_of(t) for t in section(founding_md, "Abbreviations") if t.type == "inline"
    )
    # MRI and CT: the founding review gives no date for its MRI (imaging recency pends).
    for used in ("CPT", "X12 278", "SI", "HbA1c", "SVA", "PI", "LL", "MRI", "CT"):
        assert f"{used}: " in explained, used


def test_abbreviations_not_used_are_not_explained(conflict_md: str) -> None:
    explained = " ".join(
        words_of(t) for t in section(conflict_md, "Abbreviations") if t.type == "inline"
    )
    assert "ng/mL: " in explained  # the cotinine the conflict asks for
    for unused in ("MRI", "HbA1c", "SVA"):  # its MRI is recent and it is not diabetic
        assert f"{unused}: " not in explained, unused


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_no_engine_notation_in_evidence(path: Path) -> None:
    result = review(path)
    sentences = [
        line.sentence
        for r in result.lines
        if r.decision
        for c in r.decision.clauses
        for line in render.evidence_lines(c)
    ]
    blocks = notice.review_notice(result)
    assert notice.to_html(blocks).endswith("</html>\n")
    outputs = {
        "evidence": "\n".join(sentences),
        "notice": notice.notice_text(blocks),
        "report": render_review.review_text(result),
    }
    for name, text in outputs.items():
        for pattern in NOTATION:
            found = pattern.search(text)
            assert found is None, f"{name}: {found.group(0)!r} in {path.name}"


def test_notation_scan_can_fail() -> None:
    bad = "No, for seg = T12-L3: there is x (counts as no when there is none). ... and 3 more"
    assert sum(bool(p.search(bad)) for p in NOTATION) == 3


def test_html_escapes_case_text() -> None:
    # Outcome: every tag and Markdown mark in case text is shown as text, never as markup.
    blocks = notice.review_notice(review(HOSTILE))
    page = notice.to_html(blocks)
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    markdown = notice.to_markdown(blocks)
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<script" not in rendered
    assert "<img" not in rendered
    assert "<strong>bold</strong>" not in rendered
    assert "<a href" not in rendered


def test_html_is_standalone() -> None:
    page = notice.to_html(notice.review_notice(review(FOUNDING)))
    assert page.startswith("<!DOCTYPE html>")
    assert "@page" in page
    for external in ("<script", "<link", "src=", "url(", "http://", "@import"):
        assert external not in page.split("</head>")[0], external
    assert '<ol class="references">' in page
    assert '<li value="10">' in page


def test_cli_formats() -> None:
    runner = CliRunner()
    md = runner.invoke(main, ["evaluate", str(FOUNDING), "--format", "markdown"])
    assert md.exit_code == 3  # the decompression line is pended
    assert md.stdout.startswith("# Medical necessity review notice\n")
    page = runner.invoke(main, ["evaluate", str(FOUNDING), "--format", "html"])
    assert page.exit_code == 3
    assert page.stdout.startswith("<!DOCTYPE html>")
    one = runner.invoke(
        main, ["evaluate", str(FOUNDING), "--policy", "lumbar-fusion", "--format", "markdown"]
    )
    assert one.exit_code == 1
    assert "## Policy lumbar-fusion" in one.stdout


@pytest.mark.parametrize(
    ("path", "suffix"),
    [(FOUNDING, "md"), (CONFLICT, "md"), (FOUNDING, "html"), (CONFLICT, "html")],
    ids=["founding-md", "conflict-md", "founding-html", "conflict-html"],
)
def test_golden_notice(path: Path, suffix: str, update_golden: bool) -> None:
    blocks = notice.review_notice(review(path))
    text = notice.to_markdown(blocks) if suffix == "md" else notice.to_html(blocks)
    golden = GOLDEN / f"{path.stem}.{suffix}"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"{golden} differs; review the diff"


# ---- in a browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> str:
    found, why = chromium.ensure()
    if found is None:
        pytest.skip(why)
    return str(found)


@pytest.mark.parametrize("path", [FOUNDING, CONFLICT], ids=["founding", "pended"])
def test_notice_in_chromium(browser: str, path: Path, tmp_path: Path) -> None:
    blocks = notice.review_notice(review(path))
    page = tmp_path / "notice.html"
    page.write_text(notice.to_html(blocks), encoding="utf-8")
    dom, console = chromium.load(browser, page)
    assert console == []
    expected = [b.text for b in blocks if isinstance(b, notice.Heading)]
    shown = [
        re.sub(r"<[^>]+>", "", m.group(1))
        for m in re.finditer(r"<h[1-4][^>]*>(.*?)</h[1-4]>", dom, re.S)
    ]
    assert [html.unescape(s) for s in shown] == expected
    for needed in ("Summary", "Peer-to-peer discussion", "Appeal rights"):
        assert needed in expected
    png = tmp_path / "notice.png"
    chromium.screenshot(browser, page, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = tmp_path / "notice.pdf"
    chromium.pdf(browser, page, pdf)
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_console_errors_are_caught(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>console.error('boom')</script>")
    _, console = chromium.load(browser, page)
    assert any("boom" in m for m in console)


def test_review_report_markdown_nests_each_decision_under_its_line() -> None:
    found = headings(render_review.review_markdown(review(FOUNDING)))
    lines = [i for i, (level, text) in enumerate(found) if text.startswith("Line ")]
    assert lines
    assert all(found[i][0] == 2 for i in lines)
    for i in lines:
        assert found[i + 1][0] == 3, found[i + 1]
    for (before, _), (after, text) in itertools.pairwise(found):
        assert after <= before + 1, f"{text!r} skips a level after h{before}"


@pytest.mark.parametrize(
    ("answer", "condition", "bindings", "documented", "expected"),
    [
        (
            "no",
            "there is an unstable segment at the same segment as the fused segment",
            [{"seg": "T12-L1"}, {"seg": "L1-L2"}, {"seg": "L2-L3"}, {"seg": "S1-S2"}],
            "",
            "No, for T12-L3 and S1-S2: there is an unstable segment at the same segment as the "
            "fused segment.",
        ),
        (
            "not documented",
            "care component (kind: home exercise): kind is documented",
            [],
            "",
            "Not documented: care component (kind: home exercise).",
        ),
        (
            "cannot be decided from the record",
            "conservative care: start is at least 6 months before the request",
            [],
            "start 12/2024 (5-6 months before the request)",
            "Cannot be decided from the record: conservative care: start is at least 6 months "
            "before the request. On record: start 12/2024 (5-6 months before the request).",
        ),
    ],
    ids=["merged-levels", "not-documented", "cannot-decide"],
)
def test_evidence_sentence(
    answer: str, condition: str, bindings: list[dict[str, str]], documented: str, expected: str
) -> None:
    line = evidence.EvidenceLine(answer, condition, documented, bindings)
    assert line.sentence == expected


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_only_an_alternative_that_is_itself_approvable_is_headed_as_qualifying(path: Path) -> None:
    # A pended or failing alternative must never read as one that qualifies (issue 8/12).
    result = review(path)
    markdown = notice.to_markdown(notice.review_notice(result))
    alternatives = [
        line.decision.alternative
        for line in result.lines
        if line.decision is not None and line.decision.alternative is not None
    ]
    approvable = [a for a in alternatives if a.approvable]
    qualifying = [t for level, t in headings(markdown) if t.startswith("Narrower alternative")]
    assert bool(qualifying) == bool(alternatives)
    if not approvable:
        assert "Narrower alternative that qualifies" not in qualifying
        assert "candidate for modification (X12 278 action A6) if" not in markdown


def test_an_approvable_alternative_is_headed_as_qualifying() -> None:
    case = ROOT / "examples" / "cases" / "dynamic-instability.json"
    markdown = notice.to_markdown(notice.review_notice(review(case)))
    found = [t for _, t in headings(markdown)]
    assert "Narrower alternative that qualifies" in found
    assert "candidate for modification (X12 278 action A6)" in markdown
