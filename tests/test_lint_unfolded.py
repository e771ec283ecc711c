"""Lint warns (`unfolded`) when the engine refuses a policy's folded program: the policy then
runs on the per-node lowering (evaluator/compile/compiler.py `compile_policy`, evaluator/api.py
`_compiled`), deciding alike with about twice the firings, which before only the bound in
tests/test_folding.py noticed.

The refusal is provoked as tests/test_fail_closed.py breaks tests: every rendered test is
wrapped in two `$and`s of itself, which match what it matched but take four more of the 31
expression slots durable_rules gives one pattern (error 113; ruleset.py MAX_EXPRESSIONS, which
the compiler counts on the rendered tests). The folded clause tests its three leaves in one
pattern and is refused; the per-node lowering's patterns test one leaf each and register.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from evaluator import api
from evaluator.authoring.lint import RULES, Severity, lint_paths, lint_policy
from evaluator.compile import ruleset
from evaluator.compile.program import Test
from evaluator.language.policies import load_policy
from tests.test_policy_references import _policy as one_clause_policy

# One clause whose folded rule tests the nicotine fact on three leaves in one pattern.
REQUIRES = {
    "any": [
        {"fact": "nicotine", "field": "cotinine", "at_most": {"value": 10, "unit": "ng/mL"}},
        {"fact": "nicotine", "field": "status", "one_of": ["never", "former"]},
        {
            "fact": "nicotine",
            "field": "quit_date",
            "measure": "time_before_request",
            "at_least": {"value": 6, "unit": "weeks"},
        },
    ]
}


def _policy(root: Path) -> Path:
    # a new id each time: the engine keeps one ruleset per name for the process
    return one_clause_policy(root / "policies", f"unfolded-{uuid.uuid4().hex[:8]}", REQUIRES)


@pytest.fixture
def wide_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rendered test takes four more expression slots."""
    original = ruleset.render_test

    def render_test(test: Test) -> dict[str, Any]:
        return {"$and": [{"$and": [original(test)]}]}

    monkeypatch.setattr(ruleset, "render_test", render_test)
    # rendered anew: the disk caches hold the plain rendering of the same rules
    monkeypatch.setenv("NECESSITY_CACHE_DIR", "off")


@pytest.mark.usefixtures("wide_tests")
def test_a_policy_whose_folded_program_the_engine_refuses_is_reported(tmp_path: Path) -> None:
    path = _policy(tmp_path)
    policy = load_policy(path)
    # what the evaluation runs: the per-node lowering, silently
    assert api.program_for(policy).name.endswith("~unfolded")
    findings = lint_policy(policy)
    assert [(f.code, f.severity) for f in findings] == [("unfolded", Severity.WARNING)]
    (finding,) = findings
    assert finding.location.file == str(path)
    assert "folded program" in finding.problem.message
    report = lint_paths([path])
    assert not report.failed  # a warning: the policy decides alike
    assert [f.code for f in report.findings] == ["unfolded"]
    sarif: Any = report.sarif()
    assert "unfolded" in {rule["id"] for rule in sarif["runs"][0]["tool"]["driver"]["rules"]}
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["unfolded"]


def test_a_policy_whose_folded_program_registers_is_not_reported(tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path))
    assert not api.program_for(policy).name.endswith("~unfolded")
    assert [f.code for f in lint_policy(policy)] == []


def test_the_rule_is_a_warning() -> None:
    assert RULES["unfolded"].severity is Severity.WARNING
