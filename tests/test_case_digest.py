"""A case's hash (provenance `case_sha256`) is worked out once per Case object (issue 10), and a
cached hash is always the one a fresh computation gives.

Why it cannot go stale: a Case is frozen, its facts are frozen with read-only fields of
immutable scalars, and the facts the engine gets are copies; the cache is keyed by the object,
and an entry is never read for another object that happens to get the same id later.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import weakref
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.case import cases
from evaluator.case.cases import Case
from evaluator.decide import records
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"


def _fresh(case: Case) -> str:
    return records.case_sha256(case.fact_dicts())


def test_every_example_hashes_as_a_fresh_computation_cold_and_warm() -> None:
    library = Library()
    for path in EXAMPLES:
        case = cases.load_case(path)
        assert records.case_digest(case) == _fresh(case), path.name
        review = api.review_case(case, library)  # warm: every policy's decision hashes it
        for line in review.lines:
            if line.decision is not None:
                assert line.decision.provenance["case_sha256"] == _fresh(case), path.name
        assert records.case_digest(case) == _fresh(case), path.name


def test_provenance_of_a_case_equals_provenance_of_its_facts() -> None:
    case = cases.load_case(FOUNDING)
    policy = Library().get("lumbar-fusion", case.in_force_date)
    assert records.provenance(policy, case) == records.provenance(policy, case.fact_dicts())


def _variant(base: dict[str, Any], day: int) -> Case:
    data = json.loads(json.dumps(base))
    data["request"]["date"] = f"2025-06-{day:02d}"  # same case id, other facts
    return cases.case_from_data(data, "variant.json")


def test_cases_with_the_same_id_but_other_facts_keep_their_own_hash() -> None:
    base = json.loads(FOUNDING.read_text(encoding="utf-8"))
    one, two = _variant(base, 20), _variant(base, 21)
    assert one.case_id == two.case_id
    assert records.case_digest(one) != records.case_digest(two)
    assert records.case_digest(one) == _fresh(one)
    assert records.case_digest(two) == _fresh(two)


def test_a_new_case_at_a_dead_cases_address_is_hashed_afresh() -> None:
    # CPython often gives a new object the address (id) of one just freed: an entry found by id
    # alone would hand the dead case's hash to the new one.
    base = json.loads(FOUNDING.read_text(encoding="utf-8"))
    for day in range(1, 31):
        case = _variant(base, day)
        assert records.case_digest(case) == _fresh(case), day
        del case
        gc.collect()


def test_an_entry_is_read_only_for_its_own_case() -> None:
    # The address-reuse above made certain: an entry under this case's id for another case.
    base = json.loads(FOUNDING.read_text(encoding="utf-8"))
    case, other = _variant(base, 20), _variant(base, 21)
    records._DIGESTS[id(case)] = (weakref.ref(other), "another case's hash")
    try:
        assert records.case_digest(case) == _fresh(case)
    finally:
        records._DIGESTS.pop(id(case), None)


def test_the_entry_goes_with_its_case() -> None:
    case = cases.load_case(FOUNDING)
    records.case_digest(case)
    key = id(case)
    assert key in records._DIGESTS
    del case
    gc.collect()
    assert key not in records._DIGESTS


def test_a_case_and_its_facts_cannot_change_under_the_hash() -> None:
    case = cases.load_case(FOUNDING)
    digest = records.case_digest(case)
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.facts = ()  # type: ignore[misc]
    fact = case.facts[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fact.fields = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        fact.fields["x"] = 1  # type: ignore[index]
    # what the engine and the hash are given are copies: changing them changes nothing
    for row in case.fact_dicts():
        row["id"] = "changed"
    handed = api.facts_for(case, Library().get("lumbar-fusion", case.in_force_date))
    for row in handed:
        row.clear()
    assert records.case_digest(case) == digest == _fresh(case)
    # a case made from another is another object with its own hash
    fewer = dataclasses.replace(case, facts=case.facts[1:])
    assert records.case_digest(fewer) == _fresh(fewer) != digest


def test_a_case_first_hashed_from_the_facts_a_policy_sees_hashes_every_fact() -> None:
    """`api.evaluate` hashes the case from the facts the policy sees when it sees every one
    (`records.case_digest(case, facts)`); a policy that sees fewer (the founding case's
    decompression and SI-joint policies leave other lines' facts out) must not give its facts
    as the case's: each fresh case, evaluated first under such a policy, keeps the hash of all
    its facts."""
    library = Library()
    seen_fewer = 0
    for path in EXAMPLES:
        for policy in {
            p.ref: p for p in api._governing(cases.load_case(path), library).values() if p
        }.values():
            case = cases.load_case(path)  # fresh: nothing hashed yet
            effective = api.with_plan(case, policy)
            seen_fewer += len(api.facts_for(case, effective)) < len(case.facts)
            decision = api.evaluate(case, policy)
            assert decision.provenance["case_sha256"] == _fresh(case), (path.name, policy.id)
            assert records.case_digest(case) == _fresh(case), (path.name, policy.id)
    assert seen_fewer >= 3
    # and given fewer dicts than facts directly, it hashes the case's own
    case = cases.load_case(FOUNDING)
    assert records.case_digest(case, case.fact_dicts()[1:]) == _fresh(case)
