"""Content hashes of parsed documents: the same data gives the same hash whatever its layout."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_sha256(data: Any) -> str:
    """Return the SHA-256 of `data` as canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
