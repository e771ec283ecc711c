"""A cache of parsed YAML documents on disk, keyed by the SHA-256 of the file's bytes.

Parsing the bundled policies' YAML costs a process about 110 ms, more than all the rest of a
one-case `necessity evaluate`; a policy file changes rarely. An entry is plain JSON (the data
and the position of every value) that this module wrote itself, named by the hash of the bytes
it was parsed from, so an edited file simply misses; nothing from the cache is ever executed,
and what it returns is validated against the schema like a freshly parsed document. The cache
is best effort (evaluator/read/disk_cache.py): any problem reading or writing it falls back to
parsing.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from types import MappingProxyType

import orjson

from evaluator.read import source
from evaluator.read.disk_cache import cache_dir, entry_path, read_bytes, write_text

__all__ = ["cache_dir", "load"]

# Bump when the parser's output (data or positions) changes shape: old entries then miss.
FORMAT = "necessity-parsed-1"
# Entries kept: one per policy, module and plan file (tens of KB each) of the libraries in use.
KEEP = 1024


def load(path: str | Path) -> source.Document:
    """Return the Document in a YAML file, as source.load does, from the cache when it can.

    Raises SourceError as source.load does (a file that does not parse is never cached). The
    Document has no round-trip `tree`: use source.load to rewrite a file.
    """
    name = str(path)
    if cache_dir() is None or Path(path).suffix.lower() == ".json":
        return source.load(path)
    try:
        # only a regular file: a FIFO or a device could block or never end (source.load says so)
        if not stat.S_ISREG(os.stat(path).st_mode):
            return source.load(path)
        raw = Path(path).read_bytes()
    except (OSError, ValueError):
        return source.load(path)  # which says what is wrong with the file
    key = hashlib.sha256(FORMAT.encode() + b"\0" + raw).hexdigest()
    entry = entry_path("", key)
    cached = None if entry is None else _read(entry, key, name)
    if cached is not None:
        return cached
    document = source.load(path)
    if entry is not None:
        _write(entry, key, document)
    return document


def _read(entry: Path, key: str, name: str) -> source.Document | None:
    stored_bytes = read_bytes(entry)
    if stored_bytes is None:
        return None
    try:
        # orjson: the same plain data as json.loads of what `_write` wrote, several times
        # faster (a founding case reads ~400 KB of entries); `_write` keeps out what orjson
        # cannot read back (an integer beyond 64 bits), and such an entry would be a miss
        stored = orjson.loads(stored_bytes)
        if stored["key"] != key:
            return None
        positions = {pointer: (int(at[0]), int(at[1])) for pointer, at in stored["positions"]}
        return source.Document(stored["data"], name, MappingProxyType(positions))
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _write(entry: Path, key: str, document: source.Document) -> None:
    payload = {"key": key, "data": document.data, "positions": list(document.positions.items())}
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        if orjson.loads(text)["data"] != document.data:
            return  # not plain JSON data (a date, a tuple): parse it every time instead
    except (TypeError, ValueError):
        return
    write_text(entry, text, KEEP)
