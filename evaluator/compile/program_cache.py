"""Compiled programs on disk, keyed by content, so that a new process need not compile.

Compiling the three policies a founding case needs costs a process about 110 ms of its
400 (issue 10), folding compiling each one more than once; reading one back costs a few ms.
An entry holds the Program `api.program_for` settled on (folded, partly or wholly handed back
to the per-node lowering), the ruleset text the engine registered for it and its projection
(`ruleset.projection`: the case fact types and fields its rules read), so the three always
belong together.

The key covers everything the Program is a function of: `ruleset.cache_key` (the policy's data
in file order, its value sets, imported modules and plan overlay, the evaluator's version and
the source of all its modules and schemas, Python's version), this module's format, and the
installed durable_rules (its extension's file), whose refusal of a folded ruleset sends a
policy back to the per-node lowering. An entry whose header, digest or contents do not check
out is a miss and is written again; so is one naming a class this module does not rebuild.
Nothing read is ever executed: the entry is plain data (marshal of tuples, strings and numbers,
whose format the Python version in the key fixes) from which only the dataclasses and enums of
the program's own modules are rebuilt.

The layout is flat: a tuple of the scalars the Program holds (each distinct one once) and a
table of objects, each a tuple of its class's index and its fields, where every field is the
index of a scalar or of an earlier object in one list (the scalars, then the table's objects
in order), so that reading an object is a lookup per field done by `map`, not a test per
field in Python (a third of the time). An object shared in the Program (a pattern reused by
several rules) is written once and shared again when read.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import gc
import hashlib
import importlib.util
import marshal
import os
from types import MappingProxyType
from typing import Any

from evaluator.compile import program as program_module
from evaluator.compile import ruleset
from evaluator.compile.program import Program
from evaluator.language import conditions, model
from evaluator.language.model import Policy
from evaluator.read.disk_cache import entry_path, read_bytes, write_bytes

__all__ = ["FORMAT", "key", "load", "store"]

# Bump when the entry layout changes (code changes are caught by the key).
FORMAT = b"necessity-program-3"
KIND = "programs"

# Container tags in the table; classes have indexes >= 0.
_TUPLE, _LIST, _MAPPING, _DICT, _FROZENSET = -1, -2, -3, -4, -5

# The modules whose classes a Program is made of; only these are rebuilt.
_MODULES = (program_module, conditions, model)


# Values whose identity nothing asks about: equal ones may be read back as one object. Not
# patterns (ruleset._build tells a rule's first pattern by identity) nor anything larger.
_BY_VALUE: frozenset[type] = frozenset(
    {
        tuple,
        frozenset,
        program_module.Eq,
        program_module.Ne,
        program_module.Cmp,
        program_module.CmpField,
        program_module.Present,
        program_module.Absent,
        program_module.Join,
        program_module.AllOf,
        program_module.AnyTest,
        program_module.Record,
    }
)


@functools.cache
def _classes() -> dict[str, type]:
    found: dict[str, type] = {}
    for module in _MODULES:
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and (dataclasses.is_dataclass(value) or issubclass(value, enum.Enum))
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


@functools.cache
def _engine_version() -> str:
    """The installed engine: its extension module's file, size and modification time.

    Any reinstall of durable_rules (another version, another build) changes it; reading the
    package metadata instead would cost a process a few ms (importlib.metadata parses it).
    """
    spec = importlib.util.find_spec("durable_rules_engine")  # found, not imported
    origin = None if spec is None else spec.origin
    if origin is None:  # pragma: no cover - the engine is a dependency
        return "unknown"
    try:
        status = os.stat(origin)
    except OSError:  # pragma: no cover
        return "unknown"
    return f"{origin}\0{status.st_size}\0{status.st_mtime_ns}"


def key(policy: Policy) -> str | None:
    """Return the cache key of the program `api.program_for` compiles from `policy`, or None
    when it cannot be cached (a policy built without its document, an unreadable checkout)."""
    rules = ruleset.cache_key(policy, folded=True)
    if rules is None:
        return None
    digest = hashlib.sha256(FORMAT + b"\0" + rules.encode() + b"\0")
    digest.update(_engine_version().encode())
    return digest.hexdigest()


def load(cache_key: str) -> Program | None:
    """Return the Program stored under `cache_key`, its ruleset text remembered, or None."""
    entry = entry_path(KIND, cache_key, ".bin")
    # A renderer changed at run time (a test's mutation) must see its own rendering.
    if entry is None or ruleset._renderer_changed():
        return None
    stored = read_bytes(entry)
    if stored is None:
        return None
    header, _, body = stored.partition(b"\n")
    if header != _header(cache_key, body):
        return None  # truncated, damaged, or another key's
    # Thousands of new objects at once would run the cyclic collector many times over (a
    # third of the time); none of them can be garbage yet.
    collecting = gc.isenabled()
    gc.disable()
    try:
        text, flat, projected = marshal.loads(body)
        program = _decode(flat)
        projection = _projection(projected)
    except (ValueError, TypeError, IndexError, KeyError, EOFError, AttributeError):
        return None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(program, Program) or not isinstance(text, str):
        return None
    # Program is frozen; the memos are how ruleset.definition_text keeps the text it rendered
    # and ruleset.projection what it worked out, so that the engine registers this text and
    # filters the case's facts with this projection instead of walking the rules again.
    object.__setattr__(program, ruleset._MEMO, text)
    object.__setattr__(program, ruleset._PROJECTION, projection)
    return program


def store(cache_key: str, program: Program) -> None:
    """Write `program` (compiled and registered: its ruleset text is known) under `cache_key`;
    a program that does not come back equal from its entry is not written."""
    entry = entry_path(KIND, cache_key, ".bin")
    # A renderer changed at run time (a test's mutation) renders text no entry may hold.
    if entry is None or ruleset._renderer_changed():
        return
    text = ruleset.definition_text(program)
    try:
        flat = _encode(program)
        if _decode(flat) != program:
            return
        body = marshal.dumps((text, flat, _projected(program)))
    except (TypeError, ValueError):
        return  # a value marshal or the layout cannot hold: compile it every time
    write_bytes(entry, _header(cache_key, body) + b"\n" + body)


def _projected(program: Program) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """The program's `ruleset.Projection` as marshal data (its rules are walked to make it:
    as long as reading the program back)."""
    found = ruleset.projection(program)
    types = None if found.types is None else tuple(sorted(found.types))
    return types, tuple(sorted(found.fields))


def _projection(stored: Any) -> ruleset.Projection:
    types, fields = stored
    for names in (fields,) if types is None else (types, fields):
        if type(names) is not tuple or any(type(name) is not str for name in names):
            raise TypeError("a projection holds names")
    return ruleset.Projection(None if types is None else frozenset(types), frozenset(fields))


def _header(cache_key: str, body: bytes) -> bytes:
    return FORMAT + b" " + cache_key.encode() + b" " + hashlib.sha256(body).hexdigest().encode()


def _encode(
    root: Program,
) -> tuple[tuple[str, ...], tuple[Any, ...], tuple[tuple[Any, ...], ...], int]:
    """Return (class names, scalars, object table, index of the root) for marshal."""
    names: dict[str, int] = {}
    table: list[tuple[Any, ...]] = []
    seen: dict[int, complex] = {}
    equal: dict[bytes, complex] = {}
    alive: list[object] = []  # keeps every encoded object alive, so no id() is reused

    def ref(value: Any) -> Any:
        kind = type(value)
        if kind in (str, int, float, bool) or value is None:
            return value
        found = seen.get(id(value))
        if found is not None:
            return found
        entry: tuple[Any, ...]
        if isinstance(value, enum.Enum):
            entry = (_index(names, kind), value.value)
        elif kind is tuple or kind is list:
            entry = (_TUPLE if kind is tuple else _LIST, tuple(ref(v) for v in value))
        elif kind is MappingProxyType or kind is dict:
            keys = tuple(value)
            if not all(type(k) is str for k in keys):
                raise TypeError("a mapping with keys that are not strings")
            tag = _MAPPING if kind is MappingProxyType else _DICT
            entry = (tag, keys, tuple(ref(value[k]) for k in keys))
        elif kind is frozenset:
            entry = (_FROZENSET, tuple(ref(v) for v in sorted(value, key=repr)))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = dataclasses.fields(value)
            if any(not f.init for f in fields):
                raise TypeError(f"{kind.__name__} has a field its constructor does not take")
            entry = (_index(names, kind), tuple(ref(getattr(value, f.name)) for f in fields))
        else:
            raise TypeError(f"cannot store a {kind.__name__}")
        alive.append(value)
        # Equal immutable values are one object when read (a third fewer objects to build);
        # marshal's bytes tell 1, 1.0 and True apart, which equality does not.
        same = None
        if kind in _BY_VALUE:
            same = marshal.dumps(entry)
            found = equal.get(same)
            if found is not None:
                seen[id(value)] = found
                return found
        table.append(entry)
        seen[id(value)] = reference = complex(0, len(table) - 1)
        if same is not None:
            equal[same] = reference
        return reference

    root_ref = ref(root)
    return tuple(names), *_indexed(names, table, root_ref)


def _indexed(
    names: dict[str, int], table: list[tuple[Any, ...]], root: complex
) -> tuple[tuple[Any, ...], tuple[tuple[Any, ...], ...], int]:
    """Return (scalars, table, root) with every field an index into one list: the distinct
    scalars (marshal's bytes tell 1, 1.0 and True apart, which equality does not), then the
    table's objects, whose references are complex numbers until here."""
    scalars: dict[bytes, int] = {}
    values: list[Any] = []
    members = {i for name, i in names.items() if issubclass(_classes()[name], enum.Enum)}
    for entry in table:
        if entry[0] in members:
            continue  # (class, its member's value)
        for value in entry[2] if entry[0] in (_MAPPING, _DICT) else entry[1]:
            if type(value) is not complex:
                key = marshal.dumps(value)
                if key not in scalars:
                    scalars[key] = len(values)
                    values.append(value)
    offset = len(values)

    def index(value: Any) -> int:
        if type(value) is complex:
            return offset + int(value.imag)
        return scalars[marshal.dumps(value)]

    indexed: list[tuple[Any, ...]] = []
    for entry in table:
        tag = entry[0]
        if tag in members:
            indexed.append(entry)
        elif tag in (_MAPPING, _DICT):
            indexed.append((tag, entry[1], tuple(index(v) for v in entry[2])))
        else:
            indexed.append((tag, tuple(index(v) for v in entry[1])))
    return tuple(values), tuple(indexed), index(root)


def _index(names: dict[str, int], kind: type) -> int:
    name = f"{kind.__module__}.{kind.__qualname__}"
    if _classes().get(name) is not kind:
        raise TypeError(f"{name} is not a class of a compiled program")
    return names.setdefault(name, len(names))


def _decode(flat: Any) -> Any:
    """Rebuild the objects of an `_encode` table in order; return the one at the root index."""
    names, scalars, table, root = flat
    known = _classes()
    classes = [known[name] for name in names]  # KeyError: a class this code does not have
    enums = [issubclass(cls, enum.Enum) for cls in classes]
    objects: list[Any] = list(scalars)
    add = objects.append
    # a field is always an earlier object: a later one is an IndexError when it is asked for
    get = objects.__getitem__
    for entry in table:
        tag = entry[0]
        if tag >= 0:
            if enums[tag]:
                add(classes[tag](entry[1]))
            else:
                add(classes[tag](*map(get, entry[1])))
        elif tag == _TUPLE:
            add(tuple(map(get, entry[1])))
        elif tag == _LIST:
            add(list(map(get, entry[1])))
        elif tag in (_MAPPING, _DICT):
            mapping = dict(zip(entry[1], map(get, entry[2]), strict=True))
            add(MappingProxyType(mapping) if tag == _MAPPING else mapping)
        elif tag == _FROZENSET:
            add(frozenset(map(get, entry[1])))
        else:
            raise ValueError(f"unknown tag {tag}")
    if type(root) is not int or root < len(scalars):
        raise TypeError("the root is not an object of the table")
    return objects[root]
