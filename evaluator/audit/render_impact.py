"""Text, Markdown and JSON for `necessity impact`."""

from __future__ import annotations

from typing import Any

from evaluator.audit.impact import Report
from evaluator.language.describe import words


def impact_json(report: Report) -> dict[str, Any]:
    return {
        "old": report.old.ref,
        "new": report.new.ref,
        "cases": len(report.cases),
        "changed": len(report.changed),
        "flips": [{"from": a, "to": b, "cases": n} for (a, b), n in sorted(report.flips().items())],
        "by_clause": [
            {"clause": c, "from": a, "to": b, "cases": n}
            for (c, a, b), n in sorted(report.by_clause().items())
        ],
        "results": [
            {
                "case": c.case,
                "case_id": c.case_id,
                "old": c.old,
                "new": c.new,
                "flipped": c.flipped,
                "clauses": [
                    {"clause": m.clause, "from": m.old, "to": m.new, "evidence": list(m.evidence)}
                    for m in c.clauses
                ],
                "error": c.error,
            }
            for c in report.cases
        ],
        "skipped": report.skipped,
    }


def _summary(report: Report) -> list[str]:
    return [
        f"{len(report.cases)} case(s) evaluated under both versions, {len(report.changed)} "
        f"changed, {sum(report.flips().values())} determination(s) flipped, "
        f"{len(report.errors)} error(s), {len(report.skipped)} not governed by either version"
    ]


def impact_text(report: Report) -> str:
    lines = [f"impact of {report.old.ref} -> {report.new.ref}", *_summary(report)]
    if report.flips():
        lines += ["", "determinations:"]
        for (a, b), n in sorted(report.flips().items()):
            lines.append(f"  {words(a)} -> {words(b)}: {n}")
    if report.by_clause():
        lines += ["", "clauses:"]
        for (clause, a, b), n in sorted(report.by_clause().items()):
            lines.append(f"  {clause}: {words(a)} -> {words(b)}: {n}")
    for case in report.changed:
        lines += ["", f"{case.case_id} ({case.case})"]
        if case.flipped:
            lines.append(f"  determination: {words(str(case.old))} -> {words(str(case.new))}")
        for move in case.clauses:
            lines.append(f"  {move.clause}: {words(move.old)} -> {words(move.new)}")
            lines += [f"    {e}" for e in move.evidence]
    for case in report.errors:
        lines += ["", f"error: {case.case}: {case.error}"]
    return "\n".join(lines) + "\n"


def impact_markdown(report: Report) -> str:
    out = [f"# Impact of `{report.old.ref}` -> `{report.new.ref}`", "", *_summary(report), ""]
    if report.flips():
        out += ["| determination before | after | cases |", "|---|---|---|"]
        out += [
            f"| {words(a)} | {words(b)} | {n} |" for (a, b), n in sorted(report.flips().items())
        ]
        out.append("")
    if report.by_clause():
        out += ["| clause | before | after | cases |", "|---|---|---|---|"]
        out += [
            f"| `{c}` | {words(a)} | {words(b)} | {n} |"
            for (c, a, b), n in sorted(report.by_clause().items())
        ]
        out.append("")
    for case in report.changed:
        head = f"## `{case.case_id}`"
        if case.flipped:
            head += f": {words(str(case.old))} -> {words(str(case.new))}"
        out += [head, "", f"Case file: `{case.case}`", ""]
        for move in case.clauses:
            out.append(f"- `{move.clause}`: {words(move.old)} -> {words(move.new)}")
            out += [f"  - {e}" for e in move.evidence]
        out.append("")
    for case in report.errors:
        out.append(f"- error: `{case.case}`: {case.error}")
    return "\n".join(out).rstrip("\n") + "\n"
