"""Text, Markdown and JSON renderings of a Decision, and of the policy list (pure functions)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from evaluator.decide.decision import (
    AlternativeScope,
    ClauseResult,
    Decision,
    DocumentRequest,
    Evidence,
)
from evaluator.decide.evidence import (
    MAX_EVIDENCE_LINES,
    EvidenceLine,
    evidence_lines,
    fact_text,
    sources,
)
from evaluator.errors import MAX_PROBLEMS, NecessityError
from evaluator.language.conditions import Truth
from evaluator.language.describe import words
from evaluator.language.model import Determination, Policy, Reference, Status

WIDTH = 92

HEADLINES = {
    Determination.MEDICALLY_NECESSARY: ("Medically necessary", ""),
    Determination.NOT_MEDICALLY_NECESSARY: (
        "Not medically necessary",
        "recommended for physician review",
    ),
    Determination.INSUFFICIENT_DOCUMENTATION: (
        "Insufficient documentation",
        "pend for the documents listed",
    ),
}
X12_WORDS = {
    "A1": "certified in total",
    "A2": "certified partial",
    "A3": "not certified",
    "A4": "pended",
    "A6": "modified",
}
STATUS_WORDS = {
    Status.NOT_MET: "not met",
    Status.NOT_DOCUMENTED: "not documented",
    Status.MET: "met",
    Status.NOT_APPLICABLE: "not applicable",
}
_JSON_TRUTH = {Truth.TRUE: "true", Truth.FALSE: "false", Truth.UNKNOWN: "unknown"}
# Each member's value as a plain str, looked up (by the str's own hash) rather than read
# through the enum's `value` property: a few of them in every decision rendered.
_STATUS_VALUE = {status: status.value for status in Status}
_DETERMINATION_VALUE = {d: d.value for d in Determination}


def review_note(decision: Decision) -> str | None:
    """Return the notice wording the result needs (CMS-4201-F, NCQA UM 7), or None."""
    criteria = (
        f"The criteria used (policy {decision.policy_id} {decision.policy_version}, with "
        "their sources) are available on request."
    )
    if decision.determination is Determination.NOT_MEDICALLY_NECESSARY:
        return (
            "This is a recommendation for physician review, not a denial: an algorithm may not "
            "be the sole basis of an adverse determination, and a physician reviewer decides. "
            "The requesting provider may ask for a peer-to-peer discussion with that reviewer. "
            + criteria
        )
    if decision.determination is Determination.INSUFFICIENT_DOCUMENTATION:
        return (
            "Pended, not denied: no clinical determination is made until the documents listed "
            "are received. " + criteria
        )
    return None


def _cited(numbers: Iterable[int]) -> str:
    return "[" + f",{KEEP}".join(str(n) for n in sorted(numbers)) + "]"


def _citation(ref: Reference) -> str:
    text = " ".join(ref.citation.split())
    return text + (f" doi:{ref.doi}" if ref.doi else "") + (f" {ref.url}" if ref.url else "")


def _conflict_text(conflict: Mapping[str, str]) -> str:
    what = f"{words(conflict.get('fact', ''))} {words(conflict.get('field', ''))}".strip()
    reason, values = conflict.get("reason"), conflict.get("values", "")
    if reason == "after_request":
        return (
            f"{what}: dated {values}, so it cannot show anything that must "
            "precede the request (a typo?); treated as not documented"
        )
    if reason == "late_counted":
        # a late value that only makes the case worse counts: never "not documented"
        return (
            f"{what}: dated {values}; it has a say as if timely, as it can only make the case worse"
        )
    if reason == "worse_kept":
        return (
            f"{what}: the records disagree ({values}); the value that makes the case worse decides"
        )
    return f"{what}: the records disagree ({values}); treated as not documented"


# ---- JSON -------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _one_line(text: str) -> str:
    """Return ``text`` with each run of whitespace one space (a policy's citations: the same
    few in every decision of the policy, so kept; bounded)."""
    return " ".join(text.split())


def _evidence_json(ev: Evidence) -> dict[str, Any]:
    facts = [
        {"type": f.type, "id": f.id, "values": dict(f.values), "source": f.source} for f in ev.facts
    ]
    return {
        "condition": ev.condition,
        "value": _JSON_TRUTH[ev.value],
        "binding": dict(ev.binding),
        "facts": facts,
    }


def _clause_json(c: ClauseResult) -> dict[str, Any]:
    return {
        "id": c.id,
        "section": c.section,
        "section_title": c.section_title,
        "title": c.title,
        "status": _STATUS_VALUE[c.status],
        "evidence": [_evidence_json(e) for e in c.evidence],
        "citations": list(c.citations),
        "rationale": c.rationale,
        "finding": c.finding,
        "recommendation": c.recommendation,
        "documentation": list(c.documentation),
    }


def _alternative_json(alt: AlternativeScope) -> dict[str, Any]:
    own = alt.decision
    determination = _DETERMINATION_VALUE[own.determination] if own else None
    return {
        "summary": alt.summary,
        "determination": determination,
        "offered": alt.approvable,
        "failing_clauses": []
        if own is None
        else [
            {"id": c.id, "status": _STATUS_VALUE[c.status], "rationale": c.rationale}
            for c in own.by_status(Status.NOT_MET, Status.NOT_DOCUMENTED)
        ],
        "documentation_requests": []
        if own is None
        else [_request_json(r) for r in own.documentation_requests],
        "lines": [
            {
                "line": x.line,
                "procedure": x.procedure,
                "cpt": [{"code": code, "units": units} for code, units in x.cpt],
                "segments": list(x.segments),
                "constructs": list(x.constructs),
                "levels": x.levels,
                "determination": determination,
            }
            for x in alt.lines
        ],
    }


def _request_json(r: DocumentRequest) -> dict[str, Any]:
    return {"clause": r.clause, "clauses": list(r.clauses), "document": r.document}


def decision_json(decision: Decision, evaluated_at: str | None = None) -> dict[str, Any]:
    """Return the JSON contract (schemas/decision.schema.json); only `evaluated_at` varies.

    `explanation` is present only when the decision was evaluated with `explain`.
    """
    alt = decision.alternative
    body = {
        "case_id": decision.case_id,
        "determination": _DETERMINATION_VALUE[decision.determination],
        "x12_action": decision.x12_action,
        "policy": {
            "id": decision.policy_id,
            "version": decision.policy_version,
            "title": decision.policy_title,
            "sha256": decision.policy_sha256,
        },
        "clauses": [_clause_json(c) for c in decision.clauses],
        "alternative": None if alt is None else _alternative_json(alt),
        "documentation_requests": [_request_json(r) for r in decision.documentation_requests],
        "references": [
            {
                "id": r.id,
                "citation": _one_line(r.citation),
                "doi": r.doi,
                "url": r.url,
                "note": r.note,
            }
            for r in decision.references
        ],
        "conflicts": [
            {k: c.get(k) for k in ("fact", "field", "values", "reason")} for c in decision.conflicts
        ],
        "review_note": review_note(decision),
        "provenance": dict(decision.provenance),
        "evaluated_at": evaluated_at,
    }
    if decision.explanation is not None:
        from evaluator.decide.explain import explanation_json  # noqa: PLC0415  (see api._decide)

        body["explanation"] = explanation_json(decision.explanation)
    return body


# ---- the report: one outline, marked up as text or as Markdown ----------------------------------

# Inline marks in outline text: code spans and answer tags. Text drops or brackets them.
# KEEP is a space that line wrapping must not break at.
CODE, END, TAG, ENDTAG, KEEP = "\x02", "\x03", "\x04", "\x05", "\x06"
_TEXT_MARKS = str.maketrans({CODE: "", END: "", TAG: "[", ENDTAG: "]"})
_MD_MARKS = str.maketrans({CODE: "`", END: "`", TAG: "**", ENDTAG: "**", KEEP: " "})


@dataclass(frozen=True)
class Node:
    """One block of the report: a heading (`h1`-`h4`), `p`aragraph, list `li`, `field` or `row`."""

    kind: str
    text: str
    depth: int = 0
    marker: str = "-"
    only: str = ""  # "text" or "markdown" when one rendering leaves it out


def _code(text: str) -> str:
    return f"{CODE}{text}{END}"


def _failed(clause: ClauseResult) -> Iterable[Node]:
    yield Node("h4", f"{_code(clause.id)}: {clause.title} ({STATUS_WORDS[clause.status]})", 2)
    if clause.finding or clause.rationale:
        yield Node("p", clause.finding or clause.rationale or "", 3)
    lines = evidence_lines(clause)
    found = sources(clause)[:3]
    if not lines and not found:
        # a heading with nothing under it reads as a fault in the report, not as the finding
        yield Node("p", "Evidence: none in the records reviewed.", 3)
    else:
        yield Node("p", "Evidence:", 3)
    for line in lines[:MAX_EVIDENCE_LINES]:
        bound = f"for {line.binding}: " if line.binding else ""
        yield Node("li", f"{TAG}{line.answer}{ENDTAG} {bound}{line.condition}", 4)
        if line.documented:
            yield Node("li", f"documented: {line.documented}", 5)
    if len(lines) > MAX_EVIDENCE_LINES:
        hidden = len(lines) - MAX_EVIDENCE_LINES
        more = "finding is" if hidden == 1 else "findings are"
        yield Node("li", f"{hidden} further {more} listed in the notice (--format html)", 4)
    for src in found:
        document, _, rest = src.partition(" ")  # `clinic_note 2025-05 "quote"`
        yield Node("li", f"source: {words(document)} {rest}".rstrip(), 4)
    if clause.citations:
        yield Node("p", f"References: {_cited(clause.citations)}", 3)
    if clause.recommendation:
        yield Node("p", f"Recommendation: {clause.recommendation}", 3)


def outline(decision: Decision) -> list[Node]:
    """Return the report's blocks in reading order: the determination first, references last."""
    headline, qualifier = HEADLINES[decision.determination]
    action = decision.x12_action
    counts = ", ".join(
        f"{n} {STATUS_WORDS[s]}" for s in STATUS_WORDS if (n := len(decision.by_status(s)))
    )
    nodes = [
        Node("h1", headline + (f": {qualifier}" if qualifier else ""), only="markdown"),
        Node(
            "field",
            f"Determination\t{headline.upper()}" + (f" ({qualifier})" if qualifier else ""),
            only="text",
        ),
        Node("field", f"X12 278 action\t{action} ({X12_WORDS.get(action, action)})"),
        Node("field", f"Case\t{_code(decision.case_id)}"),
        Node(
            "field",
            f"Policy\t{_code(decision.policy_id)} {decision.policy_version} "
            f"({decision.policy_title})",
        ),
        Node("field", f"Clauses\t{counts}"),
    ]
    plan = decision.provenance.get("plan")
    if plan:
        # the criteria are the base policy as the member's plan overlays it
        overlay = f"Plan\t{_code(plan['id'])} ({words(plan['line_of_business'])} overlay)"
        nodes.insert(-1, Node("field", overlay))
    note = review_note(decision)
    if note:
        nodes.append(Node("note", note))
    nodes.append(Node("h2", "Clause summary", only="markdown"))
    nodes.append(Node("row", "Clause\tSection\tTitle\tStatus", only="markdown"))
    nodes.extend(
        Node(
            "row",
            f"{_code(c.id)}\t{c.section_title}\t{c.title}\t{STATUS_WORDS[c.status]}",
            only="markdown",
        )
        for c in decision.clauses
    )
    for status, heading in (
        (Status.NOT_MET, "Criteria not met"),
        (Status.NOT_DOCUMENTED, "Criteria not documented"),
    ):
        failed = decision.by_status(status)
        if failed:
            nodes.append(Node("h2", heading))
        for section in dict.fromkeys(c.section for c in failed):
            in_section = [c for c in failed if c.section == section]
            nodes.append(Node("h3", in_section[0].section_title, 1))
            for clause in in_section:
                nodes.extend(_failed(clause))
    alt = decision.alternative
    if alt is not None:
        nodes.append(Node("h2", "Alternative the facts support"))
        nodes.append(Node("p", alt.summary, 1))
        nodes.extend(Node("li", f"{words(x.procedure)}: {x.levels}", 1) for x in alt.lines)
        nodes.append(Node("note", _alternative_note(alt), 1))
    if decision.documentation_requests:
        nodes.append(Node("h2", "Documentation to request"))
        nodes.extend(
            Node(
                "li",
                f"{r.document} (for{KEEP}{', '.join(_code(c) for c in r.clauses)})",
                1,
                f"{n}.",
            )
            for n, r in enumerate(decision.documentation_requests, 1)
        )
    if decision.conflicts:
        nodes.append(Node("h2", "Conflicting documentation (for the reviewer)"))
        nodes.extend(Node("li", _conflict_text(c), 1) for c in decision.conflicts)
    for status, heading in (
        (Status.MET, "Criteria met"),
        (Status.NOT_APPLICABLE, "Not applicable"),
    ):
        done = decision.by_status(status)
        if done:
            nodes.append(Node("h2", heading))
        for c in done:
            cited = f" {_cited(c.citations)}" if status is Status.MET and c.citations else ""
            why = f". {c.rationale}" if c.rationale else ""
            nodes.append(Node("li", f"{_code(c.id)}: {c.title}{cited}{why}", 1))
    # Only references the report itself cites: failed and met clauses, not inapplicable ones.
    shown = {
        n for c in decision.clauses if c.status is not Status.NOT_APPLICABLE for n in c.citations
    }
    references = [r for r in decision.references if r.id in shown]
    if references:
        nodes.append(Node("h2", "References"))
        nodes.extend(Node("li", _citation(r), 1, f"[{r.id}]") for r in references)
    return nodes


def _wrap(text: str, first: str, rest: str) -> list[str]:
    lines = textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
        break_long_words=False,
    )
    return [line.replace(KEEP, " ") for line in lines]


def decision_text(decision: Decision) -> str:
    """Return the report a utilization reviewer reads in a terminal (no colour codes)."""
    out: list[str] = []

    def gap() -> None:
        if out and out[-1]:
            out.append("")

    previous = ""
    for node in (n for n in outline(decision) if n.only != "markdown"):
        text, pad = node.text.translate(_TEXT_MARKS), "  " * node.depth
        if node.kind in ("h3", "note") or (node.kind == "h4" and previous != "h3"):
            gap()
        if node.kind == "field":
            key, value = text.split("\t")
            out.append(f"{key + ':':<16}{value}")
        elif node.kind == "h2":
            gap()
            out.extend([text.upper(), ""])
        elif node.kind == "li":
            out.extend(_wrap(text, f"{pad}{node.marker} ", pad + " " * (len(node.marker) + 1)))
        else:
            out.extend(_wrap(text, pad, pad))
        previous = node.kind
    return "\n".join(out).strip("\n") + "\n"


def decision_markdown(decision: Decision) -> str:
    """Return the report as Markdown: the same content as the text, plus a clause table."""
    out: list[str] = []
    previous, base = "", 0
    for node in (n for n in outline(decision) if n.only != "text"):
        text = node.text.translate(_MD_MARKS)
        if node.kind != previous or node.kind not in ("li", "row", "field"):
            out.append("")
        if node.kind == "li" and previous != "li":
            base = node.depth
        if node.kind.startswith("h"):
            out.append("#" * int(node.kind[1]) + " " + text)
        elif node.kind == "field":
            key, value = text.split("\t")
            out.append(f"- **{key}:** {value}")
        elif node.kind == "note":
            out.append(f"> {text}")
        elif node.kind == "row":
            cells = [cell.replace("|", "\\|") for cell in text.split("\t")]
            out.append("| " + " | ".join(cells) + " |")
            if previous != "row":
                out.append("|" + "---|" * len(cells))
        elif node.kind == "li":
            # `[1] citation` is no list marker in CommonMark: references become bullets.
            marker = f"- \\{node.marker[:-1]}\\]" if node.marker.startswith("[") else node.marker
            out.append("  " * max(node.depth - base, 0) + f"{marker} {text}")
        else:
            out.append(text)
        previous = node.kind
    return "\n".join(out).strip("\n") + "\n"


# ---- problems and policies --------------------------------------------------------------------


def problem_lines(error: NecessityError, prefix: str = "error") -> list[str]:
    """Return `<prefix>: file:line:col (pointer): message` per problem, a hint on its own line."""
    lines = []
    for problem in error.problems[:MAX_PROBLEMS]:
        where = f"{problem.location}: " if str(problem.location) else ""
        lines.append(f"{prefix}: {where}{problem.message}")
        if problem.hint:
            lines.append(f"  hint: {problem.hint}")
    if len(error.problems) > MAX_PROBLEMS:
        lines.append(f"{prefix}: ... and {len(error.problems) - MAX_PROBLEMS} more problems")
    return lines


def _policy_json(p: Policy) -> dict[str, Any]:
    return {
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "status": p.status.value,
        "effective_from": p.effective_from.isoformat(),
        "effective_until": p.effective_until.isoformat() if p.effective_until else None,
        "procedures": [{"procedure": x.procedure, "cpt": list(x.cpt)} for x in p.procedures],
        "sha256": p.sha256,
    }


def policies_json(policies: Iterable[Policy]) -> dict[str, Any]:
    """Return `{"policies": [...]}`, one entry per version, sorted as given."""
    return {"policies": [_policy_json(p) for p in policies]}


def policies_text(policies: Iterable[Policy]) -> str:
    """Return one block per policy version for the terminal."""
    blocks = []
    for p in policies:
        until = f"until {p.effective_until.isoformat()}" if p.effective_until else "no end date"
        lines = [
            f"{p.id} {p.version} ({p.status.value}): {p.title}",
            f"  effective from {p.effective_from.isoformat()}, {until}; sha256 {p.sha256[:12]}",
        ]
        for x in p.procedures:
            cpt = f" (CPT {', '.join(x.cpt)})" if x.cpt else ""
            lines.append(f"  procedure: {words(x.procedure)}{cpt}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else "no policies found\n"


__all__ = [
    "MAX_EVIDENCE_LINES",
    "EvidenceLine",
    "decision_json",
    "decision_markdown",
    "decision_text",
    "evidence_lines",
    "fact_text",
    "outline",
    "policies_json",
    "policies_text",
    "problem_lines",
    "review_note",
    "sources",
]


def _alternative_note(alt: AlternativeScope) -> str:
    """Say what the alternative's own evaluation found: offered, pended or not offered."""
    own = alt.decision
    if own is None:
        return (
            "Not evaluated: it holds no procedure this policy governs; each procedure in it is "
            "judged under the policy that governs it. Not offered for approval."
        )
    if alt.approvable:
        return (
            "Evaluated under the same policy: medically necessary. A candidate for X12 278 A6 "
            "(modified) for the physician reviewer."
        )
    if own.determination is Determination.INSUFFICIENT_DOCUMENTATION:
        missing = ", ".join(c.id for c in own.by_status(Status.NOT_DOCUMENTED))
        return (
            "Evaluated under the same policy: pended. This scope would qualify once the "
            f"documents listed for {missing} arrive; it is not offered for approval yet."
        )
    failing = "; ".join(
        f"{c.id}: {c.rationale or 'not met'}" for c in own.by_status(Status.NOT_MET)
    )
    return f"Evaluated under the same policy: not medically necessary, so not offered ({failing})."
