"""Tests for JSON Schema validation with locations in evaluator.read.schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from evaluator.errors import MAX_PROBLEMS, Problem, SchemaError
from evaluator.read.resources import schemas_dir
from evaluator.read.schemas import (
    SchemaSet,
    format_checker,
    load_schema,
    schema_enum,
    schema_set,
    validate,
    validate_data,
)
from evaluator.read.source import loads

BASE = "https://necessity.dev/schemas/"

# A throwaway schema pair, independent of the product's own schemas: `request` refers to
# `common` by a relative `$ref`, as the product's schemas refer to each other.
COMMON = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": BASE + "common.schema.json",
    "$defs": {
        "level": {"type": "string", "enum": ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]},
    },
}
REQUEST = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": BASE + "request.schema.json",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "date", "lines"],
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
        "date": {"type": "string", "format": "date"},
        "onset": {"type": "string", "format": "partial-date"},
        "age": {"type": "integer", "minimum": 0},
        "lines": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "levels"],
                "properties": {
                    "code": {"type": "string"},
                    "levels": {
                        "type": "array",
                        "uniqueItems": True,
                        "items": {"$ref": "common.schema.json#/$defs/level"},
                    },
                },
            },
        },
        "rule": {"$ref": "#/$defs/rule"},
        "notes": {"type": "array", "items": {"type": "integer"}},
    },
    "$defs": {
        "rule": {
            "oneOf": [
                {"$ref": "#/$defs/all"},
                {"$ref": "#/$defs/any"},
                {"$ref": "#/$defs/fact"},
            ]
        },
        "all": {
            "type": "object",
            "additionalProperties": False,
            "required": ["all"],
            "properties": {"all": {"type": "array", "items": {"$ref": "#/$defs/rule"}}},
        },
        "any": {
            "type": "object",
            "additionalProperties": False,
            "required": ["any"],
            "properties": {"any": {"type": "array", "items": {"$ref": "#/$defs/rule"}}},
        },
        "fact": {
            "type": "object",
            "additionalProperties": False,
            "required": ["fact"],
            "properties": {"fact": {"enum": ["pain", "imaging", "therapy"]}},
        },
    },
}

VALID = """\
id: case-1
date: 2025-03-01
onset: 03/2024
lines:
  - code: "22612"
    levels: [L4, L5]
rule:
  all:
    - fact: pain
    - any: [{fact: imaging}, {fact: therapy}]
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schemas")
    for name, schema in [("common", COMMON), ("request", REQUEST)]:
        (path / f"{name}.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    return path


def problems_of(folder: Path, text: str, name: str = "case.yaml") -> list[Problem]:
    with pytest.raises(SchemaError) as caught:
        validate(loads(text, name), "request", directory=folder)
    return list(caught.value.problems)


def only(folder: Path, text: str) -> Problem:
    problems = problems_of(folder, text)
    assert len(problems) == 1, problems
    return problems[0]


def replace(line: str, new: str) -> str:
    assert line in VALID
    return VALID.replace(line, new)


# --- valid documents ---------------------------------------------------------------------------


def test_valid_yaml_passes(folder: Path) -> None:
    validate(loads(VALID, "case.yaml"), "request", directory=folder)


def test_valid_json_passes_the_same_schema(folder: Path) -> None:
    data = loads(VALID, "case.yaml").data
    validate(loads(json.dumps(data, indent=2), "case.json"), "request", directory=folder)


# --- every violation, located and worded --------------------------------------------------------


def test_every_violation_is_collected_and_sorted_by_line(folder: Path) -> None:
    # in the opposite order to the schema's, so that document order has to be restored
    text = """\
lines:
  - levels: [L4, L6]
    code: 22612
age: -1
onset: 2025-13
date: 2025-02-30
id: Case 1
"""
    problems = problems_of(folder, text)
    summary = [(p.code, p.location.pointer, p.location.line) for p in problems]
    assert summary == [
        ("schema_enum", "/lines/0/levels/1", 2),
        ("schema_type", "/lines/0/code", 3),
        ("schema_minimum", "/age", 4),
        ("schema_format", "/onset", 5),
        ("schema_format", "/date", 6),
        ("schema_pattern", "/id", 7),
    ]
    assert all(p.location.file == "case.yaml" for p in problems)


def test_problem_count_is_capped(folder: Path) -> None:
    notes = ", ".join(["x"] * (MAX_PROBLEMS + 10))
    problems = problems_of(folder, VALID + f"notes: [{notes}]\n")
    assert len(problems) == MAX_PROBLEMS
    assert [p.location.pointer for p in problems[:3]] == ["/notes/0", "/notes/1", "/notes/2"]


def test_enum_message_and_hint(folder: Path) -> None:
    problem = only(folder, replace("[L4, L5]", "[L4, l5]"))
    assert problem.code == "schema_enum"
    assert (
        problem.message == "`l5` is not one of `T12`, `L1`, `L2`, `L3`, `L4`, `L5`, ... (7 values)"
    )
    assert problem.hint == "did you mean `L5`?"
    assert (problem.location.line, problem.location.column) == (6, 18)


def test_required_points_at_the_object(folder: Path) -> None:
    problem = only(folder, replace('  - code: "22612"\n', "  - "))
    assert problem.code == "schema_required"
    assert problem.message == "missing required property `code`"
    assert problem.location.pointer == "/lines/0"
    assert problem.location.line == 5


def test_each_missing_property_is_named(folder: Path) -> None:
    problems = problems_of(folder, "lines: [{code: a, levels: []}]\n")
    assert sorted(p.message for p in problems) == [
        "missing required property `date`",
        "missing required property `id`",
    ]
    assert {p.location.pointer for p in problems} == {""}


def test_unexpected_property_did_you_mean(folder: Path) -> None:
    problem = only(folder, VALID.replace("lines:\n", "lnies: 1\nlines:\n"))
    assert problem.code == "schema_additionalProperties"
    assert problem.message == "unexpected property `lnies`"
    assert problem.hint is None  # `lines` is present, so it is not offered
    problem = only(folder, VALID.replace("onset:", "onste:"))
    assert problem.hint == "did you mean `onset`?"
    # the pointer names the object, the line is the key's own
    assert (problem.location.pointer, problem.location.line) == ("", 3)


def test_unexpected_property_without_a_close_match(folder: Path) -> None:
    problem = only(folder, replace("    levels:", "    zzz: 1\n    levels:"))
    assert problem.message == "unexpected property `zzz`"
    assert problem.hint is None
    assert (problem.location.pointer, problem.location.line) == ("/lines/0", 6)


def test_type_message(folder: Path) -> None:
    problem = only(folder, replace("[L4, L5]", "{a: 1}"))
    assert problem.code == "schema_type"
    assert problem.message == "expected a list, found a mapping"


def test_duplicate_item_points_at_the_repeat(folder: Path) -> None:
    problem = only(folder, replace("[L4, L5]", "[L4, L5, L4]"))
    assert problem.code == "schema_uniqueItems"
    assert problem.location.pointer == "/lines/0/levels/2"


def test_empty_list(folder: Path) -> None:
    problem = only(folder, VALID.split("lines:", maxsplit=1)[0] + "lines: []\n")
    assert (problem.code, problem.message) == ("schema_minItems", "must not be empty")


def test_messages_are_one_line_and_lowercase(folder: Path) -> None:
    text = 'id: "Bad\\nid"\ndate: 1\nlines: [{code: [1, 2, 3], levels: "x"}]\nwhat: 1\n'
    for problem in problems_of(folder, text):
        assert "\n" not in problem.message
        assert problem.message[0] == problem.message[0].lower()


# --- oneOf: the most relevant error, not the whole sub-schema -----------------------------------


def test_one_of_descends_to_the_deep_error(folder: Path) -> None:
    problem = only(folder, replace("fact: therapy", "fact: therapie"))
    assert problem.code == "schema_enum"
    assert problem.location.pointer == "/rule/all/1/any/1/fact"
    assert problem.hint == "did you mean `therapy`?"


def test_one_of_wrong_type_inside(folder: Path) -> None:
    problem = only(folder, VALID.split("rule:", maxsplit=1)[0] + "rule: {all: yes}\n")
    assert (problem.code, problem.location.pointer) == ("schema_type", "/rule/all")
    assert problem.message == "expected a list, found the text `yes`"


def test_one_of_tie_takes_the_closest_alternative(folder: Path) -> None:
    # every alternative fails at the same depth; `fact` fails least (one unexpected key)
    problem = only(folder, replace("fact: pain", "{fact: pain, extra: 1}"))
    assert problem.code == "schema_additionalProperties"
    assert problem.message == "unexpected property `extra`"
    assert problem.location.pointer == "/rule/all/0"


def test_one_of_with_no_tag_key_names_the_choices(folder: Path) -> None:
    problem = only(folder, VALID.split("rule:", maxsplit=1)[0] + "rule: {fcat: pain}\n")
    assert problem.code == "schema_oneOf"
    assert problem.message == "expected a mapping with one of `all`, `any`, `fact`"
    assert problem.hint == "did you mean `fact`?"


def test_one_of_same_failure_everywhere(folder: Path) -> None:
    problem = only(folder, VALID.split("rule:", maxsplit=1)[0] + "rule: 3\n")
    assert problem.message == "expected a mapping, found the number `3`"
    assert "schema" not in problem.message


# --- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2025-03-01", True),
        ("2024-02-29", True),
        ("2025-03", True),
        ("03/2025", True),
        ("3/2025", True),
        ("12/2025", True),
        ("2025-02-30", False),
        ("2025-02-29", False),
        ("2025-13", False),
        ("2025-00", False),
        ("13/2025", False),
        ("0/2025", False),
        ("2025", False),
        ("2025/03", False),
        ("03-2025", False),
        ("2025-3", False),
        ("20250301", False),
        ("0000-01", False),
        ("2025-03-01T00:00:00", False),
        ("٢٠٢٥-03", False),
    ],
)
def test_partial_date_format(value: str, valid: bool) -> None:
    assert format_checker().conforms(value, "partial-date") is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("2025-03-01", True), ("2025-02-30", False), ("20250301", False), ("2025-03", False)],
)
def test_date_format(value: str, valid: bool) -> None:
    assert format_checker().conforms(value, "date") is valid


def test_format_problem_explains_the_shape(folder: Path) -> None:
    problem = only(folder, replace("onset: 03/2024", "onset: 2024-13"))
    assert problem.code == "schema_format"
    assert problem.message == "`2024-13` is not a valid partial date"
    assert problem.hint == (
        "expected a date as YYYY-MM-DD, or a month as YYYY-MM or MM/YYYY, in the years 1900 to 2199"
    )


def test_yaml_impossible_date_reaches_the_format_check(folder: Path) -> None:
    problem = only(folder, replace("date: 2025-03-01", "date: 2025-02-30"))
    assert (problem.code, problem.location.line) == ("schema_format", 2)


# --- without positions, and helpers ------------------------------------------------------------


def test_validate_data_locates_by_pointer(folder: Path) -> None:
    data: dict[str, Any] = {"id": "a", "date": "2025-01-01", "lines": [{"code": 1, "levels": []}]}
    with pytest.raises(SchemaError) as caught:
        validate_data(data, "request", "case.json", directory=folder)
    (problem,) = caught.value.problems
    assert (problem.location.file, problem.location.line, problem.location.pointer) == (
        "case.json",
        None,
        "/lines/0/code",
    )


def test_schema_enum_follows_the_pointer_and_a_ref(folder: Path) -> None:
    levels = ["T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    assert schema_enum("common", "/$defs/level", directory=folder) == levels
    assert schema_enum("common", "/$defs/level/enum", directory=folder) == levels
    assert (
        schema_enum("request", "/properties/lines/items/properties/levels/items", directory=folder)
        == levels
    )
    assert schema_enum("request", "/$defs/fact/properties/fact", directory=folder) == [
        "pain",
        "imaging",
        "therapy",
    ]


@pytest.mark.parametrize("pointer", ["/nope", "/properties/id", "/required/9"])
def test_schema_enum_rejects_what_is_not_an_enum(folder: Path, pointer: str) -> None:
    with pytest.raises(LookupError):
        schema_enum("request", pointer, directory=folder)


def test_load_schema_is_cached_and_named(folder: Path) -> None:
    assert load_schema("request", directory=folder) is load_schema("request", directory=folder)
    assert load_schema("request", directory=folder)["$id"] == BASE + "request.schema.json"
    assert schema_set(folder) is schema_set(folder)
    with pytest.raises(LookupError, match="no schema 'nope'"):
        load_schema("nope", directory=folder)


def test_an_invalid_schema_is_a_defect(tmp_path: Path) -> None:
    (tmp_path / "bad.schema.json").write_text('{"type": 12}', encoding="utf-8")
    with pytest.raises(jsonschema.exceptions.SchemaError):
        SchemaSet(tmp_path)


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


@pytest.mark.parametrize("path", sorted(schemas_dir().glob("*.schema.json")), ids=lambda p: p.name)
def test_a_schema_that_refers_to_another_file_resolves_it_offline(path: Path) -> None:
    # With an https $id, a relative $ref resolves to an https address and check-jsonschema or an
    # editor goes to the network; without one, it resolves beside the file (make schema-check).
    schema = json.loads(path.read_text(encoding="utf-8"))
    external = [ref for ref in _refs(schema) if not ref.startswith("#")]
    if external:
        assert "$id" not in schema, f"{path.name} refers to {external} against its $id"
        assert all((path.parent / ref.split("#")[0]).is_file() for ref in external)
