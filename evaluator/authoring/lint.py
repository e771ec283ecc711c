"""Lint: semantic checks of policy files beyond the schema, each finding with a code and severity.

A policy is read and validated (an unreadable file or a schema violation is unreadable input),
compiled (the compiler's collected problems become error findings: they are not re-checked
here), then run through the checks in `lint_checks.RULES`; checks over several policies (such
as overlapping versions) run once over everything linted together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from evaluator.api import program_for
from evaluator.authoring.lint_checks import (
    LIBRARY_CHECKS,
    POLICY_CHECKS,
    RULES,
    Context,
    Hit,
    Origin,
    Rule,
    Severity,
    rule_for,
)
from evaluator.errors import InputError, Location, PolicyError, Problem
from evaluator.language import dictionary, modules, plans, policies
from evaluator.language.model import Policy
from evaluator.read import source

__all__ = [
    "RULES",
    "Finding",
    "LintReport",
    "Rule",
    "Severity",
    "lint_paths",
    "lint_policy",
    "policy_files",
    "rule_for",
]

POLICY_SUFFIXES = (".yaml", ".yml")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem with a severity: what lint reports."""

    problem: Problem
    severity: Severity

    @property
    def code(self) -> str:
        return self.problem.code

    @property
    def location(self) -> Location:
        return self.problem.location

    @property
    def rule(self) -> Rule:
        return rule_for(self.code)

    def as_dict(self) -> dict[str, object]:
        return {"severity": self.severity.value, **self.problem.as_dict()}

    def text(self) -> str:
        """Return `file:line:col: severity code: message`, then the pointer and hint lines."""
        loc = self.location
        where = ":".join(str(part) for part in (loc.file, loc.line, loc.column) if part is not None)
        lines = [f"{where}: {self.severity.value} {self.code}: {self.problem.message}"]
        if loc.pointer is not None:
            lines.append(f"    at {loc.pointer or '/'}")
        if self.problem.hint:
            lines.append(f"    hint: {self.problem.hint}")
        return "\n".join(lines)


def _order(finding: Finding) -> tuple[str, int, int, str, str]:
    loc = finding.location
    return (loc.file or "", loc.line or 0, loc.column or 0, finding.code, finding.problem.message)


def _finding(problem: Problem) -> Finding:
    return Finding(problem, rule_for(problem.code).severity)


@dataclass(frozen=True)
class LintReport:
    """Everything one lint run found, over the policy files it read (in order)."""

    files: tuple[str, ...]
    findings: tuple[Finding, ...]

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    @property
    def unreadable(self) -> bool:
        """True when some input could not be read or violates the schema (exit code 2)."""
        return any(f.rule.origin is Origin.INPUT for f in self.findings)

    @property
    def failed(self) -> bool:
        """True when some finding has error severity (exit code 1)."""
        return self.count(Severity.ERROR) > 0

    def summary(self) -> str:
        counts = [
            _plural(self.count(s), s.value)
            for s in Severity
            if self.count(s) or s is Severity.ERROR
        ]
        found = ", ".join(counts) if self.findings else "no problems"
        return f"{found} in {_plural(len(self.files), 'policy file')}"

    def text(self) -> str:
        """Return one block per finding and a summary line."""
        return "\n".join([*(f.text() for f in self.findings), self.summary()])

    def as_json(self) -> dict[str, object]:
        """Return the findings as the JSON contract: files, findings and counts by severity."""
        return {
            "files": list(self.files),
            "findings": [f.as_dict() for f in self.findings],
            "counts": {s.value: self.count(s) for s in Severity},
        }

    def sarif(self) -> dict[str, object]:
        """Return a SARIF 2.1.0 log: one run, every rule in the table, one result per finding."""
        rules = dict(RULES)
        rules.update((f.code, f.rule) for f in self.findings if f.code not in rules)
        index = {code: i for i, code in enumerate(rules)}
        return {
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "necessity",
                            "informationUri": "https://necessity.dev",
                            "rules": [_sarif_rule(rule) for rule in rules.values()],
                        }
                    },
                    "results": [_sarif_result(f, index[f.code]) for f in self.findings],
                }
            ],
        }


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _sarif_rule(rule: Rule) -> dict[str, object]:
    return {
        "id": rule.code,
        "shortDescription": {"text": rule.description},
        "defaultConfiguration": {"level": _SARIF_LEVELS[rule.severity]},
        "properties": {"origin": rule.origin.value},
    }


def _uri(file: str) -> str:
    path = Path(file)
    return path.resolve().as_uri() if path.is_absolute() else quote(path.as_posix())


def _sarif_result(finding: Finding, rule_index: int) -> dict[str, object]:
    loc = finding.location
    physical: dict[str, object] = {"artifactLocation": {"uri": _uri(loc.file or "")}}
    if loc.line is not None:
        region: dict[str, int] = {"startLine": loc.line}
        if loc.column is not None:
            region["startColumn"] = loc.column
        physical["region"] = region
    location: dict[str, object] = {"physicalLocation": physical}
    if loc.pointer is not None:
        location["logicalLocations"] = [{"fullyQualifiedName": loc.pointer or "/"}]
    message = finding.problem.message
    if finding.problem.hint:
        message += f" ({finding.problem.hint})"
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": _SARIF_LEVELS[finding.severity],
        "message": {"text": message},
        "locations": [location],
    }


# --- one policy -------------------------------------------------------------------------------


def _hits(policy: Policy, code: str, hits: Iterable[Hit]) -> Iterator[Finding]:
    severity = RULES[code].severity
    for hit in hits:
        yield Finding(Problem(code, hit.message, policy.locate(hit.pointer), hit.hint), severity)


def _settle(findings: Iterable[Finding]) -> list[Finding]:
    # YAML aliases share nodes, so one mistake can be reported once per use at one place.
    unique = {(f.code, f.location, f.problem.message): f for f in findings}
    return sorted(unique.values(), key=_order)


def _in_file(problem: Problem, policy: Policy) -> Problem:
    # engine limits are found on the whole program, which has no place in the file
    if problem.location.file is not None:
        return problem
    return Problem(problem.code, problem.message, policy.locate(""), problem.hint)


def lint_policy(policy: Policy) -> list[Finding]:
    """Return the findings of one loaded policy: the compiler's problems, then every check.

    Raises nothing for a bad policy (its problems are findings).
    """
    findings: list[Finding] = []
    try:
        program_for(policy)
    except PolicyError as error:
        findings.extend(_finding(_in_file(p, policy)) for p in error.problems)
    context = Context(policy, dictionary.with_derived(policy.derived))
    for code, check in POLICY_CHECKS.items():
        findings.extend(_hits(policy, code, check(context)))
    return _settle(findings)


# --- files ------------------------------------------------------------------------------------


def policy_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Finding]]:
    """Return the policy files under `paths` (files as given; folders searched for
    `<id>/<version>.yaml`, skipping `tests/` folders), and findings for paths that hold none.
    """
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [p for p in sorted(path.rglob("*")) if _is_policy(p, path)]
            if not found:
                where = Location(str(path))
                problems.append(Problem("no_policy_files", "no policy files in this folder", where))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem("file_not_found", "no such file", Location(str(path))))
    unique = list(dict.fromkeys(files))
    return unique, [_finding(p) for p in problems]


def _is_policy(path: Path, root: Path) -> bool:
    if path.suffix not in POLICY_SUFFIXES or not path.is_file():
        return False
    if "tests" in path.relative_to(root).parts[:-1]:
        return False  # policy test suites live beside the versions, under <id>/tests/
    if path.parent.parent.name == "policies":
        return True
    # outside the usual layout a file is a policy when it looks like one
    try:
        data = source.load(path).data
    except InputError:
        return False
    return isinstance(data, dict) and "sections" in data


def _load(path: Path) -> tuple[Policy | None, list[Finding]]:
    try:
        return policies.load_policy(path), []
    except PolicyError as error:
        # the file reads and validates but sits in the wrong place; lint it all the same
        found = [_finding(p) for p in error.problems]
        try:
            return policies.build_policy(source.load(path)), found
        except PolicyError:  # it cannot be built at all (an unknown value set): report why
            return None, found
    except InputError as error:
        return None, [_finding(p) for p in error.problems]


def lint_paths(paths: Iterable[str | Path]) -> LintReport:
    """Return the report of linting every policy file under `paths` (files or folders).

    Raises nothing for bad input: unreadable files, schema violations and missing paths are
    findings (see `LintReport.unreadable`).
    """
    paths = list(paths)
    found, findings = policy_files(paths)
    overlays = [p for p in found if p.parent.name == plans.FOLDER]
    overlays += _beside(paths, f"{plans.FOLDER}/*.yaml")
    files = [p for p in found if p.parent.name != plans.FOLDER]
    loaded: list[Policy] = []
    for path in files:
        policy, problems = _load(path)
        findings.extend(problems)
        if policy is not None:
            loaded.append(policy)
            findings.extend(lint_policy(policy))
    for code, check in LIBRARY_CHECKS.items():
        for policy, hit in check(loaded):
            findings.extend(_hits(policy, code, [hit]))
    overlays = list(dict.fromkeys(overlays))
    for path in overlays:
        findings.extend(_lint_plan(path, loaded))
    shared = _beside(paths, f"{modules.SHARED}/*/*.yaml")
    for path in shared:
        # a module no policy imports is checked too: the next policy to import it relies on it
        try:
            modules.check_file(path)
        except InputError as error:
            findings.extend(_finding(p) for p in error.problems)
    checked = [*files, *overlays, *shared]
    return LintReport(tuple(str(p) for p in checked), tuple(_settle(findings)))


# --- shared modules and plan overlays -------------------------------------------------------------


def _beside(paths: Iterable[str | Path], pattern: str) -> list[Path]:
    """Return the files matching `pattern` under the folders named, outside `tests/` and the
    shared value sets (neither is a module or a plan)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob(pattern))
                if "tests" not in p.relative_to(path).parts
                and p.parent.name not in modules.RESERVED
            )
    return list(dict.fromkeys(found))


def _lint_plan(path: Path, loaded: Iterable[Policy]) -> list[Finding]:
    """Check a plan overlay against every base version it can apply to, and compile each
    effective policy: a key the base lacks is an error located in the plan."""
    try:
        plan = plans.load_plan(path)
    except (InputError, PolicyError) as error:
        return [_finding(p) for p in error.problems]
    versions = plans.bases(plan, loaded)
    if not versions:
        return [_finding(plans.missing_base(plan))]
    findings: list[Finding] = []
    for base in versions:
        try:
            program_for(policies.with_plan(base, plan))
        except PolicyError as error:
            findings.extend(_finding(p) for p in error.problems)
    return findings


def list_rules() -> str:
    """Return the rule table as text: code, severity, origin and description per line."""
    width = max(len(code) for code in RULES)
    return "\n".join(
        f"{r.code:<{width}}  {r.severity.value:<7}  {r.origin.value:<8}  {r.description}"
        for r in RULES.values()
    )


def dumps(data: object) -> str:
    """Return JSON text for a report rendering (stable key order as built, two-space indent)."""
    return json.dumps(data, indent=2, ensure_ascii=False)
