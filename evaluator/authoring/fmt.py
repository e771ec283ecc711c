"""Rewrites policy files in one canonical layout, keeping comments, anchors and merge keys."""

from __future__ import annotations

import datetime
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, merge_attrib
from ruamel.yaml.emitter import RoundTripEmitter
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.representer import RoundTripRepresenter

from evaluator.errors import Location, SourceError
from evaluator.read import schemas, source

__all__ = ["INDENT", "WIDTH", "format_file", "format_text", "key_order", "yaml_files"]

# Mapping keys indented 2; sequence dashes indented 2 under their key, items 4 (so a list reads
# as belonging to its key, as the shipped policies are written).
INDENT = {"mapping": 2, "sequence": 4, "offset": 2}
WIDTH = 100
DEFAULT_SCHEMA = "policy"
YAML_SUFFIXES = (".yaml", ".yml")

_MODELINE = re.compile(r"^#\s*yaml-language-server:")
_MODELINE_SCHEMA = re.compile(r"\$schema=\S*?([A-Za-z0-9_-]+)\.schema\.json")
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Each pass turns the outermost over-wide flow collections into blocks; real files need two.
_MAX_PASSES = 10
Schema = Mapping[str, Any]


class _Emitter(RoundTripEmitter):
    """ruamel's emitter, except that a string that needs quotes gets double quotes.

    Quotes are chosen per value (plain whenever the value reads back unchanged), so the author's
    quoting is not kept; double quotes are the one style JSON, editors and the schema docs share.
    """

    def choose_scalar_style(self) -> Any:
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _represent_none(representer: RoundTripRepresenter, _: None) -> ScalarNode:
    # ruamel writes a null mapping value as nothing after the colon, which reads as a mistake
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _dumper() -> YAML:
    dumper = YAML(typ="rt")
    dumper.Emitter = _Emitter
    dumper.representer.add_representer(type(None), _represent_none)
    dumper.indent(**INDENT)
    dumper.width = WIDTH
    return dumper


# --- key order from the schema -------------------------------------------------------------------


def _resolve(schema: Schema | None, root: Schema) -> Schema | None:
    # only local references ("#/$defs/name") occur in the bundled schemas
    seen: set[str] = set()
    while schema is not None and "$ref" in schema:
        ref = str(schema["$ref"])
        if not ref.startswith("#/") or ref in seen:
            return None
        seen.add(ref)
        target: Any = root
        for part in source.split_pointer(ref[1:]):
            target = target.get(part) if isinstance(target, Mapping) else None
        schema = target if isinstance(target, Mapping) else None
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
        for key, value in list(node.non_merged_items()):
            if _is_date(value):
                node[key] = value.isoformat()
            _reorder(value, _child_schema(matched, str(key)), root, seen)
    elif isinstance(node, CommentedSeq):
        seen.add(id(node))
        items = _items_schema(schema, root)
        for index, item in enumerate(node):
            if _is_date(item):
                node[index] = item.isoformat()
            _reorder(item, items, root, seen)


def _is_date(value: Any) -> bool:
    # An unquoted date loads as a date, a quoted one as a string, and both are read as the same
    # ISO string; writing them all as strings makes one layout. An anchored date stays as it is
    # (its aliases would lose their target).
    anchor = getattr(getattr(value, "anchor", None), "value", None)
    return isinstance(value, datetime.date) and anchor is None


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


def _dump(tree: Any) -> str:
    out = io.StringIO()
    _dumper().dump(tree, out)
    return out.getvalue()


def _wrapped_flows(node: Any, value: Any, seen: set[int]) -> Iterator[Any]:
    """Yield the outermost flow collections of `value` that `node` (its dump) spreads over lines."""
    if id(node) in seen or not isinstance(node, MappingNode | SequenceNode):
        return
    seen.add(id(node))
    if node.flow_style and (
        node.start_mark.line != node.end_mark.line or node.end_mark.column > WIDTH
    ):
        yield value
        return
    if isinstance(node, MappingNode):
        for key, child in node.value:
            if key.tag == _MERGE_TAG:
                continue
            yield from _wrapped_flows(child, value[key.value], seen)
    else:
        for child, item in zip(node.value, value, strict=False):
            yield from _wrapped_flows(child, item, seen)


def _layout(tree: Any) -> tuple[str, Node]:
    # ruamel breaks a flow collection that passes the width between any two tokens, even between
    # a key and its value; such a collection is written in block style instead. Outermost first:
    # once it is a block, what it holds may fit.
    for _ in range(_MAX_PASSES):
        text = _dump(tree)
        composed = YAML(typ="rt").compose(text)
        wrapped = list(_wrapped_flows(composed, tree, set()))
        if not wrapped:
            break
        for value in wrapped:
            value.fa.set_block_style()
    return text, composed


def _scalar_lines(root: Node) -> tuple[set[int], set[int]]:
    """Return the 0-based lines that continue a multi-line scalar, and those of block scalars.

    On such lines `#` is content, and in a block scalar trailing spaces are content too.
    """
    inside: set[int] = set()
    block: set[int] = set()
    stack: list[Any] = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.value, list):
            for item in node.value:
                stack.extend(item if isinstance(item, tuple) else (item,))
            continue
        start, end = node.start_mark, node.end_mark
        # a block scalar ends at column 0 of the line after its last line
        lines = range(start.line + 1, end.line + (1 if end.column else 0))
        inside.update(lines)
        if node.style in ("|", ">"):
            block.update(lines)
    return inside, block


def _tidy(text: str, root: Node) -> str:
    """Return `text` without trailing spaces and with each full-line comment re-indented."""
    # ruamel leaves a space before a line break it inserts
    lines = text.splitlines(keepends=True)
    inside, block = _scalar_lines(root)
    for index, line in enumerate(lines):
        body = line.rstrip("\n").rstrip(" ")
        if index not in block and not body.endswith("\\"):
            lines[index] = body + line[len(line.rstrip("\n")) :]
    _indent_comments(lines, inside)
    return "".join(lines)


def _indent_comments(lines: list[str], inside: set[int]) -> None:
    # ruamel writes a full-line comment at the column it was read at, which is wrong once the
    # lines around it are re-indented. A comment group takes the indent of the line it
    # introduces; a group that follows a block with no blank line between but has one after
    # closes that block, and takes the indent of the line before it.
    def kind(index: int) -> str:
        if index < 0 or index >= len(lines) or not lines[index].strip():
            return "blank"
        comment = index not in inside and lines[index].lstrip().startswith("#")
        return "comment" if comment else "content"

    def indent(index: int) -> int:
        return len(lines[index]) - len(lines[index].lstrip(" "))

    index, previous = 0, 0
    while index < len(lines):
        if kind(index) != "comment":
            # a scalar's continuation lines do not count: a comment indented like them would
            # become part of the scalar's text
            if kind(index) == "content" and index not in inside:
                previous = indent(index)
            index += 1
            continue
        end = index
        while kind(end) == "comment":
            end += 1
        following = end
        while following < len(lines) and kind(following) != "content":
            following += 1
        closes = kind(end) == "blank" and kind(index - 1) == "content"
        if closes or following == len(lines):
            column = previous if index else 0
        else:
            column = indent(following)
        for line in range(index, end):
            lines[line] = " " * column + lines[line].lstrip(" ")
        index = end


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

    Raises SourceError (any code of `source.loads`) when the text is not well-formed YAML, and
    `fmt_changed_data` when the layout would read back as other data.
    """
    loaded = source.loads(text, name)
    tree = loaded.tree
    schema = _schema_for(text)
    _reorder(tree, schema, schema, set())
    dumped, composed = _layout(tree)
    formatted = _modeline_first(_tidy(dumped, composed))
    # Layout only: a rewrite that reads back as other data is refused, never written (a text
    # already in layout is its own rewrite: nothing to read again).
    if formatted != text and source.loads(formatted, name).data != loaded.data:
        raise SourceError.single(
            "fmt_changed_data",
            "fmt could not lay this file out without changing what it says; the file is left "
            "as it is",
            Location(name),
            "report this file: fmt must only move keys, indents and comments",
        )
    return formatted


def format_file(path: str | Path, check: bool = False) -> bool:
    """Format a YAML file in place (with `check`, only compare).

    Returns True when the file is (or, with `check`, would be) changed. Raises SourceError when
    the file cannot be read, is not a YAML file, or is not well-formed.
    """
    path = Path(path)
    if not path.is_file():
        source.load(path)  # raises file_not_found or unreadable_file, located
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
    """Yield the files to format: those named, and the YAML files under the folders named.

    A folder is searched recursively in sorted order, skipping `tests/` folders (policy test
    suites live beside the policy versions, under `<id>/tests/`); a file named is yielded as
    given, whatever it holds.
    """
    return source.find_files(paths, YAML_SUFFIXES, skip="tests")
