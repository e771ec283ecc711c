"""Plan overlays (issue 11, point 6): a plan's settings and waivers over a base policy.

The shipped example (policies/lumbar-decompression/plans/medicare-advantage.yaml) has its own
suite (tests/plan-medicare-advantage.yaml, run by `necessity test`) and example case. Here:
what the decision records, the errors a plan or a case can cause, show and lint.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from evaluator import api
from evaluator.authoring import fmt, show
from evaluator.authoring.lint import lint_paths
from evaluator.case.cases import case_from_data, load_case
from evaluator.cli.main import main
from evaluator.compile import ruleset
from evaluator.decide.decision import ClauseResult, Decision
from evaluator.errors import CaseError, PolicyError
from evaluator.language.model import Determination, Status
from evaluator.language.plans import load_plan
from evaluator.language.policies import Library, PolicyRef, with_plan
from evaluator.render import decision as render
from evaluator.render import notice

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "cases" / "ld-medicare-advantage-8-weeks.json"
PLAN = ROOT / "policies" / "lumbar-decompression" / "plans" / "medicare-advantage.yaml"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="necessity")


def example_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return data


def test_the_plan_decides_and_the_base_does_not() -> None:
    with_plan_case = load_case(EXAMPLE)
    decision = api.evaluate(with_plan_case, Library().get("lumbar-decompression"))
    assert decision.determination is Determination.NOT_MEDICALLY_NECESSARY
    data = example_data()
    del data["request"]["plan"]
    base = api.evaluate(case_from_data(data, "c.json"), Library().get("lumbar-decompression"))
    assert base.determination is Determination.MEDICALLY_NECESSARY


def test_the_decision_records_the_plan_and_its_hash() -> None:
    decision = api.evaluate_path(EXAMPLE)
    review = api.review_path(EXAMPLE)
    assert review.lines[0].decision is not None
    for made in (decision, review.lines[0].decision):
        plan = made.provenance["plan"]
        assert plan["id"] == "medicare-advantage"
        assert plan["line_of_business"] == "medicare_advantage"
        assert plan["sha256"] == load_plan(PLAN).sha256
    base = Library().get("lumbar-decompression")
    # the effective policy's content hash covers the plan: it is not the base's
    assert decision.provenance["policy_content_sha256"] != base.content_sha256
    assert decision.provenance["policy_sha256"] == base.sha256


def test_a_plan_edited_in_place_fails_verification(tmp_path: Path) -> None:
    library = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", library)
    result = run("evaluate", EXAMPLE, "--format", "json", "--policies-dir", library)
    recorded = tmp_path / "decision.json"
    recorded.write_text(result.stdout, encoding="utf-8")
    assert run("verify", recorded, "--case", EXAMPLE, "--policies-dir", library).exit_code == 0
    plan = library / "lumbar-decompression" / "plans" / "medicare-advantage.yaml"
    plan.write_text(plan.read_text().replace("value: 12", "value: 8"), encoding="utf-8")
    result = run("verify", recorded, "--case", EXAMPLE, "--policies-dir", library)
    assert result.exit_code == 1, result.output
    assert "/lines/0/provenance/plan/sha256" in result.stdout


def test_a_plan_no_policy_has_is_a_located_case_error() -> None:
    data = example_data()
    data["request"]["plan"] = "medicare-advantgae"
    with pytest.raises(CaseError) as raised:
        api.evaluate(case_from_data(data, "c.json"), Library().get("lumbar-decompression"))
    assert raised.value.code == "unknown_plan"
    assert raised.value.problems[0].location.pointer == "/request/plan"


def test_a_policy_without_that_overlay_applies_as_it_is() -> None:
    # the fusion policy has no medicare-advantage overlay: the plan changes nothing there
    case = load_case(ROOT / "examples" / "cases" / "l4-l5-approvable.json")
    data = copy.deepcopy(dict(case.data))
    data["request"]["plan"] = "medicare-advantage"
    decision = api.evaluate(case_from_data(data, "c.json"), Library().get("lumbar-fusion"))
    assert "plan" not in decision.provenance
    assert (
        decision.determination is api.evaluate(case, Library().get("lumbar-fusion")).determination
    )


def _plan(tmp_path: Path, **change: Any) -> Path:
    folder = tmp_path / "policies" / "lumbar-decompression"
    shutil.copytree(ROOT / "policies" / "lumbar-decompression", folder)
    data = json.loads(json.dumps(load_plan(PLAN).document.data))
    data.update(change)
    path = folder / "plans" / "medicare-advantage.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_plan_pinned_to_another_version_is_an_error(tmp_path: Path) -> None:
    path = _plan(tmp_path, base={"policy": "lumbar-decompression", "version": "2024.1"})
    policy = Library(tmp_path / "policies").get("lumbar-decompression")
    with pytest.raises(PolicyError) as raised:
        with_plan(policy, load_plan(path))
    assert raised.value.code == "plan_version_not_in_force"
    assert raised.value.problems[0].location.pointer == "/base/version"


def test_a_plan_for_another_version_says_so_before_its_keys(tmp_path: Path) -> None:
    # Its keys were written for the version it names: checked against another they prove
    # nothing, and the overlay cannot apply at all. Only the version is reported.
    path = _plan(
        tmp_path,
        base={"policy": "lumbar-decompression", "version": "2024.1"},
        settings={"conservative_care_minimun": {"value": 8, "unit": "weeks"}},
    )
    policy = Library(tmp_path / "policies").get("lumbar-decompression")
    with pytest.raises(PolicyError) as raised:
        with_plan(policy, load_plan(path))
    assert [p.code for p in raised.value.problems] == ["plan_version_not_in_force"]
    assert raised.value.problems[0].location.pointer == "/base/version"


def test_a_plan_of_another_policy_says_so_before_its_version(tmp_path: Path) -> None:
    path = _plan(tmp_path, base={"policy": "lumbar-fusion", "version": "2024.1"})
    policy = Library(tmp_path / "policies").get("lumbar-decompression")
    with pytest.raises(PolicyError) as raised:
        with_plan(policy, load_plan(path))
    assert [p.code for p in raised.value.problems] == ["unknown_plan_base"]


def test_an_overlay_key_the_base_lacks_is_an_error_in_the_plan(tmp_path: Path) -> None:
    path = _plan(tmp_path, settings={"conservative_care_minimun": {"value": 8, "unit": "weeks"}})
    policy = Library(tmp_path / "policies").get("lumbar-decompression")
    with pytest.raises(PolicyError) as raised:
        with_plan(policy, load_plan(path))
    (problem,) = raised.value.problems
    assert (problem.code, problem.location.file) == ("unknown_plan_key", str(path))
    assert problem.location.pointer == "/settings/conservative_care_minimun"
    assert problem.hint == "did you mean `conservative_care_minimum`?"
    report = lint_paths([tmp_path / "policies"])
    assert [f.code for f in report.findings] == ["unknown_plan_key"]


def test_an_overlay_in_another_unit_is_an_error(tmp_path: Path) -> None:
    path = _plan(tmp_path, settings={"conservative_care_minimum": {"value": 3, "unit": "months"}})
    policy = Library(tmp_path / "policies").get("lumbar-decompression")
    with pytest.raises(PolicyError, match="is in weeks, not months"):
        with_plan(policy, load_plan(path))


def test_an_overlay_waiver_is_compiled_like_the_policy(tmp_path: Path) -> None:
    waiver = {"waived_by": {"fact": "red_flag", "field": "colour", "equals": "red"}}
    _plan(tmp_path, clauses={"LD-CONSERVATIVE-CARE": waiver})
    report = lint_paths([tmp_path / "policies"])
    assert "unknown_field" in {f.code for f in report.findings}


def test_the_plan_file_name_is_its_id(tmp_path: Path) -> None:
    path = _plan(tmp_path)
    path.rename(path.with_name("other.yaml"))
    with pytest.raises(PolicyError, match="does not match the file name"):
        load_plan(path.with_name("other.yaml"))


def test_show_renders_the_effective_policy() -> None:
    effective = api.planned_policy(
        Library(), PolicyRef("lumbar-decompression"), "medicare-advantage"
    )
    assert effective.settings["conservative_care_minimum"].value == 12
    text = show.policy_markdown(effective)
    assert "## Plan overlay" in text
    assert "- setting `conservative_care_minimum`: 6 weeks in the base policy, 12 weeks" in text
    care = text[text.index("#### LD-CONSERVATIVE-CARE") :]
    waiver = care[care.index("**Waived (not applicable) when:**") : care.index("**Requires:**")]
    assert "cauda equina syndrome" in waiver
    assert "tumour" not in waiver
    assert "at least 12 weeks" in care[: care.index("**References:**")]


FUSION_EXAMPLE = ROOT / "examples" / "cases" / "lf-commercial-ppo-5-months.json"


def test_the_fusion_plan_changes_the_care_duration_and_nothing_else() -> None:
    # the fusion overlay (plans/commercial-ppo.yaml) sets conservative care to 6 months where
    # the base policy has 3: its example case, without the plan, is the approvable baseline
    data: dict[str, Any] = json.loads(FUSION_EXAMPLE.read_text(encoding="utf-8"))
    planned = api.evaluate_path(FUSION_EXAMPLE)
    assert planned.provenance["plan"]["id"] == "commercial-ppo"
    del data["request"]["plan"]
    base = api.evaluate(case_from_data(data, "c.json"), Library().get("lumbar-fusion@2025.1"))
    assert base.determination is Determination.MEDICALLY_NECESSARY
    assert planned.determination is Determination.NOT_MEDICALLY_NECESSARY
    changed = {
        c.id: (b.status.value, c.status.value)
        for b, c in zip(base.clauses, planned.clauses, strict=True)
        if b.status is not c.status
    }
    assert changed == {"LF-CONSERVATIVE-DURATION": ("met", "not_met")}
    effective = api.planned_policy(Library(), PolicyRef("lumbar-fusion"), "commercial-ppo")
    text = show.policy_markdown(effective)
    assert "- setting `conservative_care_minimum`: 3 months in the base policy, 6 months" in text
    criterion = "conservative care: start is at least 6 months (setting conservative_care_minimum)"
    assert criterion in text


def test_the_fusion_plan_applies_to_every_version_in_force() -> None:
    # `version: in force`: a case of 2024 under the plan is decided by 2024.1 with the overlay
    # (2024.1 has the setting too), never by 2024.1 without it
    data: dict[str, Any] = json.loads(FUSION_EXAMPLE.read_text(encoding="utf-8"))
    data["request"]["date"] = "2024-06-20"
    data["conservative_care"]["start"] = "2024-01-15"
    # the episode's note moved with it: a note written after the request shows nothing
    data["conservative_care"]["source"]["date"] = "2024-01-15"
    case = case_from_data(data, "c.json")
    decision = api.evaluate(case, Library().get("lumbar-fusion", case.in_force_date))
    assert decision.policy_version == "2024.1"
    care = next(c for c in decision.clauses if c.id == "LF-CONSERVATIVE-DURATION")
    assert care.status.value == "not_met"
    assert care.evidence[0].condition.startswith("conservative care: start is at least 6 months")


def test_show_command_with_and_without_a_plan() -> None:
    result = run("show", "lumbar-decompression", "--plan", "medicare-advantage", "--format", "text")
    assert result.exit_code == 0, result.output
    assert "Plan:     medicare-advantage" in result.output
    assert "Plan overlay" not in run("show", "lumbar-decompression").output
    missing = run("show", "lumbar-decompression", "--plan", "nope")
    assert missing.exit_code == 2
    assert "has no plan overlay `nope`" in missing.output


def test_the_text_report_names_the_plan() -> None:
    result = run("evaluate", EXAMPLE, "--policy", "lumbar-decompression")
    assert result.exit_code == 1, result.output
    assert "Plan:           medicare-advantage (medicare advantage overlay)" in result.output


def test_the_recorded_decision_is_valid_against_its_schema() -> None:
    result = run("evaluate", EXAMPLE, "--policy", "lumbar-decompression", "--format", "json")
    data = json.loads(result.stdout)
    schema = json.loads((ROOT / "schemas" / "decision.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema)
    assert data["provenance"]["plan"]["id"] == "medicare-advantage"


@pytest.mark.parametrize(
    "path",
    [PLAN, ROOT / "policies" / "_shared" / "nicotine" / "2025.1.yaml"],
    ids=["plan", "module"],
)
def test_fmt_orders_plan_and_module_keys_from_their_schemas(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    modeline, _, body = text.partition("\n")
    # the top-level keys reversed: fmt restores the schema's order, the file is canonical
    top = [line for line in body.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(top) > 3
    reversed_text = modeline + "\n" + _reverse_top_level(body)
    assert reversed_text != text
    assert fmt.format_text(reversed_text, path.name) == text


def _reverse_top_level(body: str) -> str:
    chunks: list[list[str]] = []
    for line in body.splitlines():
        if line and not line.startswith((" ", "#", "-")):
            chunks.append([])
        chunks[-1].append(line)
    return "\n".join(line for chunk in reversed(chunks) for line in chunk) + "\n"


def test_validate_checks_a_plan_against_its_base(tmp_path: Path) -> None:
    assert run("validate", PLAN).exit_code == 0
    path = _plan(tmp_path, settings={"conservative_care": {"value": 8, "unit": "weeks"}})
    result = run("validate", path)
    assert result.exit_code == 2, result.output
    assert "has no setting `conservative_care`" in result.output
    pinned = _plan(tmp_path / "b", base={"policy": "lumbar-decompression", "version": "1999.1"})
    result = run("validate", pinned)
    assert result.exit_code == 2, result.output
    assert "unknown_plan_base" in run("validate", pinned, "--format", "json").output


def test_cases_reviewed_together_each_get_their_plan() -> None:
    # batches review the cases one policy judges in one engine session: the plan's case must
    # still be judged by the effective policy, the others by the base
    data = example_data()
    del data["request"]["plan"]
    base_case = case_from_data(data, "base.json")
    together = api.review_many([load_case(EXAMPLE), base_case], Library())
    assert not any(isinstance(r, Exception) for r in together)
    alone = [api.review_case(load_case(EXAMPLE), Library()), api.review_case(base_case, Library())]
    assert [r.overall for r in together] == [r.overall for r in alone]  # type: ignore[union-attr]
    assert [r.overall.value for r in alone] == ["not_medically_necessary", "medically_necessary"]


def test_a_plan_gets_its_own_cached_ruleset() -> None:
    """The overlay does not change the base file's data: the ruleset disk cache must still tell
    them apart (it served the base's rules to the plan, and a stage-3 rule fired in stage 1)."""

    base = Library().get("lumbar-decompression")
    planned = api.planned_policy(
        Library(), PolicyRef.parse("lumbar-decompression"), "medicare-advantage"
    )
    assert base.document is not None
    assert planned.document is not None
    assert ruleset.cache_key(base, folded=True) != ruleset.cache_key(planned, folded=True)


def test_texts_state_the_effective_setting_never_the_base_under_a_plan() -> None:
    # `{setting.conservative_care_minimum}` in the clause's title, rationale, finding and
    # recommendation: the plan's 6 months in its decision, notice and report, the base's 3
    # without it. Base, plan, base again in one process: the assembly plan of one effective
    # policy never serves the other.
    data: dict[str, Any] = json.loads(FUSION_EXAMPLE.read_text(encoding="utf-8"))
    del data["request"]["plan"]
    data["conservative_care"]["start"] = "2025-04-15"  # 2 months: short of both
    base_case = case_from_data(data, "base.json")
    library = Library()

    def base_decision() -> Decision:
        return api.evaluate(base_case, library.get("lumbar-fusion@2025.1"))

    def care(decision: Decision) -> ClauseResult:
        return next(c for c in decision.clauses if c.id == "LF-CONSERVATIVE-DURATION")

    first = base_decision()
    planned = api.evaluate_path(FUSION_EXAMPLE)
    again = base_decision()
    assert care(first) == care(again)
    for decision, months, other in (
        (first, "3 months", "6 months"),
        (planned, "6 months", "3 months"),
    ):
        clause = care(decision)
        assert clause.status is Status.NOT_MET
        assert clause.title == f"Conservative care for at least {months}"
        assert clause.rationale is not None
        assert f"less than {months} before" in clause.rationale
        assert clause.finding is not None
        assert f"short of the {months} required" in clause.finding
        assert clause.recommendation == (
            f"Complete at least {months} of comprehensive non-operative care."
        )
        shown = (
            notice.to_markdown(notice.decision_notice(decision)),
            render.decision_text(decision),
        )
        for text in shown:
            assert f"Complete at least {months} of comprehensive" in text
            assert f"Conservative care for at least {months}" in text
            assert f"at least {other}" not in text.replace("at least 6 weeks", "")
            assert "{setting." not in text


def test_show_states_the_plan_s_setting_in_the_clause_texts() -> None:
    base = run("show", "lumbar-fusion")
    planned = run("show", "lumbar-fusion", "--plan", "commercial-ppo")
    assert base.exit_code == planned.exit_code == 0, base.output + planned.output
    for result, months in ((base, "3 months"), (planned, "6 months")):
        assert f"LF-CONSERVATIVE-DURATION: Conservative care for at least {months}" in result.output
        assert f"**Recommendation:** Complete at least {months} of comprehensive" in result.output
        # (the changelog may name the placeholder; no clause text shows one unfilled)
        assert "{setting.conservative_care_minimum}" not in result.output
