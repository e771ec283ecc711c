"""The `latest` operator (stop 24): the facts of the latest date decide.

Domain rule 9 (conflicting documentation on a deciding fact is not documented) and the stop-22
precedent (a newer study supersedes an older one) in one operator: true when every fact that
may be the latest meets `require`, false when every one fails it, unknown otherwise. Before it,
a policy could say "the latest study decides" (lumbar-decompression's segment_reading) but not
"two of one day that disagree are unknown": `any` took the favourable one (a wrong approval),
`every` the unfavourable one (a wrong denial). Tested here on a small policy over standing
full-length films built from case files, so the dates are the normaliser's own intervals.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from test_compiler import build, clause, document, truths  # type: ignore[import-not-found]

from evaluator.audit import diff
from evaluator.authoring.coverage import reachable_statuses
from evaluator.case.cases import case_from_data
from evaluator.compile.compiler import compile_policy
from evaluator.engine.durable import Engine
from evaluator.errors import PolicyError
from evaluator.language import describe
from evaluator.language.conditions import Latest, Truth, parse_condition
from evaluator.language.model import Status
from evaluator.language.policies import load_policy

T, U, F = Truth.TRUE, Truth.UNKNOWN, Truth.FALSE
EXAMPLE = Path(__file__).parent.parent / "examples" / "cases" / "deformity-construct.json"
FILMS = {"fact": "alignment", "as": "films", "where": {"standing": True, "full_length": True}}
LATEST: dict[str, Any] = {
    "latest": {
        **FILMS,
        "by": "date",
        "require": {"fact": "films", "field": "cobb", "at_least": {"value": 30, "unit": "deg"}},
    }
}
CLAUSES = {
    "Q-LATEST": LATEST,
    # as a part: the unknown of a disagreement stays unknown beside a true part in `all`
    "Q-NOT-LATEST": {"not": LATEST},
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root: Path = tmp_path_factory.mktemp("latest")
    return build(root, document([clause(cid, cond) for cid, cond in CLAUSES.items()]))


def _films(*films: tuple[str | None, Any]) -> list[dict[str, Any]]:
    """The engine facts of the example case with one standing full-length study per (date,
    Cobb angle); a date of None leaves the study undated."""
    data = json.loads(EXAMPLE.read_text())
    template = data["imaging"][1]
    data["imaging"] = data["imaging"][:1]
    for i, (date, cobb) in enumerate(films):
        study = copy.deepcopy(template)
        study["id"] = f"films-{i}"
        study.pop("date")
        study["source"].pop("date")
        if date is not None:
            study["date"] = study["source"]["date"] = date
        study["alignment"]["cobb_deg"] = cobb
        data["imaging"].append(study)
    return [f.as_dict() for f in case_from_data(data, "latest.json").facts]


CASES = {
    "no films": ((), U),
    "one film, significant": ((("2025-05-12", 35),), T),
    "one film, small": ((("2025-05-12", 10),), F),
    "an older significant film, newer small ones": (
        (("2024-11-01", 35), ("2025-05-12", 10), ("2025-05-12", 12)),
        F,
    ),
    "an older small film, a newer significant one": (
        (("2024-11-01", 10), ("2025-05-12", 35)),
        T,
    ),
    "one day, disagreeing": ((("2025-05-12", 35), ("2025-05-12", 10)), U),
    "one day, both significant": ((("2025-05-12", 35), ("2025-05-12", 40)), T),
    "one day, both small": ((("2025-05-12", 10), ("2025-05-12", 12)), F),
    "a month that may be the latest day, disagreeing": ((("2025-05", 35), ("2025-05-12", 10)), U),
    "a month surely earlier": ((("2025-04", 35), ("2025-05-12", 10)), F),
    # Neither is surely the latest, and both fail: false (unknown at stop 24, where a fact that
    # may be superseded counted as undecided even beside others that agree with it).
    "a month that may be the latest day, agreeing": ((("2025-05", 12), ("2025-05-12", 10)), F),
    "an undated film, agreeing small": (((None, 12), ("2025-05-12", 10)), F),
    "an undated film, disagreeing": (((None, 35), ("2025-05-12", 10)), U),
    "an undated film, agreeing": (((None, 35), ("2025-05-12", 40)), T),
    "a word that is no measurement": ((("2025-05-12", "moderate"),), U),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_latest_films_decide(name: str, compiled: Any) -> None:
    films, want = CASES[name]
    found = truths(Engine.get().run(compiled.program, _films(*films)))
    assert found["Q-LATEST"] == want
    assert found["Q-NOT-LATEST"] == Truth(2 - want)


def _parsed() -> Latest:
    cond = parse_condition(LATEST, "/c", {})
    assert isinstance(cond, Latest)
    return cond


def test_show_renders_latest_as_written() -> None:
    lines = describe.outline(_parsed(), aliases={})
    assert lines[0].startswith("- the latest alignments (standing: yes; full length: yes) by date")
    assert "ones of the same day that disagree are not documented" in lines[0]
    # its requirement, not the expansion the compiler lowers
    assert len(lines) == 2
    assert "cobb" in lines[1].lower()


def test_diff_names_the_changed_requirement() -> None:
    changed = copy.deepcopy(LATEST)
    changed["latest"]["require"]["at_least"]["value"] = 40
    new = parse_condition(changed, "/c", {})
    (line,) = diff.condition_changes(_parsed(), new)
    assert "30" in line
    assert "40" in line
    assert diff.condition_changes(_parsed(), parse_condition(LATEST, "/d", {})) == []


def test_coverage_counts_every_status_latest_can_give(tmp_path: Path) -> None:
    path = tmp_path / "policies" / "p" / "1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document([clause("Q-LATEST", LATEST)])))
    reach = reachable_statuses(load_policy(path))
    assert reach["Q-LATEST"] == {Status.MET, Status.NOT_MET, Status.NOT_DOCUMENTED}


@pytest.mark.parametrize(
    ("by", "code"), [("cobb", "not_a_date"), ("dated", "unknown_field")], ids=["number", "none"]
)
def test_a_by_that_is_no_date_field_is_refused_at_by(by: str, code: str, tmp_path: Path) -> None:
    bad = copy.deepcopy(LATEST)
    bad["latest"]["by"] = by
    path = tmp_path / "policies" / "p" / "1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document([clause("Q-LATEST", bad)]), indent=1))
    with pytest.raises(PolicyError) as raised:
        compile_policy(load_policy(path))
    problems = {(p.code, p.location.line) for p in raised.value.problems}
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"by"' in text)
    assert (code, line) in problems


def test_a_scope_on_a_field_the_records_may_dispute_is_refused(tmp_path: Path) -> None:
    # Such a scope takes the facts that may pass its `where`, each unknown (`Lowering.gated`):
    # `latest` leaves it out rather than fail open on a disputed fact, and says where.
    disputed = {
        "latest": {
            "fact": "symptom",
            "as": "pain",
            "where": {"concordant": True},
            "by": "onset",
            "require": {"fact": "pain", "field": "kind", "equals": "radicular_pain"},
        }
    }
    path = tmp_path / "policies" / "p" / "1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document([clause("Q-LATEST", disputed)]), indent=1))
    with pytest.raises(PolicyError) as raised:
        compile_policy(load_policy(path))
    (problem,) = raised.value.problems
    assert problem.code == "disputed_latest"
    assert problem.location.pointer == "/sections/0/clauses/0/requires/latest/where"
