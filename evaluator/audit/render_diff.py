"""Text, Markdown and JSON for `necessity diff`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaluator.audit.diff import Change, Diff
from evaluator.audit.witness import ABSENT, Witness
from evaluator.language.describe import words

_MARK = {"added": "+", "removed": "-", "changed": "~", "affected": "~"}
_ORDER = (
    "metadata",
    "import",
    "setting",
    "setting note",
    "reference",
    "procedure",
    "rule",
    "clause",
)
_SKIP = frozenset({"t", "id", "src"})
_PLURAL = {"metadata": "metadata"}


def _label(policy_ref: str, path: str) -> str:
    return f"{policy_ref} ({path})"


def diff_json(result: Diff) -> dict[str, Any]:
    return {
        "old": {"ref": result.old.ref, "path": result.old.path, "sha256": result.old.sha256},
        "new": {"ref": result.new.ref, "path": result.new.path, "sha256": result.new.sha256},
        "identical": result.identical,
        "changes": [c.as_json() for c in result.changes],
    }


def verdict(change: Change) -> str:
    """Whether the change can alter a decision, in words."""
    if change.decides:
        return "can change a decision (witness below, checked under both versions)"
    if change.decides is None:
        if change.category == "clause":
            return "logic changed, but no witness was found among the searched cases"
        return "logic: see the clauses it affects"
    return "decision-neutral"


def fact_line(fact: Mapping[str, Any]) -> str:
    shown = ", ".join(
        f"{k} {v}"
        for k, v in fact.items()
        if k not in _SKIP and not k.endswith(("_lo", "_hi", "_index"))
    )
    return f"{words(str(fact.get('t')))}: {shown}" if shown else words(str(fact.get("t")))


def _status(witness: Witness, which: str) -> str:
    outcome = witness.old if which == "old" else witness.new
    status = outcome.statuses.get(witness.clause, ABSENT)
    shown = "not in this version" if status == ABSENT else words(status)
    return f"{shown} (determination: {words(outcome.determination.value)})"


def _sorted(result: Diff) -> list[Change]:
    return sorted(result.changes, key=lambda c: _ORDER.index(c.category))


def diff_text(result: Diff) -> str:
    old, new = result.old, result.new
    head = f"{old.ref} -> {new.ref}"
    if result.identical:
        return f"{head}: no semantic difference\n"
    lines = [f"{head}: {len(result.changes)} difference(s)"]
    category = None
    for change in _sorted(result):
        if change.category != category:
            category = change.category
            lines += ["", f"{_PLURAL.get(category, words(category) + 's')}:"]
        lines.append(f"  {_MARK[change.action]} {change.key} ({change.action}): {verdict(change)}")
        lines += [f"      {d}" for d in change.details]
        if change.witness is not None:
            w = change.witness
            lines.append(f"      under {old.ref}: {_status(w, 'old')}")
            lines.append(f"      under {new.ref}: {_status(w, 'new')}")
            lines.append("      witness facts:")
            lines += [f"        {fact_line(f)}" for f in w.facts]
    return "\n".join(lines) + "\n"


def diff_markdown(result: Diff) -> str:
    old, new = result.old, result.new
    out = [f"# Policy change: `{old.ref}` -> `{new.ref}`", ""]
    if result.identical:
        return "\n".join([*out, "No semantic difference.", ""])
    out += [
        f"- old: `{old.path}` (sha256 `{old.sha256[:12]}`)",
        f"- new: `{new.path}` (sha256 `{new.sha256[:12]}`)",
        f"- differences: {len(result.changes)}; can change a decision: "
        f"{sum(1 for c in result.changes if c.decides)}",
        "",
        "| kind | id | change | decision |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {c.category} | `{c.key}` | {c.action} | {verdict(c).split(' (')[0]} |"
        for c in _sorted(result)
    ]
    for change in _sorted(result):
        if not change.details and change.witness is None:
            continue
        out += ["", f"## {words(change.category)} `{change.key}` ({change.action})", ""]
        out += [f"- {d}" for d in change.details]
        if change.witness is not None:
            w = change.witness
            out += [
                "",
                f"Witness (evaluated under both versions): under `{old.ref}` "
                f"{_status(w, 'old')}; under `{new.ref}` {_status(w, 'new')}.",
                "",
            ]
            out += [f"- {fact_line(f)}" for f in w.facts]
    return "\n".join(out) + "\n"
