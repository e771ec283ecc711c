"""The reviewer's notice to the requesting physician, as Markdown or as one standalone HTML file.

One outline of blocks (headings, paragraphs, lists, tables) is built from the review and marked
up twice, so both formats say the same. Text from case and policy files is plain text here and
is escaped by each markup (Markdown punctuation, HTML entities); nothing in it is markup.

The notice reads the Decision defensively (`getattr` with a default) for the parts other work
may add or reshape, so it keeps rendering what it knows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluator.api import CaseReview, LineResult, Overall
from evaluator.decide.decision import ClauseResult, Decision
from evaluator.decide.evidence import evidence_lines, sources
from evaluator.language.describe import words
from evaluator.language.model import Determination, Reference, Status
from evaluator.render.decision import X12_WORDS

# ---- the outline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str
    label: str = ""  # a bold lead-in ("Criterion:") before the text
    kind: str = ""  # "note" for a call-out, "placeholder" for text the reviewer fills in


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]
    numbers: tuple[int, ...] = ()  # an ordered list with these numbers (references keep theirs)
    ordered: bool = False
    label: str = ""  # a lead-in paragraph before the list


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


Block = Heading | Para | Items | Table

# ---- wording ------------------------------------------------------------------------------------

RESULT_WORDS = {
    Determination.MEDICALLY_NECESSARY: "Meets the criteria: recommended for certification",
    Determination.NOT_MEDICALLY_NECESSARY: (
        "Does not meet the criteria: recommended for physician review"
    ),
    Determination.INSUFFICIENT_DOCUMENTATION: "Pended: documents needed",
}
_RESULT_TEXT = {
    Determination.MEDICALLY_NECESSARY: (
        "Every applicable criterion of the policy is met; certification is recommended."
    ),
    Determination.NOT_MEDICALLY_NECESSARY: (
        "The criteria below are not met. This is a recommendation for review by a physician, "
        "not a denial: it comes from an automated evaluation of the policy criteria, an "
        "algorithm may not be the sole basis of a denial, and a physician reviewer makes the "
        "determination after considering this patient's records."
    ),
    Determination.INSUFFICIENT_DOCUMENTATION: (
        "No clinical determination is made yet: the request is pended until the documents "
        "listed below are received. It is not a denial."
    ),
}
_AGREES = {Determination.NOT_MEDICALLY_NECESSARY: ", if the physician reviewer agrees"}
OVERALL_TEXT = {
    Overall.MEDICALLY_NECESSARY: "Meets the criteria for every line",
    Overall.PARTIALLY_MEDICALLY_NECESSARY: "Meets the criteria for some lines only",
    Overall.MODIFIED: "A narrower scope meets the criteria: recommended for physician review",
    Overall.NOT_MEDICALLY_NECESSARY: "Does not meet the criteria: recommended for physician review",
    Overall.INSUFFICIENT_DOCUMENTATION: "Pended: documents needed",
    Overall.NO_POLICY: "Needs manual review: no policy governs the request",
}
_STATUS_TEXT = {
    Status.MET: "met",
    Status.NOT_MET: "not met",
    Status.NOT_DOCUMENTED: "not documented",
    Status.NOT_APPLICABLE: "does not apply",
}
# Abbreviations a notice may use, explained at its end when (and only when) they appear.
ABBREVIATIONS = {
    "CPT": "Current Procedural Terminology (procedure codes)",
    "X12 278": "the electronic prior-authorization request and response standard",
    "SI": "sacroiliac",
    "MRI": "magnetic resonance imaging",
    "CT": "computed tomography",
    "HbA1c": "glycated haemoglobin (average blood glucose over about three months)",
    "PI": "pelvic incidence",
    "LL": "lumbar lordosis",
    "SVA": "sagittal vertical axis",
    "PT": "pelvic tilt in measurements; in quoted clinical notes, physical therapy",
    "FABER": "flexion, abduction and external rotation (a provocative test)",
    "ng/mL": "nanograms per millilitre",
    "mm": "millimetres",
}
PEER_TO_PEER = (
    "The requesting physician may discuss this review with the physician reviewer before a "
    "determination is made. Reviewer: [name and specialty]. Telephone: [number]. Available: "
    "[days and hours]. Please call by [date]."
)
APPEAL_RIGHTS = (
    "[The plan's statement of appeal rights: how to request reconsideration or appeal, the "
    "deadline (within [number] days of the date of this notice), where to send it, and how to "
    "ask for an expedited appeal when waiting could seriously harm the patient's health.]"
)
NO_POLICY = (
    "No policy governs this procedure, so it was not evaluated here. It needs manual review and "
    "is never approved by default."
)


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!", '"', ")")) else text + "."


def _x12(action: str) -> str:
    return f"X12 278 action {action} ({X12_WORDS.get(action, action)})"


def _criterion(decision: Decision, clause: ClauseResult) -> str:
    return (
        f"{decision.policy_title} (policy {decision.policy_id}, version "
        f"{decision.policy_version}), clause {clause.id}: {clause.title}"
    )


def _refs(numbers: Iterable[int]) -> str:
    return ", ".join(f"[{n}]" for n in sorted(numbers))


def _source_text(src: str) -> str:
    document, _, rest = src.partition(" ")  # `clinic_note 2025-05 "quote"`
    return _sentence(f"{words(document)} {rest}".strip())


_CONFLICT_VALUE = re.compile(r"\s*(.+?) \(([a-z_]+)\)\s*(?:,|$)")


def _conflict_sources(conflict: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Return (document, value) pairs: `statements` when given, else parsed from `values`."""
    statements = conflict.get("statements")
    if isinstance(statements, list):
        return [(str(s.get("document", "")), str(s.get("value", ""))) for s in statements]
    text = str(conflict.get("values", ""))
    found = [(doc, value) for value, doc in _CONFLICT_VALUE.findall(text)]
    return found or [("records", text)]


# ---- building -------------------------------------------------------------------------------


@dataclass
class _Part:
    """One section of the notice: the lines one decision covers (or a line no policy governs)."""

    title: str
    decision: Decision | None
    x12: str
    blocks: list[Block] = field(default_factory=list)


def _failed_clause(decision: Decision, clause: ClauseResult) -> list[Block]:
    out: list[Block] = [Heading(4, f"{clause.title} ({_STATUS_TEXT[clause.status]})")]
    out.append(Para(_criterion(decision, clause), "Criterion: "))
    # The patient-specific finding the policy words; its general rationale where it has none.
    said = clause.finding or clause.rationale
    finding = " ".join([_sentence(said)] if said else []) + "".join(
        f" {_disagree(c)}" for c in _conflicts_of(decision, clause)
    )
    if finding.strip():
        out.append(Para(finding.strip(), "Finding: "))
    lines = evidence_lines(clause)
    if lines:
        out.append(Items(tuple(line.sentence for line in lines), label="What the record shows:"))
    documents = sources(clause)
    if documents:
        out.append(Items(tuple(_source_text(s) for s in documents), label="From the documents:"))
    if clause.citations:
        out.append(Para(_refs(clause.citations), "References: "))
    if clause.recommendation:
        out.append(Para(_sentence(clause.recommendation), "What would make it approvable: "))
    if clause.documentation:
        docs = "; ".join(d.rstrip(".") for d in clause.documentation)
        out.append(Para(_sentence(docs), "Documents to send: "))
    return out


def _conflicts_of(decision: Decision, clause: ClauseResult) -> list[Mapping[str, Any]]:
    """Return the conflicts about the fact types this clause's evidence reads."""
    types = {f.type for e in clause.evidence for f in e.facts}
    return [c for c in getattr(decision, "conflicts", ()) if c.get("fact") in types]


def _disagree(conflict: Mapping[str, Any]) -> str:
    said = [f"the {words(doc)} says {value}" for doc, value in _conflict_sources(conflict)]
    what = f"{words(str(conflict.get('fact', '')))} {words(str(conflict.get('field', '')))}"
    joined = ", ".join(said[:-1]) + f" and {said[-1]}" if len(said) > 1 else "".join(said)
    return _sentence(f"the records disagree on the {what.strip()}: {joined}")


def _decision_blocks(decision: Decision) -> list[Block]:
    out: list[Block] = [
        Heading(3, "Recommendation"),
        Para(RESULT_WORDS[decision.determination] + ".", "Result: "),
        Para(_x12(decision.x12_action) + _AGREES.get(decision.determination, ""), "Action: "),
        Para(
            f"{decision.policy_title} (policy {decision.policy_id}, version "
            f"{decision.policy_version})",
            "Criteria applied: ",
        ),
        Para(_RESULT_TEXT[decision.determination], kind="note"),
    ]
    for status, heading in (
        (Status.NOT_MET, "Criteria not met"),
        (Status.NOT_DOCUMENTED, "Criteria not documented"),
    ):
        failed = decision.by_status(status)
        if failed:
            out.append(Heading(3, heading))
        for clause in failed:
            out.extend(_failed_clause(decision, clause))
    out.extend(_alternative(decision))
    approvable = [
        f"{_sentence(c.recommendation)} (clause {c.id}: {c.title})"
        for c in decision.by_status(Status.NOT_MET)
        if c.recommendation
    ]
    requests = getattr(decision, "documentation_requests", ())
    if requests:
        approvable.append("Send the documents listed below.")
    if approvable:
        out.append(Heading(3, "What would make the request approvable"))
        out.append(Items(tuple(approvable)))
    if requests:
        out.append(Heading(3, "Documents to send"))
        titles = {c.id: c.title for c in decision.clauses}
        out.append(
            Items(
                tuple(
                    f"{_sentence(str(getattr(r, 'document', r)))} ({_for_clauses(r, titles)})"
                    for r in requests
                ),
                ordered=True,
            )
        )
    out.extend(_conflicts(getattr(decision, "conflicts", ())))
    out.append(Heading(3, "All criteria"))
    out.append(
        Table(
            ("Clause", "Criterion", "Status", "References"),
            tuple(
                (c.id, c.title, _STATUS_TEXT[c.status], _refs(c.citations))
                for c in decision.clauses
            ),
        )
    )
    references = list(getattr(decision, "references", ()))
    if references:
        out.append(Heading(3, "References"))
        out.append(
            Items(tuple(_citation(r) for r in references), numbers=tuple(r.id for r in references))
        )
    return out


def _for_clauses(request: Any, titles: Mapping[str, str]) -> str:
    """Return `clause ID: title` for each clause a document request serves (one or several)."""
    ids = getattr(request, "clauses", None) or (getattr(request, "clause", ""),)
    return "; ".join(f"clause {i}: {titles.get(i, '')}".rstrip(": ") for i in ids)


def _citation(ref: Reference) -> str:
    text = " ".join(ref.citation.split())
    return text + (f" doi:{ref.doi}" if ref.doi else "") + (f" {ref.url}" if ref.url else "")


def _alternative(decision: Decision) -> list[Block]:
    alt = getattr(decision, "alternative", None)
    if alt is None:
        return []
    own = alt.decision
    # The heading says what the evaluated alternative is: only one that is itself medically
    # necessary "qualifies"; a pended one qualifies once documents arrive; others are not offered.
    if own is not None and own.determination is Determination.MEDICALLY_NECESSARY:
        heading = "Narrower alternative that qualifies"
    elif own is not None and own.determination is Determination.INSUFFICIENT_DOCUMENTATION:
        heading = "Narrower alternative, once the documents arrive"
    else:
        heading = "Narrower alternative, not offered"
    failed = [f"{c.id} ({c.title})" for c in decision.by_status(Status.NOT_MET)]
    out: list[Block] = [
        Heading(3, heading),
        Para(_sentence(alt.summary)),
        Items(tuple(f"{_sentence(words(x.procedure))[:-1]}: {x.levels}" for x in alt.lines)),
    ]
    if failed:
        out.append(Para(", ".join(failed) + ".", "Offered because these clauses are not met: "))
    if own is None:
        note = (
            "The narrower request was not evaluated under this policy, so it is not offered "
            "for certification."
        )
    elif own.determination is Determination.MEDICALLY_NECESSARY:
        note = (
            "Evaluated under the same policy, the narrower request meets every criterion: a "
            "candidate for modification (X12 278 action A6) if the physician reviewer and the "
            "requesting physician agree."
        )
    elif own.determination is Determination.INSUFFICIENT_DOCUMENTATION:
        pending = [f"{c.id} ({c.title})" for c in own.by_status(Status.NOT_DOCUMENTED)]
        note = (
            "Evaluated under the same policy, the narrower request is not yet approvable: it "
            "becomes a candidate for modification once these are documented: "
            + ", ".join(pending)
            + "."
        )
    else:
        unmet = [f"{c.id} ({c.title})" for c in own.by_status(Status.NOT_MET)]
        note = (
            "Evaluated under the same policy, the narrower request also fails "
            + ", ".join(unmet)
            + ", so it is not offered for certification."
        )
    out.append(Para(note, kind="note"))
    return out


_COUNTED = frozenset({"late_counted", "worse_kept"})


def _conflicts(conflicts: Sequence[Mapping[str, Any]]) -> list[Block]:
    if not conflicts:
        return []
    out: list[Block] = [
        Heading(3, "Conflicting records"),
        Para(
            "These records disagree, so the finding is treated as not documented until the "
            "physician clarifies it."
            if not any(c.get("reason") in _COUNTED for c in conflicts)
            # a late value that only makes the case worse, or the worse of two, was counted
            else "These records disagree or were written after the request. A value that can "
            "only make the case worse has a say as if timely; any other is treated as not "
            "documented until the physician clarifies it."
        ),
    ]
    for conflict in conflicts:
        what = f"{words(str(conflict.get('fact', '')))} {words(str(conflict.get('field', '')))}"
        pairs = _conflict_sources(conflict)
        out.append(
            Table(
                tuple(_sentence(words(doc))[:-1] for doc, _ in pairs),
                (tuple(value for _, value in pairs),),
                caption=_sentence(what.strip())[:-1],
            )
        )
    return out


def _parts_from_review(review: CaseReview) -> list[_Part]:
    groups: dict[str, list[LineResult]] = {}
    for result in review.lines:
        key = result.policy.ref if result.policy else f"none:{result.line.id}"
        groups.setdefault(key, []).append(result)
    parts = []
    for members in groups.values():
        labels = [_line_label(m) for m in members]
        title = ("Line " if len(labels) == 1 else "Lines ") + "; ".join(labels)
        first = members[0]
        part = _Part(title, first.decision, first.x12_action)
        part.blocks = (
            _decision_blocks(first.decision)
            if first.decision is not None
            else [Para(NO_POLICY, kind="note"), Para(_x12(first.x12_action), "Action: ")]
        )
        parts.append(part)
    return parts


def _line_label(result: LineResult) -> str:
    line = result.line
    cpt = f", CPT {', '.join(line.cpts)}" if line.cpts else ""
    return f"{line.id} ({words(line.procedure)}{cpt})"


def review_notice(review: CaseReview) -> list[Block]:
    """Return the notice of a per-line review: the overall result, then each line's decision."""
    rows = tuple(
        (
            r.line.id,
            words(r.line.procedure),
            ", ".join(r.line.cpts),
            RESULT_WORDS[r.decision.determination] if r.decision else "No policy: manual review",
            _x12(r.x12_action),
        )
        for r in review.lines
    )
    summary: list[Block] = [
        Para(f"{OVERALL_TEXT[review.overall]}.", "Overall result: "),
        Para(_x12(review.x12_action), "Overall action: "),
        Table(("Line", "Procedure", "CPT codes", "Recommendation", "Action"), rows),
    ]
    return _document(review.case_id, review.request_date, summary, _parts_from_review(review))


def decision_notice(decision: Decision, request_date: str = "") -> list[Block]:
    """Return the notice of one policy's decision on a whole case (`evaluate --policy`)."""
    part = _Part(f"Policy {decision.policy_id}", decision, decision.x12_action)
    part.blocks = _decision_blocks(decision)
    summary: list[Block] = [
        Para(RESULT_WORDS[decision.determination] + ".", "Overall result: "),
        Para(_x12(decision.x12_action), "Overall action: "),
    ]
    return _document(decision.case_id, request_date, summary, [part])


def _document(
    case_id: str, request_date: str, summary: list[Block], parts: list[_Part]
) -> list[Block]:
    out: list[Block] = [
        Heading(1, "Medical necessity review notice"),
        Para("[Requesting physician's name and address]", "To: ", kind="placeholder"),
        Para(case_id, "Case: "),
    ]
    if request_date:
        out.append(Para(request_date, "Request date: "))
    out.append(Heading(2, "Summary"))
    out.extend(summary)
    for part in parts:
        out.append(Heading(2, part.title))
        out.extend(part.blocks)
    out.append(Heading(2, "Peer-to-peer discussion"))
    out.append(Para(PEER_TO_PEER, kind="placeholder"))
    out.append(Heading(2, "Appeal rights"))
    out.append(Para(APPEAL_RIGHTS, kind="placeholder"))
    used = _abbreviations(out)
    if used:
        out.append(Heading(2, "Abbreviations"))
        out.append(Items(tuple(f"{a}: {ABBREVIATIONS[a]}" for a in used)))
    return out


def _texts(blocks: Iterable[Block]) -> Iterable[str]:
    for block in blocks:
        if isinstance(block, Heading):
            yield block.text
        elif isinstance(block, Para):
            yield block.label + block.text
        elif isinstance(block, Items):
            yield block.label
            yield from block.items
        else:
            yield block.caption
            yield from block.header
            for row in block.rows:
                yield from row


def _abbreviations(blocks: Iterable[Block]) -> list[str]:
    text = "\n".join(_texts(blocks))
    return [a for a in ABBREVIATIONS if re.search(rf"(?<![\w/-]){re.escape(a)}(?![\w/-])", text)]


def notice_text(blocks: Iterable[Block]) -> str:
    """Return every sentence of the notice as plain text (for checks on its wording)."""
    return "\n".join(_texts(blocks))


# ---- Markdown -------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!~])")
_MD_LEADING = re.compile(r"^(\d+)([.)])")


def md_escape(text: str) -> str:
    """Return text that CommonMark shows as itself (no emphasis, links, HTML or lists)."""
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    text = _MD_LEADING.sub(r"\1\\\2", text)
    return re.sub(r"^([-+=])", r"\\\1", text)


def to_markdown(blocks: Iterable[Block]) -> str:
    """Return the notice as CommonMark (with GitHub tables)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + md_escape(block.text))
        elif isinstance(block, Para):
            label = f"**{md_escape(block.label.strip())}** " if block.label else ""
            text = label + md_escape(block.text)
            out.append(f"> {text}" if block.kind in ("note", "placeholder") else text)
        elif isinstance(block, Items):
            lines = [md_escape(block.label)] if block.label else []
            for n, item in enumerate(block.items, 1):
                if block.numbers:
                    marker = f"- \\[{block.numbers[n - 1]}\\]"
                else:
                    marker = f"{n}." if block.ordered else "-"
                lines.append(f"{marker} {md_escape(item)}")
            out.append(
                "\n".join(lines) if not block.label else lines[0] + "\n\n" + "\n".join(lines[1:])
            )
        else:
            rows = [block.header, *block.rows]
            cells = [[md_escape(c) for c in row] for row in rows]
            table = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(block.header)]
            table.extend("| " + " | ".join(row) + " |" for row in cells[1:])
            caption = f"**{md_escape(block.caption)}**\n\n" if block.caption else ""
            out.append(caption + "\n".join(table))
    return "\n\n".join(out) + "\n"


# ---- HTML ---------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 11pt/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #111;
  max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6em; border-bottom: 2px solid #234; padding-bottom: .2em; margin-bottom: .4em; }
h2 { font-size: 1.3em; margin-top: 1.6em; border-bottom: 1px solid #9ab; padding-bottom: .1em; }
h3 { font-size: 1.1em; margin-top: 1.2em; }
h4 { font-size: 1em; margin: 1em 0 .3em; }
h1, h2, h3, h4 { color: #123; break-after: avoid; page-break-after: avoid; }
p { margin: .35em 0; }
ul, ol { margin: .3em 0 .6em; padding-left: 1.6em; }
li { margin: .15em 0; }
.note { border-left: 4px solid #36c; background: #eef3fb; padding: .4em .7em; }
.placeholder { border: 1px dashed #888; background: #fafafa; padding: .4em .7em; }
.label { font-weight: bold; }
.id { white-space: nowrap; }
section.clause { break-inside: avoid; page-break-inside: avoid; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 .8em; font-size: .95em; }
caption { text-align: left; font-weight: bold; padding: .2em 0; }
th, td { border: 1px solid #bbb; padding: .25em .45em; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
th { background: #e8edf2; }
tr { break-inside: avoid; page-break-inside: avoid; }
ol.references { list-style: none; padding-left: 0; }
ol.references li { padding-left: 2.4em; text-indent: -2.4em; }
@page { margin: 16mm 15mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  .note, .placeholder, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


_CLAUSE_LEVEL = 4


# Clause ids (`AB-SOME-CLAUSE`) read as one word: a line break at their hyphens misleads.
_CLAUSE_ID = re.compile(r"\b[A-Z]{2,}(?:-[A-Z0-9]+)+\b")


def _e(text: str) -> str:
    escaped = html.escape(" ".join(text.split()), quote=True)
    return _CLAUSE_ID.sub(r'<span class="id">\g<0></span>', escaped)


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 2
    while slug in used:
        slug, n = f"{base}-{n}", n + 1
    used.add(slug)
    return slug


def to_html(blocks: Sequence[Block], title: str = "Medical necessity review notice") -> str:
    """Return the notice as one standalone HTML file: inline CSS, no scripts, no external
    assets; @page margins fit both A4 and US Letter."""
    body: list[str] = []
    used: set[str] = set()
    open_clause = False
    for block in blocks:
        if isinstance(block, Heading):
            if open_clause:
                body.append("</section>")
                open_clause = False
            if block.level == _CLAUSE_LEVEL:  # kept on one page when printed
                body.append('<section class="clause">')
                open_clause = True
            slug = _slug(block.text, used)
            body.append(f'<h{block.level} id="{slug}">{_e(block.text)}</h{block.level}>')
        elif isinstance(block, Para):
            label = f'<span class="label">{_e(block.label)}</span> ' if block.label else ""
            cls = f' class="{block.kind}"' if block.kind else ""
            body.append(f"<p{cls}>{label}{_e(block.text)}</p>")
        elif isinstance(block, Items):
            if block.label:
                body.append(f"<p>{_e(block.label)}</p>")
            if block.numbers:
                items = "".join(
                    f'<li value="{n}">[{n}] {_e(item)}</li>'
                    for n, item in zip(block.numbers, block.items, strict=True)
                )
                body.append(f'<ol class="references">{items}</ol>')
            else:
                tag = "ol" if block.ordered else "ul"
                items = "".join(f"<li>{_e(item)}</li>" for item in block.items)
                body.append(f"<{tag}>{items}</{tag}>")
        else:
            caption = f"<caption>{_e(block.caption)}</caption>" if block.caption else ""
            head = "".join(f'<th scope="col">{_e(c)}</th>' for c in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            body.append(
                f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            )
    if open_clause:
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


__all__ = [
    "ABBREVIATIONS",
    "Block",
    "Heading",
    "Items",
    "Para",
    "Table",
    "decision_notice",
    "md_escape",
    "notice_text",
    "review_notice",
    "to_html",
    "to_markdown",
]
