"""Policy test suites: load them, run them, compare, measure clause-status coverage, write JUnit."""

from __future__ import annotations

import dataclasses
import itertools
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from . import api, cases, dictionary, schemas, source
from .cases import Case
from .comparisons import NEVER, lower
from .conditions import (
    All,
    AnyOf,
    ClauseIs,
    Compare,
    Condition,
    Count,
    Demonstrated,
    Every,
    Exists,
    Not,
    NOf,
    Some,
    Truth,
)
from .decision import Decision, Evidence
from .errors import Collector, InputError, Location, Problem, SourceError
from .model import Determination, Policy, Status
from .policies import Library, PolicyRef

SUITE_SCHEMA = "policy-test"
SUITE_SUFFIXES = (".yaml", ".yml", ".json")
F, U, T = Truth.FALSE, Truth.UNKNOWN, Truth.TRUE


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

    A name is a suite file or a folder of them (when it exists as a path), else a policy id,
    optionally `id@version` to run that policy's suites against that version. Without names,
    every policy under the library root that has a `tests/` folder. Raises PolicyNotFoundError
    for an unknown policy id.
    """
    found: list[tuple[Path, str | None]] = []
    if not names:
        folders = sorted(p / "tests" for p in library.root.iterdir() if (p / "tests").is_dir())
        return [(f, None) for folder in folders for f in _suite_files(folder)]
    for name in names:
        path = Path(name)
        if path.is_file():
            found.append((path, None))
        elif path.is_dir():
            found.extend((f, None) for f in _suite_files(path))
        else:
            ref = PolicyRef.parse(name)
            library.get(ref.id)  # an unknown id: PolicyNotFoundError naming the known ones
            found.extend((f, ref.version) for f in _suite_files(library.root / ref.id / "tests"))
    return found


def _suite_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in SUITE_SUFFIXES and p.is_file())


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
            problems.add("duplicate_test", f"test name `{raw['name']}` is used twice",
                         document.location(f"{at}/name"))
        names.add(raw["name"])
        expect = _expectation(raw["expect"], f"{at}/expect", policy, document, problems)
        try:
            case = _case(raw, at, document, library.root.parent)
        except InputError as error:
            problems.extend(error.problems)
            continue
        tests.append(PolicyTest(raw["name"], raw.get("description"), document.location(at),
                                case, expect))
    problems.raise_if_any(InputError)
    return Suite(str(path), policy, tuple(tests))


def _expectation(raw: Mapping[str, Any], at: str, policy: Policy, document: source.Document,
                 problems: Collector) -> Expectation:
    known = {c.id for c in policy.clauses}
    for clause in raw.get("clauses", {}):
        if clause not in known:
            problems.add("unknown_clause", f"`{policy.ref}` has no clause `{clause}`",
                         document.location(f"{at}/clauses/{source.make_pointer([clause])[1:]}"))
    alternative = raw.get("alternative")
    procedures = {line.procedure for line in policy.alternative.lines} if policy.alternative else set()
    for procedure in alternative or {}:
        if procedure not in procedures:
            shown = ", ".join(f"`{p}`" for p in sorted(procedures)) or "none"
            problems.add("unknown_procedure",
                         f"`{policy.ref}` offers no alternative `{procedure}` (offers: {shown})",
                         document.location(f"{at}/alternative/{procedure}"))
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
                "file_not_found", f"no case file `{raw['case']}` beside the suite or in {root}",
                document.location(f"{at}/case"),
            )
        return cases.load_case(path)
    # The inline case as a document of its own whose positions are those in the suite file, so
    # a problem found while normalising it points at the suite's line; the pointer is re-rooted.
    prefix = f"{at}/facts"
    positions = {
        p[len(prefix):]: pos for p, pos in document.positions.items()
        if p == prefix or p.startswith(prefix + "/")
    }
    inner = source.Document(raw["facts"], document.path, MappingProxyType(positions))
    try:
        return cases.case_from_document(inner)
    except InputError as error:
        moved = [dataclasses.replace(p, location=dataclasses.replace(
            p.location, pointer=prefix + (p.location.pointer or ""))) for p in error.problems]
        raise type(error)(moved) from None


# --- running and comparing -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClauseCheck:
    """One expected clause status beside the actual one, with the clause's deciding evidence."""

    clause: str
    expected: Status
    actual: Status
    evidence: tuple[Evidence, ...]

    @property
    def ok(self) -> bool:
        return self.expected is self.actual


@dataclass(frozen=True)
class TestResult:
    """The outcome of one test: the decision and every comparison made on it."""

    suite: str
    test: PolicyTest
    policy: str
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
        ClauseCheck(clause, status, by_id[clause].status, by_id[clause].evidence)
        for clause, status in test.expect.clauses.items()
    )
    alternative = None
    if decision.alternative is not None:
        alternative = MappingProxyType({ln.procedure: ln.levels for ln in decision.alternative.lines})
    return TestResult(suite.path, test, suite.policy.ref, decision, checks, alternative, seconds)


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


# --- coverage ------------------------------------------------------------------------------------


def reachable_statuses(policy: Policy) -> dict[str, frozenset[Status]]:
    """Return, for each clause, the statuses some case could give it, worked out statically.

    A clause's statuses follow from the truth values its conditions can take:

    - `not_applicable` when `applies_when` can be false or `waived_by` can be true;
    - `met` when `requires` can be true, `not_met` when it can be false, and its `undocumented`
      status (`not_documented` by default, or `not_met`) when it can be unknown;
    - a `requires` written exactly like `applies_when` (as with a YAML anchor) is only evaluated
      when that is not false, so it cannot be false; one written like `waived_by` cannot be true.

    The values a condition can take, assuming its parts vary independently:

    - a comparison: the outcomes its lowering can produce (`documented` is never false), plus
      its `if_absent` value unless it tests a bound fact (which is always there);
    - `exists`: true or false; `clause X is S`: true when X can end S, false when X can end
      otherwise;
    - `not` swaps true and false; `demonstrated` is true or, from false or unknown, false;
    - `all`, `any` and `n_of`: Kleene combinations of their parts' values;
    - `every`: true (vacuously, over no facts) plus its requirement's values; `some`: false plus
      its requirement's values; `count`: unknown (too few facts documented) plus true and false
      when its requirement can be;
    - anything else: all three (an over-estimate: it can only make a status look reachable).

    Independence can over-estimate (parts that share facts) but never hides a reachable status.
    """
    analysis = _Reach(policy)
    return {c.id: analysis.clause(c.id) for c in policy.clauses}


class _Reach:
    def __init__(self, policy: Policy) -> None:
        self.types = dictionary.with_derived(policy.derived)
        self.words = policy.below_threshold_words
        self.clauses = {c.id: c for c in policy.clauses}
        self.done: dict[str, frozenset[Status]] = {}
        self.busy: set[str] = set()

    def clause(self, clause_id: str) -> frozenset[Status]:
        if clause_id in self.done:
            return self.done[clause_id]
        clause = self.clauses.get(clause_id)
        if clause is None or clause_id in self.busy:  # the compiler rejects both
            return frozenset(Status)
        self.busy.add(clause_id)
        applies = self.values(clause.applies_when, {}) if clause.applies_when else {T}
        waiver = self.values(clause.waived_by, {}) if clause.waived_by else {F}
        requires = set(self.values(clause.requires, {}))
        if clause.applies_when is not None and _shape(clause.requires) == _shape(clause.applies_when):
            requires.discard(F)
        if clause.waived_by is not None and _shape(clause.requires) == _shape(clause.waived_by):
            requires.discard(T)
        if applies == {F} or waiver == {T}:
            requires.clear()  # never evaluated
        out = {Status.NOT_APPLICABLE} if F in applies or T in waiver else set()
        outcome = {T: Status.MET, F: Status.NOT_MET, U: clause.undocumented}
        out.update(outcome[v] for v in requires)
        self.busy.discard(clause_id)
        self.done[clause_id] = frozenset(out)
        return self.done[clause_id]

    def values(self, cond: Condition, scope: Mapping[str, str]) -> frozenset[Truth]:
        """Return the truth values `cond` can take; `scope` maps bound aliases to fact types."""
        if isinstance(cond, Compare):
            return self.compare(cond, scope)
        if isinstance(cond, Exists):
            return frozenset({T, F})
        if isinstance(cond, ClauseIs):
            statuses = self.clause(cond.clause)
            wanted = Status(cond.status)
            return frozenset({T} if wanted in statuses else set()) | (
                {F} if statuses - {wanted} else set()
            )
        if isinstance(cond, Not):
            return frozenset(Truth(2 - v) for v in self.values(cond.part, scope))
        if isinstance(cond, Demonstrated):
            inner = self.values(cond.part, scope)
            return frozenset(({T} if T in inner else set()) | ({F} if inner - {T} else set()))
        if isinstance(cond, All | AnyOf):
            pick = min if isinstance(cond, All) else max
            found = {T if isinstance(cond, All) else F}  # the identity of an empty combination
            for part in cond.parts:
                options = self.values(part, scope)
                found = {pick(a, b) for a in found for b in options}
            return frozenset(found)
        if isinstance(cond, NOf):
            counts = {(0, 0)}  # (true parts, unknown parts)
            for part in cond.parts:
                options = self.values(part, scope)
                counts = {(t + (v is T), u + (v is U)) for t, u in counts for v in options}
            n = cond.at_least
            return frozenset(
                T if t >= n else (U if t + u >= n else F) for t, u in counts
            )
        if isinstance(cond, Every | Some | Count):
            inner_scope = {**scope, cond.binding.alias: cond.binding.fact}
            inner = self.values(cond.require, inner_scope)
            if isinstance(cond, Every):
                return frozenset({T} | inner)
            if isinstance(cond, Some):
                return frozenset({F} | inner)
            if cond.at_least <= 0:
                return frozenset({T})
            return frozenset({U} | (inner & {T, F}))
        return frozenset({T, F, U})

    def compare(self, leaf: Compare, scope: Mapping[str, str]) -> frozenset[Truth]:
        bound = scope.get(leaf.fact)
        fact = self.types.get(bound or leaf.fact)
        info = fact.fields.get(leaf.field) if fact else None
        if info is None:
            return frozenset({T, F, U})
        outcomes = lower(leaf, info, self.words, Collector(), lambda _pointer: Location())
        tests = ((T, outcomes.true), (F, outcomes.false), (U, outcomes.unknown))
        found = {value for value, test in tests if test != NEVER}
        if bound is None:
            found.add(leaf.if_absent)  # no matching fact at all
        return frozenset(found)


def _shape(value: Any) -> Any:
    """Return a condition as comparable data without the pointer and note that place it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, *(
            (f.name, _shape(getattr(value, f.name)))
            for f in dataclasses.fields(value) if f.name not in ("pointer", "note")
        ))
    if isinstance(value, tuple):
        return tuple(_shape(v) for v in value)
    return value


@dataclass(frozen=True)
class ClauseCoverage:
    """Which statuses of one clause are reachable and which the suites checked."""

    clause: str
    reachable: frozenset[Status]
    exercised: frozenset[Status]

    @property
    def missing(self) -> tuple[Status, ...]:
        return tuple(s for s in Status if s in self.reachable and s not in self.exercised)


@dataclass(frozen=True)
class PolicyCoverage:
    """Coverage of one policy version: per clause, and overall as a percentage."""

    policy: str
    clauses: tuple[ClauseCoverage, ...]

    @property
    def reachable(self) -> int:
        return sum(len(c.reachable) for c in self.clauses)

    @property
    def covered(self) -> int:
        return sum(len(c.reachable & c.exercised) for c in self.clauses)

    @property
    def percent(self) -> float:
        return 100.0 if not self.reachable else 100.0 * self.covered / self.reachable


class Coverage:
    """An observer of results: which clause statuses the tests checked, per policy version.

    A status counts as exercised when a test expects it for the clause and the evaluation gives
    it: a status the engine produced but no test asserted is not tested.
    """

    def __init__(self) -> None:
        self.policies: dict[str, Policy] = {}
        self.seen: dict[str, dict[str, set[Status]]] = {}

    def observe(self, result: TestResult) -> None:
        """Record the checked statuses of one result."""
        self.policies.setdefault(result.policy, _policy_of(result))
        seen = self.seen.setdefault(result.policy, {})
        for check in result.clauses:
            if check.ok:
                seen.setdefault(check.clause, set()).add(check.actual)

    def add_policy(self, policy: Policy) -> None:
        """Count a policy even if no test ran against it (so its coverage shows as 0 %)."""
        self.policies.setdefault(policy.ref, policy)

    def report(self) -> list[PolicyCoverage]:
        """Return the coverage of every policy seen, sorted by policy."""
        out = []
        for ref in sorted(self.policies):
            reach = reachable_statuses(self.policies[ref])
            seen = self.seen.get(ref, {})
            out.append(PolicyCoverage(ref, tuple(
                ClauseCoverage(clause, statuses, frozenset(seen.get(clause, ())))
                for clause, statuses in reach.items()
            )))
        return out


def _policy_of(result: TestResult) -> Policy:
    # The policy is not on the result (results stay small); the library caches it by path.
    ref = PolicyRef.parse(result.policy)
    return _RESULT_POLICIES[ref.id, ref.version or ""]


_RESULT_POLICIES: dict[tuple[str, str], Policy] = {}


# --- JUnit XML -----------------------------------------------------------------------------------


def junit_xml(results: Sequence[TestResult], failure_text: Any) -> ET.ElementTree:
    """Return a JUnit XML tree: one testsuite per suite file, one testcase per test.

    `failure_text(result)` gives the body of a failure element (the text diff).
    """
    root = ET.Element("testsuites", name="necessity", tests=str(len(results)),
                      failures=str(sum(not r.passed for r in results)), errors="0",
                      time=f"{sum(r.seconds for r in results):.3f}")
    for path, group in itertools.groupby(results, key=lambda r: r.suite):
        items = list(group)
        suite = ET.SubElement(root, "testsuite", name=path, tests=str(len(items)),
                              failures=str(sum(not r.passed for r in items)), errors="0",
                              skipped="0", time=f"{sum(r.seconds for r in items):.3f}")
        for result in items:
            case = ET.SubElement(suite, "testcase", classname=f"{result.policy}:{Path(path).stem}",
                                 name=result.test.name, file=path,
                                 line=str(result.test.location.line or 0),
                                 time=f"{result.seconds:.3f}")
            if not result.passed:
                failure = ET.SubElement(case, "failure", type="expectation",
                                        message=failure_summary(result))
                failure.text = failure_text(result)
    ET.indent(root)
    return ET.ElementTree(root)


def failure_summary(result: TestResult) -> str:
    """Return one line naming what differed."""
    parts = []
    if not result.determination_ok:
        parts.append(f"determination {result.decision.determination} "
                     f"(expected {result.test.expect.determination})")
    parts += [f"{c.clause} {c.actual} (expected {c.expected})" for c in result.clauses if not c.ok]
    if not result.alternative_ok:
        parts.append("alternative differs")
    return "; ".join(parts) or "passed"


__all__ = [
    "ClauseCheck", "ClauseCoverage", "Coverage", "Expectation", "Observer", "PolicyCoverage",
    "PolicyTest", "Problem", "Suite", "TestResult", "failure_summary", "find_suites", "junit_xml",
    "load_suite", "reachable_statuses", "run", "run_test",
]
