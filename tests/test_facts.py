"""Tests for case.facts: normalising a case into the facts policies are written against."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.case import facts
from evaluator.case.cases import case_from_data, load_case
from evaluator.case.facts import Fact, build, normalise
from evaluator.errors import CaseError
from evaluator.language.dictionary import case_fact_types, physical_fields
from evaluator.read import schemas
from evaluator.read.source import Document, load
from evaluator.vocab.levels import LEVELS

HERE = Path(__file__).parent
ROOT = HERE.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
FIXTURES = HERE / "fixtures" / "cases"


def minimal(**parts: Any) -> dict[str, Any]:
    """Return a valid case with one fusion line, plus the given top-level parts."""
    data: dict[str, Any] = {
        "case_id": "c1",
        "request": {
            "date": "2025-06-20",
            "lines": [{"id": "l1", "procedure": "lumbar_fusion", "fusion": "L4-L5"}],
        },
    }
    data.update(parts)
    return data


def of_type(found: tuple[Fact, ...], fact_type: str) -> list[dict[str, Any]]:
    return [f.as_dict() for f in found if f.type == fact_type]


def one(found: tuple[Fact, ...], fact_type: str) -> dict[str, Any]:
    (fact,) = of_type(found, fact_type)
    return fact


def case_facts(**parts: Any) -> tuple[Fact, ...]:
    return case_from_data(minimal(**parts), "inline.json").facts


def case_error(data: dict[str, Any]) -> CaseError:
    with pytest.raises(CaseError) as caught:
        case_from_data(data, "inline.json")
    return caught.value


def stated(*pairs: tuple[Any, str]) -> dict[str, Any]:
    return {"statements": [{"value": v, "source": {"document": d}} for v, d in pairs]}


@pytest.fixture(scope="module")
def founding() -> tuple[Fact, ...]:
    return load_case(FOUNDING).facts


# --- the founding case -------------------------------------------------------------------------


def test_founding_case_fact_types(founding):
    counts: dict[str, int] = {}
    for fact in founding:
        counts[fact.type] = counts.get(fact.type, 0) + 1
    assert counts == {
        "case": 1,
        "request": 1,
        "line": 3,
        "decompressed_segment": 5,
        "fused_segment": 7,
        "pelvic_fixation": 1,
        "conservative_care": 1,
        "care_component": 4,
        "diagnosis": 1,
        "physical_therapy": 1,
        "imaging_study": 2,
        "imaging_finding": 5,
        "alignment": 1,
        "symptom": 1,
    }


def test_founding_fused_and_decompressed_segments(founding):
    fused = [(f["line"], f["segment"]) for f in of_type(founding, "fused_segment")]
    assert fused == [
        ("fusion", s) for s in ("T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1", "S1-S2")
    ]
    decompressed = [(f["line"], f["segment"]) for f in of_type(founding, "decompressed_segment")]
    assert decompressed == [
        ("decompression", s) for s in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
    ]
    first = of_type(founding, "fused_segment")[0]
    assert (first["segment_index"], first["upper_index"], first["lower_index"]) == (
        LEVELS.index("T12"),
        LEVELS.index("T12"),
        LEVELS.index("L1"),
    )


def test_founding_lines(founding):
    lines = {f["line"]: f for f in of_type(founding, "line")}
    fusion = lines["fusion"]
    assert (fusion["procedure"], fusion["upper"], fusion["lower"]) == ("lumbar_fusion", "T12", "S2")
    assert fusion["pelvic_fixation"] is True
    assert fusion["upper_index"] == LEVELS.index("T12")
    assert lines["decompression"]["pelvic_fixation"] is False
    si = lines["si-fusion"]
    assert (si["cpt"], si["side"], si["same_day"]) == ("27279", "bilateral", True)
    assert "upper" not in si
    assert one(founding, "pelvic_fixation") == {
        "t": "pelvic_fixation",
        "id": "pelvic_fixation:1",
        "line": "fusion",
        "method": "other",
        "src": 'surgeon_letter "extending fixation to T12 and the pelvis"',
    }


def test_founding_conservative_care_interval(founding):
    care = one(founding, "conservative_care")
    assert care["start"] == "12/2024"
    assert (care["start_months_before_request_lo"], care["start_months_before_request_hi"]) == (
        5,
        6,
    )
    # 2024-12-31 .. 2025-06-20 is 171 days, 2024-12-01 .. 2025-06-20 is 201
    assert (care["start_days_before_request_lo"], care["start_days_before_request_hi"]) == (
        171,
        201,
    )
    assert care["start_hi"] - care["start_lo"] == 30
    assert "end" not in care


def test_founding_physical_therapy_mentioned_only(founding):
    therapy = one(founding, "physical_therapy")
    assert therapy["status"] == "mentioned_only"
    assert not {"duration_lo", "duration_hi", "start", "supervised"} & therapy.keys()


def test_founding_alignment_words(founding):
    alignment = one(founding, "alignment")
    assert alignment["cobb_word"] == "very subtle"
    assert alignment["lumbar_lordosis_word"] == "straightening"
    assert "full_length" not in alignment  # the review does not say
    assert not {"cobb", "sva", "pelvic_incidence", "pelvic_tilt", "standing"} & alignment.keys()


def test_founding_findings_and_diagnosis(founding):
    findings = {f["segment"]: f for f in of_type(founding, "imaging_finding")}
    assert [s for s, f in findings.items() if f["spondylolisthesis"]] == ["L3-L4", "L4-L5", "L5-S1"]
    assert {f["stenosis"] for f in findings.values()} == {"moderate"}
    assert {f["modality"] for f in findings.values()} == {"mri"}
    diagnosis = one(founding, "diagnosis")
    assert (diagnosis["name"], diagnosis["status"]) == ("ankylosing_spondylitis", "stated")
    assert diagnosis["src"].startswith("surgeon_letter ")
    assert not of_type(founding, "nicotine")
    assert not of_type(founding, "diabetes")
    assert not of_type(founding, "conflict")


# --- conventions -------------------------------------------------------------------------------


def test_ids_unique_and_numbered_per_type(founding):
    ids = [f.id for f in founding]
    assert len(ids) == len(set(ids))
    assert [f.id for f in founding if f.type == "line"] == ["line:1", "line:2", "line:3"]
    assert all(re.fullmatch(rf"{f.type}:[1-9]\d*", f.id) for f in founding)


def test_every_field_is_one_the_dictionary_promises(founding, full):
    # The compiler reads fields by dictionary.physical_fields; facts.py must emit no others.
    types = case_fact_types()
    for fact in (*founding, *full):
        promised = {"src"} | {
            name for info in types[fact.type].fields.values() for name in physical_fields(info)
        }
        assert set(fact.fields) <= promised, fact.type
        assert None not in fact.fields.values()


def test_as_dict_and_read_only_fields():
    fact = Fact("case", "case:1", {"case_id": "x"})
    assert fact.as_dict() == {"t": "case", "id": "case:1", "case_id": "x"}
    with pytest.raises(TypeError):
        fact.fields["case_id"] = "y"  # type: ignore[index]
    assert hash(fact) == hash(Fact("case", "case:1", {"case_id": "x"}))


def test_measurements_int_float_and_word():
    found = case_facts(
        imaging=[
            {
                "id": "x",
                "modality": "xray",
                "alignment": {
                    "cobb_deg": 32,
                    "sva_mm": 51.123456,
                    "pelvic_tilt_deg": 0.00001,
                    "pelvic_incidence_deg": "  Markedly   INCREASED ",
                },
            }
        ]
    )
    alignment = one(found, "alignment")
    assert alignment["cobb"] == 32
    assert isinstance(alignment["cobb"], int)
    # kept as stated: rounded to 4 decimals, 7.99999 % became 8.0 and failed "below 8.0 %"
    assert alignment["sva"] == 51.123456
    assert alignment["pelvic_tilt"] == 0.0
    assert "e" not in repr(alignment["pelvic_tilt"])
    assert alignment["pelvic_incidence_word"] == "markedly increased"
    assert "pelvic_incidence" not in alignment


def test_named_finding_defaults_to_absent():
    found = case_facts(imaging=[{"id": "m", "modality": "mri", "findings": [{"level": "L4-5"}]}])
    finding = one(found, "imaging_finding")
    assert finding["segment"] == "L4-L5"
    assert finding["stenosis"] == "none"
    assert finding["spondylolisthesis"] is False
    assert finding["neural_compression"] is False
    assert "listhesis" not in finding


def with_case_default(monkeypatch, definition: str, prop: str, default: str) -> None:
    """Make the case schema give `prop` of `definition` the default `default` (the caches of
    what is read from it are cleared by the caller, before and after)."""
    edited = copy.deepcopy(schemas.load_schema("case"))
    edited["$defs"][definition]["properties"][prop]["default"] = default
    real = schemas.load_schema
    monkeypatch.setattr(
        schemas, "load_schema", lambda name: edited if name == "case" else real(name)
    )


def test_finding_defaults_are_read_from_the_schema(monkeypatch):
    with_case_default(monkeypatch, "finding", "stenosis", "mild")
    facts.case_defaults.cache_clear()
    facts._mapping.cache_clear()  # each mapping's defaults, read from the schema once
    try:
        doc = Document(
            minimal(imaging=[{"id": "m", "modality": "mri", "findings": [{"level": "L4-L5"}]}]),
            "x",
            {},
        )
        assert one(normalise(doc), "imaging_finding")["stenosis"] == "mild"
    finally:
        facts.case_defaults.cache_clear()
        facts._mapping.cache_clear()


def test_coded_section_defaults_are_read_from_the_schema(monkeypatch):
    # A coded section's defaults are read once per schema (`_walks`), not per item: still the
    # schema's, whatever it says (a diagnosis named without a status counts as stated).
    assert one(case_facts(diagnoses=[{"name": "other"}]), "diagnosis")["status"] == "stated"
    with_case_default(monkeypatch, "diagnosis", "status", "confirmed")
    facts.case_defaults.cache_clear()
    facts._walks.cache_clear()
    try:
        found = normalise(Document(minimal(diagnoses=[{"name": "other"}]), "x", {}))
        assert one(found, "diagnosis")["status"] == "confirmed"
    finally:
        facts.case_defaults.cache_clear()
        facts._walks.cache_clear()


def test_dates_exact_and_month():
    found = case_facts(
        conservative_care={"start": "2025-03-20", "end": "2025-06"},
    )
    care = one(found, "conservative_care")
    assert care["start_lo"] == care["start_hi"]
    assert (care["start_days_before_request_lo"], care["start_days_before_request_hi"]) == (92, 92)
    assert (care["start_months_before_request_lo"], care["start_months_before_request_hi"]) == (
        3,
        3,
    )
    assert care["end"] == "2025-06"
    assert (care["end_months_before_request_lo"], care["end_months_before_request_hi"]) == (-1, 0)


@pytest.mark.parametrize(
    ("therapy", "expected"),
    [
        ({"duration": "5 weeks 6 days"}, (41, 41)),
        ({"duration": {"weeks": 6}}, (42, 42)),
        # an explicit duration beats what the (imprecise) dates would give
        ({"duration": "6 weeks", "start": "2025-01", "end": "2025-03"}, (42, 42)),
        ({"start": "2025-01-06", "end": "2025-02-17"}, (42, 42)),
        ({"start": "2025-01", "end": "2025-02-17"}, (17, 47)),
        # both in January: from 0 days (the same day) to 30; never a negative length
        ({"start": "2025-01", "end": "2025-01"}, (0, 30)),
        ({"start": "2025-01"}, None),
    ],
    ids=[
        "words",
        "mapping",
        "duration-beats-dates",
        "exact-dates",
        "month-date",
        "same-month",
        "start-only",
    ],
)
def test_physical_therapy_duration(therapy, expected):
    found = case_facts(conservative_care={"physical_therapy": {"status": "completed", **therapy}})
    fact = one(found, "physical_therapy")
    got = (fact["duration_lo"], fact["duration_hi"]) if "duration_lo" in fact else None
    assert got == expected
    assert "duration" not in fact


# --- statements --------------------------------------------------------------------------------


def test_statements_that_agree_give_the_value():
    found = case_facts(
        nicotine={"status": stated(("never", "clinic_note"), ("never", "lab_result"))},
        diabetes={"hba1c_pct": stated((6.5, "lab_result"), (6.50, "clinic_note"))},
    )
    assert one(found, "nicotine")["status"] == "never"
    assert one(found, "diabetes")["hba1c"] == 6.5
    assert not of_type(found, "conflict")


def test_statements_that_disagree_leave_the_field_absent_with_a_conflict():
    data = minimal(
        nicotine={
            "status": stated(("never", "clinic_note"), ("current", "lab_result")),
            "cotinine_ng_ml": 2,
        }
    )
    case = case_from_data(data, "inline.json")
    nicotine = one(case.facts, "nicotine")
    assert "status" not in nicotine
    assert nicotine["cotinine"] == 2
    assert one(case.facts, "conflict") == {
        "t": "conflict",
        "id": "conflict:1",
        "fact": "nicotine",
        "ref": nicotine["id"],
        "field": "status",
        "values": "never (clinic_note), current (lab_result)",
        "reason": "sources_disagree",
    }
    (conflict,) = case.conflicts
    assert (conflict.fact, conflict.field, conflict.pointer) == (
        "nicotine",
        "status",
        "/nicotine/status",
    )
    assert conflict.values == (("never", "clinic_note"), ("current", "lab_result"))


def test_primary_record_outranks_summary():
    found = case_facts(
        nicotine={"status": stated(("never", "surgeon_letter"), ("current", "lab_result"))},
        diagnoses=[
            {
                "name": "ankylosing_spondylitis",
                "status": stated(("stated", "surgeon_letter"), ("confirmed", "clinic_note")),
            }
        ],
        conservative_care={
            "physical_therapy": {
                "status": stated(("completed", "request_form"), ("mentioned_only", "therapy_note"))
            }
        },
    )
    assert one(found, "nicotine")["status"] == "current"
    assert one(found, "diagnosis")["status"] == "confirmed"
    assert one(found, "physical_therapy")["status"] == "mentioned_only"
    assert not of_type(found, "conflict")


def test_summaries_alone_that_disagree_conflict():
    found = case_facts(
        diabetes={"diabetic": stated((True, "surgeon_letter"), (False, "request_form"))},
        diagnoses=[
            {"name": "scoliosis", "status": "confirmed"},
            {
                "name": "ankylosing_spondylitis",
                "status": stated(("stated", "other"), ("ruled_out", "surgeon_letter")),
            },
        ],
    )
    assert "diabetic" not in one(found, "diabetes")
    conflicts = {(c["fact"], c["ref"], c["values"]) for c in of_type(found, "conflict")}
    assert conflicts == {
        ("diabetes", "diabetes:1", "true (surgeon_letter), false (request_form)"),
        ("diagnosis", "diagnosis:2", "stated (other), ruled_out (surgeon_letter)"),
    }


def test_primary_documents_come_from_the_schema():
    document = schemas.load_schema("case")["$defs"]["document"]
    assert facts.primary_documents() == frozenset(document["x-primary-documents"])
    assert facts.primary_documents() < set(document["enum"])
    assert "surgeon_letter" not in facts.primary_documents()


# --- errors the schema cannot catch ------------------------------------------------------------


def test_unknown_level_is_located():
    with pytest.raises(CaseError) as caught:
        load_case(FIXTURES / "unknown-level.json")
    problems = {p.location.pointer: p for p in caught.value.problems}
    assert set(problems) == {"/imaging/0/findings/2/level", "/request/lines/0/fusion"}
    finding = problems["/imaging/0/findings/2/level"]
    assert finding.code == "unknown_level"
    assert finding.message.startswith('unknown spinal level "L6"')
    assert finding.location.file == str(FIXTURES / "unknown-level.json")
    assert finding.location.line == 18
    assert problems["/request/lines/0/fusion"].location.line == 7


@pytest.mark.parametrize(
    ("line", "finding", "pointer"),
    [
        ({"fusion": "S1-L4"}, "L4-L5", "/request/lines/0/fusion"),
        ({"decompression": ["L2-L3", "L5-L4"]}, "L4-L5", "/request/lines/0/decompression/1"),
        ({}, "L3-L5", "/imaging/0/findings/0/level"),
        ({}, "L4-L4", "/imaging/0/findings/0/level"),
    ],
    ids=["range-reversed", "range-in-list", "segment-not-adjacent", "segment-same-level"],
)
def test_bad_range(line, finding, pointer):
    data = minimal(imaging=[{"id": "m", "modality": "mri", "findings": [{"level": finding}]}])
    fusion = {"id": "l1", "procedure": "lumbar_fusion", "fusion": "L4-L5"}
    data["request"]["lines"][0] = {**fusion, **line}
    error = case_error(data)
    assert [(p.code, p.location.pointer) for p in error.problems] == [("bad_range", pointer)]


def test_cached_conversions_refuse_a_bad_text_every_time():
    # Ranges, dates and the request date convert through caches keyed by their text: a text that
    # failed once fails again, located in each case, and a good case after it is unaffected.
    for _ in range(3):
        data = minimal(conservative_care={"start": "2025-02-30"})
        data["request"]["lines"][0]["fusion"] = "S1-L4"
        with pytest.raises(CaseError) as caught:
            build(Document(data, "inline.json", {}))
        assert [(p.code, p.location.pointer) for p in caught.value.problems] == [
            ("bad_range", "/request/lines/0/fusion"),
            ("bad_date", "/conservative_care/start"),
        ]
    line = one(case_facts(conservative_care={"start": "2025-02-28"}), "line")
    assert (line["upper"], line["lower"]) == ("L4", "L5")


def test_a_cached_date_is_judged_against_each_case_s_own_request_date():
    # Converted dates are cached by their text and the request (and service) date's text: a
    # date converted in time for one case is still after the request of another, and fails
    # closed there (conflict, nothing of it kept), in either order.
    def converted(request: str, service: str | None = None) -> tuple[Any, tuple[Any, ...]]:
        data = minimal(conservative_care={"start": "2025-07-01"})
        data["request"]["date"] = request
        if service is not None:
            data["request"]["service_date"] = service
        case = case_from_data(data, "inline.json")
        return one(case.facts, "conservative_care"), case.conflicts

    for request in ("2025-08-01", "2025-06-20", "2025-08-01", "2025-06-20"):
        care, conflicts = converted(request)
        if request == "2025-06-20":
            assert care == {"t": "conservative_care", "id": "conservative_care:1"}
            assert [(c.field, c.reason) for c in conflicts] == [("start", "after_request")]
        else:
            assert care["start_days_before_request_lo"] == 31
            assert conflicts == ()
    care, conflicts = converted("2025-08-01", "2025-08-11")
    assert (care["start_days_before_request_lo"], care["start_days_before_service_lo"]) == (31, 41)
    care, conflicts = converted("2025-08-01")
    assert "start_days_before_service_lo" not in care


def test_a_cached_range_cannot_be_changed_through_a_case():
    first = case_facts()
    assert [f.fields["segment"] for f in first if f.type == "fused_segment"] == ["L4-L5"]
    data = minimal()
    data["request"]["lines"][0]["fusion"] = "L4-L5"
    again = case_from_data(data, "inline.json").facts
    assert [f.as_dict() for f in again] == [f.as_dict() for f in first]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_a_fact_the_builder_makes_is_the_fact_built_from_its_fields(path: Path) -> None:
    """The builder sets a fact's attributes in its dict, handing it its fields without a
    copy (`_Builder.emit`): each fact is the one the constructor makes of them, read-only."""
    for made in load_case(path).facts:
        fields = dict(made.fields)
        built = Fact(made.type, made.id, fields)
        assert list(vars(made)) == list(vars(built))  # every attribute, in the same order
        assert made == built
        assert hash(made) == hash(built)
        assert repr(made) == repr(built)
        assert made.as_dict() == built.as_dict() == {"t": made.type, "id": made.id, **fields}
        assert made.as_dict() is not made.as_dict()  # a copy each time
        assert type(made.fields) is MappingProxyType
        with pytest.raises(TypeError):
            made.fields["id"] = "x"  # type: ignore[index]
        with pytest.raises(AttributeError):
            made.id = "other:2"  # type: ignore[misc]


def test_end_before_start():
    error = case_error(minimal(conservative_care={"start": "2025-03", "end": "2025-01-15"}))
    (problem,) = error.problems
    assert (problem.code, problem.location.pointer) == ("bad_date", "/conservative_care/end")
    assert problem.message == 'end "2025-01-15" is before start "2025-03"'


def test_unusable_duration():
    error = case_error(
        minimal(
            conservative_care={"physical_therapy": {"status": "completed", "duration": "2 months"}}
        )
    )
    assert [(p.code, p.location.pointer) for p in error.problems] == [
        ("bad_date", "/conservative_care/physical_therapy/duration")
    ]


def test_impossible_date_in_an_unvalidated_document():
    # The schema's partial-date format rejects it first (test_cases); normalising on its own
    # still refuses it rather than inventing a date.
    document = load(FIXTURES / "impossible-date.yaml")
    with pytest.raises(CaseError) as caught:
        build(document)
    (problem,) = caught.value.problems
    assert (problem.code, problem.location.pointer) == ("bad_date", "/conservative_care/start")
    assert problem.message == 'impossible date "2025-02-30"'
    assert problem.location.line == 10


def test_duplicate_ids():
    data = minimal(imaging=[{"id": "m", "modality": "mri"}, {"id": "m", "modality": "ct"}])
    data["request"]["lines"].append({"id": "l1", "procedure": "other"})
    error = case_error(data)
    assert [(p.code, p.location.pointer) for p in error.problems] == [
        ("duplicate_id", "/request/lines/1/id"),
        ("duplicate_id", "/imaging/1/id"),
    ]


def _lines(*lines: dict[str, Any]) -> dict[str, Any]:
    data = minimal()
    data["request"]["lines"] = [{"id": f"l{i}", **line} for i, line in enumerate(lines)]
    return data


FUSION, DECOMPRESSION = "lumbar_fusion", "lumbar_decompression"
SI, OTHER = "si_joint_fusion", "other"


@pytest.mark.parametrize(
    ("lines", "pointer"),
    [
        # a decompression the fusion line names, repeated by a second fusion line's
        (
            [
                {"procedure": FUSION, "fusion": "L4-L5", "decompression": "L3-L5"},
                {"procedure": FUSION, "fusion": "L2-L3", "decompression": "L2-L4"},
            ],
            "/request/lines/1/decompression",
        ),
        # a list of ranges reaching an earlier line's segment
        (
            [
                {"procedure": DECOMPRESSION, "decompression": "L4-L5"},
                {"procedure": DECOMPRESSION, "decompression": ["L1-L2", "L4-S1"]},
            ],
            "/request/lines/1/decompression",
        ),
        # a motion segment is one thing, whatever side each line names
        (
            [
                {"procedure": DECOMPRESSION, "decompression": "L4-L5", "side": "left"},
                {"procedure": DECOMPRESSION, "decompression": "L4-L5"},
            ],
            "/request/lines/1/decompression",
        ),
        (
            [
                {"procedure": FUSION, "fusion": "L4-L5", "side": "left"},
                {"procedure": FUSION, "fusion": "L4-L5", "side": "right"},
            ],
            "/request/lines/1/fusion",
        ),
        (
            [{"procedure": SI, "side": "bilateral"}, {"procedure": SI, "side": "left"}],
            "/request/lines/1/side",
        ),
        ([{"procedure": SI}, {"procedure": SI, "side": "right"}], "/request/lines/1/side"),
        ([{"procedure": SI, "side": "left"}, {"procedure": SI}], "/request/lines/1"),
        # a line of kind `other` is routed, so certified, by its CPT codes
        (
            [
                {"procedure": OTHER, "cpt": ["22612"], "fusion": "L4-L5"},
                {"procedure": OTHER, "cpt": ["22612", "22840"], "fusion": "L4-L5"},
            ],
            "/request/lines/1/fusion",
        ),
    ],
)
def test_a_segment_or_joint_requested_twice_for_one_kind(
    lines: list[dict[str, Any]], pointer: str
) -> None:
    error = case_error(_lines(*lines))
    [(code, at, message)] = [(p.code, p.location.pointer, p.message) for p in error.problems]
    assert (code, at) == ("duplicate_segment", pointer)
    assert 'as line "l0" (/request/lines/0)' in message


def test_each_line_repeating_a_segment_is_reported() -> None:
    # the second line repeats L4-L5 of the first; the third, L5-S1 of the second
    error = case_error(
        _lines(
            {"procedure": FUSION, "fusion": "L4-L5"},
            {"procedure": FUSION, "fusion": "L4-S1"},
            {"procedure": FUSION, "fusion": "L5-S1"},
            {"procedure": FUSION, "fusion": "L5-L4"},
            {"procedure": FUSION, "fusion": "L5-L4"},  # unreadable levels: no segment repeated
        )
    )
    assert [(p.code, p.location.pointer) for p in error.problems] == [
        ("duplicate_segment", "/request/lines/1/fusion"),
        ("duplicate_segment", "/request/lines/2/fusion"),
        ("bad_range", "/request/lines/3/fusion"),
        ("bad_range", "/request/lines/4/fusion"),
    ]
    assert 'line "l1" (/request/lines/1)' in error.problems[1].message


@pytest.mark.parametrize(
    "lines",
    [
        # different kinds on one segment: the founding case and the two-line examples
        [
            {"procedure": DECOMPRESSION, "decompression": "L4-L5"},
            {"procedure": FUSION, "fusion": "L4-L5", "decompression": "L4-L5"},
        ],
        [{"procedure": FUSION, "fusion": "L4-L5"}, {"procedure": FUSION, "fusion": "L5-S1"}],
        [
            {"procedure": FUSION, "fusion": "L4-L5"},
            {"procedure": FUSION, "decompression": "L4-L5", "fusion": "L5-S1"},
        ],
        [{"procedure": SI, "side": "left"}, {"procedure": SI, "side": "right"}],
        [
            {"procedure": OTHER, "cpt": ["63650"], "decompression": "L4-L5"},
            {"procedure": OTHER, "cpt": ["22612"], "decompression": "L4-L5"},
        ],
        [{"procedure": OTHER}, {"procedure": OTHER}],
    ],
)
def test_lines_that_share_no_segment_of_one_kind(lines: list[dict[str, Any]]) -> None:
    found = case_from_data(_lines(*lines), "inline.json").facts
    assert len(of_type(found, "line")) == len(lines)


# --- determinism -------------------------------------------------------------------------------

_levels = st.sampled_from(LEVELS[17:26])  # T11 .. S3
_dates = st.sampled_from(["2024-12", "12/2024", "2025-01-31", "2025-06-20", "2024-02-29"])
_measure = st.one_of(
    st.integers(-50, 200),
    st.floats(-50, 200, allow_nan=False),
    st.sampled_from(["very subtle", "Severe", "mild"]),
)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    a, b = sorted(draw(st.lists(_levels, min_size=2, max_size=2, unique=True)), key=LEVELS.index)
    data = minimal(
        conservative_care={"start": draw(_dates)},
        imaging=[
            {
                "id": "s",
                "modality": "mri",
                "date": draw(_dates),
                "findings": [{"level": "L4-L5", "listhesis_mm": draw(_measure)}],
                "alignment": {"cobb_deg": draw(_measure), "sva_mm": draw(_measure)},
            }
        ],
        nicotine={
            "status": stated(
                *draw(
                    st.lists(
                        st.tuples(
                            st.sampled_from(["never", "current"]),
                            st.sampled_from(["lab_result", "surgeon_letter"]),
                        ),
                        min_size=1,
                        max_size=3,
                    )
                )
            )
        },
    )
    data["request"]["lines"][0]["fusion"] = f"{a}-{b}"
    return data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_normalise_is_deterministic(data):
    first = normalise(Document(data, "a", {}))
    second = normalise(Document(json.loads(json.dumps(data)), "b", {}))
    assert first == second
    assert [json.dumps(f.as_dict()) for f in first] == [json.dumps(f.as_dict()) for f in second]
    for fact in first:
        for value in fact.fields.values():
            assert value is not None
            if isinstance(value, float):  # durable_rules cannot parse exponent notation
                assert "e" not in repr(value)


# --- every fact type -----------------------------------------------------------------------------

SRC = {"document": "clinic_note", "date": "2025-05-02", "quote": 'Said "yes"\n twice'}
FULL = minimal(
    patient={"age": 61, "sex": "female"},
    red_flags=[{"kind": "progressive_motor_deficit", "strength": 3, "progressive": True}],
    symptoms=[{"kind": "radicular_pain", "side": "left", "concordant": True, "onset": "2024-11"}],
    conservative_care={
        "start": "2024-11",
        "end": "2025-05",
        "components": [{"kind": "home_exercise", "start": "2024-12", "source": SRC}],
        "physical_therapy": {"status": "completed", "supervised": True, "visits": 12},
    },
    imaging=[
        {
            "id": "ct",
            "modality": "ct",
            "date": "2025-04-01",
            "standing": True,
            "full_length": True,
            "source": {"document": "radiology_report"},
            "findings": [
                {"level": "L4-L5", "listhesis_grade": 1, "listhesis_mm": 4.5, "source": SRC}
            ],
            "flexion_extension": {
                "segments": [{"level": "L4-L5", "translation_mm": 3.5, "angulation_deg": "mild"}]
            },
            "alignment": {"cobb_deg": 12, "films_taken": True},
        },
        {"id": "xr", "modality": "xray", "flexion_extension": {"performed": False}},
    ],
    diagnoses=[{"name": "lumbar_stenosis", "status": "confirmed"}],
    nicotine={
        "status": stated(("former", "lab_result"), ("never", "clinic_note")),
        "cotinine_ng_ml": 5,
        "quit_date": "2025-01",
    },
    diabetes={"diabetic": True, "hba1c_pct": 7.1, "hba1c_date": "2025-05-01"},
    si_joint={
        "pain": [{"side": "right", "location": "caudal_to_l5", "fortin_positive": True}],
        "provocative_tests": [{"test": "faber", "side": "right", "result": "positive"}],
        "diagnostic_blocks": [
            {
                "side": "right",
                "date": "2025-03",
                "image_guided": True,
                "contrast": True,
                "relief_pct": 80,
            }
        ],
        "imaging_exclusions": [{"condition": "fracture", "status": "excluded"}],
    },
    observations=[
        {
            "code": {"system": "http://loinc.org", "code": "39156-5", "display": "BMI"},
            "value_quantity": {"value": 41.5, "unit": "kg/m2"},
            "effective": "2025-05-20",
        },
        # after the request: kept apart, whole but for its date (late_observation)
        {
            "code": {"system": "http://loinc.org", "code": "4548-4", "display": "HbA1c"},
            "value_quantity": {"value": 9.5, "unit": "%"},
            "effective": "2025-07-01",
        },
    ],
    conditions=[
        {
            "code": {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E66.01"},
            "clinical_status": "active",
            "verification_status": "confirmed",
        }
    ],
    past_procedures=[
        {
            "code": {"system": "http://www.ama-assn.org/go/cpt", "code": "22612"},
            "date": "2019-03",
            "levels": "L4-L5",
        }
    ],
    medications=[
        {
            "code": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197696"},
            "period": {"start": "2025-01-01", "end": "2025-03-01"},
        }
    ],
)
FULL["request"]["lines"][0].update(
    decompression=["L3-L4", "L4-L5"],
    pelvic_fixation={"method": "s2_alar_iliac_screws"},
    resections=[{"level": "L4-L5", "facetectomy_pct": 50, "pars_resection": False}],
)


@pytest.fixture(scope="module")
def full() -> tuple[Fact, ...]:
    return case_from_data(FULL, "full.json").facts


def test_every_fact_type_can_come_from_a_case(full):
    dictionary = schemas.load_schema("facts")
    assert {f.type for f in full} == set(dictionary["$defs"])
    assert set(dictionary["$defs"]) == set(dictionary["properties"]["t"]["enum"])


def test_every_fact_type_carries_its_fields(full):
    expected: dict[str, dict[str, Any]] = {
        "red_flag": {"kind": "progressive_motor_deficit", "strength": 3, "progressive": True},
        "symptom": {"kind": "radicular_pain", "side": "left", "onset": "2024-11"},
        "care_component": {"kind": "home_exercise", "start": "2024-12"},
        "physical_therapy": {"status": "completed", "supervised": True, "visits": 12},
        "planned_resection": {"line": "l1", "segment": "L4-L5", "facetectomy_pct": 50},
        "pelvic_fixation": {"line": "l1", "method": "s2_alar_iliac_screws"},
        "diagnosis": {"name": "lumbar_stenosis", "status": "confirmed"},
        "nicotine": {"cotinine": 5, "quit_date": "2025-01"},
        "diabetes": {"diabetic": True, "hba1c": 7.1, "hba1c_date": "2025-05-01"},
        "si_pain": {"side": "right", "location": "caudal_to_l5", "fortin_positive": True},
        "provocative_test": {"test": "faber", "side": "right", "result": "positive"},
        "diagnostic_block": {"date": "2025-03", "image_guided": True, "relief": 80},
        "imaging_exclusion": {"condition": "fracture", "status": "excluded"},
        "imaging_finding": {"modality": "ct", "listhesis_grade": 1, "listhesis": 4.5},
        "alignment": {"study": "ct", "standing": True, "full_length": True, "cobb": 12},
        "conflict": {"fact": "nicotine", "field": "status", "ref": "nicotine:1"},
        "late_observation": {"code": "LOINC|4548-4", "value_pct": 9.5, "effective": None},
    }
    # the late observation's after_request conflict beside the nicotine's
    late = [f for f in full if f.type != "conflict" or f.fields["fact"] != "observation"]
    for fact_type, fields in expected.items():
        fact = one(tuple(late), fact_type)
        assert {k: fact.get(k) for k in fields} == fields, fact_type
    assert "status" not in one(full, "nicotine")
    assert one(full, "line")["lower"] == "L5"  # fusion L4-L5 and decompression L3-L5
    assert one(full, "line")["upper"] == "L3"
    assert [f["segment"] for f in of_type(full, "decompressed_segment")] == ["L3-L4", "L4-L5"]


def test_flexion_extension_studies(full):
    studies = {f["study"]: f for f in of_type(full, "imaging_study")}
    assert studies["ct"]["flexion_extension"] is True
    assert studies["xr"]["flexion_extension"] is False
    dynamic = {f["study"]: f for f in of_type(full, "dynamic_study")}
    assert dynamic["ct"]["segment"] == "L4-L5"
    assert dynamic["ct"]["translation"] == 3.5
    assert dynamic["ct"]["angulation_word"] == "mild"
    assert "performed" not in dynamic["ct"]
    assert dynamic["xr"] == {
        "t": "dynamic_study",
        "id": "dynamic_study:2",
        "study": "xr",
        "performed": False,
    }


def test_src_is_one_line_and_nearest_source_wins(full):
    finding = one(full, "imaging_finding")
    assert finding["src"] == "clinic_note 2025-05-02 \"Said 'yes' twice\""
    alignment = one(full, "alignment")
    assert alignment["src"] == "radiology_report"  # the study's own source
    assert "src" not in one(full, "red_flag")
    long_quote = {"document": "other", "quote": "x" * 200}
    found = case_facts(diagnoses=[{"name": "other", "source": long_quote}])
    src = one(found, "diagnosis")["src"]
    assert len(src) < 100
    assert src.endswith('..."')


def test_a_value_given_as_statements_names_the_source_that_decided_it() -> None:
    # Issue 8: the therapy note (a primary record) outranks the letter; the evidence names it.
    data = {
        "case_id": "statements",
        "request": {
            "date": "2025-06-20",
            "lines": [{"id": "fusion", "procedure": "lumbar_fusion", "fusion": "L4-L5"}],
        },
        "nicotine": {
            "status": {
                "statements": [
                    {"value": "never", "source": {"document": "surgeon_letter", "quote": "No."}},
                    {
                        "value": "current",
                        "source": {"document": "therapy_note", "quote": "Smokes daily."},
                    },
                ]
            }
        },
    }
    case = case_from_data(data, "statements.json")
    (nicotine,) = [f for f in case.facts if f.type == "nicotine"]
    assert nicotine.fields["status"] == "current"
    assert nicotine.fields["src"] == 'therapy_note "Smokes daily."'
