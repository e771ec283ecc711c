"""FHIR R4 in: the founding case's PAS request Bundle gives the founding case's decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from evaluator.case.from_fhir import _Builder, bundle_to_case, mapping
from evaluator.cli.main import main
from evaluator.read import source

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
BUNDLE = ROOT / "examples" / "fhir" / "t12-s2-fusion-bundle.json"


def _evaluate(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["evaluate", str(path), "--format", "json", *args])
    data = json.loads(result.stdout)
    data.pop("evaluated_at")
    return result.exit_code, data


def test_bundle_gives_the_founding_decision(tmp_path):
    # Two differences of form: the case file writes the month `12/2024`, FHIR's dateTime
    # `2024-12` (the engine reads both as December 2024); and a Claim must state its priority
    # (`normal`, mapped to urgency `standard`), which the founding case, quoting a review that
    # is silent on it, leaves out (no policy reads it). Spelled the FHIR way, the founding case
    # gives exactly the Bundle's decision, down to the hash of its facts.
    founding = json.loads(FOUNDING.read_text().replace('"12/2024"', '"2024-12"'))
    assert "urgency" not in founding["request"]
    founding["request"]["urgency"] = "standard"
    respelled = tmp_path / "t12-s2-fusion.json"
    respelled.write_text(json.dumps(founding))
    bundle_code, from_bundle = _evaluate(BUNDLE)
    case_code, from_case = _evaluate(respelled)
    # Pended overall: the decompression line is pended (symptoms not shown to match imaging).
    assert bundle_code == case_code == 3
    assert from_bundle == from_case
    # And against the file as it is: equal once the spelling is aligned and the hash of the
    # facts (which holds the spelling) is left out.
    _, original = _evaluate(FOUNDING)
    # The findings quote the date as recorded ("Conservative care began 12/2024, ...").
    respell = json.dumps(original).replace('"12/2024"', '"2024-12"')
    aligned = json.loads(respell.replace("began 12/2024,", "began 2024-12,"))
    for decision in (aligned, from_bundle):
        for line in decision["lines"]:
            line.get("provenance", {}).pop("case_sha256", None)
    assert aligned == from_bundle


def test_bundle_with_a_named_policy():
    _, from_bundle = _evaluate(BUNDLE, "--policy", "si-joint-fusion")
    _, from_case = _evaluate(FOUNDING, "--policy", "si-joint-fusion")
    assert from_bundle["determination"] == from_case["determination"]
    assert [c["status"] for c in from_bundle["clauses"]] == [
        c["status"] for c in from_case["clauses"]
    ]


def test_founding_bundle_maps_everything():
    mapped = bundle_to_case(source.load(BUNDLE))
    assert mapped.unmapped == ()
    assert [line["id"] for line in mapped.data["request"]["lines"]] == [
        "decompression",
        "fusion",
        "si-fusion",
    ]


def test_unmapped_parts_are_warned_on_the_command_line(tmp_path):
    bundle = json.loads(BUNDLE.read_text())
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "Observation",
                "id": "local",
                "status": "final",
                # A local code: in no system the case format knows, so not even a coded
                # observation can hold it.
                "code": {"coding": [{"system": "http://example.org/local", "code": "BMI-1"}]},
                "valueQuantity": {"value": 31},
            }
        }
    )
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    result = CliRunner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code == 3
    assert "http://example.org/local|BMI-1 is not mapped" in result.stderr
    assert f"Bundle.entry[{len(bundle['entry']) - 1}].resource" in result.stderr


def test_a_bundle_without_a_claim_is_invalid_input(tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": []}))
    result = CliRunner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code == 2
    assert "exactly one Claim" in result.stderr


def test_every_element_the_mapping_names_is_known():
    builder = _Builder({"resourceType": "Bundle", "type": "collection"})
    rules = [*mapping()["resources"]]
    rules += [r["members"] for r in mapping()["resources"] if "members" in r]
    for rule in rules:
        for element in rule.get("elements", {}):
            builder.element({}, element, "test")  # raises ValueError for an unknown name


def test_unread_elements_of_a_mapped_resource_are_reported(tmp_path):
    bundle = json.loads(BUNDLE.read_text())
    index, symptom = next(
        (i, e["resource"])
        for i, e in enumerate(bundle["entry"])
        if e["resource"]["id"] == "symptom-radicular"
    )
    symptom["note"] = [{"text": "worse at night"}]
    symptom["valueString"] = "severe"
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    mapped = bundle_to_case(source.load(path))
    assert sorted(u.expression for u in mapped.unmapped) == [
        f"Bundle.entry[{index}].resource.note",
        f"Bundle.entry[{index}].resource.valueString",
    ]
