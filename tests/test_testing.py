"""Tests for `necessity test`: policy test suites, their diff output, JUnit XML and coverage."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from evaluator.authoring.coverage import reachable_statuses
from evaluator.cli.main import main
from evaluator.language.model import Status
from evaluator.language.policies import Library, load_policy

ROOT = Path(__file__).parent.parent
APPROVABLE = "examples/cases/l4-l5-approvable.json"

TINY_POLICY = """\
id: tiny
version: "1.0"
title: A small policy whose reachable statuses are known by hand
status: active
effective: {from: "2025-01-01"}
procedures: [{procedure: lumbar_fusion}]
references: [{id: 1, citation: A reference.}]
sections:
  - id: all
    title: All clauses
    clauses:
      - id: TINY-NICOTINE
        title: Never smoked
        requires: {fact: nicotine, field: status, equals: never}
        cites: [1]
        recommendation: Stop.
      - id: TINY-DIABETES
        title: HbA1c below 8 when diabetic
        applies_when: {fact: diabetes, field: diabetic, equals: true}
        requires: {fact: diabetes, field: hba1c, less_than: {value: 8, unit: "%"}}
        undocumented: not_met
        cites: [1]
        recommendation: Control it.
      - id: TINY-FLAG
        title: A red flag unless a never-smoker
        waived_by: {clause: TINY-NICOTINE, is: met}
        requires: {exists: {fact: red_flag}}
        cites: [1]
        recommendation: None.
      - id: TINY-URGENT
        title: A red flag, never failing
        applies_when: &flag {demonstrated: {exists: {fact: red_flag}}}
        requires: *flag
        cites: [1]
        recommendation: None.
      - id: TINY-IMPOSSIBLE
        title: Asks for a status TINY-URGENT cannot have
        requires: {clause: TINY-URGENT, is: not_met}
        cites: [1]
        recommendation: None.
"""

# Hand-worked: what each clause of TINY_POLICY can end as.
TINY_REACHABLE = {
    # a comparison: true, false, or unknown (absent); no applies_when or waiver
    "TINY-NICOTINE": {Status.MET, Status.NOT_MET, Status.NOT_DOCUMENTED},
    # applies_when can be false; unknown means not_met here
    "TINY-DIABETES": {Status.MET, Status.NOT_MET, Status.NOT_APPLICABLE},
    # waived when TINY-NICOTINE is met; `exists` is never unknown
    "TINY-FLAG": {Status.MET, Status.NOT_MET, Status.NOT_APPLICABLE},
    # requires is applies_when: evaluated only when true
    "TINY-URGENT": {Status.MET, Status.NOT_APPLICABLE},
    # TINY-URGENT is never not_met, so the reference is always false
    "TINY-IMPOSSIBLE": {Status.NOT_MET},
}

TINY_SUITE = """\
policy: {id: tiny}
tests:
  - name: never-smoker
    facts:
      case_id: never-smoker
      request: {date: "2025-06-20", lines: [{id: a, procedure: lumbar_fusion, fusion: L4-L5}]}
      nicotine: {status: never}
    expect:
      determination: not_medically_necessary
      clauses:
        TINY-NICOTINE: met
        TINY-DIABETES: not_met
        TINY-FLAG: not_applicable
        TINY-URGENT: not_applicable
        TINY-IMPOSSIBLE: not_met
  - name: smoker-with-red-flag
    facts:
      case_id: smoker-with-red-flag
      request: {date: "2025-06-20", lines: [{id: a, procedure: lumbar_fusion, fusion: L4-L5}]}
      nicotine: {status: current}
      diabetes: {diabetic: false}
      red_flags: [{kind: cauda_equina_syndrome}]
    expect:
      determination: not_medically_necessary
      clauses:
        TINY-NICOTINE: not_met
        TINY-DIABETES: not_applicable
        TINY-FLAG: met
"""


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["test", *args], catch_exceptions=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def suite(tmp_path: Path, tests: str, name: str = "suite.yaml") -> Path:
    """Write a lumbar-fusion suite holding `tests` (YAML list items) into tmp_path."""
    body = "policy: {id: lumbar-fusion, version: '2025.1'}\ntests:\n" + textwrap.dedent(tests)
    return write(tmp_path / name, body)


WRONG_NICOTINE = f"""\
- name: approvable-passes
  case: {APPROVABLE}
  expect:
    determination: medically_necessary
    clauses: {{LF-NICOTINE: met, LF-URGENT: not_applicable}}
- name: nicotine-wrong
  case: {APPROVABLE}
  expect:
    determination: medically_necessary
    clauses: {{LF-NICOTINE: not_met, LF-INSTABILITY: met}}
"""


# --- the shipped suites ----------------------------------------------------------------------


def test_shipped_suites_pass_with_full_coverage() -> None:
    result = run_cli("--coverage", "--format", "json")
    data = json.loads(result.stdout)
    failed = [t["id"] for t in data["tests"] if not t["passed"]]
    assert failed == []
    assert result.exit_code == 0
    assert {p["policy"] for p in data["coverage"]} >= {"lumbar-fusion@2025.1"}
    gaps = {p["policy"]: [c for c in p["clauses"] if c["missing"]] for p in data["coverage"]}
    assert all(p["percent"] == 100 for p in data["coverage"]), gaps


def test_lumbar_fusion_reachable_statuses() -> None:
    reach = reachable_statuses(Library().get("lumbar-fusion@2025.1"))
    every = set(Status)
    assert reach["LF-URGENT"] == {Status.MET, Status.NOT_APPLICABLE}
    # not documented only for a disputed slip (x-disputed), never for a slip not stated
    assert reach["LF-INSTABILITY"] == {Status.MET, Status.NOT_MET, Status.NOT_DOCUMENTED}
    assert reach["LF-SI-FIXATION"] == {Status.MET, Status.NOT_MET, Status.NOT_APPLICABLE}
    for clause in (
        "LF-CONSERVATIVE-DURATION",
        "LF-IMAGING-CORRELATION",
        "LF-DIABETES",
        "LF-FUNCTIONAL-IMPAIRMENT",
    ):
        assert reach[clause] == every
    # no applicability condition and no waiver: never not applicable
    assert reach["LF-IMAGING-RECENT"] == {Status.MET, Status.NOT_MET, Status.NOT_DOCUMENTED}
    # decided by the request's levels alone (undocumented: not met), applies to a fusion line
    assert reach["LF-LUMBAR-LEVELS"] == {Status.MET, Status.NOT_MET, Status.NOT_APPLICABLE}
    assert sum(len(s) for s in reach.values()) == 46


# --- failures ---------------------------------------------------------------------------------


def test_a_wrong_expectation_fails_with_a_readable_diff(tmp_path: Path) -> None:
    path = suite(tmp_path, WRONG_NICOTINE)
    result = run_cli(str(path))
    assert result.exit_code == 1
    out = result.stdout
    assert "PASS " in out
    assert "suite.yaml::approvable-passes" in out
    assert "FAIL " in out
    assert "suite.yaml::nicotine-wrong" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("!")]
    # Only the differing clause is in the table, marked, expected before actual.
    assert rows == [["!", "LF-NICOTINE", "not_met", "met"]]
    assert "suite.yaml:8 (lumbar-fusion@2025.1)" in out
    assert "deciding evidence for LF-NICOTINE (met):" in out
    assert "nicotine: status is never" in out
    assert out.rstrip().splitlines()[-1].startswith("1 passed, 1 failed")


def test_a_wrong_determination_and_alternative_are_shown(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        f"""\
        - name: wrong-outcome
          case: {APPROVABLE}
          expect:
            determination: not_medically_necessary
            alternative: {{lumbar_fusion: L4-L5}}
        """,
    )
    result = run_cli(str(path))
    assert result.exit_code == 1
    rows = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("!")]
    assert rows == [
        ["!", "determination", "not_medically_necessary", "medically_necessary"],
        ["!", "alternative", "lumbar_fusion", "L4-L5", "none"],
    ]


def test_json_output_lists_every_comparison(tmp_path: Path) -> None:
    path = suite(tmp_path, WRONG_NICOTINE)
    result = run_cli(str(path), "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["passed"], data["failed"]) == (1, 1)
    wrong = data["tests"][1]
    assert wrong["clauses"] == [
        {"clause": "LF-NICOTINE", "expected": "not_met", "actual": "met", "ok": False},
        {"clause": "LF-INSTABILITY", "expected": "met", "actual": "met", "ok": True},
    ]
    assert wrong["determination"]["ok"] is True


def test_junit_xml_is_well_formed_with_the_right_counts(tmp_path: Path) -> None:
    path = suite(tmp_path, WRONG_NICOTINE)
    report = tmp_path / "junit.xml"
    result = run_cli(str(path), "--junit", str(report))
    assert result.exit_code == 1
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    [testsuite] = root.findall("testsuite")
    assert (testsuite.get("tests"), testsuite.get("failures")) == ("2", "1")
    cases = testsuite.findall("testcase")
    assert [c.get("name") for c in cases] == ["approvable-passes", "nicotine-wrong"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert "LF-NICOTINE met (expected not_met)" in (failure.get("message") or "")
    assert "LF-NICOTINE" in (failure.text or "")
    assert cases[1].get("classname") == "lumbar-fusion@2025.1:suite"


def test_junit_file_is_written_when_a_suite_is_unreadable(tmp_path: Path) -> None:
    # CI reads the JUnit file: an unreadable suite must show there, not leave no file at all
    broken = tmp_path / "broken.yaml"
    broken.write_text("policy: lumbar-fusion\ntests: [\n", encoding="utf-8")
    report = tmp_path / "junit.xml"
    result = run_cli(str(broken), "--junit", str(report))
    assert result.exit_code == 2
    root = ET.parse(report).getroot()
    assert (root.get("tests"), root.get("errors")) == ("1", "1")
    [case] = root.iter("testcase")
    assert (case.get("name"), case.get("file"), case.get("line")) == ("load", str(broken), "3")
    error = case.find("error")
    assert error is not None
    assert error.get("type") == "malformed_yaml"
    assert f"{broken}:3:1: malformed yaml" in (error.text or "")


def test_junit_file_in_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("lumbar-fusion", "--junit", str(tmp_path / "no" / "junit.xml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert "PASS" not in result.stdout  # refused before any test ran


def test_a_failed_write_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root ignores file permissions, so the write error is injected where the file is written
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "junit.xml"))

    monkeypatch.setattr(ET.ElementTree, "write", refuse)
    result = run_cli("lumbar-fusion", "--junit", str(tmp_path / "junit.xml"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"error: {tmp_path / 'junit.xml'}: permission denied" in result.stderr


# --- coverage on a hand-made policy -------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A policies folder holding TINY_POLICY and TINY_SUITE."""
    policies = tmp_path / "policies"
    write(policies / "tiny" / "1.0.yaml", TINY_POLICY)
    write(policies / "tiny" / "tests" / "basic.yaml", TINY_SUITE)
    return policies


def test_reachable_statuses_of_a_hand_made_policy(tiny: Path) -> None:
    reach = reachable_statuses(load_policy(tiny / "tiny" / "1.0.yaml"))
    assert reach == TINY_REACHABLE


def test_coverage_counts_statuses_the_tests_checked(tiny: Path) -> None:
    result = run_cli("--policies-dir", str(tiny), "--coverage", "--format", "json")
    assert result.exit_code == 0, result.output
    [coverage] = json.loads(result.stdout)["coverage"]
    by_clause = {c["clause"]: c for c in coverage["clauses"]}
    # TINY-URGENT ends met in the second test, but no test asserts it: not exercised.
    assert {k: (v["exercised"], v["missing"]) for k, v in by_clause.items()} == {
        "TINY-NICOTINE": (["met", "not_met"], ["not_documented"]),
        "TINY-DIABETES": (["not_met", "not_applicable"], ["met"]),
        "TINY-FLAG": (["met", "not_applicable"], ["not_met"]),
        "TINY-URGENT": (["not_applicable"], ["met"]),
        "TINY-IMPOSSIBLE": (["not_met"], []),
    }
    assert (coverage["covered"], coverage["reachable"]) == (8, 12)
    assert coverage["percent"] == pytest.approx(66.7)


def test_coverage_text_lists_the_gaps(tiny: Path) -> None:
    result = run_cli("--policies-dir", str(tiny), "--coverage")
    assert result.exit_code == 0
    out = result.stdout
    assert "coverage of tiny@1.0: 8/12 reachable clause statuses exercised (67 %)" in out
    assert "    TINY-NICOTINE: not_documented" in out
    assert "    TINY-URGENT: met" in out
    table = {
        line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  TINY-")
    }
    assert table["TINY-IMPOSSIBLE"] == ["-", "x", "-", "-"]
    assert table["TINY-URGENT"] == [".", "-", "-", "x"]


# --- invalid input -------------------------------------------------------------------------------


def errors_of(result: Result) -> str:
    assert result.exit_code == 2, result.output
    return result.stderr


def test_a_schema_violation_in_a_suite_exits_2_with_file_and_line(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        f"""\
        - name: typo
          case: {APPROVABLE}
          expect:
            determinaton: medically_necessary
        """,
    )
    err = errors_of(run_cli(str(path)))
    assert f"{path}:6:" in err
    assert "determinaton" in err


def test_an_inline_case_is_located_in_the_suite_file(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        """\
        - name: bad-level
          facts:
            case_id: bad-level
            request:
              date: "2025-06-20"
              lines:
                - {id: fusion, procedure: lumbar_fusion, fusion: L5-L6}
          expect: {determination: medically_necessary}
        """,
    )
    err = errors_of(run_cli(str(path)))
    assert f"{path}:9:" in err
    assert "/tests/0/facts/request/lines/0/fusion" in err


def test_an_inline_case_schema_error_is_located_in_the_suite_file(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        """\
        - name: bad-date
          facts:
            case_id: bad-date
            request: {date: "June 2025", lines: [{id: a, procedure: lumbar_fusion, fusion: L4-L5}]}
          expect: {determination: medically_necessary}
        """,
    )
    assert f"{path}:6:" in errors_of(run_cli(str(path)))


def test_unknown_clause_and_missing_case_file_are_input_errors(tmp_path: Path) -> None:
    path = suite(
        tmp_path,
        """\
        - name: unknown-things
          case: no/such/case.json
          expect:
            determination: medically_necessary
            clauses: {LF-NO-SUCH-CLAUSE: met}
        """,
    )
    err = errors_of(run_cli(str(path)))
    assert f"{path}:7:" in err
    assert "has no clause `LF-NO-SUCH-CLAUSE`" in err
    assert f"{path}:4:" in err
    assert "no case file `no/such/case.json`" in err


def test_malformed_suite_and_unknown_policy_exit_2(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.yaml", "policy: {id: lumbar-fusion\ntests: [\n")
    assert str(broken) in errors_of(run_cli(str(broken)))
    assert "unknown policy `no-such-policy`" in errors_of(run_cli("no-such-policy"))


def test_a_case_path_is_found_beside_the_suite(tmp_path: Path) -> None:
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "mine.json").write_text(
        (ROOT / APPROVABLE).read_text(encoding="utf-8"), encoding="utf-8"
    )
    path = suite(
        tmp_path,
        """\
        - name: beside
          case: cases/mine.json
          expect: {determination: medically_necessary}
        """,
    )
    result = run_cli(str(path))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("threshold", "code"), [("100", 1), ("50", 0)], ids=["100", "50"])
def test_fail_under_gates_on_coverage(threshold: str, code: int) -> None:
    # The examples suite alone leaves some reachable statuses unexercised (85.7 %).
    suite = Path(__file__).parent.parent / "policies/lumbar-fusion/tests/examples.yaml"
    result = CliRunner().invoke(main, ["test", str(suite), "--fail-under", threshold])
    assert result.exit_code == code, result.output
    assert ("under --fail-under" in result.output) is (code == 1)
