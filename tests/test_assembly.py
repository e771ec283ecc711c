"""Decision assembly made cheaper (issue 10) decides and words nothing differently.

Assembly works out once per compiled policy what no case changes (`decision._Plan`) and indexes
each case's values once. Three kinds of check:

- the bench policy's generated cases give exactly the decisions they gave before the change:
  tests/fixtures/assembly/bench-decisions.txt holds a digest of each one's JSON (provenance
  aside) and text report, written by the assembly before it had a plan (the examples' golden
  files check the bundled policies the same way);
- what a plan caches cannot leak from one case or policy into another: a case assembled with a
  plan warmed by other cases gives what it gives with a fresh plan, in any order, on generated
  bench cases and on every example;
- a plan is reused only for the program and policy content it was made for.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import benchgen
from evaluator import api
from evaluator.case import cases
from evaluator.case.cases import Case
from evaluator.compile.compiler import compile_policy
from evaluator.decide import decision
from evaluator.decide.decision import Decision
from evaluator.language.policies import Library
from evaluator.read import source
from evaluator.render import decision as render

ROOT = Path(__file__).parent.parent
POLICIES = ROOT / "benchmarks" / "policies"
BENCH = "bench-fusion"
DIGESTS = Path(__file__).parent / "fixtures" / "assembly" / "bench-decisions.txt"
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


def bench_cases(n: int, seed: int = benchgen.SEED) -> list[Case]:
    return [
        cases.case_from_document(source.loads_json(json.dumps(doc), str(doc["case_id"])))
        for doc in benchgen.generate(n, seed)
    ]


def digest(d: Decision) -> str:
    """The decision as a user gets it: its JSON (without the release's hashes) and its report."""
    body = render.decision_json(d, evaluated_at=None)
    del body["provenance"]
    text = json.dumps(body, sort_keys=True) + "\n" + render.decision_text(d)
    return hashlib.sha256(text.encode()).hexdigest()


def stored() -> dict[str, str]:
    lines = DIGESTS.read_text(encoding="utf-8").splitlines()
    return dict(line.split() for line in lines if line.strip())


@pytest.fixture(scope="module")
def bench_policy() -> Any:
    return Library(POLICIES).get(BENCH)


def test_bench_decisions_are_as_before(bench_policy: Any, update_golden: bool) -> None:
    want = stored()
    got = {c.case_id: digest(api.evaluate(c, bench_policy)) for c in bench_cases(len(want))}
    if update_golden:
        text = "".join(f"{k} {v}\n" for k, v in got.items())
        DIGESTS.write_text(text, encoding="utf-8")
    assert len(want) >= 400
    changed = [k for k in want if got.get(k) != want[k]]
    assert not changed, f"{len(changed)} bench decisions changed, first {changed[:5]}"


@pytest.fixture
def fresh_plans() -> Iterator[None]:
    """Each use starts with no plan, and leaves none behind for other tests."""
    saved = dict(decision._PLANS)
    decision._PLANS.clear()
    yield
    decision._PLANS.clear()
    decision._PLANS.update(saved)


def _cold(case: Case, policy: Any) -> Decision:
    decision._PLANS.clear()
    return api.evaluate(case, policy)


@pytest.mark.usefixtures("fresh_plans")
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), reverse=st.booleans())
def test_a_warm_plan_gives_what_a_fresh_one_gives(
    bench_policy: Any, seed: int, reverse: bool
) -> None:
    generated = bench_cases(12, seed)
    cold = {c.case_id: _cold(c, bench_policy) for c in generated}
    for case in reversed(generated) if reverse else generated:
        assert api.evaluate(case, bench_policy) == cold[case.case_id]


@pytest.mark.usefixtures("fresh_plans")
def test_every_example_gives_the_same_with_a_warm_or_fresh_plan() -> None:
    library = Library()
    loaded = [cases.load_case(path) for path in EXAMPLES]
    cold = [_cold_review(case, library) for case in loaded]
    # warm: every example once, then each again with the plans all of them left
    for case in loaded:
        api.review_case(case, library)
    for case, want in zip(reversed(loaded), reversed(cold), strict=True):
        assert api.review_case(case, library) == want


def _cold_review(case: Case, library: Library) -> api.CaseReview:
    decision._PLANS.clear()
    return api.review_case(case, library)


@pytest.mark.usefixtures("fresh_plans")
def test_tiny_plan_caches_give_the_same_decisions(
    bench_policy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = bench_cases(40)
    want = [api.evaluate(c, bench_policy) for c in generated]
    decision._PLANS.clear()
    # cleared on every new entry: hostile cases may vary field names and ids without end
    monkeypatch.setattr(decision, "_CACHE_LIMIT", 1)
    assert [api.evaluate(c, bench_policy) for c in generated] == want
    assert all(len(plan.views) <= 1 for plan in decision._PLANS.values())
    assert all(len(plan._bare) <= 1 for plan in decision._PLANS.values())


@pytest.mark.usefixtures("fresh_plans")
def test_a_plan_is_reused_for_the_same_program_and_policy_content(bench_policy: Any) -> None:
    program = api.program_for(bench_policy)
    plan = decision._plan(bench_policy, program)
    assert decision._plan(bench_policy, program) is plan
    # a referenced policy is loaded afresh for each case: same content, same plan
    again = Library(POLICIES).get(BENCH)
    assert again is not bench_policy
    assert decision._plan(again, program) is plan
    # other content (here a changed title) is another plan, even for the same program
    other = dataclasses.replace(bench_policy, title="x", content_sha256="other")
    assert decision._plan(other, program) is not plan


@pytest.mark.usefixtures("fresh_plans")
def test_a_plan_goes_with_its_program(bench_policy: Any) -> None:
    program = compile_policy(bench_policy)
    decision._plan(bench_policy, program)
    assert id(program) in decision._PLANS
    key = id(program)
    del program
    gc.collect()
    assert key not in decision._PLANS
