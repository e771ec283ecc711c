"""Tests for evaluator.case.cases and schemas/case.schema.json: loading case files into `Case`."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from evaluator.case.cases import Case, ServiceLine, case_from_data, load_case
from evaluator.errors import CaseError, SchemaError, SourceError
from evaluator.read import schemas
from evaluator.read.source import load

HERE = Path(__file__).parent
ROOT = HERE.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.*"))
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
FIXTURES = HERE / "fixtures" / "cases"

# case.schema.json enum (by JSON pointer) -> the facts.schema.json enum it feeds.
SHARED_ENUMS = {
    "/$defs/document": None,
    "/$defs/service_line/properties/procedure": "/$defs/line/properties/procedure",
    "/$defs/side": "/$defs/line/properties/side",
    "/$defs/service_line/properties/pelvic_fixation/properties/method": (
        "/$defs/pelvic_fixation/properties/method"
    ),
    "/$defs/red_flag/properties/kind": "/$defs/red_flag/properties/kind",
    "/$defs/symptom/properties/kind": "/$defs/symptom/properties/kind",
    "/$defs/care_component/properties/kind": "/$defs/care_component/properties/kind",
    "/$defs/pt_status": "/$defs/physical_therapy/properties/status",
    "/$defs/imaging_study/properties/modality": "/$defs/imaging_study/properties/modality",
    "/$defs/finding/properties/stenosis": "/$defs/imaging_finding/properties/stenosis",
    "/$defs/diagnosis/properties/name": "/$defs/diagnosis/properties/name",
    "/$defs/diagnosis_status": "/$defs/diagnosis/properties/status",
    "/$defs/nicotine_status": "/$defs/nicotine/properties/status",
    "/$defs/request/properties/urgency": "/$defs/request/properties/urgency",
    "/$defs/si_joint/properties/pain/items/properties/location": (
        "/$defs/si_pain/properties/location"
    ),
    "/$defs/si_joint/properties/provocative_tests/items/properties/test": (
        "/$defs/provocative_test/properties/test"
    ),
    "/$defs/si_joint/properties/provocative_tests/items/properties/result": (
        "/$defs/provocative_test/properties/result"
    ),
    "/$defs/si_joint/properties/imaging_exclusions/items/properties/condition": (
        "/$defs/imaging_exclusion/properties/condition"
    ),
    "/$defs/si_joint/properties/imaging_exclusions/items/properties/status": (
        "/$defs/imaging_exclusion/properties/status"
    ),
}


def minimal(**parts: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "case_id": "c1",
        "request": {
            "date": "2025-06-20",
            "lines": [
                {"id": "l1", "procedure": "lumbar_fusion", "cpt": ["22612"], "fusion": "L4-L5"}
            ],
        },
    }
    data.update(parts)
    return data


# --- loading -----------------------------------------------------------------------------------


def test_load_founding_case():
    case = load_case(FOUNDING)
    assert isinstance(case, Case)
    assert case.case_id == "t12-s2-fusion"
    assert case.path == str(FOUNDING)
    assert (case.request_date.lo, case.request_date.hi) == (date(2025, 6, 20), date(2025, 6, 20))
    assert [line.id for line in case.lines] == ["decompression", "fusion", "si-fusion"]
    assert case.line("fusion").procedure == "lumbar_fusion"
    assert case.line("decompression").cpts == ("63047", "63048")
    assert case.line("si-fusion") == ServiceLine(
        "si-fusion", "si_joint_fusion", ("27279",), "Fusion devices for both SI (iliac) joints"
    )
    with pytest.raises(KeyError):
        case.line("nope")
    assert case.conflicts == ()
    assert case.fact_dicts()[0] == {"t": "case", "id": "case:1", "case_id": "t12-s2-fusion"}
    assert len(case.fact_dicts()) == len(case.facts) == 34  # incl. the radicular-pain symptom


def test_case_is_frozen_and_locates_pointers():
    case = load_case(FOUNDING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.case_id = "x"  # type: ignore[misc]
    location = case.location("/imaging/1/alignment/cobb_deg")
    assert (location.file, location.pointer) == (str(FOUNDING), "/imaging/1/alignment/cobb_deg")
    assert location.line is not None
    text = FOUNDING.read_text().splitlines()
    assert '"cobb_deg"' in text[location.line - 1]


def test_inline_case_matches_file_case():
    document = load(FOUNDING)
    inline = case_from_data(document.data, "embedded")
    from_file = load_case(FOUNDING)
    assert inline.facts == from_file.facts
    assert inline.path == "embedded"
    assert inline.location("/case_id").line is None
    assert inline.location("/case_id").pointer == "/case_id"


def test_inline_case_does_not_share_the_callers_data():
    data = minimal()
    case = case_from_data(data, "inline")
    data["request"]["lines"][0]["procedure"] = "other"
    assert case.lines[0].procedure == "lumbar_fusion"


def test_yaml_case(tmp_path):
    path = tmp_path / "case.yaml"
    path.write_text(
        "case_id: y1\n"
        "request:\n"
        "  date: 2025-06-20\n"  # YAML reads this as a date; the case still gets text
        "  lines:\n"
        "    - {id: f, procedure: lumbar_fusion, fusion: L4-5}\n"
        "conservative_care:\n"
        "  start: 2025-01-10\n"
    )
    case = load_case(path)
    assert case.request_date.text == "2025-06-20"
    care = next(f for f in case.facts if f.type == "conservative_care")
    assert care.fields["start"] == "2025-01-10"
    fused = [f.fields["segment"] for f in case.facts if f.type == "fused_segment"]
    assert fused == ["L4-L5"]


# --- errors ------------------------------------------------------------------------------------


def test_missing_file():
    with pytest.raises(SourceError) as caught:
        load_case(FIXTURES / "no-such-case.json")
    assert caught.value.code == "file_not_found"


def test_schema_violations_are_all_reported():
    data = minimal()
    del data["case_id"]
    data["request"]["lines"][0]["cpt"] = ["2261"]
    data["nicotine"] = {"status": "sometimes"}
    with pytest.raises(SchemaError) as caught:
        case_from_data(data, "inline")
    pointers = {p.location.pointer for p in caught.value.problems}
    assert pointers == {"", "/request/lines/0/cpt/0", "/nicotine/status"}


def test_impossible_date_is_a_schema_error():
    with pytest.raises(SchemaError) as caught:
        load_case(FIXTURES / "impossible-date.yaml")
    (problem,) = caught.value.problems
    assert (problem.code, problem.location.pointer) == ("schema_format", "/conservative_care/start")
    assert problem.location.line == 10
    assert "2025-02-30" in problem.message


def test_unknown_level_fixture_is_a_case_error():
    with pytest.raises(CaseError) as caught:
        load_case(FIXTURES / "unknown-level.json")
    assert {p.code for p in caught.value.problems} == {"unknown_level"}


def test_request_date_must_be_exact():
    data = minimal()
    data["request"]["date"] = "2025-06"
    with pytest.raises(SchemaError) as caught:
        case_from_data(data, "inline")
    assert caught.value.location.pointer == "/request/date"


@pytest.mark.parametrize(
    "value",
    [
        42,
        3.5,
        "very subtle",
        "Severe",
        {"statements": [{"value": 3, "source": {"document": "lab_result"}}]},
    ],
    ids=["int", "float", "word", "capitalised-word", "statements"],
)
def test_measurement_forms_accepted(value):
    case_from_data(minimal(nicotine={"cotinine_ng_ml": value}), "inline")


@pytest.mark.parametrize(
    "value",
    ["12 ng/mL", "", True, {"statements": []}, {"statements": [{"value": 3}]}],
    ids=["number-with-unit", "empty", "boolean", "no-statements", "statement-without-source"],
)
def test_measurement_forms_rejected(value):
    with pytest.raises(SchemaError):
        case_from_data(minimal(nicotine={"cotinine_ng_ml": value}), "inline")


# --- the schema itself -------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_validates_and_normalises(path):
    schemas.validate(load(path), "case")
    assert load_case(path).facts


def test_examples_exist():
    assert FOUNDING in EXAMPLES


def _properties(node: Any, pointer: str = ""):
    """Yield (pointer, schema) for every entry of every `properties` in the schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties":
                for name, spec in value.items():
                    yield f"{pointer}/properties/{name}", spec
            yield from _properties(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{pointer}/{i}")


def test_every_property_is_described():
    schema = schemas.load_schema("case")
    undescribed = [p for p, spec in _properties(schema) if "description" not in spec]
    assert undescribed == []
    assert len(list(_properties(schema))) > 100


def test_every_object_is_closed():
    schema = schemas.load_schema("case")

    def objects(node: Any, pointer: str = ""):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield pointer, node
            for key, value in node.items():
                yield from objects(value, f"{pointer}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from objects(value, f"{pointer}/{i}")

    open_objects = [
        p for p, node in objects(schema) if node.get("additionalProperties") is not False
    ]
    assert open_objects == []
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("case_pointer", sorted(SHARED_ENUMS), ids=sorted(SHARED_ENUMS))
def test_enums_match_the_fact_dictionary(case_pointer):
    case_enum = schemas.schema_enum("case", case_pointer)
    facts_pointer = SHARED_ENUMS[case_pointer]
    if facts_pointer is None:  # the document kinds: primary ones must be among them
        primary = schemas.load_schema("case")["$defs"]["document"]["x-primary-documents"]
        assert set(primary) < set(case_enum)
    else:
        assert case_enum == schemas.schema_enum("facts", facts_pointer)


def test_finding_defaults_state_the_absent_convention():
    finding = schemas.load_schema("case")["$defs"]["finding"]["properties"]
    assert finding["stenosis"]["default"] == "none"
    assert finding["spondylolisthesis"]["default"] is False
    assert finding["neural_compression"]["default"] is False
