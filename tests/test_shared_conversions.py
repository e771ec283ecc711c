"""What the fact builder shares between cases stays as it was made (issue 10 review).

Date and level conversions are cached and handed out as plain dicts, and each fact type's
plan of converters is made once: nothing a case does may write into them, or one case's
facts would leak into the next. The after-request check, now inline, judges a date on the
request day, a day after and a month-only date in the request's month as before.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from evaluator import api
from evaluator.case import facts as facts_module
from evaluator.case.cases import Case, case_from_data, load_case
from evaluator.errors import NecessityError
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
HOSTILE = sorted((ROOT / "tests" / "hostile" / "cases").glob("*.json"))
APPROVABLE = ROOT / "examples" / "cases" / "l4-l5-approvable.json"


def _facts(case: Case) -> list[tuple[str, str, dict[str, Any]]]:
    return [(f.type, f.id, dict(f.fields)) for f in case.facts]


def _clear() -> None:
    facts_module._dated_text.cache_clear()
    facts_module._level_fields.cache_clear()


def _loaded(paths: list[Path]) -> Iterator[Case]:
    for path in paths:
        try:
            yield load_case(path)
        except NecessityError:  # a hostile case refused: nothing to share
            continue


def _read_only(cached: Callable[..., Any]) -> Callable[..., Any]:
    """`cached`, its every result a read-only view: a write into one raises TypeError."""

    def wrapper(*args: Any) -> Any:
        return MappingProxyType(cached(*args))

    wrapper.__wrapped__ = cached.__wrapped__  # type: ignore[attr-defined]
    return wrapper


def test_no_case_writes_into_a_cached_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every path of the builder (statements, conflicts, late dates, bad dates) over every
    example and hostile case, with each shared conversion handed out read-only."""
    monkeypatch.setattr(facts_module, "_dated_text", _read_only(facts_module._dated_text))
    monkeypatch.setattr(facts_module, "_level_fields", _read_only(facts_module._level_fields))
    late = json.loads(APPROVABLE.read_text())
    late["conservative_care"]["physical_therapy"]["end"] = "2052-04-18"
    loaded = [*_loaded(EXAMPLES), *_loaded(HOSTILE), case_from_data(late, "late.json")]
    assert len(loaded) > len(EXAMPLES)
    # and what the builder made still reads as the plain dicts it made
    assert all(type(f.as_dict()) is dict for case in loaded for f in case.facts)


def test_what_a_case_got_changed_leaves_the_next_case_as_it_was() -> None:
    _clear()
    cold = {path.name: _facts(load_case(path)) for path in EXAMPLES}
    library = Library()
    for path in EXAMPLES:
        case = load_case(path)
        api.review_case(case, library)  # the engine gets the rows; none of it comes back
        for fact in case.facts:
            row = fact.as_dict()
            row.clear()
            row["t"] = "tampered"
            with pytest.raises(TypeError):
                fact.fields["id"] = "tampered"  # type: ignore[index]
        for fact in case.facts:
            for key in list(fact._plain):  # the fact's own dict, never a shared one
                fact._plain[key] = "tampered"
    warm = {path.name: _facts(load_case(path)) for path in EXAMPLES}
    assert warm == cold


def test_the_plan_of_a_fact_type_is_not_changed_by_a_case() -> None:
    library = Library()
    plans = {t: facts_module._plan(t) for t in facts_module.fact_kinds()}
    before = {t: (p.fields, p.names, p.first_days) for t, p in plans.items()}
    for path in EXAMPLES:
        api.review_case(load_case(path), library)
    assert {t: (p.fields, p.names, p.first_days) for t, p in plans.items()} == before
    # the steps kept are what the schema order gives for the names, whatever order they came in
    for plan in plans.values():
        for given, steps in plan._kept.items():
            assert steps == tuple(s for s in plan.fields if s[0] in given)
        assert len(plan._kept) <= facts_module._STEPS_KEPT


# --- the after-request check, at its edges (request date 2025-06-20) ----------------------------


def _with_pt_end(end: str) -> Case:
    data = json.loads(APPROVABLE.read_text())
    assert data["request"]["date"] == "2025-06-20"
    data["conservative_care"]["physical_therapy"]["end"] = end
    return case_from_data(copy.deepcopy(data), "edge.json")


def _therapy(case: Case) -> dict[str, Any]:
    (therapy,) = [f for f in case.facts if f.type == "physical_therapy"]
    return dict(therapy.fields)


def _late(case: Case) -> list[str]:
    return [c.field for c in case.conflicts if c.reason == "after_request"]


@pytest.mark.parametrize("end", ["2025-06-20", "2025-06", "2025-06-19", "2025-05"])
def test_a_date_not_after_the_request_is_kept(end: str) -> None:
    case = _with_pt_end(end)
    therapy = _therapy(case)
    assert therapy["end"] == end
    assert "duration_lo" in therapy
    assert _late(case) == []


@pytest.mark.parametrize("end", ["2025-06-21", "2025-07", "2026-06-20"])
def test_a_date_after_the_request_is_left_out(end: str) -> None:
    case = _with_pt_end(end)
    therapy = _therapy(case)
    assert not any(k.startswith(("end", "duration")) for k in therapy)
    assert _late(case) == ["end"]


def test_a_day_after_the_request_never_approves() -> None:
    library = Library()
    on_the_day = api.review_case(_with_pt_end("2025-06-20"), library).lines[0].decision
    after = api.review_case(_with_pt_end("2025-06-21"), library).lines[0].decision
    assert on_the_day is not None
    assert after is not None
    assert on_the_day.determination.value == "medically_necessary"
    assert after.determination.value != "medically_necessary"
