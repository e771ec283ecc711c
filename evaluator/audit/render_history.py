"""`necessity policies --history ID`: a policy's versions, their windows and changelogs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluator.language.model import Policy


def window(policy: Policy) -> str:
    """Return the effective window in words: `2025-01-01 to 2025-12-31`, or `from 2026-01-01`."""
    start = policy.effective_from.isoformat()
    if policy.effective_until is None:
        return f"from {start}"
    return f"{start} to {policy.effective_until.isoformat()}"


def history_json(versions: Sequence[Policy]) -> dict[str, Any]:
    """Return `{"id", "versions": [...]}`, newest first, each with its changelog."""
    return {
        "id": versions[0].id if versions else None,
        "versions": [
            {
                "version": p.version,
                "status": p.status.value,
                "effective_from": p.effective_from.isoformat(),
                "effective_until": p.effective_until.isoformat() if p.effective_until else None,
                "supersedes": p.supersedes,
                "sha256": p.sha256,
                "content_sha256": p.content_sha256,
                "changelog": [
                    {"change": c.change, "reason": c.reason, "cites": list(c.cites)}
                    for c in p.changelog
                ],
            }
            for p in reversed(versions)
        ],
    }


def history_text(versions: Sequence[Policy]) -> str:
    """Return the versions newest first, each with its window and changelog, for the terminal."""
    blocks = []
    for p in reversed(versions):
        head = f"{p.ref} ({p.status.value}) {window(p)}"
        if p.supersedes:
            head += f", supersedes {p.supersedes}"
        lines = [head]
        citations = {r.id: r for r in p.references}
        for c in p.changelog:
            lines.append(f"  - {' '.join(c.change.split())}")
            lines.append(f"    why: {' '.join(c.reason.split())}")
            for n in c.cites:
                ref = citations.get(n)
                if ref is not None:
                    lines.append(f"    [{n}] {' '.join(ref.citation.split())}")
        if not p.changelog:
            lines.append("  (no changelog)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
