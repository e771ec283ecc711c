"""Rewrites policy files in one canonical layout, keeping comments, anchors and merge keys."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, merge_attrib
from ruamel.yaml.emitter import RoundTripEmitter

from . import schemas, source
from .errors import Location, SourceError

__all__ = ["INDENT", "WIDTH", "format_file", "format_text", "key_order", "yaml_files"]

# Mapping keys indented 2; sequence dashes indented 2 under their key, items 4 (so a list reads
# as belonging to its key, as the shipped policies are written).
INDENT = {"mapping": 2, "sequence": 4, "offset": 2}
WIDTH = 100
DEFAULT_SCHEMA = "policy"
YAML_SUFFIXES = (".yaml", ".yml")

_MODELINE = re.compile(r"^#\s*yaml-language-server:")
_MODELINE_SCHEMA = re.compile(r"\$schema=\S*?([A-Za-z0-9_-]+)\.schema\.json")
Schema = Mapping[str, Any]


class _Emitter(RoundTripEmitter):
    """ruamel's emitter, except that a string that needs quotes gets double quotes.

    Quotes are chosen per value (plain whenever the value reads back unchanged), so the author's
    quoting is not kept; double quotes are the one style JSON, editors and the schema docs share.
    """

    def choose_scalar_style(self) -> Any:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _dumper() -> YAML:
    dumper = YAML(typ="rt")
    dumper.Emitter = _Emitter
    dumper.indent(**INDENT)
    dumper.width = WIDTH
    return dumper


# --- key order from the schema -------------------------------------------------------------------


def _resolve(schema: Schema | None, root: Schema) -> Schema | None:
    # only local references ("#/$defs/name") occur in the bundled schemas
    seen = 0
    while schema is not None and "$ref" in schema and seen < 50:
        ref = str(schema["$ref"])
        if not ref.startswith("#/"):
            return None
        target: Any = root
        for part in source.split_pointer(ref[1:]):
            target = target.get(part) if isinstance(target, Mapping) else None
        schema = target if isinstance(target, Mapping) else None
        seen += 1
    return schema


def _object_schema(schema: Schema | None, keys: set[str], root: Schema) -> Schema | None:
    """Return the schema that describes a mapping with `keys`: for a oneOf, the best branch."""
    schema = _resolve(schema, root)
    if schema is None:
        return None
    if "properties" in schema or isinstance(schema.get("additionalProperties"), Mapping):
        return schema
    branches = schema.get("oneOf") or schema.get("anyOf") or ()
    candidates = [
        found
        for found in (_object_schema(branch, keys, root) for branch in branches)
        if found is not None
    ]

    def fit(candidate: Schema) -> tuple[bool, int]:
        # a branch whose required keys are all present beats one that knows more of the keys
        required = set(candidate.get("required", ()))
        return required <= keys, len(keys & set(candidate.get("properties", {})))

    return max(candidates, key=fit, default=None)


def _child_schema(schema: Schema | None, key: str) -> Schema | None:
    if schema is None:
        return None
    properties = schema.get("properties", {})
    if key in properties:
        found: Schema = properties[key]
        return found
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _items_schema(schema: Schema | None, root: Schema) -> Schema | None:
    schema = _resolve(schema, root)
    if schema is None:
        return None
    items = schema.get("items")
    return items if isinstance(items, Mapping) else None


def key_order(keys: Iterable[str], schema: Schema | None) -> list[str]:
    """Return `keys` in canonical order: the schema's `properties` order, then unknown keys.

    Keys the schema does not name (including `additionalProperties` names such as settings)
    keep their relative order after the known ones.
    """
    keys = list(keys)
    known = list((schema or {}).get("properties", {}))
    return [k for k in known if k in keys] + [k for k in keys if k not in known]


def _reorder(node: Any, schema: Schema | None, root: Schema, seen: set[int]) -> None:
    # an anchored collection is reached once per alias: order it once
    if id(node) in seen:
        return
    if isinstance(node, CommentedMap):
        seen.add(id(node))
        own = [key for key, _ in node.non_merged_items()]
        matched = _object_schema(schema, {str(k) for k in node}, root)
        wanted = key_order(own, matched) if all(isinstance(k, str) for k in own) else own
        if wanted != own:
            # move_to_end keeps each key's comments (ruamel stores them by key)
            for key in wanted:
                node.move_to_end(key)
        merge = getattr(node, merge_attrib, None)
        if merge:
            # `<<: *anchor` first: what a mapping inherits reads before what it overrides
            merge.merge_pos = 0
        for key, value in node.non_merged_items():
            _reorder(value, _child_schema(matched, str(key)), root, seen)
    elif isinstance(node, CommentedSeq):
        seen.add(id(node))
        items = _items_schema(schema, root)
        for item in node:
            _reorder(item, items, root, seen)


def _schema_for(text: str) -> Schema:
    # the modeline names the file's schema; without one (or an unknown one) it is a policy
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        found = _MODELINE_SCHEMA.search(line) if _MODELINE.match(line) else None
        if found:
            try:
                return schemas.load_schema(found.group(1))
            except LookupError:
                break
    return schemas.load_schema(DEFAULT_SCHEMA)


def _modeline_first(text: str) -> str:
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if not (line.startswith("#") or not line.strip()):
            break
        if _MODELINE.match(line):
            if index:
                lines.insert(0, lines.pop(index))
            break
    return "".join(lines)


# --- public functions ----------------------------------------------------------------------------


def format_text(text: str, name: str = "<text>") -> str:
    """Return `text` in canonical layout; `name` is the file name used in errors.

    Raises SourceError (any code of `source.loads`) when the text is not well-formed YAML.
    """
    tree = source.loads(text, name).tree
    schema = _schema_for(text)
    _reorder(tree, schema, schema, set())
    out = io.StringIO()
    _dumper().dump(tree, out)
    return _modeline_first(out.getvalue())


def format_file(path: str | Path, check: bool = False) -> bool:
    """Format a YAML file in place (with `check`, only compare).

    Returns True when the file is (or, with `check`, would be) changed. Raises SourceError when
    the file cannot be read, is not a YAML file, or is not well-formed.
    """
    path = Path(path)
    if path.suffix.lower() not in YAML_SUFFIXES:
        raise SourceError.single(
            "unreadable_file",
            "fmt rewrites YAML files only (`.yaml` or `.yml`)",
            Location(str(path)),
        )
    try:
        # bytes, not text mode: CRLF line ends are a difference fmt must see
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        source.load(path)  # raises the SourceError that locates the problem
        raise
    formatted = format_text(text, str(path))
    if formatted == text:
        return False
    if not check:
        path.write_bytes(formatted.encode("utf-8"))
    return True


def yaml_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield the YAML files named, searching folders (sorted); other paths as given."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()
            )
        else:
            yield path
