"""The benchmark's harness (benchmarks/): a deterministic case generator, and a plain-Python
reference and peer engines that give necessity's statuses on every generated case. Speed is
measured by `make bench`, never here."""

from __future__ import annotations

import gc
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks import benchgen, compare, peers, reference
from evaluator import api
from evaluator.batch import runner as batch
from evaluator.case import cases
from evaluator.language.policies import Library
from evaluator.read import source

ROOT = Path(__file__).parent.parent
POLICIES = ROOT / "benchmarks" / "policies"
CASES = 300


@pytest.fixture(scope="module")
def documents() -> list[benchgen.Document]:
    return benchgen.generate(CASES)


@pytest.fixture(scope="module")
def expected(documents: list[benchgen.Document]) -> list[dict[str, str]]:
    return [reference.evaluate(reference.flatten(d)) for d in documents]


def test_the_generator_is_deterministic_and_seeded() -> None:
    assert benchgen.generate(40) == benchgen.generate(40)
    assert benchgen.generate(40, seed=1) == benchgen.generate(40, seed=1)
    assert benchgen.generate(40, seed=1) != benchgen.generate(40, seed=2)
    # a longer run starts with the same cases
    assert benchgen.generate(60)[:40] == benchgen.generate(40)


def test_every_clause_reaches_each_of_its_statuses(expected: list[dict[str, str]]) -> None:
    reached = Counter((k, v) for statuses in expected for k, v in statuses.items())
    four = ("met", "not_met", "not_documented", "not_applicable")
    for clause in ("BF-CONSERVATIVE", "BF-PHYSICAL-THERAPY", "BF-DIABETES"):
        assert all(reached[clause, status] for status in four), clause
    for clause in ("BF-INSTABILITY", "BF-NICOTINE"):
        assert all(reached[clause, status] for status in four[:3]), clause
    assert reached["BF-URGENT", "met"]
    assert reached["BF-URGENT", "not_applicable"]
    determinations = (
        "medically_necessary",
        "not_medically_necessary",
        "insufficient_documentation",
    )
    assert all(reached["determination", d] for d in determinations)


def test_necessity_gives_the_reference_s_statuses_on_every_generated_case(
    documents: list[benchgen.Document], expected: list[dict[str, str]]
) -> None:
    policy = Library(POLICIES).get("bench-fusion")
    for document, statuses in zip(documents, expected, strict=True):
        case = cases.case_from_document(source.loads_json(json.dumps(document), "case.json"))
        decision = api.evaluate(case, policy)
        got = {c.id: c.status.value for c in decision.clauses}
        got["determination"] = decision.determination.value
        assert got == statuses, document["case_id"]


def test_the_reference_disagrees_when_a_threshold_moves(documents: list[benchgen.Document]) -> None:
    # the comparison above can fail: a reference with another edge decides some cases otherwise
    facts = [reference.flatten(d) for d in documents]
    before = [reference.evaluate(f)["BF-CONSERVATIVE"] for f in facts]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reference, "CARE_DAYS", reference.CARE_DAYS + 30)
        after = [reference.evaluate(f)["BF-CONSERVATIVE"] for f in facts]
    assert before != after


@pytest.mark.parametrize("peer", ["durable_rules", "clips"])
def test_each_peer_gives_the_reference_s_statuses(
    peer: str, documents: list[benchgen.Document], expected: list[dict[str, str]]
) -> None:
    reason = peers.available(peer)
    if reason is not None:
        pytest.skip(reason)
    engine = peers.DurableRules() if peer == "durable_rules" else peers.Clips()
    got = engine.evaluate([reference.flatten(d) for d in documents])
    assert got == [{k: v for k, v in e.items() if k != "determination"} for e in expected]


def test_the_phase_breakdown_times_every_phase_and_leaves_the_collector_on(
    tmp_path: Path,
) -> None:
    # compare.py's phase rows freeze the kept inputs out of the collector while timing; a
    # phase that failed or returned early must not leave it frozen for the rest of the run.
    benchgen.write_files(benchgen.generate(12), tmp_path)
    phases = compare.measure_phases(tmp_path)
    assert [name.strip() for name, _ in phases] == [
        "list the files, hash their bytes",
        "parse the bytes read (-> document)",
        "validate (case.schema.json)",
        "normalise (facts, the case)",
        "api.facts_for",
        "records.case_digest (the case hash)",
        "api.evaluate (engine, assembly and the two above)",
        "api.evaluate_many (the same, a chunk of cases a call, as `batch --policy`)",
        "render the decision (JSON)",
        "encode the JSON line",
        "the full path (`batch --jobs 1`, to /dev/null)",
    ]
    assert all(math.isfinite(us) for _, us in phases)  # each one was timed
    assert gc.get_freeze_count() == 0


def test_the_batch_rate_counts_the_work_done_before_the_first_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop 23: `--jobs 2` hands out two chunks a worker before its first record comes back;
    timed from that record, the rate left that work out (2.29x `--jobs 1` where the whole
    process ran 1.74x). It is timed from the first case handed out."""
    benchgen.write_files(benchgen.generate(4), tmp_path / "cases")
    pause = 0.2

    def run(todo: Any, _policy: Any, _library: Any, write: Any, **_: Any) -> None:
        handed = list(todo)  # every case sent at once, as a pool's first chunks are
        time.sleep(pause)  # reviewed before the first record comes back
        for item in handed:
            write({"case": item.name})

    monkeypatch.setattr(batch, "run", run)
    steady = compare.steady_batch(tmp_path / "cases", 2, tmp_path / "out.jsonl")
    assert steady.rate <= 4 / pause


def test_the_evaluate_phase_never_reviews_a_case_object_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Case keeps its hash (`records.case_digest`): the phase's passes over the same objects
    left the hash out of every pass but the first, as no batch does."""
    benchgen.write_files(benchgen.generate(6), tmp_path)
    seen: list[Any] = []  # kept alive, so that no id is handed out again
    evaluate = api.evaluate

    def spy(case: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(case)
        return evaluate(case, *args, **kwargs)

    monkeypatch.setattr(api, "evaluate", spy)
    compare.measure_phases(tmp_path)
    assert len(seen) > 6
    assert len({id(case) for case in seen}) == len(seen)
