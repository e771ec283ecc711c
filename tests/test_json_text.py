"""A decision's JSON text made from kept pieces (render/json_text.py) is byte for byte what
json.dumps(decision_json(...), ensure_ascii=False, sort_keys=True) writes, and a batch's line
made of it is what encoding the record wrote (issue 10)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from test_fuzz import mutated_examples  # type: ignore[import-not-found]

from benchmarks import benchgen
from evaluator import api
from evaluator.batch import runner as batch
from evaluator.case import cases
from evaluator.decide.decision import Decision, Evidence, FactView
from evaluator.errors import NecessityError
from evaluator.language.conditions import Truth
from evaluator.language.policies import Library
from evaluator.render import json_text
from evaluator.render.decision import decision_json

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
STAMP = "2026-01-02T03:04:05+00:00"
ODD = ['"quoted", colon: \\ slash', "\x00\x1f\x7f\u2028\u2029", "é \U0001f600 ", "", "null"]


def dumps(decision: Decision, evaluated_at: str | None = STAMP) -> str:
    """What a batch wrote for a decision before issue 10."""
    return json.dumps(decision_json(decision, evaluated_at), ensure_ascii=False, sort_keys=True)


def _decisions(case: cases.Case, library: Library) -> list[Decision]:
    found = []
    for policy_id in library.ids():
        try:
            policy = api.select_policy(case, policy_id, library)
            found.append(api.evaluate(case, policy))
            found.append(api.evaluate(case, policy, explain=True))
        except NecessityError:
            continue
    return found


@pytest.fixture(scope="module")
def example_decisions() -> list[Decision]:
    library = Library()
    out = [d for path in EXAMPLES for d in _decisions(cases.load_case(path), library)]
    assert len(out) > 2 * len(EXAMPLES)
    return out


def test_every_example_decision_s_text_is_json_dumps(example_decisions: list[Decision]) -> None:
    for decision in example_decisions:
        assert json_text.decision_json_text(decision, STAMP) == dumps(decision)
        assert json_text.decision_json_text(decision) == dumps(decision, None)
        again = json_text.decision_json_text(decision, STAMP)  # from the kept pieces
        assert again == dumps(decision)
    # the examples reach every part: alternatives, conflicts, documents, facts with sources
    texts = [dumps(d) for d in example_decisions]
    assert any('"alternative": {' in t for t in texts)
    assert any('"conflicts": [{' in t for t in texts)
    assert any('"documentation_requests": [{' in t for t in texts)
    assert any('"binding": {"' in t for t in texts)
    assert any('"source": "' in t for t in texts)
    assert any('"explanation": ' in t for t in texts)


def test_bench_decisions_texts_are_json_dumps() -> None:
    library = Library(ROOT / "benchmarks" / "policies")
    policy = library.get("bench-fusion")
    for document in benchgen.generate(300, seed=17):
        case = cases.case_from_data(document, "bench.json")
        decision = api.evaluate(case, policy)
        assert json_text.decision_json_text(decision, STAMP) == dumps(decision)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_examples())
def test_mutated_cases_decisions_texts_are_json_dumps(document: Any) -> None:
    try:
        case = cases.case_from_data(document, "mutated.json")
    except NecessityError:
        return
    for decision in _decisions(case, Library.shared(ROOT / "policies")):
        assert json_text.decision_json_text(decision, STAMP) == dumps(decision)


def _odd_decision(base: Decision, text: str, value: Any) -> Decision:
    """`base` with `text` in every string a policy or a case puts in it, `value` in a fact."""
    fact = FactView("odd", text, (("x", value), (text, [value, {"k": value}])), text)
    evidence = Evidence(text, Truth.UNKNOWN, ((text, text), ("a", "b")), (fact, fact))
    clauses = tuple(
        dataclasses.replace(
            c,
            id=text,
            title=text,
            section_title=text,
            rationale=text,
            finding=None,
            recommendation=text,
            documentation=(text,),
            evidence=(evidence, *c.evidence),
        )
        for c in base.clauses
    )
    return dataclasses.replace(
        base,
        case_id=text,
        policy_title=text,
        clauses=clauses,
        conflicts=({"fact": text, "field": "f", "values": text, "reason": "r"},),
        provenance={**base.provenance, text: value},
    )


@pytest.mark.parametrize("text", ODD)
@pytest.mark.parametrize(
    "value", [1, True, 1.0, -0.0, 0.0, 1e16, 1e-05, float("nan"), float("inf"), None, 2**70]
)
def test_odd_text_and_values_write_as_json_dumps(
    example_decisions: list[Decision], text: str, value: Any
) -> None:
    for base in example_decisions[:6]:
        decision = _odd_decision(base, text, value)
        assert json_text.decision_json_text(decision, STAMP) == dumps(decision)


def test_values_equal_as_keys_but_written_differently_are_kept_apart(
    example_decisions: list[Decision],
) -> None:
    # True == 1 == 1.0 and -0.0 == 0.0: a piece kept for one is never handed to the other
    base = next(d for d in example_decisions if d.explanation is None)
    for first, second in ((1, True), (True, 1.0), (0.0, -0.0), (1, 1.0)):
        for value in (first, second):
            cited: tuple[Any, ...] = (value,)  # not an int: what the key must tell apart
            clauses = tuple(
                dataclasses.replace(c, citations=cited, documentation=()) for c in base.clauses
            )
            decision = dataclasses.replace(base, clauses=clauses)
            assert json_text.decision_json_text(decision, STAMP) == dumps(decision)


def test_the_kept_pieces_are_bounded(
    example_decisions: list[Decision], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_text, "_KEPT", 5)
    json_text._PIECES.clear()
    for decision in example_decisions:
        assert json_text.decision_json_text(decision, STAMP) == dumps(decision)
        assert len(json_text._PIECES) <= 5


# --- the batch's line ----------------------------------------------------------------------------


def test_a_bench_record_carries_the_line_encoding_it_wrote(tmp_path: Path) -> None:
    benchgen.write_files(benchgen.generate(60, seed=19), tmp_path)
    library = Library(ROOT / "benchmarks" / "policies")
    for item in batch.items(batch.sources([tmp_path])):
        record = batch.review_item(item, "bench-fusion", library)
        assert type(record) is batch._Encoded  # the line was made of the result's text
        expected = json.dumps(dict(record), ensure_ascii=False, sort_keys=True) + "\n"
        assert record.line == expected.encode("utf-8")
        assert batch.encode(record) == record.line


def test_a_record_that_does_not_encode_still_fails_when_written(tmp_path: Path) -> None:
    # a file name holding bytes that are no UTF-8 (a lone surrogate in Python): as before
    benchgen.write_files(benchgen.generate(1, seed=19), tmp_path)
    (path,) = tmp_path.iterdir()
    item = dataclasses.replace(next(batch.items([path])), name="case-\udcff.json")
    record = batch.review_item(item, "bench-fusion", Library(ROOT / "benchmarks" / "policies"))
    assert "result" in record
    assert type(record) is dict
    with pytest.raises(UnicodeEncodeError):
        batch.encode(record)


def test_an_error_record_is_encoded_as_before(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"case_id": 1}')
    (item,) = batch.items([tmp_path / "bad.json"])
    record = batch.review_item(item, "bench-fusion", Library(ROOT / "benchmarks" / "policies"))
    assert type(record) is dict
    assert "error" in record
    assert batch.encode(record) == (
        json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
    ).encode("utf-8")
