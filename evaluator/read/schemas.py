"""Loads the JSON Schemas (Draft 2020-12) and validates documents, every violation located.

A valid document is accepted by the compiled validator alone; jsonschema (with referencing and
attrs, about 40 ms to import) is imported only to explain a document the compiled one rejects,
to check a schema folder that is not the bundled one, or to follow a `$ref` for `enum`.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import jsonschema_rs
import orjson

from evaluator.errors import MAX_PROBLEMS, Location, Problem, SchemaError
from evaluator.read.resources import schemas_dir
from evaluator.read.source import Document, make_pointer, split_pointer

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, FormatChecker, TypeChecker
    from jsonschema.exceptions import ValidationError
    from referencing import Registry

__all__ = [
    "SCHEMA_BASE",
    "SchemaSet",
    "format_checker",
    "load_schema",
    "schema_enum",
    "schema_set",
    "validate",
    "validate_data",
]

SCHEMA_BASE = "https://necessity.dev/schemas/"
_SUFFIX = ".schema.json"


# --- formats -----------------------------------------------------------------------------------

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_YEAR_MONTH = re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})")
_MONTH_YEAR = re.compile(r"(?P<month>[0-9]{1,2})/(?P<year>[0-9]{4})")


# Dates are clinical: a year outside these is a typo (`0025` for `2025`), and months counted
# from year 1 or to year 9999 would leave the calendar datetime can hold.
FIRST_YEAR = 1900
LAST_YEAR = 2199


def _plausible(day: datetime.date) -> bool:
    return FIRST_YEAR <= day.year <= LAST_YEAR


def _is_date(instance: object) -> bool:
    # jsonschema's own check defers to date.fromisoformat, which on 3.11 also takes `20250102`
    if not isinstance(instance, str):
        return True
    return bool(_DATE.fullmatch(instance)) and _plausible(datetime.date.fromisoformat(instance))


def _is_partial_date(instance: object) -> bool:
    # the same shapes dates.py parses: an exact day, or a month in either order
    if not isinstance(instance, str):
        return True
    if _DATE.fullmatch(instance):
        return _plausible(datetime.date.fromisoformat(instance))
    match = _YEAR_MONTH.fullmatch(instance) or _MONTH_YEAR.fullmatch(instance)
    if match is None:
        return False
    # date() raises ValueError for month 13 or year 0, which the checker reports as invalid
    return _plausible(datetime.date(int(match["year"]), int(match["month"]), 1))


def _compiled_format(check: Callable[[object], bool]) -> Callable[[str], bool]:
    # jsonschema-rs wants a plain verdict where FormatChecker takes ValueError for "invalid".
    # A verdict is a function of the text alone, and the same dates come case after case: each
    # text's is kept (bounded), where it cost a regular expression and a date each time.
    @functools.lru_cache(maxsize=_VERDICTS_KEPT)
    def verdict(instance: str) -> bool:
        try:
            return check(instance)
        except ValueError:
            return False

    return verdict


_VERDICTS_KEPT = 4096


@functools.cache
def format_checker() -> FormatChecker:
    """Return jsonschema's checker of the formats the product relies on (any other `format` is
    an annotation): the same functions the compiled validator calls."""
    from jsonschema import FormatChecker  # noqa: PLC0415  (see the module docstring)

    checker = FormatChecker(formats=())
    checker.checks("date", raises=ValueError)(_is_date)
    checker.checks("partial-date", raises=ValueError)(_is_partial_date)
    return checker


# The compiled validator checks exactly the formats format_checker() checks, with the same
# functions.
_COMPILED_FORMATS = {
    "date": _compiled_format(_is_date),
    "partial-date": _compiled_format(_is_partial_date),
}

_FORMAT_EXPECTED = {
    "date": f"a date as YYYY-MM-DD, in the years {FIRST_YEAR} to {LAST_YEAR}",
    "partial-date": "a date as YYYY-MM-DD, or a month as YYYY-MM or MM/YYYY, in the years "
    f"{FIRST_YEAR} to {LAST_YEAR}",
}


# --- types -------------------------------------------------------------------------------------


def _is_whole_number(_checker: TypeChecker, instance: object) -> bool:
    # JSON Schema counts 3.0 as an integer, but the code past the schema gets a float where it
    # counts (`at_least: 3.0` of a list raised a TypeError): a whole number is written whole.
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def _explaining_validator() -> type[Draft202012Validator]:
    from jsonschema import Draft202012Validator, validators  # noqa: PLC0415  (module docstring)

    # the stubs leave `extend` untyped; it returns a subclass of the validator it extends
    extended: type[Draft202012Validator] = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator,
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_whole_number),
    )
    return extended


class _WholeNumber:
    """The compiled validator's keyword for `_is_whole_number`: JSON Schema (and jsonschema-rs)
    count 3.0 as an integer; this product does not."""

    def __init__(self, _parent: Any, _value: Any, _path: Any) -> None:
        pass

    def validate(self, instance: Any) -> None:
        if isinstance(instance, float):
            raise ValueError("a whole number is written without a fraction")


_WHOLE = "x-necessity-whole-number"


def _whole_numbers(schema: Any) -> Any:
    """Return a copy of `schema` in which every schema allowing `integer` also has _WHOLE."""
    if isinstance(schema, list):
        return [_whole_numbers(each) for each in schema]
    if not isinstance(schema, dict):
        return schema
    copy = {key: _whole_numbers(value) for key, value in schema.items()}
    kind = schema.get("type")
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        copy[_WHOLE] = True
    return copy


# What a type keeping another type's late facts apart (a type-level `x-late-of`) says for itself.
_OWN_OF_KEEPING = frozenset({"description", "x-as-of-source", "x-late-of"})


def _inherit_kept_types(schema: dict[str, Any]) -> None:
    """Give each definition with a type-level `x-late-of` the definition of the type it keeps
    late facts of (facts.schema.json: late_observation), but for what it says for itself.

    The fields, units and analytes are then written once, so the two types cannot drift apart;
    the keeping type is never itself dated as of its source (it would drop what it keeps)."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        return
    for spec in defs.values():
        kept = spec.get("x-late-of") if isinstance(spec, dict) else None
        if isinstance(kept, str) and isinstance(defs.get(kept), dict):
            for key, value in defs[kept].items():
                if key not in _OWN_OF_KEEPING:
                    spec.setdefault(key, value)


# --- the schemas of one folder -----------------------------------------------------------------


class SchemaSet:
    """Every `<name>.schema.json` in one folder, in one registry so `$ref`s between them resolve.

    Raises OSError or ValueError if a file cannot be read or is not JSON, and
    jsonschema.exceptions.SchemaError if one is not a valid Draft 2020-12 schema: these are
    defects of the product, not of the user's input. `check=False` skips that check, for the
    bundled schemas, which tests/test_schemas.py checks once (it costs a process 150 ms).

    Documents are validated by a compiled validator (jsonschema-rs) first; only a document it
    rejects is validated again by jsonschema, which explains and locates every violation and
    has the last word (tests/test_schemas.py checks the two agree on mutated documents).
    """

    def __init__(self, directory: Path, *, check: bool = True) -> None:
        self.directory = directory
        self.schemas: dict[str, dict[str, Any]] = {}
        for path in sorted(directory.glob("*" + _SUFFIX)):
            # orjson: the same data as json.loads, 5x faster (200 KB per process)
            schema = orjson.loads(path.read_bytes())
            if check:
                _explaining_validator().check_schema(schema)
            # a schema without `$id` gets the one its file name implies, so relative `$ref`s
            # to its neighbours still resolve
            schema.setdefault("$id", SCHEMA_BASE + path.name)
            _inherit_kept_types(schema)
            self.schemas[path.name[: -len(_SUFFIX)]] = schema
        self._validators: dict[str, Draft202012Validator] = {}
        self._compiled: dict[str, jsonschema_rs.Draft202012Validator] = {}

    @functools.cached_property
    def registry(self) -> Registry[Any]:
        """The schemas as one referencing Registry, for jsonschema and `$ref` lookups."""
        from referencing import Registry, Resource  # noqa: PLC0415  (module docstring)
        from referencing.jsonschema import DRAFT202012  # noqa: PLC0415

        return Registry().with_resources(
            (each["$id"], Resource.from_contents(each, default_specification=DRAFT202012))
            for each in self.schemas.values()
        )

    def schema(self, name: str) -> dict[str, Any]:
        """Return the schema `name` (shared: do not modify it); raises LookupError if unknown."""
        try:
            return self.schemas[name]
        except KeyError:
            known = ", ".join(sorted(self.schemas)) or "none"
            raise LookupError(f"no schema {name!r} in {self.directory} (known: {known})") from None

    def validator(self, name: str) -> Draft202012Validator:
        """Return a validator for the schema `name`; raises LookupError if unknown."""
        if name not in self._validators:
            self._validators[name] = _explaining_validator()(
                self.schema(name), registry=self.registry, format_checker=format_checker()
            )
        return self._validators[name]

    def compiled(self, name: str) -> jsonschema_rs.Draft202012Validator:
        """Return the compiled validator of the schema `name`; raises LookupError if unknown."""
        if name not in self._compiled:
            self.schema(name)  # LookupError if unknown
            schemas, registry = self._compiled_registry
            schema = schemas[name]
            self._compiled[name] = jsonschema_rs.Draft202012Validator(
                schema,
                formats=_COMPILED_FORMATS,
                validate_formats=True,
                registry=registry,
                base_uri=schema["$id"],
                keywords={_WHOLE: _WholeNumber},
            )
        return self._compiled[name]

    @functools.cached_property
    def _compiled_registry(self) -> tuple[dict[str, Any], jsonschema_rs.Registry]:
        # once per folder, not once per schema: copying every schema costs a cold start ~10 ms
        schemas = {key: _whole_numbers(each) for key, each in self.schemas.items()}
        return schemas, jsonschema_rs.Registry([(each["$id"], each) for each in schemas.values()])

    def accepts(self, data: Any, name: str) -> bool:
        """True when the compiled validator accepts `data` and jsonschema would too.

        False means "ask jsonschema", not "invalid": jsonschema-rs may be the stricter of the
        two (Rust's `$` does not match before a final newline as Python's does).
        """
        return bool(self.compiled(name).is_valid(data))

    def validate(self, document: Document, name: str) -> None:
        """Check `document` against the schema `name`.

        Returns None; raises SchemaError holding every violation (sorted by line, at most
        MAX_PROBLEMS), or LookupError if the schema is unknown.
        """
        if self.accepts(document.data, name):
            return
        problems: dict[tuple[object, ...], Problem] = {}
        for error in self.validator(name).iter_errors(document.data):
            for problem in _problems(error, document):
                loc = problem.location
                problems.setdefault((problem.code, problem.message, loc.pointer, loc.line), problem)
        if problems:
            ordered = sorted(problems.values(), key=_order)
            raise SchemaError(ordered[:MAX_PROBLEMS])

    def enum(self, name: str, pointer: str) -> list[str]:
        """Return the string enum at `pointer` in schema `name` (following one `$ref`).

        `pointer` may name the enum list or the schema holding it. Raises LookupError if
        there is no list of strings there.
        """
        schema = self.schema(name)
        node: Any = schema
        try:
            for token in split_pointer(pointer):
                node = node[int(token)] if isinstance(node, list) else node[token]
        except (KeyError, IndexError, ValueError, TypeError):
            raise LookupError(f"no {pointer!r} in schema {name!r}") from None
        if isinstance(node, dict) and "enum" not in node and "$ref" in node:
            resolver = self.registry.resolver(base_uri=schema["$id"])
            node = resolver.lookup(node["$ref"]).contents
        if isinstance(node, dict):
            node = node.get("enum")
        if not isinstance(node, list) or not all(isinstance(value, str) for value in node):
            raise LookupError(f"{pointer!r} in schema {name!r} is not an enum of strings")
        return list(node)


def _order(problem: Problem) -> tuple[int, int, str, str]:
    loc = problem.location
    return (loc.line or 0, loc.column or 0, loc.pointer or "", problem.code)


@functools.cache
def _schema_set(directory: Path) -> SchemaSet:
    return SchemaSet(directory, check=directory != schemas_dir().resolve())


@functools.cache
def _bundled() -> SchemaSet:
    # resolving the bundled folder's path costs more than validating a case: once per process
    return _schema_set(schemas_dir().resolve())


def schema_set(directory: Path | None = None) -> SchemaSet:
    """Return the (cached) SchemaSet of `directory`, by default the bundled schemas folder."""
    return _bundled() if directory is None else _schema_set(directory.resolve())


def load_schema(name: str, *, directory: Path | None = None) -> dict[str, Any]:
    """Return the schema `<name>.schema.json` (cached; do not modify); raises LookupError."""
    return schema_set(directory).schema(name)


def validate(document: Document, name: str, *, directory: Path | None = None) -> None:
    """Check a loaded document against the schema `name`.

    Returns None; raises SchemaError with every violation, located in the document.
    """
    schema_set(directory).validate(document, name)


def validate_data(
    data: Any, name: str, path: str = "<data>", *, directory: Path | None = None
) -> None:
    """Check already-parsed data (no line numbers) against the schema `name`.

    Returns None; raises SchemaError with every violation, located by JSON pointer.
    """
    schema_set(directory).validate(Document(data, path, {}), name)


def schema_enum(name: str, pointer: str, *, directory: Path | None = None) -> list[str]:
    """Return the enum of strings at `pointer` in the schema `name`; raises LookupError."""
    return schema_set(directory).enum(name, pointer)


# --- violations -> problems --------------------------------------------------------------------

_MAX_SHOWN = 40
_ENUM_SHOWN = 6


def _problems(error: ValidationError, document: Document) -> list[Problem]:
    error = _most_relevant(error)
    keyword = str(error.validator) if error.validator is not None else "false"
    code = "schema_" + keyword
    pointer = make_pointer(error.absolute_path)
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        return _unexpected_keys(error, document, code, pointer)
    describe = _MESSAGES.get(keyword, _fallback)
    message, hint = describe(error)
    if keyword == "uniqueItems":
        pointer = _first_duplicate(error.instance, pointer)
    return [Problem(code, message, document.location(pointer), hint)]


def _most_relevant(error: ValidationError) -> ValidationError:
    # oneOf/anyOf report "not valid under any of the given schemas" with the whole instance;
    # the most relevant error inside says what is actually wrong
    from jsonschema.exceptions import best_match  # noqa: PLC0415  (module docstring)

    while error.validator in _ALTERNATIVES and error.context:
        best = best_match([error])
        if best is not None and best is not error:
            error = best
            continue
        # jsonschema's relevance ties (every alternative failed as deep as the others): take
        # the alternative with the fewest and least basic failures, if one stands out
        branch = _closest_alternative(error.context)
        if branch is None:
            break
        error = best_match(branch) or error
    return error


_ALTERNATIVES = ("oneOf", "anyOf")


def _closest_alternative(context: list[ValidationError]) -> list[ValidationError] | None:
    branches: dict[object, list[ValidationError]] = {}
    for sub in context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def score(errors: list[ValidationError]) -> tuple[int, int]:
        wrong_type = any(e.validator == "type" and not e.relative_path for e in errors)
        return int(wrong_type), len(errors)

    scores = sorted((score(errors), index) for index, errors in branches.items() if errors)
    if len(scores) > 1 and scores[0][0] == scores[1][0]:
        return None
    return branches[scores[0][1]] if scores else None


def _unexpected_keys(
    error: ValidationError, document: Document, code: str, pointer: str
) -> list[Problem]:
    # one problem per key, placed at the key itself while the pointer names the object
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "additionalProperties":
        extras = _additional(instance, error.schema)
    else:
        # unevaluatedProperties names its keys only inside the message, as Python reprs
        extras = [key for key in instance if repr(key) in error.message]
    properties = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    absent = [key for key in properties if key not in instance] or list(properties)
    fallback = document.location(pointer)
    problems = []
    for key in extras:
        line, column = document.positions.get(
            pointer + make_pointer([key]), (fallback.line, fallback.column)
        )
        problems.append(
            Problem(
                code,
                f"unexpected property `{_show(key)}`",
                Location(document.path, line, column, pointer),
                _did_you_mean(key, absent),
            )
        )
    return problems or [Problem(code, _fallback(error)[0], fallback)]


def _additional(instance: Mapping[str, Any], schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return list(instance)
    properties = schema.get("properties", {})
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties", {})]
    return [
        key
        for key in instance
        if key not in properties and not any(pattern.search(key) for pattern in patterns)
    ]


def _first_duplicate(items: Any, pointer: str) -> str:
    if isinstance(items, list):
        for index, item in enumerate(items):
            if any(_same(item, earlier) for earlier in items[:index]):
                return f"{pointer}/{index}"
    return pointer


def _same(left: Any, right: Any) -> bool:
    # JSON Schema equality: `1` and `true` differ although Python's == says otherwise
    return type(left) is type(right) and left == right


# --- one message per keyword -------------------------------------------------------------------

Message = tuple[str, str | None]


def _expected(error: ValidationError) -> Any:
    # the stubs type these as possibly unset; for a keyword error both are always set
    return cast(Any, error.validator_value)


def _got(error: ValidationError) -> Any:
    return cast(Any, error.instance)


def _show(value: Any) -> str:
    """Return `value` as short one-line text to put between backticks."""
    if isinstance(value, str) and value.isprintable():
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool) or value is None:
        return f"`{_show(value)}`"
    if isinstance(value, int | float):
        return f"the number `{_show(value)}`"
    return f"the text `{_show(value)}`"


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _did_you_mean(value: Any, choices: Iterable[Any]) -> str | None:
    if not isinstance(value, str):
        return None
    options = [choice for choice in choices if isinstance(choice, str)]
    folded = {choice.casefold(): choice for choice in options}
    if value.casefold() in folded:
        return f"did you mean `{folded[value.casefold()]}`?"
    import difflib  # noqa: PLC0415  (only to suggest a word for a rejected one)

    close = difflib.get_close_matches(value, options, n=1, cutoff=0.7)
    return f"did you mean `{close[0]}`?" if close else None


def _type(error: ValidationError) -> Message:
    expected = _expected(error)
    names = [expected] if isinstance(expected, str) else list(expected)
    wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
    return f"expected {wanted}, found {_describe(_got(error))}", None


def _enum(error: ValidationError) -> Message:
    allowed = list(_expected(error))
    shown = ", ".join(f"`{_show(value)}`" for value in allowed[:_ENUM_SHOWN])
    if len(allowed) > _ENUM_SHOWN:
        shown += f", ... ({len(allowed)} values)"
    return f"`{_show(_got(error))}` is not one of {shown}", _did_you_mean(_got(error), allowed)


def _const(error: ValidationError) -> Message:
    return f"`{_show(_got(error))}` must be `{_show(_expected(error))}`", None


def _required(error: ValidationError) -> Message:
    # jsonschema names the property only inside its message, as a Python repr
    instance = _got(error) if isinstance(_got(error), dict) else {}
    missing = [name for name in _expected(error) if name not in instance]
    name = next((each for each in missing if error.message.startswith(repr(each))), None)
    if name is None:
        name = missing[0] if missing else "?"
    return f"missing required property `{_show(name)}`", None


def _dependent_required(error: ValidationError) -> Message:
    instance = _got(error) if isinstance(_got(error), dict) else {}
    for owner, needed in _expected(error).items():
        for each in needed:
            if owner in instance and each not in instance and error.message.startswith(repr(each)):
                return f"`{_show(owner)}` needs property `{_show(each)}` too", None
    return _fallback(error)


def _format(error: ValidationError) -> Message:
    name = str(_expected(error))
    expected = _FORMAT_EXPECTED.get(name)
    if expected is None:
        return f"`{_show(_got(error))}` is not a valid `{name}`", None
    return (
        f"`{_show(_got(error))}` is not a valid {name.replace('-', ' ')}",
        f"expected {expected}",
    )


def _pattern(error: ValidationError) -> Message:
    return (
        f"`{_show(_got(error))}` does not match the pattern `{_expected(error)}`",
        None,
    )


def _bound(relation: str) -> Callable[[ValidationError], Message]:
    def describe(error: ValidationError) -> Message:
        return f"`{_show(_got(error))}` must be {relation} `{_expected(error)}`", None

    return describe


def _size(unit: str, units: str, least: bool) -> Callable[[ValidationError], Message]:
    def describe(error: ValidationError) -> Message:
        limit = int(_expected(error))
        count = len(_got(error))
        if least and limit == 1 and count == 0:
            return "must not be empty", None
        bound = "at least" if least else "at most"
        return f"expected {bound} {limit} {unit if limit == 1 else units}, found {count}", None

    return describe


def _unique(_error: ValidationError) -> Message:
    return "this item repeats an earlier one; items must be unique", None


def _multiple_of(error: ValidationError) -> Message:
    return (
        f"`{_show(_got(error))}` is not a multiple of `{_show(_expected(error))}`",
        None,
    )


def _contains(_error: ValidationError) -> Message:
    return "no item in the list has the required shape", None


def _one_of(error: ValidationError) -> Message:
    if error.validator == "oneOf" and not error.context:
        # no sub-errors: several alternatives matched
        return "matches more than one of the allowed shapes; it must match exactly one", None
    branches = {sub.relative_schema_path[0] for sub in error.context}
    tags = [sub for sub in error.context if sub.validator == "required" and not sub.relative_path]
    if {sub.relative_schema_path[0] for sub in tags} == branches:
        # every alternative misses the key that tells it apart (`all`, `any`, ...)
        keys: list[str] = []
        for sub in tags:
            keys += [key for key in _expected(sub) if isinstance(key, str) and key not in keys]
        shown = ", ".join(f"`{_show(key)}`" for key in keys[:_ENUM_SHOWN])
        more = f", ... ({len(keys)} in all)" if len(keys) > _ENUM_SHOWN else ""
        instance = _got(error) if isinstance(_got(error), dict) else {}
        hints = (_did_you_mean(key, keys) for key in instance if key not in keys)
        return f"expected a mapping with one of {shown}{more}", next(filter(None, hints), None)
    messages: list[str] = []
    for sub in error.context:
        message = _short(sub)
        if message not in messages:
            messages.append(message)
    if len(messages) == 1:
        return messages[0], None
    return "does not match any of the allowed shapes", "; or ".join(messages[:3])


def _short(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        extras = _additional(_got(error) if isinstance(_got(error), dict) else {}, error.schema)
        return "unexpected property " + ", ".join(f"`{_show(key)}`" for key in extras)
    return _MESSAGES.get(str(error.validator), _fallback)(error)[0]


def _not(error: ValidationError) -> Message:
    return f"{_describe(_got(error))} is not allowed here", None


def _false(error: ValidationError) -> Message:
    return f"{_describe(_got(error))} is not allowed here", None


def _fallback(error: ValidationError) -> Message:
    text = " ".join(error.message.split())
    if len(text) > 120:  # noqa: PLR2004  (one line in a terminal)
        text = text[:117] + "..."
    return text[:1].lower() + text[1:], None


_MESSAGES: dict[str, Callable[[ValidationError], Message]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "required": _required,
    "dependentRequired": _dependent_required,
    "format": _format,
    "pattern": _pattern,
    "minimum": _bound("at least"),
    "maximum": _bound("at most"),
    "exclusiveMinimum": _bound("greater than"),
    "exclusiveMaximum": _bound("less than"),
    "minLength": _size("character", "characters", least=True),
    "maxLength": _size("character", "characters", least=False),
    "minItems": _size("item", "items", least=True),
    "maxItems": _size("item", "items", least=False),
    "minProperties": _size("property", "properties", least=True),
    "maxProperties": _size("property", "properties", least=False),
    "uniqueItems": _unique,
    "multipleOf": _multiple_of,
    "contains": _contains,
    "minContains": _contains,
    "oneOf": _one_of,
    "anyOf": _one_of,
    "not": _not,
    "false": _false,
}
