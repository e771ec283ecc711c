"""Reads YAML or JSON files into plain data plus a map from JSON pointer to line and column."""

from __future__ import annotations

import datetime
import json
import math
import re
import warnings
from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedBase, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError, YAMLFutureWarning, YAMLWarning
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from evaluator.errors import Location, Problem, SourceError

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "Document",
    "find_files",
    "load",
    "load_line",
    "loads",
    "loads_json",
    "make_pointer",
    "split_pointer",
]

# Real policies and cases nest a few dozen levels at most; the caps stop alias bombs
# ("billion laughs") and self-referencing aliases from exhausting memory or the stack.
MAX_DEPTH = 100
MAX_NODES = 250_000

Position = tuple[int, int]

_CORE_TAG = "tag:yaml.org,2002:"
_COLLECTION_TAGS = frozenset({None, _CORE_TAG + "map", _CORE_TAG + "omap", _CORE_TAG + "seq"})
_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)" with value')


# --- finding files ------------------------------------------------------------------------------

DATA_SUFFIXES = (".yaml", ".yml", ".json")


def find_files(
    paths: Iterable[str | Path], suffixes: tuple[str, ...] = DATA_SUFFIXES, skip: str | None = None
) -> Iterator[Path]:
    """Yield the files named as given, and for each folder named its files with one of
    `suffixes`, recursively in sorted order, leaving out any under a sub-folder named `skip`."""
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield path
            continue
        yield from sorted(
            p
            for p in path.rglob("*")
            if p.suffix.lower() in suffixes
            and p.is_file()
            and (skip is None or skip not in p.relative_to(path).parts[:-1])
        )


# --- JSON pointers (RFC 6901) ------------------------------------------------------------------


def make_pointer(parts: Iterable[str | int]) -> str:
    """Return the JSON pointer for a path of keys and indexes, escaping `~` and `/`."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def split_pointer(pointer: str) -> list[str]:
    """Return the unescaped reference tokens of a JSON pointer ("" gives [])."""
    if not pointer:
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer.split("/")[1:]]


def _parent(pointer: str) -> str:
    # escaped tokens hold no "/", so the last "/" always starts the last token
    return pointer.rsplit("/", 1)[0] if "/" in pointer else ""


# --- the document ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """A loaded file: plain data, the name it was read from, and where each value starts.

    `positions` maps a JSON pointer to the 1-based (line, column) of its value; a mapping
    value is placed at its key. `tree` is ruamel's round-trip tree (comments kept) for tools
    that rewrite the file.
    """

    data: Any
    path: str
    positions: Mapping[str, Position]
    tree: Any = field(default=None, compare=False, repr=False)

    def location(self, pointer: str) -> Location:
        """Return a Location for `pointer`, placed at its nearest ancestor that has a position."""
        current = pointer
        while True:
            position = self.positions.get(current)
            if position is not None:
                return Location(self.path, position[0], position[1], pointer)
            if not current:
                return Location(self.path, None, None, pointer)
            current = _parent(current)


# --- loading -----------------------------------------------------------------------------------


class _Constructor(RoundTripConstructor):
    """The round-trip constructor, except that an impossible date stays a string."""

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        # `2025-02-30` matches YAML's timestamp pattern but datetime rejects it with a bare
        # ValueError; as a string it reaches the schema, which reports it with its location.
        try:
            return super().construct_yaml_timestamp(node, values)
        except ValueError:
            return str(node.value)


_Constructor.add_constructor(_CORE_TAG + "timestamp", _Constructor.construct_yaml_timestamp)


def _round_trip_loader() -> YAML:
    # a new instance per load: a YAML instance keeps parser state and is not re-entrant
    loader = YAML(typ="rt")
    loader.Constructor = _Constructor
    loader.allow_duplicate_keys = False
    return loader


def load(path: str | Path) -> Document:
    """Read a YAML or JSON file.

    Returns the Document; raises SourceError (`file_not_found`, `unreadable_file`, or any
    code of `loads`).
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SourceError.single("file_not_found", "no such file", Location(name)) from None
    except IsADirectoryError:
        raise SourceError.single(
            "unreadable_file", "is a directory, not a file", Location(name)
        ) from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise SourceError.single(
            "unreadable_file", f"cannot read: {reason}", Location(name)
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SourceError.single(
            "unreadable_file",
            f"not utf-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            Location(name, line),
        ) from None
    if Path(path).suffix.lower() == ".json":
        fast = _json_document(text, name)
        if fast is not None:
            return fast
    return loads(text, name)


def load_line(text: str, name: str, line: int) -> Document:
    """Read one line of a JSON Lines stream: `name` is the stream, `line` its 1-based number.

    Returns the Document, located as if the line stood at that line of `name`; raises
    SourceError with any code of `loads`.
    """
    # Leading newlines put every position (and every problem) on the stream's own line.
    padded = "\n" * (line - 1) + text
    document = _json_document(padded, name)
    if document is not None:
        # The whole document starts on its own line, not on the first line of the stream.
        # (ChainMap only ever writes to its first map.)
        rest = cast(MutableMapping[str, Position], document.positions)
        return replace(document, positions=ChainMap({"": (line, 1)}, rest))
    try:
        json.loads(padded)  # a line of JSON Lines is JSON, never YAML (which allows `{a: 1,}`)
    except json.JSONDecodeError as exc:
        message = f"malformed json: {_lower_first(exc.msg)}"
        raise SourceError.single(
            "malformed_yaml", message, Location(name, exc.lineno, exc.colno)
        ) from None
    except (ValueError, RecursionError):
        pass
    return loads(padded, name)  # well-formed, but refused above: this says why, and where


def loads_json(text: str, name: str) -> Document:
    """Parse JSON text (e.g. a request body) as `load` reads a .json file: the standard library
    first, the round-trip parser only to locate a problem. Raises SourceError as `loads` does."""
    fast = _json_document(text, name)
    return fast if fast is not None else loads(text, name)


class _NotPlainJsonError(Exception):
    """The fast path declines; the round-trip parser reads the file and reports any problem."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _NotPlainJsonError
    return out


class _ConstantError(Exception):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token


def _no_constant(token: str) -> Any:
    raise _ConstantError(token)


def _json_document(text: str, name: str) -> Document | None:
    """Return a well-formed JSON file's Document, read by the standard library, or None.

    ruamel.yaml's pure-Python parser costs as much as evaluating a case; positions are only
    needed when something must be located, so they are computed on first use. Anything else
    the standard library rejects (syntax, duplicate keys, depth) is left to `loads`, which
    reports it with its line. Raises SourceError `bad_number` for NaN or Infinity.
    """
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _ConstantError as error:
        # JSON has no NaN or Infinity; YAML would read the bare word as a string instead.
        at = text.find(error.token)
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        raise SourceError.single(
            "bad_number",
            f"`{error.token}` is not a number a case may hold",
            Location(name, line, column),
        ) from None
    except (ValueError, RecursionError, _NotPlainJsonError):
        return None
    if data is None:
        return None
    return Document(data, name, _LazyPositions(text, name))


class _LazyPositions(Mapping[str, Position]):
    """The positions of a JSON file, computed by the round-trip parser on first use."""

    def __init__(self, text: str, name: str) -> None:
        self._text, self._name = text, name
        self._positions: Mapping[str, Position] | None = None

    def _load(self) -> Mapping[str, Position]:
        if self._positions is None:
            self._positions = loads(self._text, self._name).positions
        return self._positions

    def __getitem__(self, pointer: str) -> Position:
        return self._load()[pointer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def loads(text: str, name: str) -> Document:
    """Parse YAML or JSON text; `name` is the file name used in locations.

    Returns the Document; raises SourceError with one of the codes `malformed_yaml`,
    `duplicate_key`, `empty_document`, `non_string_key`, `bad_number`, `unsupported_tag`,
    `recursive_alias`, `nesting_too_deep`, `document_too_large`.
    """
    try:
        with warnings.catch_warnings():
            # ruamel warns about things like reused anchors; they are not the user's problem
            warnings.simplefilter("ignore", YAMLWarning)
            warnings.simplefilter("ignore", YAMLFutureWarning)
            tree = _round_trip_loader().load(text)
    except DuplicateKeyError as exc:
        raise _duplicate_key(exc, name) from None
    except MarkedYAMLError as exc:
        raise _malformed(exc, name) from None
    except ReaderError as exc:
        line, column = _line_column(text, exc.position)
        raise SourceError.single(
            "malformed_yaml",
            f"{_kind(name)}: unacceptable character #x{_ordinal(exc.character):04x}",
            Location(name, line, column),
        ) from None
    except YAMLError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError.single(
            "malformed_yaml", f"{_kind(name)}: {_lower_first(message)}", Location(name)
        ) from None
    except RecursionError:
        raise _too_deep(name, "") from None
    if tree is None:
        raise SourceError.single("empty_document", "the file holds no data", Location(name))
    converter = _Converter(name)
    data = converter.convert(tree, "", (1, 1), 0)
    return Document(data, name, MappingProxyType(converter.positions), tree)


# --- parser errors -----------------------------------------------------------------------------


def _kind(name: str) -> str:
    return "malformed json" if name.lower().endswith(".json") else "malformed yaml"


def _ordinal(character: int | str) -> int:
    return ord(character) if isinstance(character, str) else character


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _line_column(text: str, index: int) -> Position:
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def _mark_location(name: str, mark: Any) -> Location:
    if mark is None:
        return Location(name)
    return Location(name, mark.line + 1, mark.column + 1)


def _malformed(exc: MarkedYAMLError, name: str) -> SourceError:
    problem = exc.problem or exc.context or "syntax error"
    mark = exc.problem_mark if exc.problem_mark is not None else exc.context_mark
    hint = None
    # the context names the construct left open ("while parsing a flow sequence"), which is
    # often where the real mistake is: an unclosed bracket or quote
    if exc.problem and exc.context and exc.context_mark is not None:
        start = exc.context_mark
        if mark is None or (start.line, start.column) != (mark.line, mark.column):
            hint = f"{exc.context} that starts at line {start.line + 1}, column {start.column + 1}"
        else:
            hint = str(exc.context)
    if "'\\t'" in str(problem):
        hint = "indent with spaces: YAML does not allow tabs there"
    message = f"{_kind(name)}: {_lower_first(str(problem).strip())}"
    return SourceError([Problem("malformed_yaml", message, _mark_location(name, mark), hint)])


def _duplicate_key(exc: DuplicateKeyError, name: str) -> SourceError:
    found = _DUPLICATE_KEY.search(str(exc.problem or ""))
    message = f"duplicate key `{found.group(1)}`" if found else "duplicate key"
    return SourceError(
        [
            Problem(
                "duplicate_key",
                message,
                _mark_location(name, exc.problem_mark),
                "a key may appear only once in a mapping",
            )
        ]
    )


def _too_deep(name: str, pointer: str, position: Position | None = None) -> SourceError:
    line, column = position if position is not None else (None, None)
    message = f"values are nested more than {MAX_DEPTH} levels deep"
    return SourceError(
        [Problem("nesting_too_deep", message, Location(name, line, column, pointer))]
    )


# --- round-trip tree -> plain data -------------------------------------------------------------


class _Converter:
    """Turns ruamel's round-trip tree into plain JSON-like data, recording positions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.positions: dict[str, Position] = {}
        self.nodes = 0
        # ids of the collections being converted, to catch an alias inside its own anchor
        self.open: set[int] = set()

    def fail(self, code: str, message: str, pointer: str, hint: str | None = None) -> SourceError:
        line, column = self.positions.get(pointer, (None, None))
        return SourceError(
            [Problem(code, message, Location(self.name, line, column, pointer), hint)]
        )

    def convert(self, node: Any, pointer: str, position: Position, depth: int) -> Any:
        if pointer == "" and isinstance(node, CommentedBase):
            # the root has no key to stand at: use where its first key or item is
            position = _own_position(node) or position
        self.positions[pointer] = position
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(
                "document_too_large", f"the document has more than {MAX_NODES} values", pointer
            )
        if depth > MAX_DEPTH:
            raise _too_deep(self.name, pointer, position)
        if not isinstance(node, dict | list):
            return self.scalar(node, pointer)
        if id(node) in self.open:
            raise self.fail(
                "recursive_alias", "an alias refers to a collection that holds it", pointer
            )
        self.open.add(id(node))
        try:
            if isinstance(node, dict):
                return self.mapping(node, pointer, depth)
            return self.sequence(node, pointer, depth)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: dict[Any, Any], pointer: str, depth: int) -> dict[str, Any]:
        self.check_tag(node, pointer)
        key_positions = _child_positions(node)
        result: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise self.non_string_key(key, pointer, key_positions)
            text = str(key)
            child = make_pointer([text]) if not pointer else pointer + make_pointer([text])
            result[text] = self.convert(
                value, child, key_positions.get(key, self.positions[pointer]), depth + 1
            )
        return result

    def non_string_key(
        self, key: Any, pointer: str, key_positions: Mapping[Any, Position]
    ) -> SourceError:
        if isinstance(key, tuple | dict):
            # a `? [a, b]` complex key: there is no sensible text to quote
            line, column = key_positions.get(key, self.positions[pointer])
            kind = "sequence" if isinstance(key, tuple) else "mapping"
            return SourceError(
                [
                    Problem(
                        "non_string_key",
                        f"a key must be a string, not a {kind}",
                        Location(self.name, line, column, pointer),
                    )
                ]
            )
        shown = _show_key(key)
        child = pointer + make_pointer([shown])
        self.positions[child] = key_positions.get(key, self.positions[pointer])
        return self.fail(
            "non_string_key", f"key `{shown}` is not a string", child, f"quote it: `'{shown}'`"
        )

    def sequence(self, node: list[Any], pointer: str, depth: int) -> list[Any]:
        self.check_tag(node, pointer)
        item_positions = _child_positions(node)
        return [
            self.convert(
                item,
                f"{pointer}/{index}",
                item_positions.get(index, self.positions[pointer]),
                depth + 1,
            )
            for index, item in enumerate(node)
        ]

    def scalar(self, node: Any, pointer: str) -> Any:
        # bool first: ScalarBoolean (an anchored true/false) and bool are both ints
        if isinstance(node, bool | ScalarBoolean):
            return bool(node)
        if node is None:
            return None
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            if not math.isfinite(node):
                raise self.fail(
                    "bad_number",
                    f"`{node}` is not a finite number",
                    pointer,
                    "JSON and the schemas allow only finite numbers",
                )
            return float(node)
        if isinstance(node, str):
            return str(node)
        # datetime before date: a datetime is a date too
        if isinstance(node, datetime.datetime | datetime.date):
            return node.isoformat()
        if isinstance(node, TaggedScalar):
            tag = _tag_of(node)
            if tag == _CORE_TAG + "str":
                return str(node.value)
            raise self.fail("unsupported_tag", f"unsupported tag `{_short_tag(tag)}`", pointer)
        raise self.fail(
            "unsupported_tag",
            f"unsupported value of type `{_YAML_TYPES.get(type(node), type(node).__name__)}`",
            pointer,
        )

    def check_tag(self, node: Any, pointer: str) -> None:
        # the round-trip loader never runs code for a tag such as `!!python/object`; it keeps
        # the tag on a plain mapping, which would hide a mistake, so it is refused here
        tag = _tag_of(node)
        if tag not in _COLLECTION_TAGS:
            raise self.fail("unsupported_tag", f"unsupported tag `{_short_tag(tag)}`", pointer)


_YAML_TYPES: dict[type, str] = {bytes: "!!binary", set: "!!set"}


def _tag_of(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) else None


def _short_tag(tag: str | None) -> str:
    if tag is None:
        return "?"
    return "!!" + tag[len(_CORE_TAG) :] if tag.startswith(_CORE_TAG) else tag


def _show_key(key: Any) -> str:
    if isinstance(key, bool | ScalarBoolean):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, TaggedScalar):
        return str(key.value)
    if isinstance(key, datetime.date):
        return key.isoformat()
    return str(key)


def _own_position(node: CommentedBase) -> Position | None:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None or lc.col is None:
        return None
    return lc.line + 1, lc.col + 1


def _child_positions(node: Any) -> dict[Any, Position]:
    # ruamel records child positions as lc.data {key or index: [line, col, ...]}, 0-based;
    # keys brought in by a `<<` merge have none and fall back to their mapping
    lc = getattr(node, "lc", None)
    data = getattr(lc, "data", None) or {}
    return {key: (value[0] + 1, value[1] + 1) for key, value in data.items()}
