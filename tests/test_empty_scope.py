"""An empty scope never satisfies `every` (issue 7, first point).

A fusion line with no levels was approved: "instability at every fused segment" held over no
segments. Two defences, each tested: the case schema requires the levels of fusion and
decompression lines (a located input error, exit 2), and the language makes an `every` over an
empty set not documented unless the clause says otherwise (`if_empty`), for any policy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_compiler import clause, document  # type: ignore[import-not-found]

from evaluator import api
from evaluator.authoring.coverage import reachable_statuses
from evaluator.case.cases import load_case
from evaluator.cli.main import main
from evaluator.language.describe import head_text
from evaluator.language.model import Determination, Status
from evaluator.language.policies import Library, load_policy

ROOT = Path(__file__).parent.parent
HOSTILE = Path(__file__).parent / "hostile" / "cases"


@pytest.mark.parametrize("name", ["fusion", "decompression"])
def test_a_line_without_its_levels_is_a_located_input_error(name):
    """tests/hostile/cases/<name>-line-without-levels.json, run as its sidecar says."""
    path = HOSTILE / f"{name}-line-without-levels.json"
    result = CliRunner().invoke(main, ["evaluate", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:17:7 (/request/lines/0): missing required property `{name}`" in result.output
    assert "Traceback" not in result.output


def test_the_engine_fails_closed_on_a_fusion_line_without_segments():
    """Past the schema (facts built another way), the engine itself does not approve."""
    case = load_case(ROOT / "examples" / "cases" / "dynamic-instability.json")
    empty = dataclasses.replace(
        case, facts=tuple(f for f in case.facts if f.type != "fused_segment")
    )
    policy = Library().get("lumbar-fusion")
    decision = api.evaluate(empty, policy)
    assert decision.determination is not Determination.MEDICALLY_NECESSARY
    instability = next(c for c in decision.clauses if c.id == "LF-INSTABILITY")
    # no segments: this clause's `every` says `if_empty: "false"` (not met)
    assert instability.status is Status.NOT_MET


def test_every_if_empty_in_the_schema_and_the_language(tmp_path):
    """`if_empty` is a key of `every` only; a wrong value is a located schema error."""
    policy = (ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml").read_text()
    before = '            if_empty: "false"\n'
    after = "            if_empty: maybe\n"
    bad = policy.replace(before, after, 1)
    assert bad != policy
    path = tmp_path / "lumbar-fusion" / "2025.1.yaml"
    path.parent.mkdir()
    path.write_text(bad)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "/every/if_empty" in result.output
    assert json.dumps("maybe")[1:-1] in result.output


def _if_empty_policy(tmp_path: Path, if_empty: str | None) -> Path:
    every: dict[str, object] = {
        "fact": "fused_segment",
        "as": "s",
        "require": {"exists": {"fact": "red_flag"}},  # true or false, never unknown
    }
    if if_empty is not None:
        every["if_empty"] = if_empty
    requires = {"every": every}
    data = document([clause("E-ONE", requires, applies_when={"exists": {"fact": "line"}})], "empty")
    path = tmp_path / "empty" / "1.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("if_empty", "reachable", "words"),
    [
        (None, {"met", "not_met", "not_documented"}, None),
        ("true", {"met", "not_met"}, "counts as yes when there is none"),
        ("false", {"met", "not_met"}, "counts as no when there is none"),
    ],
)
def test_if_empty_in_coverage_and_rendering(tmp_path, if_empty, reachable, words):
    policy = load_policy(_if_empty_policy(tmp_path, if_empty))
    statuses = {s.value for s in reachable_statuses(policy)["E-ONE"]} - {"not_applicable"}
    assert statuses == reachable
    text = head_text(policy.clauses[0].requires)
    assert (words in text) if words else ("when there is none" not in text)
