"""The policy model: frozen dataclasses built from a validated policy file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from types import MappingProxyType

from evaluator.errors import Location
from evaluator.language.conditions import Binding, Condition, Scalar, Threshold
from evaluator.read.source import Document


class Status(StrEnum):
    """How a clause ends (domain.md section 3 item 1)."""

    MET = "met"
    NOT_MET = "not_met"
    NOT_DOCUMENTED = "not_documented"
    NOT_APPLICABLE = "not_applicable"


class Determination(StrEnum):
    """The overall result (domain.md section 3 item 4)."""

    MEDICALLY_NECESSARY = "medically_necessary"
    NOT_MEDICALLY_NECESSARY = "not_medically_necessary"
    INSUFFICIENT_DOCUMENTATION = "insufficient_documentation"


class Lifecycle(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class Reference:
    id: int
    citation: str
    doi: str | None = None
    url: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One changelog entry of a version: what changed, why, and the references behind it."""

    change: str
    reason: str
    cites: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LevelCodes:
    """One technique's CPT codes by level count: `first` once, `additional` per further level."""

    first: str
    additional: str | None = None

    def for_levels(self, count: int) -> tuple[tuple[str, int], ...]:
        """Return (code, units) for `count` levels."""
        if count <= 0:
            return ()
        if self.additional is None or count == 1:
            return ((self.first, 1),)
        return ((self.first, 1), (self.additional, count - 1))


@dataclass(frozen=True, slots=True)
class Procedure:
    procedure: str
    cpt: tuple[str, ...]
    codes: tuple[LevelCodes, ...] = ()
    # procedure kinds whose codes a line of this one may bill, judged as part of it
    includes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DerivedType:
    """A fact type that the policy's rules derive; fields map to their kinds."""

    name: str
    description: str
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class FromField:
    """A derived field copied from `alias.field` of a bound fact."""

    alias: str
    field: str


@dataclass(frozen=True, slots=True)
class DeriveRule:
    id: str
    description: str | None
    bindings: tuple[Binding, ...]
    when: Condition | None
    fact: str
    values: Mapping[str, Scalar | FromField]
    pointer: str
    # `module@version` when the rule comes from an imported shared module
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Clause:
    id: str
    section: str
    title: str
    description: str | None
    applies_when: Condition | None
    waived_by: Condition | None
    requires: Condition
    undocumented: Status
    cites: tuple[int, ...]
    rationale: Mapping[Status, str]
    recommendation: str
    documentation: tuple[str, ...]
    pointer: str
    # Per failing status, the sentence about this patient (evaluator/decide/findings.py templates).
    finding: Mapping[Status, str] = field(default_factory=dict)
    # `module@version template` when the clause places a shared clause template (`use`)
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    description: str | None
    clauses: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class AlternativeLine:
    procedure: str
    segments: str  # derived fact type with `segment` and `line` fields
    replaces: str  # the case fact type of the requested line's segments
    drops: tuple[str, ...] = ()
    codes: tuple[LevelCodes, ...] = ()


@dataclass(frozen=True, slots=True)
class Alternative:
    when: Condition
    summary: str
    lines: tuple[AlternativeLine, ...]


@dataclass(frozen=True, slots=True)
class Import:
    """A shared module a policy imports (modules.py), pinned by version."""

    module: str
    version: str
    title: str
    path: str
    # of the module's canonical content; the policy's content hash covers it
    sha256: str

    @property
    def ref(self) -> str:
        return f"{self.module}@{self.version}"


@dataclass(frozen=True, slots=True)
class AppliedPlan:
    """The plan overlay a policy was built with (plans.py): what it changed, and its hash."""

    id: str
    title: str
    line_of_business: str
    path: str
    sha256: str
    # (setting, base value, plan value) and (clause id, why) in the plan's order
    settings: tuple[tuple[str, Threshold, Threshold], ...] = ()
    clauses: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class ValueSet:
    """A named set of codes (``SYSTEM|code``), declared in a policy or shared (valuesets.py)."""

    name: str
    purpose: str
    codes: tuple[str, ...]
    unit: str | None = None
    oid: str | None = None
    origin: str = ""  # the file it was read from
    # where the policy declares it, or (a shared set) where it is first used
    pointer: str = ""
    shared: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    version: str
    title: str
    description: str | None
    status: Lifecycle
    effective_from: date
    effective_until: date | None
    procedures: tuple[Procedure, ...]
    # Procedure kinds of other lines whose facts the policy reads (one operation).
    reads: tuple[str, ...]
    settings: Mapping[str, Threshold]
    setting_notes: Mapping[str, str]
    below_threshold_words: tuple[str, ...]
    references: tuple[Reference, ...]
    derived: Mapping[str, DerivedType]
    rules: tuple[DeriveRule, ...]
    sections: tuple[Section, ...]
    alternative: Alternative | None
    sha256: str
    # The hash of the parsed content: key order, layout, comments and anchors do not change it.
    content_sha256: str
    supersedes: str | None
    changelog: tuple[Change, ...]
    path: str = field(compare=False)
    document: Document | None = field(default=None, compare=False, repr=False)
    # The value sets its conditions use, by name (already expanded into them at load).
    value_sets: Mapping[str, ValueSet] = field(default_factory=lambda: MappingProxyType({}))
    # The shared modules it imports, dependencies first (already merged into it at load).
    imports: tuple[Import, ...] = ()
    # The plan overlay it was built with (an effective policy), if any.
    plan: AppliedPlan | None = None
    # Pointers whose content an imported module wrote -> (its document, the pointer there).
    redirects: Mapping[str, tuple[Document, str]] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    def locate(self, pointer: str) -> Location:
        """Return the file location of a JSON pointer into the policy file (or, for content an
        imported module wrote, into the module's file)."""
        for prefix, (document, target) in self.redirects.items():
            if pointer == prefix or pointer.startswith(prefix + "/"):
                return document.location(target + pointer[len(prefix) :])
        if self.document is None:
            return Location(self.path, pointer=pointer)
        return self.document.location(pointer)

    @property
    def ref(self) -> str:
        """`id@version`, the way users name a policy."""
        return f"{self.id}@{self.version}"

    @property
    def clauses(self) -> tuple[Clause, ...]:
        return tuple(c for s in self.sections for c in s.clauses)

    def in_force(self, on: date) -> bool:
        """True when `on` falls in the effective window (whatever the status)."""
        if on < self.effective_from:
            return False
        return self.effective_until is None or on <= self.effective_until
