"""Policy test suites: load them, run them, compare expected and actual, write JUnit XML."""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

from evaluator import api
from evaluator.case import cases
from evaluator.case.cases import Case
from evaluator.decide.decision import ClauseResult, Decision
from evaluator.errors import Collector, InputError, Location, Problem, SourceError
from evaluator.language.model import Determination, Policy, Status
from evaluator.language.policies import Library, PolicyRef
from evaluator.read import schemas, source

SUITE_SCHEMA = "policy-test"
SUITE_SUFFIXES = (".yaml", ".yml", ".json")


# --- suites --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What a test expects; `alternative` is only compared when `check_alternative` is set."""

    determination: Determination
    clauses: Mapping[str, Status]
    check_alternative: bool = False
    alternative: Mapping[str, str] | None = None


@dataclass(frozen=True)
class PolicyTest:
    """One test of a suite: its name, where it is written, the case and the expectation."""

    name: str
    description: str | None
    location: Location
    case: Case
    expect: Expectation


@dataclass(frozen=True)
class Suite:
    """A suite file and the policy version its tests run against."""

    path: str
    policy: Policy
    tests: tuple[PolicyTest, ...]


def find_suites(library: Library, names: Sequence[str] = ()) -> list[tuple[Path, str | None]]:
    """Return `(suite file, version override)` for the named policies, files or folders.

    A name that exists as a path is a suite file or a folder of them (of a policy's folder, its
    `tests/`); any other name is a policy id, optionally `id@version` to run that policy's suites
    against that version. Without names, every policy under the library root that has a
    `tests/` folder. Raises PolicyNotFoundError for an unknown policy id.
    """
    found: list[tuple[Path, str | None]] = []
    if not names:
        folders = sorted(p / "tests" for p in library.root.iterdir() if (p / "tests").is_dir())
        return [(f, None) for folder in folders for f in _suite_files(folder)]
    for name in names:
        path = Path(name)
        if path.is_dir():
            # A policy's own folder holds policy files too: only its tests/ are suites.
            folder = path / "tests" if (path / "tests").is_dir() else path
            found.extend((f, None) for f in _suite_files(folder))
        elif os.path.lexists(path):
            # any other entry, even a FIFO or a broken link, is a suite file that `load` refuses
            # with a message rather than a policy id
            found.append((path, None))
        else:
            ref = PolicyRef.parse(name)
            if ref.version or not (library.root / ref.id).is_dir():
                # An unknown id or version: PolicyNotFoundError naming the known ones. A draft
                # named with its version is found, so a new policy can be tested by id@version.
                library.get(ref)
            found.extend((f, ref.version) for f in _suite_files(library.root / ref.id / "tests"))
    return found


def _suite_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return list(source.find_files([folder], SUITE_SUFFIXES))


def load_suite(path: str | Path, library: Library, version: str | None = None) -> Suite:
    """Read and validate a suite file and every case it names; return the Suite.

    `version` overrides the suite's own policy version. Raises SourceError or SchemaError for a
    bad suite file, CaseError or SourceError for a bad case (inline cases located in the suite
    file), PolicyNotFoundError for an unknown policy and InputError for a test that names an
    unknown clause or procedure or repeats a name.
    """
    document = source.load(path)
    schemas.validate(document, SUITE_SCHEMA)
    data = document.data
    wanted = PolicyRef(data["policy"]["id"], version or data["policy"].get("version"))
    policy = library.get(wanted)
    problems = Collector()
    tests, names = [], set()
    for i, raw in enumerate(data["tests"]):
        at = f"/tests/{i}"
        if raw["name"] in names:
            problems.add(
                "duplicate_test",
                f"test name `{raw['name']}` is used twice",
                document.location(f"{at}/name"),
            )
        names.add(raw["name"])
        expect = _expectation(raw["expect"], f"{at}/expect", policy, document, problems)
        try:
            case = _case(raw, at, document, library.root.parent)
        except InputError as error:
            problems.extend(error.problems)
            continue
        tests.append(
            PolicyTest(raw["name"], raw.get("description"), document.location(at), case, expect)
        )
    problems.raise_if_any(InputError)
    return Suite(str(path), policy, tuple(tests))


def _expectation(
    raw: Mapping[str, Any], at: str, policy: Policy, document: source.Document, problems: Collector
) -> Expectation:
    known = {c.id for c in policy.clauses}
    for clause in raw.get("clauses", {}):
        if clause not in known:
            problems.add(
                "unknown_clause",
                f"`{policy.ref}` has no clause `{clause}`",
                document.location(f"{at}/clauses/{source.make_pointer([clause])[1:]}"),
            )
    alternative = raw.get("alternative")
    procedures = (
        {line.procedure for line in policy.alternative.lines} if policy.alternative else set()
    )
    for procedure in alternative or {}:
        if procedure not in procedures:
            shown = ", ".join(f"`{p}`" for p in sorted(procedures)) or "none"
            problems.add(
                "unknown_procedure",
                f"`{policy.ref}` offers no alternative `{procedure}` (offers: {shown})",
                document.location(f"{at}/alternative/{procedure}"),
            )
    return Expectation(
        Determination(raw["determination"]),
        MappingProxyType({k: Status(v) for k, v in raw.get("clauses", {}).items()}),
        "alternative" in raw,
        MappingProxyType(dict(alternative)) if alternative is not None else None,
    )


def _case(raw: Mapping[str, Any], at: str, document: source.Document, root: Path) -> Case:
    if "facts" not in raw:
        here = Path(document.path).parent
        candidates = [here / raw["case"], root / raw["case"]]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise SourceError.single(
                "file_not_found",
                f"no case file `{raw['case']}` beside the suite or in {root}",
                document.location(f"{at}/case"),
            )
        return cases.load_case(path)
    # The inline case as a document of its own whose positions are those in the suite file, so
    # a problem found while normalising it points at the suite's line; the pointer is re-rooted.
    prefix = f"{at}/facts"
    positions = {
        p[len(prefix) :]: pos
        for p, pos in document.positions.items()
        if p == prefix or p.startswith(prefix + "/")
    }
    inner = source.Document(raw["facts"], document.path, MappingProxyType(positions))
    try:
        return cases.case_from_document(inner)
    except InputError as error:
        moved = [
            dataclasses.replace(
                p,
                location=dataclasses.replace(
                    p.location, pointer=prefix + (p.location.pointer or "")
                ),
            )
            for p in error.problems
        ]
        raise type(error)(moved) from None


# --- running and comparing -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClauseCheck:
    """One expected clause status beside the clause's result (its status and evidence)."""

    clause: str
    expected: Status
    result: ClauseResult

    @property
    def actual(self) -> Status:
        return self.result.status

    @property
    def ok(self) -> bool:
        return self.expected is self.actual


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test: the decision and every comparison made on it."""

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    suite: str
    test: PolicyTest
    policy: Policy
    decision: Decision
    clauses: tuple[ClauseCheck, ...]
    alternative: Mapping[str, str] | None
    seconds: float

    @property
    def determination_ok(self) -> bool:
        return self.test.expect.determination is self.decision.determination

    @property
    def alternative_ok(self) -> bool:
        expect = self.test.expect
        if not expect.check_alternative:
            return True
        if expect.alternative is None or self.alternative is None:
            return expect.alternative is None and self.alternative is None
        return all(self.alternative.get(p) == levels for p, levels in expect.alternative.items())

    @property
    def passed(self) -> bool:
        return self.determination_ok and self.alternative_ok and all(c.ok for c in self.clauses)


class Observer(Protocol):
    """Anything that wants to see each result as it is made (coverage, progress output)."""

    def observe(self, result: TestResult) -> None: ...


def run_test(suite: Suite, test: PolicyTest) -> TestResult:
    """Evaluate one test's case and compare; return the TestResult.

    Raises PolicyError or EngineError as `api.evaluate` does.
    """
    started = time.perf_counter()
    decision = api.evaluate(test.case, suite.policy)
    seconds = time.perf_counter() - started
    by_id = {c.id: c for c in decision.clauses}
    checks = tuple(
        ClauseCheck(clause, status, by_id[clause]) for clause, status in test.expect.clauses.items()
    )
    alternative = None
    if decision.alternative is not None:
        alternative = MappingProxyType(
            {ln.procedure: ln.levels for ln in decision.alternative.lines}
        )
    return TestResult(suite.path, test, suite.policy, decision, checks, alternative, seconds)


def run(suites: Iterable[Suite], observers: Iterable[Observer] = ()) -> list[TestResult]:
    """Run every test of every suite in order, showing each result to the observers.

    Returns the results; raises PolicyError or EngineError as `api.evaluate` does.
    """
    watching = list(observers)
    results = []
    for suite in suites:
        for test in suite.tests:
            result = run_test(suite, test)
            for observer in watching:
                observer.observe(result)
            results.append(result)
    return results


# --- JUnit XML -----------------------------------------------------------------------------------


def junit_xml(
    results: Sequence[TestResult], failure_text: Callable[[TestResult], str]
) -> ET.ElementTree:
    """Return a JUnit XML tree: one testsuite per suite file, one testcase per test.

    `failure_text(result)` gives the body of a failure element (the text diff).
    """
    root = ET.Element(
        "testsuites",
        name="necessity",
        tests=str(len(results)),
        failures=str(sum(not r.passed for r in results)),
        errors="0",
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for path, group in itertools.groupby(results, key=lambda r: r.suite):
        items = list(group)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=path,
            tests=str(len(items)),
            failures=str(sum(not r.passed for r in items)),
            errors="0",
            skipped="0",
            time=f"{sum(r.seconds for r in items):.3f}",
        )
        for result in items:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{result.policy.ref}:{Path(path).stem}",
                name=result.test.name,
                file=path,
                line=str(result.test.location.line or 0),
                time=f"{result.seconds:.3f}",
            )
            if not result.passed:
                failure = ET.SubElement(
                    case, "failure", type="expectation", message=failure_summary(result)
                )
                failure.text = failure_text(result)
    ET.indent(root)
    return ET.ElementTree(root)


def junit_errors(problems: Sequence[Problem]) -> ET.ElementTree:
    """Return a JUnit XML tree for suites that could not be read: per file, one test named
    `load` whose error is each problem, located."""
    by_file: dict[str, list[Problem]] = {}
    for problem in problems:
        by_file.setdefault(problem.location.file or "<unknown>", []).append(problem)
    root = ET.Element(
        "testsuites",
        name="necessity",
        tests=str(len(by_file)),
        failures="0",
        errors=str(len(by_file)),
        time="0.000",
    )
    for path, found in by_file.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=path,
            tests="1",
            failures="0",
            errors="1",
            skipped="0",
            time="0.000",
        )
        case = ET.SubElement(
            suite,
            "testcase",
            classname=Path(path).stem,
            name="load",
            file=path,
            line=str(found[0].location.line or 0),
            time="0.000",
        )
        error = ET.SubElement(case, "error", type=found[0].code, message=str(found[0]))
        error.text = "\n".join(str(problem) for problem in found)
    ET.indent(root)
    return ET.ElementTree(root)


def failure_summary(result: TestResult) -> str:
    """Return one line naming what differed."""
    parts = []
    if not result.determination_ok:
        parts.append(
            f"determination {result.decision.determination} "
            f"(expected {result.test.expect.determination})"
        )
    parts += [f"{c.clause} {c.actual} (expected {c.expected})" for c in result.clauses if not c.ok]
    if not result.alternative_ok:
        parts.append("alternative differs")
    return "; ".join(parts) or "passed"
