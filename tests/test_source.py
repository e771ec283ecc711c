"""Tests for reading YAML and JSON with positions in evaluator.read.source."""

from __future__ import annotations

import io
import json
import os
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from evaluator.errors import Location, SourceError
from evaluator.read.source import (
    LIMITS,
    MAX_DEPTH,
    Document,
    _json_suffix,
    load,
    load_bytes,
    loads,
    make_pointer,
    split_pointer,
)

# No example database: property runs must not leave files in the repository.
PROPERTY = settings(database=None, max_examples=200, deadline=None)

NESTED = """\
request:
  date: 2025-03-01
  lines:
    - code: "22612"
      levels: [L4, L5]
    - code: "22840"
      levels:
        - L5
        - S1
patient:
  age: 61
"""


def error_of(text: str, name: str = "case.yaml") -> SourceError:
    with pytest.raises(SourceError) as caught:
        loads(text, name)
    assert len(caught.value.problems) == 1
    return caught.value


# --- positions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pointer", "position"),
    [
        ("", (1, 1)),
        ("/request", (1, 1)),
        ("/request/date", (2, 3)),
        ("/request/lines", (3, 3)),
        ("/request/lines/0", (4, 7)),
        ("/request/lines/0/code", (4, 7)),
        ("/request/lines/0/levels", (5, 7)),
        ("/request/lines/0/levels/1", (5, 20)),
        ("/request/lines/1/levels", (7, 7)),
        ("/request/lines/1/levels/0", (8, 11)),
        ("/request/lines/1/levels/1", (9, 11)),
        ("/patient/age", (11, 3)),
    ],
    ids=lambda value: value if isinstance(value, str) and value else None,
)
def test_yaml_pointer_maps_to_line_and_column(pointer: str, position: tuple[int, int]) -> None:
    document = loads(NESTED, "case.yaml")
    assert document.positions[pointer] == position


def test_json_positions_follow_the_keys() -> None:
    text = '{\n  "a": {"b": [1, {"c": 2}]},\n  "d": []\n}\n'
    document = loads(text, "case.json")
    assert document.data == {"a": {"b": [1, {"c": 2}]}, "d": []}
    assert document.positions["/a"] == (2, 3)
    assert document.positions["/a/b"] == (2, 9)
    assert document.positions["/a/b/0"] == (2, 15)
    assert document.positions["/a/b/1/c"] == (2, 19)
    assert document.positions["/d"] == (3, 3)


def test_json_with_tab_indentation_loads() -> None:
    document = loads('{\n\t"a": [1,\t2]\n}\n', "case.json")
    assert document.data == {"a": [1, 2]}
    assert document.positions["/a"] == (2, 2)


def test_keys_are_escaped_in_pointers() -> None:
    document = loads('"a/b":\n  "c~d": 1\n', "x.yaml")
    assert document.data == {"a/b": {"c~d": 1}}
    assert document.positions["/a~1b/c~0d"] == (2, 3)


def test_location_uses_the_nearest_ancestor_with_a_position() -> None:
    document = loads(NESTED, "case.yaml")
    assert document.location("/request/lines/1/levels/0") == Location(
        "case.yaml", 8, 11, "/request/lines/1/levels/0"
    )
    # a missing property (a `required` error) points into its object
    missing = document.location("/request/lines/1/modifier")
    assert (missing.line, missing.column, missing.pointer) == (6, 7, "/request/lines/1/modifier")
    assert document.location("/nowhere/at/all").line == 1


def test_location_without_positions_keeps_the_pointer() -> None:
    document = Document({"a": 1}, "<data>", {})
    assert document.location("/a") == Location("<data>", None, None, "/a")


def test_merge_keys_fall_back_to_their_mapping() -> None:
    document = loads("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n", "x.yaml")
    assert document.data["use"] == {"y": 2, "x": 1}
    assert document.location("/use/x").line == 2
    assert document.location("/use/y").line == 4


@pytest.mark.parametrize(
    ("parts", "pointer"),
    [([], ""), (["a"], "/a"), (["a/b", 0, "~x"], "/a~1b/0/~0x"), ([""], "/"), (["~1"], "/~01")],
    ids=["root", "key", "escaped", "empty-key", "tilde-one"],
)
def test_pointer_round_trip(parts: list[Any], pointer: str) -> None:
    assert make_pointer(parts) == pointer
    assert split_pointer(pointer) == [str(part) for part in parts]


# --- conversion to plain data ------------------------------------------------------------------


def test_yaml_timestamps_become_iso_strings() -> None:
    text = "day: 2025-01-02\nat: 2025-01-02T10:30:00Z\nlocal: 2025-01-02 10:30:00\n"
    data = loads(text, "x.yaml").data
    assert data == {
        "day": "2025-01-02",
        "at": "2025-01-02T10:30:00+00:00",
        "local": "2025-01-02T10:30:00",
    }
    assert all(type(value) is str for value in data.values())


def test_impossible_date_stays_text_for_the_schema_to_reject() -> None:
    assert loads("day: 2025-02-30\n", "x.yaml").data == {"day": "2025-02-30"}


def test_values_are_plain_python_types() -> None:
    text = "a: &t true\nb: *t\nc: 1.5\nd: !!str 12\ne: |\n  text\nf: null\ng: 0x10\n"
    data = loads(text, "x.yaml").data
    assert data == {"a": True, "b": True, "c": 1.5, "d": "12", "e": "text\n", "f": None, "g": 16}
    assert [type(value) for value in data.values()] == [
        bool,
        bool,
        float,
        str,
        str,
        type(None),
        int,
    ]
    assert type(data) is dict


def test_yaml_1_2_keeps_yes_as_text() -> None:
    assert loads("answer: yes\n", "x.yaml").data == {"answer": "yes"}


def test_tree_keeps_comments_and_is_not_compared() -> None:
    first = loads("a: 1  # why\n", "x.yaml")
    second = loads("a: 1\n", "x.yaml")
    out = io.StringIO()
    YAML(typ="rt").dump(first.tree, out)
    assert "# why" in out.getvalue()
    assert first == second
    assert "tree" not in repr(first)


# --- errors ------------------------------------------------------------------------------------


def test_malformed_yaml_gives_line_and_column() -> None:
    error = error_of("request:\n  date: 2025-01-01\n  code: a: b\n")
    assert error.code == "malformed_yaml"
    assert (error.location.file, error.location.line, error.location.column) == ("case.yaml", 3, 10)
    assert error.problems[0].message == "malformed yaml: mapping values are not allowed here"
    assert "Traceback" not in str(error)
    assert str(error).startswith("case.yaml:3:10: ")


def test_unclosed_bracket_hint_names_where_it_opened() -> None:
    error = error_of("a: [1, 2\nb: 3\n")
    assert error.code == "malformed_yaml"
    assert error.location.line == 2
    assert error.problems[0].hint == "while parsing a flow sequence that starts at line 1, column 4"


def test_tab_indentation_hint() -> None:
    error = error_of("a:\n\t- b\n")
    assert (error.code, error.location.line, error.location.column) == ("malformed_yaml", 2, 1)
    assert error.problems[0].hint == "indent with spaces: YAML does not allow tabs there"


def test_json_syntax_error_position() -> None:
    error = error_of('{\n  "a": 1,\n  "b": 2\n  "c": 3\n}\n', "case.json")
    assert error.code == "malformed_yaml"
    assert error.problems[0].message.startswith("malformed json: ")
    assert (error.location.line, error.location.column) == (4, 6)


def test_json_truncated_file_position() -> None:
    error = error_of('{"a": [1, 2', "case.json")
    assert (error.location.line, error.location.column) == (1, 12)


def test_duplicate_key_names_the_key_and_its_line() -> None:
    error = error_of("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert error.code == "duplicate_key"
    assert error.problems[0].message == "duplicate key `c`"
    assert (error.location.line, error.location.column) == (4, 3)


def test_duplicate_key_in_json() -> None:
    error = error_of('{"a": 1, "a": 2}', "case.json")
    assert error.code == "duplicate_key"
    assert error.location.line == 1


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "null\n"], ids=repr)
def test_empty_document(text: str) -> None:
    error = error_of(text)
    assert error.code == "empty_document"
    assert error.location.file == "case.yaml"


@pytest.mark.parametrize("text", ["", " ", "\n\t \r\n", "\u2003\n", "\ufeff \n"], ids=repr)
def test_an_empty_json_file_is_refused(text: str) -> None:
    """Blank text, by Python's whitespace (an em space too), holds no data."""
    with pytest.raises(SourceError) as caught:
        load_bytes(text.encode("utf-8"), "case.json")
    problem = caught.value.problems[0]
    assert (problem.code, problem.location.file) == ("empty_document", "case.json")


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e400"])
def test_non_finite_numbers_are_rejected(value: str) -> None:
    error = error_of(f"a:\n  b: {value}\n")
    assert error.code == "bad_number"
    assert (error.location.pointer, error.location.line) == ("/a/b", 2)


@pytest.mark.parametrize(
    ("text", "pointer", "line"),
    [
        ("22612: fusion\n", "/22612", 1),
        ("a:\n  true: 1\n", "/a/true", 2),
        ("a:\n  ? [x]\n  : 1\n", "/a", 2),
    ],
    ids=["int", "bool", "complex"],
)
def test_non_string_key(text: str, pointer: str, line: int) -> None:
    error = error_of(text)
    assert error.code == "non_string_key"
    assert (error.location.pointer, error.location.line) == (pointer, line)


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object:os.system {a: 1}\n",
        "a: !custom 1\n",
        "a: !!binary aGk=\n",
        "a: !!set {x}\n",
    ],
    ids=["python-object", "custom", "binary", "set"],
)
def test_unsupported_tags_are_rejected(text: str) -> None:
    assert error_of(text).code == "unsupported_tag"


def test_self_referencing_alias() -> None:
    assert error_of("- &a [*a]\n").code == "recursive_alias"


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert error_of("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)).code == "nesting_too_deep"
    assert error_of("[" * 5000 + "]" * 5000).code == "nesting_too_deep"


def test_alias_bomb_is_capped() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert error_of("\n".join(lines) + "\n").code == "document_too_large"


def test_control_character_position() -> None:
    error = error_of('a: 1\nb: "x\x00"\n')
    assert error.code == "malformed_yaml"
    assert (error.location.line, error.location.column) == (2, 6)


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "case.yaml"
    path.write_text("\ufeffa: [1]\n", encoding="utf-8")
    document = load(path)
    assert document.data == {"a": [1]}
    assert document.path == str(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        load(tmp_path / "nope.yaml")
    assert caught.value.code == "file_not_found"
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such file"


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        load(tmp_path)
    assert caught.value.code == "unreadable_file"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_load_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("a: 1\n")
    path.chmod(0)
    with pytest.raises(SourceError) as caught:
        load(path)
    assert caught.value.code == "unreadable_file"


def test_load_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "case.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(SourceError) as caught:
        load(path)
    assert caught.value.code == "unreadable_file"
    assert caught.value.location.line == 2


# --- property: whatever is dumped loads back, with a position for every value ----------------

KEYS = st.text(alphabet=string.ascii_letters + string.digits + "_-/~ .", min_size=0, max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    # within LIMITS.max_number: larger numbers are refused (tested in tests/hostile/)
    | st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1)
    | st.floats(min_value=-1e15, max_value=1e15, exclude_min=True, exclude_max=True)
    | st.text(
        alphabet=string.printable.replace("\r", "").replace("\x0b", "").replace("\x0c", ""),
        max_size=12,
    )
)
DATA = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
DOCUMENTS = st.dictionaries(KEYS, DATA, min_size=1, max_size=4) | st.lists(
    DATA, min_size=1, max_size=4
)


def pointers(value: Any, prefix: str = "") -> list[str]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += pointers(child, prefix + make_pointer([key]))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += pointers(child, f"{prefix}/{index}")
    return found


def dump_yaml(data: Any) -> str:
    # block style: ruamel's flow-style emitter writes `{a: ?0}`, which its own parser rejects
    out = io.StringIO()
    dumper = YAML(typ="rt")
    dumper.default_flow_style = False
    dumper.dump(data, out)
    return out.getvalue()


@PROPERTY
@given(DOCUMENTS)
def test_yaml_round_trip_has_every_pointer(data: Any) -> None:
    document = loads(dump_yaml(data), "x.yaml")
    assert document.data == data
    assert set(pointers(data)) <= set(document.positions)


@PROPERTY
@given(DOCUMENTS, st.sampled_from([None, 2, "\t"]))
def test_json_round_trip_has_every_pointer(data: Any, indent: int | str | None) -> None:
    text = json.dumps(data, indent=indent)
    document = loads(text, "x.json")
    assert document.data == data
    assert set(pointers(data)) <= set(document.positions)
    lines = text.splitlines()
    for pointer in pointers(data):
        line, column = document.positions[pointer]
        assert 1 <= line <= len(lines)
        assert 1 <= column <= len(lines[line - 1]) + 1


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).parent.parent / "examples" / "cases").glob("*.json")),
    ids=lambda p: p.stem,
)
def test_json_fast_path_matches_the_round_trip_parser(path: Path) -> None:
    # load() reads .json with the standard library and locates lazily; loads() is ruamel's.
    fast = load(path)
    slow = loads(path.read_text(encoding="utf-8"), str(path))
    assert fast.data == slow.data
    assert dict(fast.positions) == dict(slow.positions)
    assert fast.location("/request/date") == slow.location("/request/date")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"a": 1, "a": 2}', "duplicate_key"),
        ('{"a": NaN}', "malformed_yaml"),
        ('{"a": [1, 2', "malformed_yaml"),
    ],
    ids=["duplicate", "nan", "unclosed"],
)
def test_json_the_fast_path_declines_is_reported_by_the_round_trip_parser(
    tmp_path: Path, text: str, code: str
) -> None:
    path = tmp_path / "case.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        load(path)
    assert caught.value.code in (code, "bad_number")
    assert caught.value.location.line == 1


# --- one set of limits for both readers ---------------------------------------------------------


def _over(limit: str) -> Any:
    if limit == "values":
        return {"a": [0] * LIMITS.max_values}
    if limit == "depth":
        nested: Any = 0
        for _ in range(LIMITS.max_depth + 1):
            nested = [nested]
        return {"a": nested}
    if limit == "string":
        return {"a": "x" * (LIMITS.max_string + 1)}
    return {"a": [1, 2, LIMITS.max_number]}


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        ("values", "document_too_large"),
        ("depth", "nesting_too_deep"),
        ("string", "string_too_long"),
        ("number", "number_too_large"),
    ],
)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_json_and_yaml_share_the_limits(tmp_path: Path, limit: str, code: str, suffix: str) -> None:
    # the JSON reader once skipped the caps the YAML reader enforced
    path = tmp_path / f"case{suffix}"
    text = json.dumps(_over(limit))  # JSON is YAML too
    if limit == "values" and suffix == ".yaml":
        # the same count through aliases: parsing 50,000 YAML values takes seconds
        items = ", ".join(["0"] * 1000)
        aliases = ", ".join(["*a"] * (LIMITS.max_values // 1000))
        text = f"a: &a [{items}]\nb: [{aliases}]\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        load(path)
    assert caught.value.code == code


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_just_within_the_limits_reads(tmp_path: Path, suffix: str) -> None:
    data = {"a": "x" * LIMITS.max_string, "b": -(LIMITS.max_number - 1), "c": [0] * 1000}
    path = tmp_path / f"case{suffix}"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert load(path).data == data


@PROPERTY
@given(st.text(alphabet="aJjSsOoNn./İ\u212a", max_size=12))
def test_a_json_file_is_known_by_its_suffix_as_pathlib_gives_it(name: str) -> None:
    # load() reads a name ending in ".json" after anything but a slash without pathlib.
    assert _json_suffix(name) == (Path(name).suffix.lower() == ".json")


@pytest.mark.parametrize(
    ("name", "is_json"),
    [
        ("case.json", True),
        ("CASE.JSON", True),
        ("a/..json", True),
        ("a/.json", False),
        (".json", False),
        ("a.json/", True),
        ("a.json/.", True),
        ("a.yaml", False),
        ("json", False),
        ("", False),
    ],
)
def test_json_suffixes(name: str, is_json: bool) -> None:
    assert _json_suffix(name) is is_json
    assert (Path(name).suffix.lower() == ".json") is is_json
