"""`evaluate --explain`: the firing trace observes the engine and leads back to the documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.cli.main import main
from evaluator.decide.explain import ChainNode, explanation_text
from evaluator.engine.durable import Engine
from evaluator.language.policies import Library
from evaluator.render import decision as render

ROOT = Path(__file__).parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
SCHEMA = json.loads((ROOT / "schemas" / "decision.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def explained() -> Any:
    case = load_case(FOUNDING)
    return api.evaluate(case, api.select_policy(case, "lumbar-fusion", Library()), explain=True)


def walk(node: ChainNode) -> list[ChainNode]:
    return [node, *(n for child in node.children for n in walk(child))]


def test_tracing_is_off_by_default() -> None:
    case = load_case(FOUNDING)
    policy = api.select_policy(case, "lumbar-fusion", Library())
    assert api.evaluate(case, policy).explanation is None
    trace = Engine.get().run(api.program_for(policy), [f.as_dict() for f in case.facts])
    assert trace.log is None


def test_tracing_does_not_change_the_decision(explained: Any) -> None:
    case = load_case(FOUNDING)
    plain = api.evaluate(case, api.select_policy(case, "lumbar-fusion", Library()))
    traced = render.decision_json(explained)
    del traced["explanation"]
    assert traced == render.decision_json(plain)


def test_every_firing_in_order(explained: Any) -> None:
    steps = explained.explanation.steps
    assert [s.number for s in steps] == list(range(1, len(steps) + 1))
    case = load_case(FOUNDING)
    policy = api.select_policy(case, "lumbar-fusion", Library())
    program = api.program_for(policy)
    facts = [f.as_dict() for f in case.facts]
    # the SI-joint policy's determination, which lumbar-fusion reads (LF-SI-FIXATION)
    si = api.select_policy(case, "si-joint-fusion", Library())
    determination = api.evaluate(case, si).determination.value
    facts.append(
        {
            "t": "policy_result",
            "id": "policy_result:si-joint-fusion",
            "policy": "si-joint-fusion",
            "version": si.version,
            "determination": determination,
        }
    )
    assert len(steps) == Engine.get().run(program, facts).firings
    # Every derived fact a chain shows was asserted by the step it names.
    asserted = {ref.id: s.number for s in steps for ref in s.asserted}
    for chain in explained.explanation.chains:
        for node in walk(chain.root):
            if node.step is not None and node.fact.type not in ("determination", "alternative"):
                assert asserted[node.fact.id] == node.step


def test_instability_chain_reaches_the_fused_segments_and_their_document(explained: Any) -> None:
    chains = {c.subject: c for c in explained.explanation.chains if c.kind == "clause"}
    failed = {c.id for c in explained.clauses if c.status.value in ("not_met", "not_documented")}
    assert set(chains) == failed
    nodes = walk(chains["LF-INSTABILITY"].root)
    assert nodes[0].fact.text == "clause LF-INSTABILITY is not met"
    leaves = [n.fact for n in nodes if n.step is None]
    # a segment no finding names is reached twice: no route, and no slip read there
    segments = sorted({f.text.split(", segment ")[1].split(",")[0] for f in leaves})
    assert segments == ["L1-L2", "L2-L3", "S1-S2", "T12-L1"]
    assert all(f.source and f.source.startswith("surgeon_letter") for f in leaves)


def test_determination_and_alternative_chains(explained: Any) -> None:
    chains = {c.kind: c for c in explained.explanation.chains}
    determination = chains["determination"].root
    assert determination.fact.text == "not medically necessary"
    assert {c.fact.text for c in determination.children} == {
        "clause LF-INSTABILITY is not met",
        "clause LF-SI-FIXATION is not met",
    }
    nodes = walk(chains["alternative"].root)
    texts = [n.fact.text for n in nodes]
    assert any(t.startswith("unsupported fused segment (segment T12-L1)") for t in texts)
    # The scope offered goes back to the imaging findings and the radiology report.
    imaging = [n.fact for n in nodes if n.fact.type == "imaging_finding"]
    assert imaging
    assert all(f.source and f.source.startswith("radiology_report") for f in imaging)
    assert any(t.startswith("unstable segment (segment L3-L4") for t in texts)


def test_text_is_an_indented_tree(explained: Any) -> None:
    text = explanation_text(explained.explanation)
    assert text.startswith("WHY: FROM EACH FAILED CLAUSE BACK TO THE DOCUMENTS\n")
    assert "\nClause LF-INSTABILITY\n  - clause LF-INSTABILITY is not met  <- step " in text
    # the `every` is folded into the status rule, which matched its children's values
    assert "\n    - LF-INSTABILITY:requires/0 for fused_segment:" in text
    assert "          (no unstable segment matched)\n" in text  # a negation names what it missed
    assert '[document: surgeon_letter "' in text
    assert f"FIRINGS IN ORDER ({len(explained.explanation.steps)})" in text


def test_json_validates_against_the_decision_schema(explained: Any) -> None:
    data = json.loads(json.dumps(render.decision_json(explained, None)))
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, errors[:5]
    assert data["explanation"]["chains"][0]["tree"]["from"]
    broken = json.loads(json.dumps(data))
    broken["explanation"]["firings"][0]["step"] = 0
    assert not validator.is_valid(broken)


def test_cli_explain_text_and_json() -> None:
    runner = CliRunner()
    text = runner.invoke(main, ["evaluate", str(FOUNDING), "--explain"])
    assert text.exit_code == 3  # the decompression line is pended
    assert "EXPLANATION: fusion" in text.stdout
    assert "Clause LF-INSTABILITY" in text.stdout
    as_json = runner.invoke(main, ["evaluate", str(FOUNDING), "--explain", "--format", "json"])
    data = json.loads(as_json.stdout)
    assert all("explanation" in line for line in data["lines"])
    jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    plain = runner.invoke(main, ["evaluate", str(FOUNDING), "--format", "json"])
    assert all("explanation" not in line for line in json.loads(plain.stdout)["lines"])


def test_cli_explain_refuses_the_notice() -> None:
    result = CliRunner().invoke(main, ["evaluate", str(FOUNDING), "--explain", "--format", "html"])
    assert result.exit_code == 2
    assert "--explain" in result.output
    assert "Traceback" not in result.output
