"""Best-effort files in the user's cache folder, named by a key computed from their content.

An entry is written whole to a temporary file and then renamed, so a reader never sees half of
one; any problem reading or writing (a missing, read-only or full folder, a damaged entry) makes
the caller compute the value again. Callers check what they read (its key, its digest) before
using it: a damaged or foreign file is a miss, never an error.

Where: $NECESSITY_CACHE_DIR, else $XDG_CACHE_HOME/necessity, else ~/.cache/necessity;
NECESSITY_CACHE_DIR=off turns every cache off.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "entry_path", "read_text", "write_text"]


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


def write_text(entry: Path, text: str) -> None:
    """Write the entry whole (temporary file, then rename); any failure leaves no entry."""
    temporary = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=entry.parent, suffix=".tmp", delete=False
        ) as handle:
            temporary = handle.name
            handle.write(text)
        os.replace(temporary, entry)
    except (OSError, ValueError):
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
