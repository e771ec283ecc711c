"""A clause's evidence in plain language: documented values in words, merged evidence lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluator.decide.decision import ClauseResult, Evidence, FactView
from evaluator.language.conditions import Truth
from evaluator.language.describe import boolean_text, field_label, plain, value_text
from evaluator.language.dictionary import case_fact_types
from evaluator.vocab.levels import LevelError, format_segments

MAX_EVIDENCE_LINES = 6  # per clause in the terminal report; the rest are counted
CANNOT_DECIDE = "cannot be decided from the record"
_UNIT_TEXT = {"deg": " degrees", "%": "%", "grade": "/5", "count": ""}
_DISTANCES = ("days", "months")


def _unit(fact_type: str, name: str) -> str:
    fact = case_fact_types().get(fact_type)
    info = fact.fields.get(name) if fact else None
    if info is None or info.unit is None:
        return ""
    return " days" if info.kind == "duration" else _UNIT_TEXT.get(info.unit, f" {info.unit}")


def _span(lo: Any, hi: Any) -> str:
    return value_text(lo) if lo == hi else f"{value_text(lo)}-{value_text(hi)}"


def _distance(lo: int, hi: int, unit: str) -> str:
    units = unit[:-1] if (abs(lo), abs(hi)) == (1, 1) else unit
    if lo >= 0:
        return f"{_span(lo, hi)} {units} before the request"
    if hi < 0:
        return f"{_span(-hi, -lo)} {units} after the request"
    return f"between {-lo} {unit} after and {hi} {unit} before the request"


def _split(name: str) -> tuple[str, str]:
    # Engine field names (docs/architecture.md, Facts) -> (logical field, part).
    for unit in _DISTANCES:
        base, marker, bound = name.partition(f"_{unit}_before_request_")
        if marker:
            return base, f"{unit}_{bound}"
    for suffix in ("lo", "hi", "word"):
        if name.endswith(f"_{suffix}"):
            return name[: -len(suffix) - 1], suffix
    return name, "value"


def fact_text(view: FactView) -> str:
    """Return a fact's values in words: `start 12/2024 (5-6 months before the request)`."""
    fields: dict[str, dict[str, Any]] = {}
    for name, value in view.values:
        base, part = _split(name)
        fields.setdefault(base, {})[part] = value
    out = []
    for base, parts in fields.items():
        value, unit = parts.get("value"), _unit(view.type, base)
        if value is not None:
            text = value_text(value) + ("" if isinstance(value, str | bool) else unit)
        elif "word" in parts:
            text = str(parts["word"])
        elif "lo" in parts and "hi" in parts:
            text = _span(parts["lo"], parts["hi"]) + unit
        else:
            text = ""
        # Whole months read best, unless the date is under a month away.
        for dist in ("months", "days") if parts.get("months_lo", 0) >= 1 else ("days",):
            if f"{dist}_lo" in parts and f"{dist}_hi" in parts:
                text += f" ({_distance(parts[f'{dist}_lo'], parts[f'{dist}_hi'], dist)})"
                break
        phrase = boolean_text(base, value) if isinstance(value, bool) else None
        out.append(phrase or f"{field_label(base)} {text.strip()}")
    return ", ".join(out)


def _answer(evidence: Evidence) -> str:
    if evidence.value is not Truth.UNKNOWN:
        return "yes" if evidence.value is Truth.TRUE else "no"
    # Values on record that cannot decide it (an imprecise date, a word) are not "missing".
    return CANNOT_DECIDE if any(f.values for f in evidence.facts) else "not documented"


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
    bindings: list[dict[str, str]] = field(default_factory=list)

    @property
    def binding(self) -> str:
        """`T12-L3 and S1-S2`: the elements each bound name stood for (the condition text
        already says what they are, e.g. "the fused segment")."""
        aliases = list(self.bindings[0]) if self.bindings else []
        # Names bound to the same elements (a segment and the finding at it) read once.
        texts = (_and(_bound([b[a] for b in self.bindings])) for a in aliases)
        return "; ".join(dict.fromkeys(texts))

    @property
    def sentence(self) -> str:
        """The line as one plain sentence, the answer first:
        `No, for T12-L3 and S1-S2: there is an unstable segment at ...`."""
        bound = f", for {self.binding}" if self.binding else ""
        condition = self.condition
        if self.answer == "not documented":  # not "not documented: X is documented"
            condition = condition.removesuffix(" is documented")
            # `care component (kind: home exercise): kind` names its field twice
            head, sep, name = condition.rpartition("): ")
            if sep and f"({name}: " in f"{head})":
                condition = f"{head})"
        text = f"{_capital(self.answer)}{bound}: {condition}."
        return text + (f" On record: {self.documented}." if self.documented else "")


def _and(values: str) -> str:
    head, sep, last = values.rpartition(", ")
    return f"{head} and {last}" if sep else values


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def evidence_lines(clause: ClauseResult) -> list[EvidenceLine]:
    """Return a clause's evidence merged by answer, condition and documented values, in order;
    the condition in plain words (no setting names or notes on absent facts)."""
    merged: dict[tuple[str, ...], EvidenceLine] = {}
    for ev in clause.evidence:
        documented = "; ".join(fact_text(f) for f in ev.facts if f.values)
        key = (_answer(ev), plain(ev.condition), documented, *(a for a, _ in ev.binding))
        line = merged.setdefault(key, EvidenceLine(key[0], key[1], documented))
        line.bindings.append(dict(ev.binding))
    return list(merged.values())


def sources(clause: ClauseResult) -> list[str]:
    """Return the distinct sources quoted by a clause's evidence, in order."""
    return list(dict.fromkeys(f.source for e in clause.evidence for f in e.facts if f.source))
