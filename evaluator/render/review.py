"""Renderings of a whole request reviewed per service line (text, Markdown and JSON)."""

from __future__ import annotations

from typing import Any

from evaluator.api import CaseReview, LineResult, Overall
from evaluator.language.describe import words
from evaluator.render.decision import X12_WORDS, decision_json, decision_markdown, decision_text

OVERALL_WORDS = {
    Overall.MEDICALLY_NECESSARY: "medically necessary",
    Overall.PARTIALLY_MEDICALLY_NECESSARY: "partially medically necessary",
    Overall.NOT_MEDICALLY_NECESSARY: "not medically necessary",
    Overall.INSUFFICIENT_DOCUMENTATION: "insufficient documentation",
    Overall.MODIFIED: "modified (a narrower scope for physician review)",
    Overall.NO_POLICY: "pended (no policy governs a requested line)",
}
NO_POLICY_NOTE = (
    "No policy governs this procedure: it is not reviewed here and needs manual review. "
    "It is never approved by default."
)


def _line_json(result: LineResult) -> dict[str, Any]:
    line = result.line
    head: dict[str, Any] = {
        "line": line.id,
        "procedure": line.procedure,
        "cpt": list(line.cpts),
        "description": line.description,
    }
    if result.decision is None:
        return head | {
            "determination": result.determination,
            "x12_action": result.x12_action,
            "policy": None,
            "clauses": [],
            "alternative": None,
            "documentation_requests": [],
            "references": [],
            "conflicts": [],
            "review_note": NO_POLICY_NOTE,
        }
    body = decision_json(result.decision)
    del body["case_id"], body["evaluated_at"]
    # the line's own action: the shared decision's A6 is not offered on a line its
    # alternative leaves out (api.LineResult.x12_action)
    body["x12_action"] = result.x12_action
    return head | body


def review_json(review: CaseReview, evaluated_at: str | None = None) -> dict[str, Any]:
    """Return the per-line JSON contract (schemas/decision.schema.json, `$defs/review`)."""
    return {
        "case_id": review.case_id,
        "request_date": review.request_date,
        "overall": {"determination": review.overall.value, "x12_action": review.x12_action},
        "lines": [_line_json(r) for r in review.lines],
        "evaluated_at": evaluated_at,
    }


def _line_label(result: LineResult) -> str:
    line = result.line
    cpt = f" (CPT {', '.join(line.cpts)})" if line.cpts else ""
    return f"{line.id}: {words(line.procedure)}{cpt}"


def groups(review: CaseReview) -> list[tuple[list[LineResult], LineResult]]:
    # A policy governing several lines made one decision: show it once, naming its lines.
    groups: dict[str, list[LineResult]] = {}
    for result in review.lines:
        key = result.policy.ref if result.policy else f"none:{result.line.id}"
        groups.setdefault(key, []).append(result)
    return [(members, members[0]) for members in groups.values()]


def review_text(review: CaseReview) -> str:
    """Return the terminal report: the overall result first, a line table, then each decision."""
    overall = OVERALL_WORDS[review.overall]
    action = review.x12_action
    out = [
        f"{'Overall:':<16}{overall.upper()}",
        f"{'X12 278 action:':<16}{action} ({X12_WORDS.get(action, action)})",
        f"{'Case:':<16}{review.case_id}",
        f"{'Request date:':<16}{review.request_date}",
        "",
        "SERVICE LINES",
        "",
    ]
    for n, result in enumerate(review.lines, 1):
        out.append(f"  {n}. {_line_label(result)}")
        if result.policy is None:
            out.append(
                f"     no policy governs this procedure ({result.x12_action}, manual review)"
            )
        else:
            out.append(
                f"     {words(result.determination)} ({result.x12_action}) under "
                f"{result.policy.ref}"
            )
    for members, first in groups(review):
        names = ", ".join(m.line.id for m in members)
        out.extend(["", "=" * 92, f"LINE {names}", "=" * 92, ""])
        if first.decision is None:
            out.append(f"{_line_label(first)}")
            out.append(NO_POLICY_NOTE)
        else:
            out.append(decision_text(first.decision).rstrip("\n"))
    return "\n".join(out) + "\n"


def review_markdown(review: CaseReview) -> str:
    """Return the report as Markdown: overall result, a line table, then each decision."""
    out = [
        f"# {OVERALL_WORDS[review.overall].capitalize()}",
        "",
        f"- **X12 278 action:** {review.x12_action} ({X12_WORDS.get(review.x12_action, '')})",
        f"- **Case:** `{review.case_id}`",
        f"- **Request date:** {review.request_date}",
        "",
        "| Line | Procedure | CPT | Policy | Determination | X12 |",
        "|---|---|---|---|---|---|",
    ]
    for r in review.lines:
        policy = f"`{r.policy.ref}`" if r.policy else "none"
        out.append(
            f"| `{r.line.id}` | {words(r.line.procedure)} | {', '.join(r.line.cpts)} | "
            f"{policy} | {words(r.determination)} | {r.x12_action} |"
        )
    for members, first in groups(review):
        names = ", ".join(f"`{m.line.id}`" for m in members)
        out.extend(["", f"## Line {names}", ""])
        if first.decision is None:
            out.append(NO_POLICY_NOTE)
        else:
            # Demote the decision's headings two levels, under the `##` line heading.
            body = decision_markdown(first.decision)
            out.append(
                "\n".join("##" + row if row.startswith("#") else row for row in body.splitlines())
            )
    return "\n".join(out).rstrip("\n") + "\n"
