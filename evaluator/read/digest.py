"""Content hashes of parsed documents: the same data gives the same hash whatever its layout."""

from __future__ import annotations

import hashlib
from typing import Any

from evaluator.read.jsontext import canonical_json


def canonical_sha256(data: Any) -> str:
    """Return the SHA-256 of `data` as canonical JSON (sorted keys, no spaces, UTF-8): the bytes
    of `json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`."""
    return hashlib.sha256(canonical_json(data)).hexdigest()
