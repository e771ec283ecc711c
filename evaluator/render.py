"""Text, Markdown and JSON renderings of a Decision, and of the policy list (pure functions)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .conditions import Truth
from .decision import ClauseResult, Decision, Evidence, FactView
from .describe import value_text, words
from .dictionary import case_fact_types
from .errors import MAX_PROBLEMS, NecessityError
from .levels import LevelError, format_segments
from .model import Determination, Policy, Status

MAX_EVIDENCE_LINES = 6
WIDTH = 92

HEADLINES = {
    Determination.MEDICALLY_NECESSARY: "Medically necessary",
    Determination.NOT_MEDICALLY_NECESSARY: "Not medically necessary: recommended for physician review",
    Determination.INSUFFICIENT_DOCUMENTATION: "Insufficient documentation: pend for the documents below",
}
X12_WORDS = {"A1": "certified in total", "A2": "certified partial", "A3": "not certified",
             "A4": "pended", "A6": "modified"}
STATUS_WORDS = {Status.MET: "met", Status.NOT_MET: "not met",
                Status.NOT_DOCUMENTED: "not documented", Status.NOT_APPLICABLE: "not applicable"}
_JSON_TRUTH = {Truth.TRUE: "true", Truth.FALSE: "false", Truth.UNKNOWN: "unknown"}
_UNIT_TEXT = {"deg": " degrees", "%": "%", "grade": "/5", "count": ""}
_DISTANCE = ("_days_before_request_", "_months_before_request_")
_STATUS_ORDER = (Status.NOT_MET, Status.NOT_DOCUMENTED, Status.MET, Status.NOT_APPLICABLE)


def review_note(decision: Decision) -> str | None:
    """Return the notice wording a result needs (CMS-4201-F, NCQA UM 7), or None."""
    criteria = (f"The criteria used (policy {decision.policy_id} {decision.policy_version}, "
                "with its sources) are available on request.")
    if decision.determination is Determination.NOT_MEDICALLY_NECESSARY:
        return ("This is a recommendation for physician review, not a denial: an algorithm may not "
                "be the sole basis of an adverse determination, and a physician reviewer decides. "
                "The requesting provider may ask for a peer-to-peer discussion with that reviewer. "
                + criteria)
    if decision.determination is Determination.INSUFFICIENT_DOCUMENTATION:
        return ("Pended, not denied: no clinical determination is made until the documents listed "
                "are received. " + criteria)
    return None


# ---- evidence in plain language ---------------------------------------------------------------


def _unit(fact_type: str, field: str) -> str:
    fact = case_fact_types().get(fact_type)
    info = fact.fields.get(field) if fact else None
    unit = info.unit if info else None
    if unit is None or (info is not None and info.kind == "duration"):
        return " days" if info is not None and info.kind == "duration" else ""
    return _UNIT_TEXT.get(unit, f" {unit}")


def _span(lo: Any, hi: Any) -> str:
    return value_text(lo) if lo == hi else f"{value_text(lo)}-{value_text(hi)}"


def _distance(lo: int, hi: int, unit: str) -> str:
    plural = "" if (lo, hi) == (1, 1) else "s"
    if lo >= 0:
        return f"{_span(lo, hi)} {unit}{plural} before the request"
    if hi < 0:
        return f"{_span(-hi, -lo)} {unit}{plural} after the request"
    return f"between {-lo} {unit}{plural} after and {hi} {unit}{plural} before the request"


def fact_text(view: FactView) -> str:
    """Return a fact's shown values in words: `start 12/2024 (5-6 months before the request)`."""
    fields: dict[str, dict[str, Any]] = {}
    for name, value in view.values:
        base, part = name, "value"
        for marker in _DISTANCE:
            if marker in name:
                base, rest = name.split(marker)
                part = marker.strip("_").split("_")[0] + "_" + rest
                break
        else:
            for suffix in ("_lo", "_hi", "_word"):
                if name.endswith(suffix):
                    base, part = name[: -len(suffix)], suffix[1:]
        fields.setdefault(base, {})[part] = value
    out = []
    for base, parts in fields.items():
        unit = _unit(view.type, base)
        if "value" in parts:
            text = value_text(parts["value"])
            text += unit if not isinstance(parts["value"], str | bool) else ""
        elif "word" in parts:
            text = str(parts["word"])
        elif "lo" in parts and "hi" in parts:
            text = _span(parts["lo"], parts["hi"]) + unit
        else:
            text = ""
        if {"months_lo", "months_hi"} <= parts.keys() and parts["months_lo"] >= 1:
            text += f" ({_distance(parts['months_lo'], parts['months_hi'], 'month')})"
        elif {"days_lo", "days_hi"} <= parts.keys():
            text += f" ({_distance(parts['days_lo'], parts['days_hi'], 'day')})"
        out.append(f"{words(base)} {text.strip()}")
    return ", ".join(out)


def _answer(evidence: Evidence) -> str:
    if evidence.value is Truth.TRUE:
        return "yes"
    if evidence.value is Truth.FALSE:
        return "no"
    # Unknown with values on record means they cannot decide it (an imprecise date, a word).
    return "undetermined" if any(f.values for f in evidence.facts) else "not documented"


def _bound(values: Sequence[str]) -> str:
    try:
        return format_segments(values)
    except LevelError:
        return ", ".join(dict.fromkeys(values))


@dataclass
class EvidenceLine:
    """Evidence items that differ only in their binding, merged into one line."""

    answer: str
    condition: str
    documented: str
    bindings: list[tuple[tuple[str, str], ...]]

    @property
    def binding(self) -> str:
        if not self.bindings or not self.bindings[0]:
            return ""
        aliases = [a for a, _ in self.bindings[0]]
        return "; ".join(
            f"{alias} = {_bound([dict(b)[alias] for b in self.bindings])}" for alias in aliases
        )


def evidence_lines(clause: ClauseResult) -> list[EvidenceLine]:
    """Return a clause's evidence merged by condition, answer and documented values, in order."""
    merged: dict[tuple[str, str, str, tuple[str, ...]], EvidenceLine] = {}
    for ev in clause.evidence:
        documented = "; ".join(fact_text(f) for f in ev.facts if f.values)
        key = (_answer(ev), ev.condition, documented, tuple(a for a, _ in ev.binding))
        line = merged.setdefault(key, EvidenceLine(key[0], ev.condition, documented, []))
        line.bindings.append(ev.binding)
    return list(merged.values())


def sources(clause: ClauseResult) -> list[str]:
    """Return the distinct sources quoted by a clause's evidence, in order."""
    found = (f.source for ev in clause.evidence for f in ev.facts if f.source)
    return list(dict.fromkeys(found))


def _title(section: str) -> str:
    return words(section.replace("-", "_")).capitalize()


def _cited(numbers: Iterable[int]) -> str:
    return "[" + ", ".join(str(n) for n in numbers) + "]"


def _reference_text(ref: Any) -> str:
    text = " ".join(ref.citation.split())
    if ref.doi:
        text += f" doi:{ref.doi}"
    if ref.url:
        text += f" {ref.url}"
    return text


def _get(obj: object, name: str) -> Any:
    # decision.py types conflicts as mappings, but the api passes facts.Conflict objects.
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def conflict_json(conflict: object) -> dict[str, Any]:
    values = _get(conflict, "values") or ()
    return {
        "fact": str(_get(conflict, "fact")),
        "field": str(_get(conflict, "field")),
        "statements": [{"value": str(v), "document": str(d)} for v, d in values],
        "pointer": _get(conflict, "pointer"),
    }


def _conflict_text(conflict: object) -> str:
    data = conflict_json(conflict)
    stated = ", ".join(f"{s['value']} ({words(s['document'])})" for s in data["statements"])
    return f"{words(data['fact'])} {words(data['field'])}: the records disagree ({stated})"


# ---- JSON -------------------------------------------------------------------------------------


def _evidence_json(ev: Evidence) -> dict[str, Any]:
    return {
        "condition": ev.condition,
        "value": _JSON_TRUTH[ev.value],
        "binding": dict(ev.binding),
        "facts": [
            {"type": f.type, "id": f.id, "values": dict(f.values), "source": f.source}
            for f in ev.facts
        ],
    }


def decision_json(decision: Decision, evaluated_at: str | None = None) -> dict[str, Any]:
    """Return the JSON contract (schemas/decision.schema.json); only evaluated_at varies."""
    alt = decision.alternative
    return {
        "case_id": decision.case_id,
        "determination": decision.determination.value,
        "x12_action": decision.x12_action,
        "policy": {
            "id": decision.policy_id,
            "version": decision.policy_version,
            "title": decision.policy_title,
            "sha256": decision.policy_sha256,
        },
        "clauses": [
            {
                "id": c.id,
                "section": c.section,
                "title": c.title,
                "status": c.status.value,
                "evidence": [_evidence_json(e) for e in c.evidence],
                "citations": list(c.citations),
                "rationale": c.rationale,
                "recommendation": c.recommendation,
                "documentation": list(c.documentation),
            }
            for c in decision.clauses
        ],
        "alternative": None if alt is None else {
            "summary": alt.summary,
            "lines": [
                {"procedure": x.procedure, "segments": list(x.segments), "levels": x.levels}
                for x in alt.lines
            ],
        },
        "documentation_requests": [
            {"clause": r.clause, "document": r.document} for r in decision.documentation_requests
        ],
        "references": [
            {"id": r.id, "citation": " ".join(r.citation.split()), "doi": r.doi, "url": r.url,
             "note": r.note}
            for r in decision.references
        ],
        "conflicts": [conflict_json(c) for c in decision.conflicts],
        "review_note": review_note(decision),
        "evaluated_at": evaluated_at,
    }


# ---- text and Markdown share one outline --------------------------------------------------------


class _Writer:
    """The report's content in order; text and Markdown differ only in how they mark it up."""

    def __init__(self, markdown: bool) -> None:
        self.md = markdown
        self.out: list[str] = []

    def blank(self) -> None:
        if self.out and self.out[-1] != "":
            self.out.append("")

    def heading(self, text: str, level: int) -> None:
        self.blank()
        if self.md:
            self.out.extend(["#" * level + " " + text, ""])
        elif level <= 2:
            self.out.extend([text.upper(), ""])
        else:
            self.out.append("  " * (level - 2) + text)

    def wrap(self, text: str, first: str, rest: str) -> None:
        if self.md:
            self.out.append(first + text)
            return
        self.out.extend(textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                                      break_on_hyphens=False, break_long_words=False))

    def para(self, text: str, indent: int = 0) -> None:
        self.wrap(text, "" if self.md else "  " * indent, "  " * indent)

    def item(self, text: str, indent: int = 0, marker: str = "-") -> None:
        pad = "  " * indent
        self.wrap(text, f"{pad}{marker} ", pad + " " * (len(marker) + 1))

    def label(self, name: str, text: str, indent: int = 0) -> None:
        self.para(f"**{name}:** {text}" if self.md else f"{name}: {text}", indent)
        if self.md:
            self.blank()

    def code(self, text: str) -> str:
        return f"`{text}`" if self.md else text

    def result(self) -> str:
        while self.out and self.out[-1] == "":
            self.out.pop()
        return "\n".join(self.out) + "\n"


def _failed_clause(w: _Writer, clause: ClauseResult) -> None:
    title = f"{clause.id}: {clause.title} ({STATUS_WORDS[clause.status]})"
    if w.md:
        w.heading(title, 4)
    else:
        w.para(title, 2)
    if clause.rationale:
        w.para(clause.rationale, 3)
        if w.md:
            w.blank()
    lines = evidence_lines(clause)
    w.para("Evidence:" if not w.md else "**Evidence:**", 3)
    if w.md:
        w.blank()
    for line in lines[:MAX_EVIDENCE_LINES]:
        bound = f"{w.code(line.binding)}: " if line.binding else ""
        answer = f"**{line.answer}**" if w.md else f"[{line.answer}]"
        w.item(f"{answer} {bound}{line.condition}", 0 if w.md else 4)
        if line.documented:
            if w.md:
                w.item(f"documented: {line.documented}", 1)
            else:
                w.para(f"documented: {line.documented}", 5)
    if len(lines) > MAX_EVIDENCE_LINES:
        w.item(f"... and {len(lines) - MAX_EVIDENCE_LINES} more", 0 if w.md else 4)
    for src in sources(clause)[:3]:
        w.item(f"source: {src}", 0 if w.md else 4)
    if w.md:
        w.blank()
    if clause.citations:
        w.label("References", _cited(sorted(clause.citations)), 3)
    if clause.recommendation:
        w.label("Recommendation", clause.recommendation, 3)
    w.blank()


def _header(w: _Writer, decision: Decision) -> None:
    action = decision.x12_action
    headline, _, qualifier = HEADLINES[decision.determination].partition(": ")
    counts = ", ".join(
        f"{len(decision.by_status(s))} {STATUS_WORDS[s]}" for s in _STATUS_ORDER
        if decision.by_status(s)
    )
    fields = [
        ("Determination", headline.upper() + (f" ({qualifier})" if qualifier else "")),
        ("X12 278 action", f"{action} ({X12_WORDS.get(action, action)})"),
        ("Case", w.code(decision.case_id)),
        ("Policy", f"{w.code(decision.policy_id)} {decision.policy_version} "
                   f"({decision.policy_title})"),
        ("Clauses", counts),
    ]
    if w.md:
        w.heading(HEADLINES[decision.determination], 1)
        w.out.extend(["| | |", "|---|---|"])
        w.out.extend(f"| {k} | {v} |" for k, v in fields[1:])
    else:
        width = max(len(k) for k, _ in fields) + 2
        w.out.extend(f"{k + ':':<{width}}{v}" for k, v in fields)
    note = review_note(decision)
    if note:
        w.blank()
        w.para(f"> {note}" if w.md else note)
    if w.md:
        w.heading("Clause summary", 2)
        w.out.extend(["| Clause | Section | Title | Status |", "|---|---|---|---|"])
        for c in decision.clauses:
            title = c.title.replace("|", "\\|")
            w.out.append(f"| `{c.id}` | {_title(c.section)} | {title} | {STATUS_WORDS[c.status]} |")


def _report(decision: Decision, markdown: bool) -> str:
    w = _Writer(markdown)
    top = 0 if w.md else 1
    _header(w, decision)
    for status, heading in ((Status.NOT_MET, "Criteria not met"),
                            (Status.NOT_DOCUMENTED, "Criteria not documented")):
        failed = decision.by_status(status)
        if failed:
            w.heading(heading, 2)
            for section in dict.fromkeys(c.section for c in failed):
                w.heading(_title(section), 3)
                for clause in (c for c in failed if c.section == section):
                    _failed_clause(w, clause)
    alt = decision.alternative
    if alt is not None:
        w.heading("Alternative the facts support", 2)
        w.para(alt.summary, top)
        if w.md:
            w.blank()
        for line in alt.lines:
            w.item(f"{words(line.procedure)}: {line.levels}", top)
        w.blank()
        w.para("A partial-approval candidate (X12 278 A2 certified partial, or A6 modified) "
               "for the physician reviewer.", top)
    if decision.documentation_requests:
        w.heading("Documentation to request", 2)
        for n, req in enumerate(decision.documentation_requests, 1):
            w.item(f"{req.document} (for {w.code(req.clause)})", top, f"{n}.")
    if decision.conflicts:
        w.heading("Conflicting documentation (for the reviewer)", 2)
        for conflict in decision.conflicts:
            w.item(_conflict_text(conflict), top)
    for status, heading in ((Status.MET, "Criteria met"), (Status.NOT_APPLICABLE, "Not applicable")):
        for n, c in enumerate(decision.by_status(status)):
            if n == 0:
                w.heading(heading, 2)
            cited = f" {_cited(sorted(c.citations))}" if status is Status.MET else ""
            why = f". {c.rationale}" if c.rationale else ""
            w.item(f"{w.code(c.id)}: {c.title}{cited}{why}", top)
    shown = {n for c in decision.clauses if c.status is not Status.NOT_APPLICABLE
             for n in c.citations}
    references = [r for r in decision.references if r.id in shown]
    if references:
        w.heading("References", 2)
        for ref in references:
            w.item(_reference_text(ref), top, f"[{ref.id}]")
    return w.result()


def decision_text(decision: Decision) -> str:
    """Return the report a utilization reviewer reads in a terminal (no colour codes)."""
    return _report(decision, markdown=False)


def decision_markdown(decision: Decision) -> str:
    """Return the report as Markdown: the same content as the text, with a clause table."""
    return _report(decision, markdown=True)


# ---- problems and policies --------------------------------------------------------------------


def problem_lines(error: NecessityError, prefix: str = "error") -> list[str]:
    """Return `<prefix>: file:line:col (pointer): message` per problem, each hint on its own line."""
    lines = []
    for problem in error.problems[:MAX_PROBLEMS]:
        where = str(problem.location)
        lines.append(f"{prefix}: {where}: {problem.message}" if where else
                     f"{prefix}: {problem.message}")
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
    """Return `{"policies": [...]}`: id, version, title, status, effective dates, procedures."""
    return {"policies": [_policy_json(p) for p in policies]}


def policies_text(policies: Iterable[Policy]) -> str:
    """Return one block per policy version for the terminal."""
    blocks = []
    for p in policies:
        until = p.effective_until.isoformat() if p.effective_until else "no end date"
        lines = [f"{p.id} {p.version}  ({p.status.value})  {p.title}",
                 f"  effective {p.effective_from.isoformat()} to {until}"
                 f"; sha256 {p.sha256[:12]}"]
        for x in p.procedures:
            cpt = f" (CPT {', '.join(x.cpt)})" if x.cpt else ""
            lines.append(f"  procedure: {words(x.procedure)}{cpt}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else "no policies found\n"


FORMATTERS: Mapping[str, Callable[[Decision], str]] = {
    "text": decision_text,
    "markdown": decision_markdown,
}
