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

from evaluator import api
from evaluator.cases import load_case
from evaluator.cli import main
from evaluator.model import Determination, Status
from evaluator.policies import Library

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
    # unknown over no segments; this clause maps undocumented to not met
    assert instability.status is Status.NOT_MET


def test_every_if_empty_in_the_schema_and_the_language(tmp_path):
    """`if_empty` is a key of `every` only; a wrong value is a located schema error."""
    policy = (ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml").read_text()
    before = "            as: seg\n            require:\n              exists"
    after = before.replace("require:", "if_empty: maybe\n            require:")
    bad = policy.replace(before, after, 1)
    assert bad != policy
    path = tmp_path / "lumbar-fusion" / "2025.1.yaml"
    path.parent.mkdir()
    path.write_text(bad)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "/every/if_empty" in result.output
    assert json.dumps("maybe")[1:-1] in result.output
