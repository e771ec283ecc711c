"""Reads YAML or JSON files into plain data plus a map from JSON pointer to line and column."""

from __future__ import annotations

import datetime
import errno
import functools
import json
import math
import os
import re
import stat
import sys
import warnings
from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from evaluator.errors import Location, Problem, SourceError

# ruamel.yaml is imported when YAML is parsed (`loads`): a process that reads only JSON and
# cached policies (a cold `necessity evaluate`) does without its import, about 8 ms.
if TYPE_CHECKING:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedBase
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError

__all__ = [
    "LIMITS",
    "MAX_DEPTH",
    "MAX_NODES",
    "STDIN",
    "STDIN_NAME",
    "Document",
    "Limits",
    "find_files",
    "load",
    "load_bytes",
    "load_line",
    "loads",
    "loads_json",
    "make_pointer",
    "split_pointer",
]


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(frozen=True, eq=False, repr=False)
class Limits:
    """What any file the product reads (policy, case, test suite; YAML or JSON) may hold.

    The one place these caps are set; docs/robustness.md explains each. The largest bundled
    file is about 25 KB with 3,000 values nested 15 deep and no string over 1,000 characters,
    so the caps leave ample room while bounding time and memory (a case's cost grows with its
    values: 50,000 values evaluate in a few seconds) and stopping alias bombs ("billion
    laughs"), self-referencing aliases and deep nesting from exhausting memory or the stack.
    """

    max_bytes: int = 4 * 1024 * 1024
    max_values: int = 50_000
    max_depth: int = 100
    max_string: int = 100_000
    # Past 2**53 (about 9.0e15) a float no longer holds every whole number, and the engine
    # writes large numbers in exponent notation it then cannot parse: no threshold, setting
    # or measurement comes near 1e15.
    max_number: float = 1e15


LIMITS = Limits()
MAX_DEPTH = LIMITS.max_depth
MAX_NODES = LIMITS.max_values

# The file name that stands for standard input, and how locations name it.
STDIN = "-"
STDIN_NAME = "<stdin>"

Position = tuple[int, int]

_CORE_TAG = "tag:yaml.org,2002:"
_COLLECTION_TAGS = frozenset({None, _CORE_TAG + "map", _CORE_TAG + "omap", _CORE_TAG + "seq"})
_DUPLICATE_KEY = re.compile(r'found duplicate key "(.*?)" with value')


# --- finding files ------------------------------------------------------------------------------

DATA_SUFFIXES = (".yaml", ".yml", ".json")


def find_files(
    paths: Iterable[str | Path], suffixes: tuple[str, ...] = DATA_SUFFIXES, skip: str | None = None
) -> Iterator[Path]:
    """Yield the files named as given, and for each folder named its entries with one of
    `suffixes`, recursively in sorted order, leaving out any under a sub-folder named `skip`.

    An entry that is not a folder is yielded even when it is not a regular file (a FIFO, a
    device, a broken symbolic link or a link loop), so that `load` refuses it with a message
    rather than the folder skipping it in silence.
    """
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield path
            continue
        # Sorted as the paths sort (part by part), each made once it is known to be wanted.
        yield from (path.joinpath(*parts) for parts in sorted(_entries(path, suffixes, skip)))


def _entries(folder: Path, suffixes: tuple[str, ...], skip: str | None) -> list[tuple[str, ...]]:
    """Return the parts (below `folder`) of every entry that is no folder with one of
    `suffixes`, in no order: what `folder.rglob("*")` finds and its filter kept (the suffix as
    `Path.suffix` reads it, anything but a folder, none under a sub-folder named `skip`).

    Walked with os.scandir rather than rglob, which made a Path of every entry and asked the
    file system again whether each was a folder (8.6 us a case file, 2.2 us here): the same
    folders are entered (not through a symbolic link), a folder that cannot be listed is left
    out, and what rglob raises this raises (tests/test_full_path.py compares the two).
    """
    found: list[tuple[str, ...]] = []
    pending: list[tuple[str, tuple[str, ...]]] = [(str(folder), ())]
    while pending:
        parent, above = pending.pop()
        try:
            with os.scandir(parent) as listing:
                entries = list(listing)
        except PermissionError:
            continue
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()  # a symbolic link is followed, as Path.is_dir does
            except OSError as error:  # a link loop, say: not a folder, and `load` says so
                if error.errno not in _IGNORED_ERRNOS:
                    raise
                is_dir = False
            if is_dir:
                if not entry.is_symlink() and name != skip:
                    pending.append((entry.path, (*above, name)))
                continue
            dot = name.rfind(".")  # Path.suffix: from the last dot, not a leading or final one
            if 0 < dot < len(name) - 1 and name[dot:].lower() in suffixes:
                found.append((*above, name))
    return found


# The errors pathlib's rglob takes as "not a folder" rather than raising.
_IGNORED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


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


@functools.cache
def _constructor() -> Any:
    from ruamel.yaml.constructor import RoundTripConstructor  # noqa: PLC0415  (see the imports)

    class _Constructor(RoundTripConstructor):
        """The round-trip constructor, except that an impossible date stays a string."""

        def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
            # `2025-02-30` matches YAML's timestamp pattern but datetime rejects it with a bare
            # ValueError; as a string it reaches the schema, which reports it with its location.
            try:
                return super().construct_yaml_timestamp(node, values)
            except ValueError:
                return str(node.value)

        def construct_yaml_int(self, node: Any) -> Any:
            # int() of more than 4,300 digits raises a bare ValueError; a number with more digits
            # than the largest allowed one is too large, which the converter reports with its line
            if sum(character.isalnum() for character in str(node.value)) > _MAX_DIGITS + 2:
                return _TOO_LARGE
            return super().construct_yaml_int(node)

    _Constructor.add_constructor(_CORE_TAG + "timestamp", _Constructor.construct_yaml_timestamp)
    _Constructor.add_constructor(_CORE_TAG + "int", _Constructor.construct_yaml_int)
    return _Constructor


def _round_trip_loader() -> YAML:
    from ruamel.yaml import YAML  # noqa: PLC0415  (see the imports)

    # a new instance per load: a YAML instance keeps parser state and is not re-entrant
    loader = YAML(typ="rt")
    loader.Constructor = _constructor()
    loader.allow_duplicate_keys = False
    return loader


def load(path: str | Path) -> Document:
    """Read a YAML or JSON file; `-` reads standard input (named `<stdin>` in locations).

    A `.json` file is JSON, a `.yaml` or `.yml` file YAML; standard input is JSON when it
    starts with `{` or `[`, else YAML. Returns the Document; raises SourceError
    (`file_not_found`, `unreadable_file`, `not_a_file`, `document_too_large`, or any code of
    `loads`).
    """
    raw, name = _read(path)
    return load_bytes(raw, name)


def load_bytes(raw: bytes, name: str) -> Document:
    """Parse the bytes of the file `name` as `load` reads them (already read: a batch hashes a
    case file's bytes, then parses them). Raises SourceError as `load` does once it has them."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SourceError.single(
            "unreadable_file",
            f"not utf-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            Location(name, line),
        ) from None
    is_json = text.lstrip()[:1] in ("{", "[") if name == STDIN_NAME else _json_suffix(name)
    if is_json:
        return _json_document(text, name)
    return loads(text, name)


def _json_suffix(name: str) -> bool:
    """True when `Path(name).suffix.lower() == ".json"`, decided from the text where it ends in
    `.json` after something other than a slash (pathlib parses the path at some cost)."""
    if name[-5:].lower() == _JSON and len(name) > len(_JSON) and name[-6] != "/":
        return True
    return Path(name).suffix.lower() == _JSON


_JSON = ".json"


def load_line(text: str, name: str, line: int) -> Document:
    """Read one line of a JSON Lines stream: `name` is the stream, `line` its 1-based number.

    Returns the Document, located as if the line stood at that line of `name`; raises
    SourceError with any code of `loads`.
    """
    # Leading newlines put every position (and every problem) on the stream's own line.
    padded = "\n" * (line - 1) + text
    # a line of JSON Lines is JSON, never YAML (which allows `{a: 1,}`): errors are located
    document = _json_document(padded, name)
    # The whole document starts on its own line, not on the first line of the stream.
    # (ChainMap only ever writes to its first map.)
    rest = cast(MutableMapping[str, Position], document.positions)
    return replace(document, positions=ChainMap({"": (line, 1)}, rest))


_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _read(path: str | Path) -> tuple[bytes, str]:
    """Return the bytes of a regular file (or of standard input) and its name for locations.

    Anything else is refused before it is read: a FIFO would block forever and `/dev/zero`
    never ends. Reads at most `LIMITS.max_bytes`.
    """
    name = str(path)
    if name == STDIN:
        raw = sys.stdin.buffer.read(LIMITS.max_bytes + 1)
        _check_size(len(raw), STDIN_NAME)
        return raw, STDIN_NAME
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; a regular
        # file ignores the flag. The type is checked on the open file, so it cannot change
        # between the check and the read.
        descriptor = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise _open_error(exc, name) from None
    try:
        status = os.fstat(descriptor)  # one call for the type and the size
        mode = status.st_mode
        if stat.S_ISDIR(mode):
            raise SourceError.single(
                "unreadable_file", "is a directory, not a file", Location(name)
            )
        if not stat.S_ISREG(mode):
            kind = next((text for test, text in _FILE_KINDS if test(mode)), "not a regular file")
            raise SourceError.single(
                "not_a_file",
                f"is {kind}, not a regular file",
                Location(name),
                "give the path of a policy or case file",
            )
        size = status.st_size
        _check_size(size, name)
        raw = _read_descriptor(descriptor, size)
    except OSError as exc:
        raise _open_error(exc, name) from None
    finally:
        os.close(descriptor)
    _check_size(len(raw), name)
    return raw, name


def _read_descriptor(descriptor: int, size: int) -> bytes:
    """Return what the descriptor holds, at most `LIMITS.max_bytes` + 1 bytes; `size` (what
    fstat says) sizes the first read, so a case file takes one read and one more for its end."""
    # A buffered read of max_bytes + 1 would allocate 4 MiB for every small file.
    parts: list[bytes] = []
    wanted = LIMITS.max_bytes + 1
    while wanted > 0:
        part = os.read(descriptor, min(wanted, max(size + 1, _READ_CHUNK)))
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


_READ_CHUNK = 64 * 1024


def _open_error(exc: OSError, name: str) -> SourceError:
    code, message = (
        "unreadable_file",
        f"cannot read: {(exc.strerror or type(exc).__name__).lower()}",
    )
    if isinstance(exc, FileNotFoundError):
        code, message = "file_not_found", "no such file"
        if os.path.islink(name):
            code, message = "not_a_file", "is a broken symbolic link (its target does not exist)"
    elif isinstance(exc, IsADirectoryError):
        message = "is a directory, not a file"
    elif exc.errno == errno.ELOOP:
        code, message = "not_a_file", "is a symbolic link loop (too many levels of links)"
    return SourceError([Problem(code, message, Location(name))])


def _check_size(size: int, name: str) -> None:
    if size > LIMITS.max_bytes:
        raise SourceError.single(
            "document_too_large",
            f"the file is larger than {LIMITS.max_bytes // (1024 * 1024)} MiB",
            Location(name),
        )


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


def _whole_number(token: str) -> int | float:
    # int() of more than 4,300 digits raises a bare ValueError; anything with more digits than
    # the largest allowed number is too large, which `_scalar_problem` reports
    return int(token) if len(token) <= _MAX_DIGITS else _TOO_LARGE


_MAX_DIGITS = len(str(int(LIMITS.max_number))) + 1
_TOO_LARGE = 10**_MAX_DIGITS  # stands for any whole number with more digits than that
# What json.loads(text, **options) makes, its decoder made once rather than for each text.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_int=_whole_number
)
_PLAIN_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _json_document(text: str, name: str) -> Document:
    """Return a JSON file's Document, read by the standard library.

    ruamel.yaml's pure-Python parser costs as much as evaluating a case; positions are only
    needed when something must be located, so they are computed on first use. A syntax error
    is reported with the line and column the standard library gives; a duplicate key, or a
    value over the limits, is located by the round-trip parser. Raises SourceError.
    """
    if not text or text.isspace():  # `not text.strip()` without copying the text
        raise SourceError.single("empty_document", "the file holds no data", Location(name))
    # A text plainly within the limits has no number long enough for int() to refuse: its
    # whole numbers are parsed by the standard library's own int (a call into Python for each
    # number otherwise), to the same values.
    plain = _plainly_within_limits(text)
    try:
        if text.startswith("\ufeff"):  # json.loads refuses it, with its own message
            data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        else:
            data = (_PLAIN_DECODER if plain else _DECODER).decode(text)
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
    except json.JSONDecodeError as error:
        # a `.json` file is JSON: a trailing comma or a comment is an error, even though
        # YAML (a superset) would read it
        message = _lower_first(error.msg)
        raise SourceError.single(
            "malformed_yaml",  # the one code for a file that does not parse, YAML or JSON
            f"malformed json: {message}",
            Location(name, error.lineno, error.colno),
        ) from None
    except RecursionError:
        # Deeper than the standard library recurses, and so deeper than the round-trip parser
        # does: that parser would only fail too, after seconds of CPU on a few kB of brackets.
        raise _too_deep(name, "", _too_deep_at(text)) from None
    except _NotPlainJsonError:
        return loads(text, name, json_text=True)  # reports the duplicate key with its line
    if data is None:
        raise SourceError.single("empty_document", "the file holds no data", Location(name))
    over = None if plain else _over_limits(data)
    if over == "values":
        # too large to re-read for a line number: the message names the file
        raise SourceError([_too_large(name, "")])
    if over is not None:
        loads(text, name, json_text=True)  # the same checks, with lines: raises it located
        raise AssertionError(f"the round-trip reader missed a value over the limits ({over})")
    return Document(data, name, _LazyPositions(text, name))


# A JSON string, or one bracket: what the nesting depth of a JSON text changes with.
_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _too_deep_at(text: str) -> Position | None:
    """Return the line and column of the bracket that opens level `LIMITS.max_depth` + 1 of a
    JSON text (brackets inside strings do not count), or None if none does."""
    depth = 0
    for match in _JSON_NESTING.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > LIMITS.max_depth:
                at = match.start()
                return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
        elif token in "]}":
            depth -= 1
    return None


# The text's shape for numbers: every digit 0, an exponent's e, the rest a space. A run of as
# many digits as `LIMITS.max_number` has less one (15 for 1e15: a 15-digit whole part with a
# fraction may round up to it) or a digit before an e may be a number over the limit; an
# escaped surrogate may be a lone one.
_NUMBER_SHAPE = bytes(
    ord("0") if chr(byte) in "0123456789" else ord("e") if chr(byte) in "eE" else ord(" ")
    for byte in range(256)
)
_LONG_NUMBER = (b"0" * (len(str(int(LIMITS.max_number))) - 1), b"0e")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _plainly_within_limits(text: str) -> bool:
    """True when JSON `text` cannot hold anything `_over_limits` refuses, which the text
    shows faster than a walk over its values (False means: walk them).

    Every value takes at least one character of the text and every level of nesting one
    bracket; no escape makes text longer; a character that is no text (a lone surrogate) is
    either in the text, which then does not encode, or written as an escape.
    """
    if (
        len(text) > min(LIMITS.max_values, LIMITS.max_string)
        or text.count("[") + text.count("{") > LIMITS.max_depth
        or _SURROGATE_ESCAPE.search(text) is not None
    ):
        return False
    try:
        shape = text.encode("utf-8").translate(_NUMBER_SHAPE)
    except UnicodeEncodeError:
        return False
    return not any(run in shape for run in _LONG_NUMBER)


def _over_limits(data: Any) -> str | None:
    """Return which limit already-parsed data exceeds (`values`, `depth` or `scalar`), or None.

    Fast, without positions or pointers: the round-trip reader, which makes the same checks
    while it builds data, locates the problem when there is one.
    """
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > LIMITS.max_values:
            return "values"
        if depth > LIMITS.max_depth:
            return "depth"
        if type(value) is dict:
            for key, item in value.items():
                if _scalar_problem(key) is not None:
                    return "scalar"
                stack.append((item, depth + 1))
        elif type(value) is list:
            stack.extend((item, depth + 1) for item in value)
        elif _scalar_problem(value) is not None:
            return "scalar"
    return None


def _too_large(name: str, pointer: str) -> Problem:
    return Problem(
        "document_too_large",
        f"the document has more than {LIMITS.max_values} values",
        Location(name, None, None, pointer),
    )


def _scalar_problem(value: Any) -> tuple[str, str, str | None] | None:
    """Return (code, message, hint) if a key or scalar is over `LIMITS` or not text, or None."""
    if isinstance(value, str):
        if value.isascii() and len(value) <= LIMITS.max_string:
            return None
        if len(value) > LIMITS.max_string:
            return (
                "string_too_long",
                f"text of {len(value)} characters; at most {LIMITS.max_string} are allowed",
                None,
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            code_point = ord(value[error.start])
            return (
                "bad_text",
                f"text holds a lone surrogate (\\u{code_point:04x}), which is not a character",
                "write the character itself; in YAML, a character beyond \\uffff is written "
                "\\UXXXXXXXX, not as a pair of \\u escapes",
            )
        return None
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) >= LIMITS.max_number
    ):
        return (
            "number_too_large",
            "the number is too large: numbers must be below 1e15 in magnitude",
            None,
        )
    return None


class _LazyPositions(Mapping[str, Position]):
    """The positions of a JSON file, computed by the round-trip parser on first use."""

    def __init__(self, text: str, name: str) -> None:
        self._text, self._name = text, name
        self._positions: Mapping[str, Position] | None = None

    def _load(self) -> Mapping[str, Position]:
        if self._positions is None:
            self._positions = loads(self._text, self._name, json_text=True).positions
        return self._positions

    def __getitem__(self, pointer: str) -> Position:
        return self._load()[pointer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def loads(text: str, name: str, *, json_text: bool = False) -> Document:
    """Parse YAML or JSON text; `name` is the file name used in locations; `json_text` says
    the text is JSON (a pair of \\u escapes is one character).

    Returns the Document; raises SourceError with one of the codes `malformed_yaml`,
    `duplicate_key`, `empty_document`, `non_string_key`, `bad_number`, `unsupported_tag`,
    `recursive_alias`, `nesting_too_deep`, `document_too_large`, `string_too_long`,
    `number_too_large`, `bad_text` (the limits are `LIMITS`).
    """
    from ruamel.yaml.constructor import DuplicateKeyError  # noqa: PLC0415  (see the imports)
    from ruamel.yaml.error import (  # noqa: PLC0415
        MarkedYAMLError,
        YAMLError,
        YAMLFutureWarning,
        YAMLWarning,
    )
    from ruamel.yaml.reader import ReaderError  # noqa: PLC0415

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
    converter = _Converter(name, join_surrogate_pairs=json_text)
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
    message = f"values are nested more than {LIMITS.max_depth} levels deep"
    return SourceError(
        [Problem("nesting_too_deep", message, Location(name, line, column, pointer))]
    )


# --- round-trip tree -> plain data -------------------------------------------------------------


class _Converter:
    """Turns ruamel's round-trip tree into plain JSON-like data, recording positions."""

    def __init__(self, name: str, *, join_surrogate_pairs: bool = False) -> None:
        self.name = name
        # JSON writes a character beyond U+FFFF as a pair of \u escapes, which the YAML parser
        # keeps as two lone surrogates; YAML's own \u escapes are code points, so a pair is not
        self.join_surrogate_pairs = join_surrogate_pairs
        self.positions: dict[str, Position] = {}
        self.nodes = 0
        # ids of the collections being converted, to catch an alias inside its own anchor
        self.open: set[int] = set()
        # a converter only ever sees what ruamel parsed, so ruamel is loaded by now
        from ruamel.yaml.comments import TaggedScalar  # noqa: PLC0415  (see the imports)
        from ruamel.yaml.scalarbool import ScalarBoolean  # noqa: PLC0415

        self.booleans: tuple[type, ...] = (bool, ScalarBoolean)
        self.tagged: Any = TaggedScalar

    def fail(self, code: str, message: str, pointer: str, hint: str | None = None) -> SourceError:
        line, column = self.positions.get(pointer, (None, None))
        return SourceError(
            [Problem(code, message, Location(self.name, line, column, pointer), hint)]
        )

    def convert(self, node: Any, pointer: str, position: Position, depth: int) -> Any:
        from ruamel.yaml.comments import CommentedBase  # noqa: PLC0415  (see the imports)

        if pointer == "" and isinstance(node, CommentedBase):
            # the root has no key to stand at: use where its first key or item is
            position = _own_position(node) or position
        self.positions[pointer] = position
        self.nodes += 1
        if self.nodes > LIMITS.max_values:
            raise SourceError([_too_large(self.name, pointer)])
        if depth > LIMITS.max_depth:
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
            text = _join_pairs(str(key)) if self.join_surrogate_pairs else str(key)
            child = make_pointer([text]) if not pointer else pointer + make_pointer([text])
            # located at the mapping: a pointer holding a bad key could not be printed
            self.check_scalar(text, pointer, key_positions.get(key, self.positions[pointer]))
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

    def check_scalar(self, value: Any, pointer: str, position: Position) -> None:
        found = _scalar_problem(value)
        if found is not None:
            code, message, hint = found
            location = Location(self.name, position[0], position[1], pointer)
            raise SourceError([Problem(code, message, location, hint)])

    def scalar(self, node: Any, pointer: str) -> Any:
        value = self.plain_scalar(node, pointer)
        self.check_scalar(value, pointer, self.positions[pointer])
        return value

    def plain_scalar(self, node: Any, pointer: str) -> Any:
        # bool first: ScalarBoolean (an anchored true/false) and bool are both ints
        if isinstance(node, self.booleans):
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
            if self.join_surrogate_pairs:
                return _join_pairs(str(node))
            return str(node)
        # datetime before date: a datetime is a date too
        if isinstance(node, datetime.datetime | datetime.date):
            return node.isoformat()
        if isinstance(node, self.tagged):
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


def _join_pairs(text: str) -> str:
    # a lone surrogate survives the round trip and is reported by `_scalar_problem`
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _tag_of(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) else None


def _short_tag(tag: str | None) -> str:
    if tag is None:
        return "?"
    return "!!" + tag[len(_CORE_TAG) :] if tag.startswith(_CORE_TAG) else tag


def _show_key(key: Any) -> str:
    from ruamel.yaml.comments import TaggedScalar  # noqa: PLC0415  (see the imports)
    from ruamel.yaml.scalarbool import ScalarBoolean  # noqa: PLC0415

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
