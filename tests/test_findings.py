"""Findings (issue 12): one sentence per failed clause about this patient, from the policy's
`finding` template filled with what the engine matched; checked on every example's notice."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.authoring.lint import lint_paths
from evaluator.case.cases import load_case
from evaluator.decide import findings
from evaluator.decide.decision import ClauseResult
from evaluator.language.conditions import Threshold
from evaluator.language.describe import value_text, words
from evaluator.language.dictionary import with_derived
from evaluator.language.model import DerivedType, Status
from evaluator.language.policies import Library
from evaluator.render import notice
from tests.test_lint import write_policy
from tests.test_notice import NOTATION

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
UNSTABLE = DerivedType("unstable_segment", "", {"segment": "segment"})
TYPES = with_derived({"unstable_segment": UNSTABLE})
FAILED = (Status.NOT_MET, Status.NOT_DOCUMENTED)


def fill(
    text: str, read: Sequence[Mapping[str, Any]], every: Sequence[Mapping[str, Any]] | None = None
) -> str:
    return findings.fill(text, read, read if every is None else every, TYPES)


# ---- the template language ------------------------------------------------------------------


def test_segments_read_as_ranges_of_the_matched_facts_only() -> None:
    read = [
        {"t": "fused_segment", "id": f"f{i}", "segment": s}
        for i, s in enumerate(["T12-L1", "L1-L2", "L2-L3", "S1-S2"])
    ]
    every = [*read, {"t": "fused_segment", "id": "f9", "segment": "L3-L4"}]
    assert fill("At {fused_segment.segment}.", read, every) == "At T12-L3 and S1-S2."


def test_a_type_the_evidence_did_not_read_falls_back_to_every_fact_of_it() -> None:
    read = [{"t": "fused_segment", "id": "f1", "segment": "T12-L1"}]
    every = [
        *read,
        {"t": "unstable_segment", "id": "u1", "segment": "L3-L4"},
        {"t": "unstable_segment", "id": "u2", "segment": "L4-L5"},
        {"t": "request", "id": "r", "date": "2025-06-20"},
    ]
    text = "{fused_segment.segment}; shown at {unstable_segment.segment} by {request.date}."
    assert fill(text, read, every) == "T12-L1; shown at L3-L5 by 2025-06-20."


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ((41, 41), "5 weeks and 6 days"),
        ((42, 42), "6 weeks"),
        ((7, 7), "1 week"),
        ((6, 6), "6 days"),
        ((28, 58), "between 4 weeks and 8 weeks and 2 days"),
    ],
)
def test_durations_in_weeks_and_days(days: tuple[int, int], expected: str) -> None:
    fact = {"t": "physical_therapy", "id": "p", "duration_lo": days[0], "duration_hi": days[1]}
    assert fill("{physical_therapy.duration}", [fact]) == expected


def test_dates_as_recorded_and_their_distance_to_the_request() -> None:
    fact = {
        "t": "conservative_care",
        "id": "c",
        "start": "12/2024",
        "start_days_before_request_lo": 171,
        "start_days_before_request_hi": 201,
        "start_months_before_request_lo": 5,
        "start_months_before_request_hi": 6,
    }
    text = "Began {conservative_care.start}, {conservative_care.start.before_request} before."
    assert fill(text, [fact]) == "Began 12/2024, 5 to 6 months (171 to 201 days) before."
    near: dict[str, Any] = {"t": "conservative_care", "id": "c", "start": "2025-06-01"}
    near |= {
        f"start_{u}_before_request_{b}": n
        for u, n in (("days", 19), ("months", 0))
        for b in ("lo", "hi")
    }
    assert fill("{conservative_care.start.before_request}", [near]) == "19 days"


def test_measurements_carry_their_unit_and_words_stay_quoted() -> None:
    facts: list[dict[str, Any]] = [
        {"t": "dynamic_study", "id": "d", "translation": 2.9, "angulation": 6},
        {"t": "alignment", "id": "a", "cobb_word": "very subtle"},
        {"t": "nicotine", "id": "n", "status": "current", "cotinine": 180},
    ]
    text = (
        "{dynamic_study.translation}, {dynamic_study.angulation}; {alignment.cobb}; "
        "{nicotine.status} {nicotine.cotinine}"
    )
    assert fill(text, facts) == '2.9 mm, 6 degrees; "very subtle"; current 180 ng/mL'


def test_filters_counts_and_fallbacks() -> None:
    tests: list[dict[str, Any]] = [
        {"t": "provocative_test", "id": "1", "test": "distraction", "result": "positive"},
        {"t": "provocative_test", "id": "2", "test": "thigh_thrust", "result": "positive"},
        {"t": "provocative_test", "id": "3", "test": "faber", "result": "negative"},
        {"t": "physical_therapy", "id": "p", "supervised": False, "status": "completed"},
    ]
    text = (
        "{#provocative_test[result=positive]} positive ({provocative_test[result=positive].test})"
        ", {#provocative_test[result=not_performed]} not done "
        "({provocative_test[result=not_performed].test|none}); "
        "{physical_therapy[supervised=false].status}; {nicotine.status}"
    )
    assert fill(text, tests) == (
        "2 positive (distraction and thigh thrust), 0 not done (none); completed; not recorded"
    )


def test_documents_grouped_by_kind_with_their_dates() -> None:
    facts = [
        {"t": "request", "id": "r", "src": 'request_form 2025-06-20 "x"'},
        {"t": "symptom", "id": "s", "src": 'clinic_note 2025-05-05 "y"'},
        {"t": "symptom", "id": "s2", "src": 'clinic_note 2025-01-15 "z"'},
        {"t": "care_component", "id": "c", "src": 'clinic_note "undated"'},
        {"t": "alignment", "id": "a", "src": 'radiology_report "w"'},
    ]
    assert fill("In {documents}.", []) == "In not recorded."
    assert fill("In {documents}.", [], facts) == (
        "In the request form of 2025-06-20, the clinic notes of 2025-01-15 and 2025-05-05 and "
        "the radiology report."
    )


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{physical_therapy}", "names no field"),
        ("{#physical_therapy.status}", "takes no field"),
        ("{physical_therapy.start.after}", "is not a view"),
        ("{physical_therapy.duration.before_request}", "needs a date"),
        ("{physical_therapie.start}", "unknown fact type"),
        ("{physical_therapy[status=finished].start}", "is not a value"),
        ("{physical_therapy[kind=x].start}", "has no field `kind`"),
        ("{physical therapy}", "is not `{type.field}`"),
    ],
)
def test_problems(template: str, problem: str) -> None:
    (found,) = findings.problems(f"A {template}.", TYPES)
    assert problem in found.text
    assert found.placeholder == template


def test_lint_reports_an_unknown_finding_placeholder_with_a_hint(tmp_path: Path) -> None:
    clause = """
        requires: {fact: diabetes, field: hba1c, less_than: {value: 8, unit: "%"}}
        finding: {not_met: "HbA1c {diabetes.hba1} on {diabetes.hba1c_date|no date}."}
    """
    (hit,) = lint_paths([write_policy(tmp_path, clause)]).findings
    assert hit.code == "unknown_placeholder"
    assert hit.location.pointer == "/sections/0/clauses/0/finding/not_met"
    assert "did you mean `hba1c`?" in (hit.problem.hint or "")


# ---- every example's notice -----------------------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$|^\d{2}/\d{4}$")
_LEVEL = re.compile(r"^[CTLS]\d{1,2}$")


def _data(facts: Iterable[Mapping[str, Any]]) -> set[str]:
    """Return the patient data a sentence can name: dates, levels, numbers, sides and coded
    values in words, read from the facts (not the document quotes)."""
    out: set[str] = set()
    for fact in facts:
        for name, value in fact.items():
            if name in ("t", "id", "key", "src") or name.endswith(("_lo", "_hi", "_index")):
                continue
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                out.add(value_text(value))
            elif _DATE.match(str(value)) or _LEVEL.match(str(value)):
                out.add(str(value))
            elif re.fullmatch(r"[CTLS]\d{1,2}-[CTLS]\d{1,2}", str(value)):
                out.update(str(value).split("-"))  # segments read as ranges of levels
            else:
                out.add(words(str(value)))
    return out


def _mentions(sentence: str, data: set[str]) -> list[str]:
    return [d for d in data if re.search(rf"(?<![A-Za-z0-9.]){re.escape(d)}(?![0-9])", sentence)]


def _failed(review: api.CaseReview) -> Iterable[tuple[str, ClauseResult]]:
    seen = set()
    for line in review.lines:
        if line.decision is None or line.decision.policy_id in seen:
            continue
        seen.add(line.decision.policy_id)
        for clause in line.decision.by_status(*FAILED):
            yield line.decision.policy_id, clause


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_failed_clause_has_a_finding_about_this_patient(path: Path) -> None:
    case = load_case(path)
    review = api.review_case(case, Library())
    text = " ".join(notice.notice_text(notice.review_notice(review)).split())
    in_case = _data(f.as_dict() for f in case.facts)
    documents = {words(str(f.fields["src"]).split(" ")[0]) for f in case.facts if "src" in f.fields}
    by_id = {f.id: f.as_dict() for f in case.facts}
    for policy, clause in _failed(review):
        where = f"{path.stem} {policy} {clause.id} ({clause.status.value})"
        assert clause.finding, f"{where}: the policy words no finding for this status"
        assert f"Finding: {clause.finding}" in text, f"{where}: the notice does not show it"
        for pattern in NOTATION:
            assert not pattern.search(clause.finding), f"{where}: notation in {clause.finding!r}"
        # The facts the clause rests on: those its evidence matched and those it was bound to.
        rests_on = [by_id[f.id] for e in clause.evidence for f in e.facts if f.id in by_id]
        rests_on += [by_id[k] for e in clause.evidence for k in e.bound if k in by_id]
        wanted = _data(rests_on) or in_case
        named = _mentions(clause.finding, wanted)
        if not named and not rests_on:  # nothing matched: it names what the record is
            named = [d for d in documents if d in clause.finding]
        assert named, f"{where}: {clause.finding!r} names none of {sorted(wanted)}"


def test_the_data_check_can_fail() -> None:
    data = _data([{"t": "x", "id": "1", "segment": "T12-L1", "start": "2025-01-06", "n": 41}])
    assert data == {"T12", "L1", "2025-01-06", "41"}
    assert set(_mentions("Fusion at T12-L3, 41 days from 2025-01-06.", data)) == {
        "T12",
        "41",
        "2025-01-06",
    }
    assert _mentions("The symptoms are not documented to match imaging.", data) == []
    assert _mentions("At L12 on 2025-01-061, 410 days.", data) == []


def test_founding_case_findings_name_levels_and_sides() -> None:
    review = api.review_case(load_case(ROOT / "examples/cases/t12-s2-fusion.json"), Library())
    said = {clause.id: clause.finding for _, clause in _failed(review)}
    assert said["LD-SYMPTOMS"] == (
        "The record describes radicular pain (side not recorded) without saying whether it "
        "matches the imaging at L1-S1, proposed for decompression."
    )
    assert "Fusion is proposed at T12-L3 and S1-S2 without instability" in str(
        said["LF-INSTABILITY"]
    )
    assert "instability is shown at L3-S1" in str(said["LF-INSTABILITY"])
    assert "from T12 to S2" in str(said["LF-DEFORMITY-MEASURED"])
    assert "For the bilateral SI-joint fusion requested" in str(said["SI-PROVOCATIVE-TESTS"])


# ---- `{setting.name}` ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (3, "months", "3 months"),
        (1, "months", "1 month"),
        (8.0, "%", "8.0 %"),
        (7.5, "%", "7.5 %"),
        (90, "days", "90 days"),
        (6, "weeks", "6 weeks"),
        (12, "months", "12 months"),
        (15, "deg", "15 degrees"),
    ],
)
def test_a_setting_reads_as_the_policy_writes_it(value: float, unit: str, text: str) -> None:
    settings = {"limit": Threshold(value, unit, "limit")}
    assert findings.setting_text(settings["limit"]) == text
    filled = findings.fill_settings("At least {setting.limit} ({type.field}).", settings)
    assert filled == f"At least {text} ({{type.field}})."


def test_a_setting_the_policy_lacks_stays_as_written() -> None:
    settings = {"limit": Threshold(3, "months", "limit")}
    assert findings.fill_settings("{setting.limt}", settings) == "{setting.limt}"
    # the case's template filler never guesses one either
    assert fill("Below {setting.limit}.", []) == "Below {setting.limit}."


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{setting.limt}", "names unknown setting `limt` (settings: `limit`)"),
        ("{setting}", "is not `{setting.name}`"),
        ("{#setting}", "is not `{setting.name}`"),
        ("{setting.limit|none}", "is not `{setting.name}`"),
        ("{setting.limit.before_request}", "is not `{setting.name}`"),
        ("{setting[kind=x].limit}", "is not `{setting.name}`"),
    ],
)
def test_setting_problems(template: str, problem: str) -> None:
    settings = {"limit": Threshold(3, "months", "limit")}
    (found,) = findings.problems(f"A {template}.", TYPES, settings)
    assert problem in found.text
    assert not list(findings.problems("A {setting.limit}.", TYPES, settings))
    assert list(findings.reads("{setting.limit} {physical_therapy.start}")) == ["physical_therapy"]


def test_in_a_finding_a_setting_reads_like_the_patient_s_values_beside_it() -> None:
    # "gave 74% pain relief; ... at least 75% relief": one style within the sentence
    relief = {"relief": Threshold(75, "%", "relief"), "care": Threshold(3, "months", "care")}
    text = "Below {setting.relief} for {setting.care}."
    assert findings.fill_settings(text, relief, finding=True) == "Below 75% for 3 months."
    assert findings.fill_settings(text, relief) == "Below 75 % for 3 months."
