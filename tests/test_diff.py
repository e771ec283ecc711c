"""`necessity diff`: the semantic diff, its witnesses, and the properties it must keep."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.audit import diff, render_diff, witness
from evaluator.case import cases
from evaluator.cli.main import main
from evaluator.language.conditions import children
from evaluator.language.policies import load_policy
from evaluator.read import source

ROOT = Path(__file__).parent.parent
FUSION = ROOT / "policies" / "lumbar-fusion"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="necessity")


@pytest.fixture(scope="module")
def fusion_diff() -> diff.Diff:
    return diff.diff("lumbar-fusion@2024.1", "lumbar-fusion@2025.1")


# --- 2024.1 -> 2025.1: exactly the intended changes -----------------------------------------------

# Worked out from the two files and the 2025.1 changelog: the PT and measured-films clauses are
# new, translation went from 2 to 3 mm, the deformity route and SI fixation need the new clause;
# the rest is wording and lifecycle metadata. Issue 8 then changed 2025.1 in place: imaging
# correlation needs an MRI or CT performed, flexion-extension views not obtained make the motion
# route false, and SI fixation gained the SI-joint-criteria route (a reference to that policy).
# Issue 11 then asked for an HbA1c from the 90 days before the request (LF-DIABETES).
INTENDED = {
    ("metadata", "status", "changed", False),
    ("metadata", "effective_from", "changed", False),
    ("metadata", "effective_until", "changed", False),
    ("metadata", "supersedes", "changed", False),
    ("metadata", "changelog", "changed", False),
    ("setting", "fe_translation", "changed", None),
    ("setting note", "fe_translation", "changed", False),
    ("reference", "9", "added", False),
    ("rule", "unstable-motion", "changed", None),
    ("rule", "unstable-deformity-construct", "changed", None),
    # 2025.1 imports the red-flag waiver and the nicotine clause from shared modules (a new
    # origin), both amended in place at stop 22 (wrong approvals): the waiver needs a motor
    # deficit documented as progressive (the search finds no witness: None), and a never-user
    # whose cotinine is above 10 ng/mL does not meet the nicotine clause
    ("clause", "LF-URGENT", "changed", None),
    ("import", "red-flags", "added", False),
    ("import", "nicotine", "added", False),
    ("clause", "LF-NICOTINE", "changed", True),
    # amended in place at stop 23 (a wrong approval): measured on standing full-length films
    ("clause", "LF-DEFORMITY-SIGNIFICANT", "changed", True),
    ("clause", "LF-INSTABILITY", "changed", True),
    ("clause", "LF-IMAGING-CORRELATION", "changed", True),
    ("clause", "LF-SI-FIXATION", "changed", True),
    ("clause", "LF-DIABETES", "changed", True),
    ("clause", "LF-PHYSICAL-THERAPY", "added", True),
    ("clause", "LF-DEFORMITY-MEASURED", "added", True),
    # wording only: 2025.1 words findings for these clauses (issue 12); nothing they decide
    # (LF-DIABETES and LF-NICOTINE also changed what they decide, above)
    ("clause", "LF-CONSERVATIVE-DURATION", "changed", False),
    # Issue 11 point 7, amended in place: functional impairment (with its setting and reference)
    # and imaging recency are new.
    ("setting", "odi_minimum", "added", None),
    ("setting note", "odi_minimum", "added", False),
    ("reference", "11", "added", False),
    ("clause", "LF-FUNCTIONAL-IMPAIRMENT", "added", True),
    ("clause", "LF-IMAGING-RECENT", "added", True),
    # Issue 11 point 6, amended in place: the care durations and recency windows became settings
    # a plan may change, each with the value the clause had written (decision-neutral: the
    # clauses that read them are changed in wording only, or new). 2024.1 has the two of its own
    # clauses (conservative_care_minimum, hba1c_limit) too, so only the others are new.
    *(
        (category, name, "added", decides)
        for name in (
            "physical_therapy_minimum",
            "physical_therapy_recency",
            "imaging_recency",
            "hba1c_recency",
        )
        for category, decides in (("setting", None), ("setting note", False))
    ),
    # Stop 22, amended in place (a wrong approval): the rules reading imaging findings take them
    # only from a study not shown to be older than imaging_recency; LF-IMAGING-CORRELATION reads
    # them through the alternative-decompression rule's condition (already changed above).
    ("rule", "unstable-spondylolisthesis", "changed", None),
    ("rule", "alternative-decompression", "changed", None),
    # Stop 24, the nicotine module amended in place (a wrong approval): its abstinence route
    # counts the derived verifying_cotinine (LF-NICOTINE, already changed above).
    ("rule", "verifying-cotinine", "added", None),
    # Stop 24, amended in place (a wrong approval): the latest flexion-extension films decide
    # the motion route, read from a derived reading per views and segment (new derived facts
    # motion_reading and motion_at_segment); LF-INSTABILITY, already changed above, reads the
    # segments whose latest films disagree.
    ("rule", "motion-reading", "added", None),
    ("rule", "motion-reading-angulation", "added", None),
    ("rule", "no-motion-reading", "added", None),
    ("rule", "unsettled-motion", "added", None),
    # Stop 26, amended in place (a wrong approval): a coded HbA1c at or above the limit dated
    # after the request (late_observation) is derived as late_hba1c_at_limit, and its absence
    # as hba1c_uncontradicted, which LF-DIABETES (already changed above) reads.
    ("rule", "late-hba1c-at-limit", "added", None),
    ("rule", "hba1c-uncontradicted", "added", None),
    # Stop 26, amended in place (a wrong denial): views that leave the motion unknown ("moderate",
    # or a measurement left out) and no later views supersede leave the segment not documented
    # (new derived fact unmeasured_reading; motion_at_segment, which LF-INSTABILITY reads).
    ("rule", "unmeasured-reading", "added", None),
    ("rule", "unmeasured-reading-angulation", "added", None),
    ("rule", "unmeasured-motion", "added", None),
    # Stop 27, amended in place (a wrong approval): the fusion includes a lumbar segment (a
    # C5-C6 fusion beside lumbar deformity films was approved).
    ("clause", "LF-LUMBAR-LEVELS", "added", True),
    ("metadata", "derived", "changed", None),
}


def test_2024_to_2025_lists_exactly_the_intended_changes(fusion_diff: diff.Diff) -> None:
    found = {(c.category, c.key, c.action, c.decides) for c in fusion_diff.changes}
    assert found == INTENDED


def test_changed_leaves_are_in_words(fusion_diff: diff.Diff) -> None:
    by_key = {(c.category, c.key): c for c in fusion_diff.changes}
    motion = by_key["rule", "unstable-motion"].details[0]
    assert "translation is at least 2 mm" in motion.split(" -> ")[0]
    assert "translation is at least 3 mm" in motion.split(" -> ")[1]
    assert "there is a dynamic study (not performed)" in motion.split(" -> ")[1]
    assert by_key["setting", "fe_translation"].details == ("2 mm -> 3 mm",)
    assert by_key["clause", "LF-SI-FIXATION"].details[0] == (
        # flattened, this read "any of: measured; significant; SI fusion": not what it says
        "requires: clause LF-DEFORMITY-SIGNIFICANT is met -> any of (all of (clause "
        "LF-DEFORMITY-MEASURED is met; clause LF-DEFORMITY-SIGNIFICANT is met); policy "
        "si-joint-fusion finds it medically necessary)"
    )
    # the waiver's motor-deficit route needs progression since stop 22 (red-flags amended in
    # place), on both conditions the shared template writes
    urgent = by_key["clause", "LF-URGENT"].details
    progressive = "-> all of (flag: strength is at most 3/5; flag: progressive is yes)"
    assert urgent[0].startswith("applies when:")
    assert urgent[0].endswith(progressive)
    assert urgent[1].startswith("requires:")
    assert urgent[1].endswith(progressive)
    assert "origin: (none) -> red-flags@2025.1 red-flag-waiver" in urgent
    assert (
        "origin: (none) -> nicotine@2025.1 nicotine-free" in by_key["clause", "LF-NICOTINE"].details
    )


def test_every_printed_witness_flips_its_clause(fusion_diff: diff.Diff) -> None:
    witness._OUTCOMES.clear()  # evaluate afresh, not from the search's cache
    shown = [c for c in fusion_diff.changes if c.witness is not None]
    # the five of issue 8, LF-DIABETES and the two new clauses (issue 11), LF-NICOTINE (stop 22),
    # LF-DEFORMITY-SIGNIFICANT (stop 23), LF-LUMBAR-LEVELS (stop 27)
    assert len(shown) == 11
    for change in shown:
        w = change.witness
        assert w is not None
        old = witness.outcome(fusion_diff.old, w.facts)
        new = witness.outcome(fusion_diff.new, w.facts)
        assert witness.differs(change.key, old, new), change.key
        assert (old, new) == (w.old, w.new)


def test_witnesses_are_shrunk(fusion_diff: diff.Diff) -> None:
    for change in fusion_diff.changes:
        if change.witness is not None:
            # every fact but the case frame is needed: removing any one loses the difference
            facts = change.witness.facts
            for i, fact in enumerate(facts):
                if fact["t"] in ("case", "request", "line"):
                    continue
                trial = (*facts[:i], *facts[i + 1 :])
                old = witness.outcome(fusion_diff.old, trial)
                new = witness.outcome(fusion_diff.new, trial)
                assert not witness.differs(change.key, old, new)


def test_text_json_and_markdown(fusion_diff: diff.Diff) -> None:
    text = render_diff.diff_text(fusion_diff)
    assert "LF-PHYSICAL-THERAPY (added): can change a decision" in text
    assert "LF-CONSERVATIVE-DURATION (changed): decision-neutral" in text
    data = render_diff.diff_json(fusion_diff)
    assert data["identical"] is False
    assert {c["decision"] for c in data["changes"]} == {"can_change", "neutral", "no_witness_found"}
    markdown = render_diff.diff_markdown(fusion_diff)
    assert markdown.startswith("# Policy change: `lumbar-fusion@2024.1` -> `lumbar-fusion@2025.1`")
    assert "| clause | `LF-INSTABILITY` | changed | can change a decision |" in markdown


def test_cli_exit_codes(tmp_path: Path) -> None:
    same = run("diff", "lumbar-fusion@2025.1", FUSION / "2025.1.yaml")
    assert same.exit_code == 0, same.output
    assert "no semantic difference" in same.stdout
    missing = run("diff", "lumbar-fusion@2025.1", tmp_path / "nope.yaml")
    assert missing.exit_code == 2
    assert "Traceback" not in missing.output
    unknown = run("diff", "lumbar-fusion@2025.1", "lumbar-fusion@1999.1")
    assert unknown.exit_code == 2


# --- 2025.1 -> 2026.1: the draft's own changes, and nothing the draft lacks ----------------------

# Worked out from the two files and the 2026.1 changelog: the slip-grade rule is the one change of
# logic (it reaches LF-INSTABILITY); LF-DIABETES is the same clause in both (2026.1 took 2025.1's
# 90-day HbA1c), so it is not a difference. The draft does not yet word findings (issue 12), a
# decision-neutral difference in the clauses 2025.1 words them for.
INTENDED_2026 = {
    ("metadata", "status", "changed", False),
    ("metadata", "effective_from", "changed", False),
    ("metadata", "supersedes", "changed", False),
    ("metadata", "changelog", "changed", False),
    ("rule", "unstable-spondylolisthesis", "changed", None),
    ("clause", "LF-INSTABILITY", "changed", True),
    *(
        ("clause", clause, "changed", False)
        for clause in (
            "LF-CONSERVATIVE-DURATION",
            "LF-PHYSICAL-THERAPY",
            "LF-FUNCTIONAL-IMPAIRMENT",
            "LF-IMAGING-RECENT",
            "LF-IMAGING-CORRELATION",
            "LF-DEFORMITY-MEASURED",
            "LF-DEFORMITY-SIGNIFICANT",
            "LF-SI-FIXATION",
        )
    ),
}


def test_2025_to_2026_lists_exactly_the_draft_s_changes() -> None:
    found = diff.diff("lumbar-fusion@2025.1", "lumbar-fusion@2026.1")
    assert {(c.category, c.key, c.action, c.decides) for c in found.changes} == INTENDED_2026


# --- what makes no difference ---------------------------------------------------------------------


def _scramble(value: Any) -> Any:
    # Keys in reverse order, `all`/`any` parts and rules reversed: the same policy.
    if isinstance(value, dict):
        return {k: _scramble(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        items = [_scramble(v) for v in value]
        return items[::-1] if items and isinstance(items[0], dict) and "fact" in items[0] else items
    return value


def test_a_reformatted_reordered_anchor_expanded_copy_is_identical(tmp_path: Path) -> None:
    original = FUSION / "2025.1.yaml"
    data = source.load(original).data  # anchors and merge keys expanded, comments gone
    scrambled = _scramble(json.loads(json.dumps(data)))
    scrambled["rules"] = scrambled["rules"][::-1]
    scrambled["sections"] = scrambled["sections"][::-1]
    copy = tmp_path / "2025.1.yaml"
    copy.write_text(json.dumps(scrambled, indent=1), encoding="utf-8")  # JSON is YAML
    assert copy.read_text() != original.read_text()
    result = diff.diff(str(original), str(copy))
    assert result.identical, [c.as_json() for c in result.changes]
    assert run("diff", original, copy).exit_code == 0


def test_git_revisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    folder = repo / "policies" / "lumbar-fusion"
    folder.mkdir(parents=True)
    policy = folder / "2025.1.yaml"
    shutil.copyfile(FUSION / "2025.1.yaml", policy)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    policy.write_text(policy.read_text().replace("value: 3.0", "value: 3.5"), encoding="utf-8")
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    monkeypatch.chdir(repo)
    path = "policies/lumbar-fusion/2025.1.yaml"
    changed = run("diff", f"git:HEAD~1:{path}", path)
    assert changed.exit_code == 1, changed.output
    assert "translation at least 3 mm -> at least 3.5 mm" in changed.stdout
    assert run("diff", f"git:HEAD:{path}", path).exit_code == 0
    bad = run("diff", "git:nosuchrev:" + path, path)
    assert bad.exit_code == 2
    assert "Traceback" not in bad.output


# --- properties (Hypothesis) ----------------------------------------------------------------------

POLICY = """\
id: demo
version: "{version}"
title: demo
status: active
effective: {{from: "2025-01-01"}}
procedures: [{{procedure: lumbar_fusion}}]
references: [{{id: 1, citation: "{citation}"}}]
sections:
  - id: s
    title: S
    clauses:
      - id: D-HBA1C
        title: HbA1c
        requires: {{fact: diabetes, field: hba1c, {op}: {{value: {value}, unit: "%"}}}}
        undocumented: {undocumented}
        cites: [1]
        recommendation: r
      - id: D-NICOTINE
        title: never smoked
        requires: {{fact: nicotine, field: status, equals: {nicotine}}}
        cites: [1]
        recommendation: r
"""

policies = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["at_least", "more_than", "at_most", "less_than"]),
        "value": st.sampled_from([7, 7.5, 8]),
        "undocumented": st.sampled_from(["not_documented", "not_met"]),
        "nicotine": st.sampled_from(["never", "former"]),
        "citation": st.sampled_from(["a", "b"]),
    }
)


def _write(folder: Path, params: dict[str, Any], version: str) -> Path:
    path = folder / version / f"{version}.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(POLICY.format(version=version, **params), encoding="utf-8")
    return path


def _bases() -> list[witness.Facts]:
    out: list[witness.Facts] = []
    for hba1c in (6.5, 7.0, 8.0, None):
        for status in ("never", "former"):
            data: dict[str, Any] = {
                "case_id": "x",
                "request": {
                    "date": "2025-06-20",
                    "lines": [{"id": "f", "procedure": "lumbar_fusion", "fusion": "L4-L5"}],
                },
                "diabetes": {"diabetic": True},
                "nicotine": {"status": status},
            }
            if hba1c is not None:
                data["diabetes"]["hba1c_pct"] = hba1c
            out.append(tuple(cases.case_from_data(data, "x.json").fact_dicts()))
    return out


BASES = _bases()
PROPERTY = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(policies)
def test_a_policy_against_itself_is_identical(params: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        one = load_policy(_write(Path(tmp), params, "1"))
        two = load_policy(_write(Path(tmp) / "again", params, "1"))
        assert diff.compare(one, two, BASES).identical


def _flipped(change: diff.Change) -> tuple[str, str, str]:
    action = {"added": "removed", "removed": "added"}.get(change.action, change.action)
    return change.category, change.key, action


@PROPERTY
@given(policies, policies)
def test_diff_mirrors_and_every_witness_flips(a: dict[str, Any], b: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old = load_policy(_write(Path(tmp), a, "1"))
        new = load_policy(_write(Path(tmp), b, "2"))
        forward = diff.compare(old, new, BASES)
        backward = diff.compare(new, old, BASES)
        assert {_flipped(c) for c in forward.changes} == {
            (c.category, c.key, c.action) for c in backward.changes
        }
        # a witness one way is a witness the other way
        assert {c.key for c in forward.changes if c.decides} == {
            c.key for c in backward.changes if c.decides
        }
        for change in (*forward.changes, *backward.changes):
            if change.witness is not None:
                w = change.witness
                first, second = (old, new) if change in forward.changes else (new, old)
                witness._OUTCOMES.clear()
                assert witness.differs(
                    change.key, witness.outcome(first, w.facts), witness.outcome(second, w.facts)
                )
        if a == b:
            assert forward.identical


def test_a_replaced_condition_keeps_its_structure_in_one_line() -> None:
    # Found at stop 22: a condition replaced by one of another shape printed as its leaves
    # joined by `;` under the outer head, so `any of (none of (line is left), pain on the
    # left)` read as "all of: line is left; pain on the left; line is right; ..." to an auditor.
    policies = {p.id: p for p in (load_policy(f) for f in _bundled("si-joint-fusion"))}
    clause = next(c for c in policies["si-joint-fusion"].clauses if c.id == "SI-PAIN-LOCATION")
    # any of (none of (the request fuses the left joint), pain on the left)
    left = next(iter(children(clause.requires)))
    (line,) = diff.condition_changes(clause.requires, list(children(left))[1])
    before = line.split(" -> ")[0]
    assert before.startswith("all of (any of (none of (line (procedure: SI joint fusion): side is")
    assert "; at least 1 SI pain" in before
    assert before.count("(") == before.count(")")


def _bundled(policy: str) -> list[Path]:
    return sorted((Path(__file__).parent.parent / "policies" / policy).glob("*.yaml"))
