"""Tests for `necessity lint`: the rule table, each check at its line, and the command."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator.authoring.lint import RULES, Severity, lint_paths, lint_policy, list_rules
from evaluator.authoring.lint_checks import Origin
from evaluator.cli.main import main
from evaluator.language.policies import load_policy
from evaluator.read import resources

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures" / "lint"
EVALUATOR = HERE.parent / "evaluator"
MARKER = re.compile(r"#\s*expect:\s*([a-zA-Z_]+(?:\s*,\s*[a-zA-Z_]+)*)")

# Codes a fixture file cannot show at a line, with the test that covers each instead.
NO_FIXTURE = {
    "file_not_found": "test_missing_path_is_unreadable",
    "no_policy_files": "test_folder_without_policies_is_unreadable",
    "unreadable_file": "test_unreadable_files",
    "empty_document": "test_unreadable_files (an empty file has no line)",
    "engine_limit": "found on the whole compiled program, not at a line",
    "unfolded": "tests/test_lint_unfolded.py (the engine must refuse the folded program)",
    "no_citation": "test_no_citation (the schema already requires one citation)",
    "version_gap": "test_gaps_between_versions (needs two files)",
}
# The fixture folder of a code, where the two differ.
FIXTURE_OF = {"schema_*": "schema"}
# Compiler gaps, reported to the lead: the fixture documents what lint should find.
KNOWN_GAPS: dict[str, str] = {}


def expected_markers(folder: Path) -> set[tuple[str, int, str]]:
    """Return (file, line, code) for every `# expect: code` marker under a fixture folder."""
    found = set()
    for path in folder.rglob("*.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if match := MARKER.search(line):
                for code in match.group(1).split(","):
                    found.add((str(path.resolve()), number, code.strip()))
    return found


def reported(folder: Path) -> set[tuple[str, int | None, str]]:
    report = lint_paths([folder])
    return {
        (str(Path(f.location.file or "").resolve()), f.location.line, f.code)
        for f in report.findings
    }


FIXTURE_DIRS = sorted(p for p in FIXTURES.iterdir() if p.is_dir())


@pytest.mark.parametrize(
    "folder",
    [
        pytest.param(
            folder,
            marks=[pytest.mark.xfail(reason=KNOWN_GAPS[folder.name], strict=True)]
            if folder.name in KNOWN_GAPS
            else [],
        )
        for folder in FIXTURE_DIRS
    ],
    ids=[folder.name for folder in FIXTURE_DIRS],
)
def test_fixture_reports_its_code_at_the_marked_line(folder: Path) -> None:
    expected = expected_markers(folder)
    assert expected, f"{folder} has no `# expect:` marker"
    assert reported(folder) == expected


def test_every_rule_has_a_fixture_or_a_reason() -> None:
    folders = {p.name for p in FIXTURE_DIRS}
    missing = {
        code
        for code in RULES
        if code not in NO_FIXTURE and FIXTURE_OF.get(code, code) not in folders
    }
    assert not missing
    assert folders <= {FIXTURE_OF.get(code, code) for code in RULES}


def test_every_compiler_and_loader_code_is_in_the_table() -> None:
    # The compiler's problems become findings as they are; the table must describe each code.
    pattern = re.compile(r'(?:\.add|Problem|single)\(\s*"([a-z_]+)"')
    codes = set()
    for name in (
        "compile/compiler.py",
        "compile/comparisons.py",
        "compile/ruleset.py",
        "compile/joins.py",
    ):
        codes |= set(pattern.findall((EVALUATOR / name).read_text()))
    codes |= {"version_mismatch", "id_mismatch"}
    assert codes <= set(RULES)


def test_rule_table_is_well_formed() -> None:
    for code, rule in RULES.items():
        assert rule.code == code
        assert re.fullmatch(r"[a-z_]+\*?", code)
        assert rule.description == rule.description.strip()
        assert rule.description[0].islower()
    listed = list_rules()
    assert all(code in listed for code in RULES)


def test_shipped_policies_are_clean() -> None:
    report = lint_paths([resources.policies_dir()])
    errors = [f.text() for f in report.findings if f.severity is Severity.ERROR]
    assert errors == []
    assert not report.unreadable
    assert report.files
    assert not any("/tests/" in Path(f).as_posix() for f in report.files)


# --- single checks on small policies ------------------------------------------------------------

HEAD = """\
id: demo
version: "1"
title: Demo
status: active
effective: {from: "2025-01-01"}
procedures: [{procedure: lumbar_fusion}]
references:
  - {id: 1, citation: A guideline.}
"""


def write_policy(
    tmp_path: Path, clause: str, *, head: str = HEAD, middle: str = "", version: str = "1"
) -> Path:
    body = textwrap.indent(textwrap.dedent(clause).strip("\n"), " " * 8)
    text = (
        f"{head}{middle}sections:\n  - id: s\n    title: S\n    clauses:\n"
        f"      - id: DEMO-ONE\n        title: One\n{body}\n"
        "        cites: [1]\n        recommendation: Document it.\n"
    )
    path = tmp_path / "policies" / "demo" / f"{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def codes_for(tmp_path: Path, clause: str, **kwargs: str) -> list[str]:
    return [f.code for f in lint_paths([write_policy(tmp_path, clause, **kwargs)]).findings]


def parts(fact: str, *fields: str) -> str:
    """Return YAML list items `{fact: <fact>, field: <field ...>}`, one per field text."""
    return "".join(f"- {{fact: {fact}, field: {field}}}\n" for field in fields)


def pct(value: int) -> str:
    return f"{{value: {value}, unit: '%'}}"


CONTRADICTIONS = {
    "bool": (parts("diabetes", "diabetic, equals: true", "diabetic, equals: false"), True),
    "one-of": (
        parts("nicotine", "status, one_of: [never, former]", "status, equals: current"),
        True,
    ),
    "not-equals": (parts("nicotine", "status, equals: never", "status, not_equals: never"), True),
    "edge": (parts("diabetes", f"hba1c, at_least: {pct(8)}", f"hba1c, less_than: {pct(8)}"), True),
    # weeks and days convert, on a duration
    "weeks-days": (
        parts(
            "physical_therapy",
            "duration, at_least: {value: 6, unit: weeks}",
            "duration, at_most: {value: 41, unit: days}",
        ),
        True,
    ),
    "point": (parts("diabetes", f"hba1c, at_least: {pct(8)}", f"hba1c, at_most: {pct(8)}"), False),
    # several alignment facts: one may be over 30 and another under 10
    "many": (
        parts(
            "alignment",
            "cobb, at_least: {value: 30, unit: deg}",
            "cobb, less_than: {value: 10, unit: deg}",
        ),
        False,
    ),
    # an absent fact makes both true
    "if-absent": (
        parts(
            "diabetes",
            f"hba1c, at_least: {pct(8)}, if_absent: 'true'",
            f"hba1c, less_than: {pct(3)}, if_absent: 'true'",
        ),
        False,
    ),
    # different filters select different facts
    "where": (
        parts("diabetes", f"hba1c, at_least: {pct(8)}")
        + parts("diabetes", f"hba1c, less_than: {pct(3)}, where: {{diabetic: true}}"),
        False,
    ),
}


@pytest.mark.parametrize(
    ("requires", "flagged"), list(CONTRADICTIONS.values()), ids=list(CONTRADICTIONS)
)
def test_contradiction(tmp_path: Path, requires: str, flagged: bool) -> None:
    clause = "requires:\n  all:\n" + textwrap.indent(requires, "    ")
    assert codes_for(tmp_path, clause) == (["contradiction"] if flagged else [])


def test_contradiction_inside_a_quantifier_uses_the_bound_fact(tmp_path: Path) -> None:
    clause = """
        requires:
          some:
            fact: alignment
            as: a
            require:
              all:
                - {fact: a, field: cobb, at_least: {value: 30, unit: deg}}
                - {fact: a, field: cobb, less_than: {value: 10, unit: deg}}
    """
    assert codes_for(tmp_path, clause) == ["contradiction"]


TAUTOLOGIES = {
    "bool": (parts("diabetes", "diabetic, equals: true", "diabetic, equals: false"), True),
    "enum": (parts("nicotine", "status, one_of: [never, former]", "status, equals: current"), True),
    "not-equals": (parts("nicotine", "status, equals: never", "status, not_equals: never"), True),
    # whole numbers: at most 2 or at least 3 leaves no gap
    "whole": (
        parts(
            "physical_therapy",
            "visits, at_most: {value: 2, unit: count}",
            "visits, at_least: {value: 3, unit: count}",
        ),
        True,
    ),
    # a measurement can be 2.5, or exactly 8
    "real-gap": (
        parts("diabetes", f"hba1c, at_most: {pct(2)}", f"hba1c, at_least: {pct(3)}"),
        False,
    ),
    "edge-gap": (
        parts("diabetes", f"hba1c, less_than: {pct(8)}", f"hba1c, more_than: {pct(8)}"),
        False,
    ),
    "single": (parts("nicotine", "status, one_of: [never, former]"), False),
}


@pytest.mark.parametrize(
    ("alternatives", "flagged"), list(TAUTOLOGIES.values()), ids=list(TAUTOLOGIES)
)
def test_tautology(tmp_path: Path, alternatives: str, flagged: bool) -> None:
    clause = "requires:\n  any:\n" + textwrap.indent(alternatives, "    ")
    assert codes_for(tmp_path, clause) == (["tautology"] if flagged else [])


def test_tautology_is_a_warning_that_names_the_unknown_case(tmp_path: Path) -> None:
    clause = """
        requires:
          any:
            - {fact: diabetes, field: hba1c, at_least: {value: 8, unit: '%'}}
            - {fact: diabetes, field: hba1c, less_than: {value: 8, unit: '%'}}
    """
    (finding,) = lint_paths([write_policy(tmp_path, clause)]).findings
    assert finding.severity is Severity.WARNING
    assert "undocumented" in finding.problem.message


@pytest.mark.parametrize(
    ("description", "flagged"),
    [
        ("HbA1c 8 % is the limit.", True),
        ("HbA1c below 8 %.", False),
        ("An HbA1c less than 8.0 %.", False),
        ("At most 8 % HbA1c.", False),
        ("HbA1c of 8 % or less.", False),
        ("HbA1c must be controlled.", False),  # the number is not mentioned at all
        ("HbA1c 8 % is the limit; it must be below 8 %.", False),  # one mention states it
    ],
)
def test_unstated_edge(tmp_path: Path, description: str, flagged: bool) -> None:
    clause = f"""
        description: {description}
        requires: {{fact: diabetes, field: hba1c, less_than: {{value: 8, unit: '%'}}}}
    """
    assert codes_for(tmp_path, clause) == (["unstated_edge"] if flagged else [])


@pytest.mark.parametrize(
    ("template", "hint"),
    [
        ("{diabetes}", "write the fact type and field"),
        ("{diabetis.hba1c}", "did you mean `diabetes`?"),
        ("{diabetes.hba1}", "did you mean `hba1c`?"),
    ],
)
def test_unknown_placeholder(tmp_path: Path, template: str, hint: str) -> None:
    clause = f"""
        requires: {{fact: diabetes, field: diabetic, documented: true}}
        rationale: {{not_met: "Found {template}."}}
    """
    (finding,) = lint_paths([write_policy(tmp_path, clause)]).findings
    assert finding.code == "unknown_placeholder"
    assert hint in (finding.problem.hint or "")
    assert finding.location.pointer == "/sections/0/clauses/0/rationale/not_met"


def test_no_citation(tmp_path: Path) -> None:
    # The schema requires a citation, so only a policy built in code can lack one.
    policy = load_policy(write_policy(tmp_path, "requires: {exists: {fact: diabetes}}"))
    section = policy.sections[0]
    clause = dataclasses.replace(section.clauses[0], cites=())
    bare = dataclasses.replace(policy, sections=(dataclasses.replace(section, clauses=(clause,)),))
    found = [(f.code, f.location.pointer) for f in lint_policy(bare)]
    assert ("no_citation", "/sections/0/clauses/0/cites") in found


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ('{from: "2025-01-01"}', '{from: "2025-07-01"}', True),
        ('{from: "2025-01-01", until: "2025-06-30"}', '{from: "2025-07-01"}', False),
        ('{from: "2025-01-01", until: "2025-07-01"}', '{from: "2025-07-01"}', True),
    ],
)
def test_overlapping_versions(tmp_path: Path, first: str, second: str, overlap: bool) -> None:
    for version, effective in (("1", first), ("2", second)):
        head = HEAD.replace('version: "1"', f'version: "{version}"').replace(
            'effective: {from: "2025-01-01"}', f"effective: {effective}"
        )
        write_policy(tmp_path, "requires: {exists: {fact: diabetes}}", head=head, version=version)
    folder = tmp_path / "policies" / "demo"
    found = [(Path(f.location.file or "").name, f.code) for f in lint_paths([folder]).findings]
    assert found == ([("2.yaml", "overlapping_versions")] if overlap else [])


def test_retired_versions_overlap_too(tmp_path: Path) -> None:
    # A retired version stays in force inside its window, so its window may not overlap.
    for version, status in (("1", "retired"), ("2", "active")):
        head = HEAD.replace('version: "1"', f'version: "{version}"').replace(
            "status: active", f"status: {status}"
        )
        write_policy(tmp_path, "requires: {exists: {fact: diabetes}}", head=head, version=version)
    codes = [f.code for f in lint_paths([tmp_path / "policies"]).findings]
    assert codes == ["overlapping_versions"]


def test_drafts_do_not_overlap(tmp_path: Path) -> None:
    for version, status in (("1", "active"), ("2", "draft")):
        head = HEAD.replace('version: "1"', f'version: "{version}"').replace(
            "status: active", f"status: {status}"
        )
        write_policy(tmp_path, "requires: {exists: {fact: diabetes}}", head=head, version=version)
    assert lint_paths([tmp_path / "policies"]).findings == ()


@pytest.mark.parametrize(
    ("until", "gap"),
    [("2025-06-30", False), ("2025-06-29", True)],
    ids=["adjacent", "one-day-gap"],
)
def test_gaps_between_versions(tmp_path: Path, until: str, gap: bool) -> None:
    windows = (("1", f'{{from: "2025-01-01", until: "{until}"}}'), ("2", '{from: "2025-07-01"}'))
    for version, effective in windows:
        head = HEAD.replace('version: "1"', f'version: "{version}"').replace(
            'effective: {from: "2025-01-01"}', f"effective: {effective}"
        )
        write_policy(tmp_path, "requires: {exists: {fact: diabetes}}", head=head, version=version)
    findings = lint_paths([tmp_path / "policies"]).findings
    assert [(f.code, f.severity.value) for f in findings] == (
        [("version_gap", "warning")] if gap else []
    )
    if gap:
        assert "2025-06-29" in str(findings[0].problem)


# --- files ----------------------------------------------------------------------------------------


def test_folders_skip_policy_test_suites(tmp_path: Path) -> None:
    write_policy(tmp_path, "requires: {exists: {fact: diabetes}}")
    suite = tmp_path / "policies" / "demo" / "tests" / "examples.yaml"
    suite.parent.mkdir()
    suite.write_text("tests: []\n")
    report = lint_paths([tmp_path / "policies"])
    assert [Path(f).name for f in report.files] == ["1.yaml"]
    assert report.findings == ()


def test_missing_path_is_unreadable(tmp_path: Path) -> None:
    report = lint_paths([tmp_path / "nope.yaml"])
    assert [f.code for f in report.findings] == ["file_not_found"]
    assert report.unreadable


def test_folder_without_policies_is_unreadable(tmp_path: Path) -> None:
    report = lint_paths([tmp_path])
    assert [f.code for f in report.findings] == ["no_policy_files"]
    assert report.unreadable


def test_unreadable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"id: \xff\n")
    report = lint_paths([empty, binary])
    assert sorted(f.code for f in report.findings) == ["empty_document", "unreadable_file"]
    assert report.unreadable
    assert all(f.rule.origin is Origin.INPUT for f in report.findings)


def test_schema_violations_are_unreadable_input() -> None:
    report = lint_paths([FIXTURES / "schema"])
    assert report.unreadable
    assert [f.code for f in report.findings] == ["schema_additionalProperties"]


# --- the command ----------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["lint", *args])
    return result.exit_code, result.output


def test_command_on_shipped_policies_exits_0() -> None:
    code, output = run()
    assert code == 0
    assert re.match(r"(0 errors|no problems)", output.splitlines()[-1])


def test_command_exit_codes() -> None:
    assert run(str(FIXTURES / "tautology"))[0] == 0  # warnings only
    code, output = run(str(FIXTURES / "contradiction"))
    assert code == 1
    assert re.search(r"1\.yaml:19:15: error contradiction: ", output)
    assert run(str(FIXTURES / "malformed_yaml"))[0] == 2
    assert run(str(FIXTURES / "schema"))[0] == 2
    # unreadable input wins over error findings
    assert run(str(FIXTURES / "contradiction"), str(FIXTURES / "schema"))[0] == 2


def test_command_text_shows_pointer_and_hint() -> None:
    _, output = run(str(FIXTURES / "unknown_fact"))
    lines = output.splitlines()
    assert lines[0].endswith("error unknown_fact: unknown fact type `diabetis`")
    assert lines[1].strip() == "at /sections/0/clauses/0/requires/fact"
    assert lines[2].strip() == "hint: did you mean `diabetes`?"
    assert lines[-1] == "1 error in 1 policy file"


def test_command_json() -> None:
    code, output = run("--format", "json", str(FIXTURES / "unused_derived_fact"))
    assert code == 0
    data = json.loads(output)
    assert data["counts"] == {"error": 0, "warning": 1, "info": 0}
    (finding,) = data["findings"]
    assert finding["code"] == "unused_derived_fact"
    assert finding["severity"] == "warning"
    assert finding["line"] == 11
    assert finding["column"] == 3
    assert finding["pointer"] == "/facts/unstable_segment"
    assert finding["file"].endswith("1.yaml")
    assert len(data["files"]) == 1


def test_command_sarif() -> None:
    code, output = run("--format", "sarif", str(FIXTURES / "contradiction"))
    assert code == 1
    log = json.loads(output)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (sarif_run,) = log["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "necessity"
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert set(RULES) <= set(rule_ids)
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    (result,) = sarif_run["results"]
    assert result["ruleId"] == "contradiction"
    assert rule_ids[result["ruleIndex"]] == "contradiction"
    assert result["level"] == "error"
    assert result["message"]["text"]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"].endswith("contradiction/1.yaml")
    assert physical["region"] == {"startLine": 19, "startColumn": 15}
    logical = result["locations"][0]["logicalLocations"][0]
    assert logical["fullyQualifiedName"] == "/sections/0/clauses/0/requires/all/1"


def test_command_list_rules() -> None:
    code, output = run("--list-rules")
    assert code == 0
    assert [line.split()[0] for line in output.splitlines()] == list(RULES)


_SEG = "require: {fact: s, field: segment, documented: true}"


def _every(if_empty: str | None = None) -> str:
    extra = f"if_empty: '{if_empty}', " if if_empty else ""
    return f"{{every: {{fact: fused_segment, as: s, {extra}{_SEG}}}}}"


VACUOUS = {
    "if-empty-true": (f"requires: {_every('true')}", True),
    "negated-false": (f"requires: {{not: {_every('false')}}}", True),
    "waived-by": (
        "requires: {fact: diabetes, field: diabetic, equals: false}\n"
        f"waived_by: {_every('true')}",
        True,
    ),
    "default": (f"requires: {_every()}", False),
    "if-empty-false": (f"requires: {_every('false')}", False),
    "applies-when": (
        f"applies_when: {{exists: {{fact: fused_segment}}}}\nrequires: {_every('true')}",
        False,
    ),
}


@pytest.mark.parametrize(("clause", "flagged"), list(VACUOUS.values()), ids=list(VACUOUS))
def test_vacuous_every(tmp_path: Path, clause: str, flagged: bool) -> None:
    findings = lint_paths([write_policy(tmp_path, clause)]).findings
    assert [f.code for f in findings] == (["vacuous_every"] if flagged else [])
    if flagged:
        assert findings[0].severity is Severity.ERROR
        assert (findings[0].problem.location.pointer or "").endswith("/every/if_empty")
        assert findings[0].problem.location.line is not None


SETTINGS = (
    "settings:\n  hba1c_limit:\n    value: 8.0\n    unit: '%'\n    description: The HbA1c limit.\n"
)


@pytest.mark.parametrize(
    ("clause", "pointer"),
    [
        ('rationale: {not_met: "Above {setting.hba1c_limt}."}', "rationale/not_met"),
        ('finding: {not_met: "Above the {setting.hba1c_limt} limit."}', "finding/not_met"),
        ('documentation: ["An HbA1c below {setting.hba1c_limt}."]', "documentation/0"),
        ('description: "HbA1c below {setting.hba1c_limt}."', "description"),
        ("title", "title"),
    ],
)
def test_an_unknown_setting_placeholder_is_reported_with_a_hint(
    tmp_path: Path, clause: str, pointer: str
) -> None:
    requires = "requires: {fact: diabetes, field: hba1c, less_than: {setting: hba1c_limit}}"
    path = write_policy(
        tmp_path, requires + ("" if clause == "title" else "\n" + clause), middle=SETTINGS
    )
    if clause == "title":
        path.write_text(
            path.read_text().replace("title: One", 'title: "HbA1c below {setting.hba1c_limt}"')
        )
    (finding,) = lint_paths([path]).findings
    assert finding.code == "unknown_placeholder"
    assert "names unknown setting `hba1c_limt` (settings: `hba1c_limit`)" in (
        finding.problem.message
    )
    assert finding.problem.hint == "did you mean `hba1c_limit`?"
    assert finding.location.pointer == f"/sections/0/clauses/0/{pointer}"


def test_a_known_setting_placeholder_is_clean_anywhere(tmp_path: Path) -> None:
    clause = """
        description: HbA1c below {setting.hba1c_limit}.
        requires: {fact: diabetes, field: hba1c, less_than: {setting: hba1c_limit}}
        rationale: {not_met: "HbA1c {diabetes.hba1c} at or above {setting.hba1c_limit}."}
        finding: {not_met: "HbA1c {diabetes.hba1c}, not below {setting.hba1c_limit}."}
        documentation: ["An HbA1c below {setting.hba1c_limit}."]
    """
    path = write_policy(tmp_path, clause, middle=SETTINGS)
    path.write_text(
        path.read_text().replace("title: One", 'title: "HbA1c below {setting.hba1c_limit}"')
    )
    assert list(lint_paths([path]).findings) == []


def test_a_title_or_description_fills_in_no_fact(tmp_path: Path) -> None:
    clause = """
        description: HbA1c below {diabetes.hba1c}.
        requires: {fact: diabetes, field: hba1c, less_than: {value: 8, unit: '%'}}
    """
    (finding,) = lint_paths([write_policy(tmp_path, clause)]).findings
    assert finding.code == "unknown_placeholder"
    assert "is not `{setting.name}`" in finding.problem.message
    assert finding.location.pointer == "/sections/0/clauses/0/description"


@pytest.mark.parametrize(
    ("description", "flagged"),
    [
        ("HbA1c {setting.hba1c_limit} is the limit.", True),
        ("HbA1c below {setting.hba1c_limit}.", False),
    ],
)
def test_unstated_edge_reads_a_setting_placeholder_as_its_value(
    tmp_path: Path, description: str, flagged: bool
) -> None:
    clause = f"""
        description: {description}
        requires: {{fact: diabetes, field: hba1c, less_than: {{setting: hba1c_limit}}}}
    """
    codes = codes_for(tmp_path, clause, middle=SETTINGS)
    assert codes == (["unstated_edge"] if flagged else [])


NEGATED_DEMONSTRATIONS = {
    # a field with an x-disputed marker: a value left out as possibly late stays unknown
    "marked-cotinine": (
        "{fact: nicotine, field: cotinine, more_than: {value: 10, unit: ng/mL}}",
        [],
    ),
    "marked-quit-date": ("{fact: nicotine, field: quit_date, documented: true}", []),
    # the marker read through a bound name, and by a `where` (each compiles, too)
    "marked-bound": (
        "{some: {fact: symptom, as: s, require: {fact: s, field: concordant, equals: true}}}",
        [],
    ),
    "marked-where": ("{exists: {fact: symptom, where: {concordant: true}}}", []),
    # x-as-of-source without a marker: a left-out value would read as never stated
    "unmarked-hba1c": (
        f"{{fact: diabetes, field: hba1c, at_least: {pct(8)}}}",
        ["negated_demonstrated"],
    ),
    "unmarked-where": (
        "{exists: {fact: diagnostic_block, where: {image_guided: true}}}",
        ["negated_demonstrated"],
    ),
    # not x-as-of-source: nothing is left out as late
    "not-as-of-source": ("{fact: alignment, field: cobb, at_least: {value: 30, unit: deg}}", []),
}


@pytest.mark.parametrize(
    ("condition", "codes"), list(NEGATED_DEMONSTRATIONS.values()), ids=list(NEGATED_DEMONSTRATIONS)
)
def test_negated_demonstrated_is_an_error_only_where_a_late_value_reads_as_never_stated(
    tmp_path: Path, condition: str, codes: list[str]
) -> None:
    clause = f"requires:\n  not:\n    demonstrated: {condition}\n"
    findings = lint_paths([write_policy(tmp_path, clause)]).findings
    assert [f.code for f in findings] == codes
    assert all(f.severity is Severity.ERROR for f in findings)
