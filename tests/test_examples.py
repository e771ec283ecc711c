"""Data-driven tests: each tests/cases/*.yaml states what evaluating one case must give.

An expectation names a case file (`case`) or holds one inline (`facts`), the policy, and the
expected determination and clause statuses (or, for a bad case, the error). Every expectation
file is validated against tests/expectations.schema.json first. The expected results are
derived by hand from the policy text, never copied from the evaluator's output.

Each expectation that names a case file also has a golden file, tests/golden/<case>.json: the
whole JSON decision. `pytest --update-golden` rewrites them; read the diff before committing it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from evaluator import api
from evaluator.case.cases import case_from_data
from evaluator.decide.decision import Decision
from evaluator.errors import InputError
from evaluator.language.policies import Library
from evaluator.read.source import load
from evaluator.render import decision as render

HERE = Path(__file__).parent
ROOT = HERE.parent
EXPECTATIONS = sorted((HERE / "cases").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))
GOLDEN = HERE / "golden"
SCHEMA = json.loads((HERE / "expectations.schema.json").read_text(encoding="utf-8"))


def expectation(path: Path) -> dict[str, Any]:
    """Return an expectation file's data, failing the test if it violates the schema."""
    data = load(path).data
    errors = sorted(
        jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    assert isinstance(data, dict)
    return data


def evaluate(spec: Mapping[str, Any], name: str) -> Decision:
    if "case" in spec:
        return api.evaluate_path(ROOT / spec["case"], spec["policy"])
    case = case_from_data(spec["facts"], name)
    return api.evaluate(case, api.select_policy(case, spec["policy"], Library()))


def outcome(decision: Decision, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parts of a decision the expectation states, in the expectation's shape."""
    clauses = {c.id: c.status.value for c in decision.clauses}
    got: dict[str, Any] = {
        "determination": decision.determination.value,
        "clauses": {k: clauses.get(k, "<no such clause>") for k in spec["clauses"]},
    }
    if "alternative" in spec:
        alternative = decision.alternative
        got["alternative"] = (
            None if alternative is None else {ln.procedure: ln.levels for ln in alternative.lines}
        )
    if "documentation_requests" in spec:
        got["documentation_requests"] = list(
            dict.fromkeys(r.clause for r in decision.documentation_requests)
        )
    if "conflicts" in spec:
        got["conflicts"] = [{"fact": c["fact"], "field": c["field"]} for c in decision.conflicts]
    return got


@pytest.mark.parametrize("path", EXPECTATIONS, ids=[p.stem for p in EXPECTATIONS])
def test_example(path: Path, request: pytest.FixtureRequest) -> None:
    spec = expectation(path)
    if "known_issue" in spec:
        request.applymarker(pytest.mark.xfail(reason=spec["known_issue"], strict=True))
    if "error" in spec:
        with pytest.raises(InputError) as raised:
            evaluate(spec, path.name)
        want = spec["error"]
        problems = [(p.code, p.location.pointer) for p in raised.value.problems]
        assert any(
            code == want["code"] and ("pointer" not in want or pointer == want["pointer"])
            for code, pointer in problems
        ), problems
        return
    decision = evaluate(spec, path.name)
    if "case" in spec:
        # An example case documents the whole policy: every clause, and the alternative or null.
        assert sorted(spec["clauses"]) == sorted(c.id for c in decision.clauses)
        assert "alternative" in spec, "an example case states its alternative (null: none)"
    optional = ("alternative", "documentation_requests", "conflicts")
    expected = {"determination": spec["determination"], "clauses": spec["clauses"]}
    expected |= {key: spec[key] for key in optional if key in spec}
    assert outcome(decision, spec) == expected


def fusion_examples() -> list[str]:
    """Return the example cases (relative paths) that request a lumbar fusion."""
    found = []
    for example in EXAMPLES:
        lines = json.loads(example.read_text(encoding="utf-8"))["request"]["lines"]
        if any(line["procedure"] == "lumbar_fusion" for line in lines):
            found.append(example.relative_to(ROOT).as_posix())
    return found


def test_every_fusion_example_has_one_expectation() -> None:
    named = [expectation(p).get("case") for p in EXPECTATIONS]
    missing = [case for case in fusion_examples() if named.count(case) != 1]
    assert not missing, f"need exactly one tests/cases file each: {missing}"


def golden_cases() -> list[tuple[str, str]]:
    """Return (case path, policy) for every expectation of a good case file."""
    found = []
    for path in EXPECTATIONS:
        spec = expectation(path)
        if "case" in spec and "error" not in spec:
            found.append((spec["case"], spec["policy"]))
    return found


GOLDEN_CASES = golden_cases()


@pytest.mark.parametrize(
    ("case", "policy"), GOLDEN_CASES, ids=[Path(c).stem for c, _ in GOLDEN_CASES]
)
def test_golden(case: str, policy: str, update_golden: bool) -> None:
    decision = api.evaluate_path(ROOT / case, policy)
    current = render.decision_json(decision, evaluated_at=None)
    # Provenance hashes the schemas and the evaluator version, which change with every release;
    # tests/test_records.py checks it.
    del current["provenance"]
    path = GOLDEN / f"{Path(case).stem}.json"
    if update_golden:
        GOLDEN.mkdir(exist_ok=True)
        text = json.dumps(current, indent=2, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path.name} is missing: run pytest with --update-golden"
    # Compared as data: the golden file's layout is not part of the contract.
    assert json.loads(path.read_text(encoding="utf-8")) == current
