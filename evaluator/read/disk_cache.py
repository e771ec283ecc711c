"""Best-effort files in the user's cache folder, named by a key computed from their content.

An entry is written whole to a temporary file and then renamed, so a reader never sees half of
one; any problem reading or writing (a missing, read-only or full folder, a damaged entry) makes
the caller compute the value again. Callers check what they read (its key, its digest) before
using it: a damaged or foreign file is a miss, never an error.

Where: $NECESSITY_CACHE_DIR, else $XDG_CACHE_HOME/necessity, else ~/.cache/necessity;
NECESSITY_CACHE_DIR=off turns every cache off.

Bounded: each kind of entry (parsed files, rulesets, compiled programs) keeps its newest
entries (`KEEP`, or as many as its writer asks). A key changes with the evaluator's code, so
every edit in a checkout leaves a set of entries nothing reads again; the oldest go when a
write takes a kind past its bound.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = [
    "KEEP",
    "cache_dir",
    "entry_path",
    "read_bytes",
    "read_text",
    "write_bytes",
    "write_text",
]

# Entries kept per kind (a folder of two-letter folders of entries) unless its writer says
# otherwise: enough for every version and plan of a large policy library under one evaluator,
# while a kind of entries of a few hundred KB (rulesets, programs) stays under 100 MB.
KEEP = 256


def cache_dir() -> Path | None:
    """Return the folder entries live in, or None when the cache is off."""
    configured = os.environ.get("NECESSITY_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "none") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "necessity"


def entry_path(kind: str, key: str, suffix: str = ".json") -> Path | None:
    """Return where the entry `key` of `kind` ("" for the top folder) lives, or None when off."""
    folder = cache_dir()
    if folder is None:
        return None
    return (folder / kind if kind else folder) / key[:2] / f"{key}{suffix}"


def read_text(entry: Path) -> str | None:
    """Return the entry's text, or None when it cannot be read."""
    try:
        return entry.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def read_bytes(entry: Path) -> bytes | None:
    """Return the entry's bytes, or None when it cannot be read."""
    try:
        return entry.read_bytes()
    except (OSError, ValueError):
        return None


def write_text(entry: Path, text: str, keep: int | None = None) -> None:
    """Write the entry whole (temporary file, then rename); any failure leaves no entry. Then
    drop the oldest entries of its kind past `keep` (default `KEEP`)."""
    try:
        data = text.encode("utf-8")
    except ValueError:
        return
    write_bytes(entry, data, keep)


def write_bytes(entry: Path, data: bytes, keep: int | None = None) -> None:
    """Write the entry whole (temporary file, then rename); any failure leaves no entry. Then
    drop the oldest entries of its kind past `keep` (default `KEEP`)."""
    import tempfile  # noqa: PLC0415  (with shutil, ~2 ms: only a process that writes one)

    temporary = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "wb", dir=entry.parent, suffix=".tmp", delete=False
        ) as handle:
            temporary = handle.name
            handle.write(data)
        # Concurrent writers of one key write the same bytes; the last rename wins whole.
        os.replace(temporary, entry)
    except (OSError, ValueError):
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return
    prune(entry.parent.parent, KEEP if keep is None else keep)


def prune(kind: Path, keep: int) -> None:
    """Remove all but the `keep` most recently written entries under the folder of a kind.

    Only entries (`??/<key>.<suffix>`, not temporary files) count; entries of other kinds live
    in folders with longer names, which the pattern skips. A file another process removed
    first, or one that cannot be removed, is left to the next write.
    """
    try:
        entries = [p for p in kind.glob("??/*") if p.suffix != ".tmp"]
        if len(entries) <= keep:
            return
        dated = []
        for path in entries:
            with contextlib.suppress(OSError):
                dated.append((path.stat().st_mtime_ns, path))
    except OSError:
        return
    dated.sort(reverse=True)
    for _, path in dated[keep:]:
        with contextlib.suppress(OSError):
            path.unlink()
