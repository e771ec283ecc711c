"""Policy files: read, validate and build the model; the library of policies under a folder."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from evaluator.errors import Location, PolicyError, PolicyNotFoundError, Problem
from evaluator.language import modules, valuesets
from evaluator.language.conditions import (
    Condition,
    PolicyIs,
    Threshold,
    parse_binding,
    parse_condition,
    walk,
)
from evaluator.language.model import (
    Alternative,
    AlternativeLine,
    AppliedPlan,
    Change,
    Clause,
    DerivedType,
    DeriveRule,
    FromField,
    Import,
    LevelCodes,
    Lifecycle,
    Policy,
    Procedure,
    Reference,
    Section,
    Status,
)
from evaluator.read import digest, parse_cache, resources, schemas, source

if TYPE_CHECKING:
    # a Plan comes from plans.load_plan, whose caller has imported plans: a case without a
    # plan never needs it (a cold `evaluate` does not import it)
    from evaluator.language import plans

POLICY_SCHEMA = "policy"


def load_policy(path: str | Path) -> Policy:
    """Return the Policy in a file.

    Raises SourceError for a malformed file, SchemaError for a schema violation and PolicyError
    when the file's id or version disagrees with its place under policies/<id>/<version>.yaml.
    """
    document = parse_cache.load(path)
    schemas.validate(document, POLICY_SCHEMA)
    policy = build_policy(document)
    _check_place(policy, Path(path))
    return policy


def _sha256(document: source.Document) -> str:
    # a policy version is identified by its file's bytes; standard input can be read only once,
    # so a policy read from it is identified by its data
    if document.path == source.STDIN_NAME:
        return content_sha256(document.data)
    return hashlib.sha256(Path(document.path).read_bytes()).hexdigest()


def with_plan(policy: Policy, plan: plans.Plan) -> Policy:
    """Return the effective policy: `policy` with the plan overlay applied.

    Raises PolicyError, located in the plan, for a key the base lacks, a unit that differs or
    a plan pinned to another version.
    """
    from evaluator.language import plans  # noqa: PLC0415  (see TYPE_CHECKING above)

    problems = list(plans.overlay_problems(plan, policy))
    if problems:
        raise PolicyError(problems)
    if policy.document is None:  # pragma: no cover - every loaded policy keeps its document
        raise PolicyError.single(
            "unknown_plan_base", "the base policy has no document", plan.locate("")
        )
    return build_policy(policy.document, plan)


def build_policy(document: source.Document, plan: plans.Plan | None = None) -> Policy:
    """Return the Policy model of a schema-valid document.

    Imports resolve first (modules.py), then value sets expand to plain conditions
    (valuesets.py); raises PolicyError for an unknown module, an import cycle or clash, an
    unknown value set or a threshold unit that does not convert.
    """
    resolution = modules.resolve(document)
    base_settings = dict(resolution.data.get("settings", {}))
    if plan is not None:
        from evaluator.language import plans  # noqa: PLC0415

        plans.overlay_data(plan, resolution.data)
    expansion = valuesets.expand(document, resolution.data, resolution.value_sets)
    data: Mapping[str, Any] = expansion.data
    raw_settings = {k: v for k, v in data.get("settings", {}).items() if k != "qualitative_words"}
    settings = {k: Threshold(v["value"], v["unit"], k) for k, v in raw_settings.items()}
    words = data.get("settings", {}).get("qualitative_words", {}).get("below_threshold", [])

    def cond(value: Any, pointer: str) -> Any:
        return None if value is None else parse_condition(value, pointer, settings)

    sections = []
    for si, sec in enumerate(data["sections"]):
        clauses = []
        for ci, raw in enumerate(sec["clauses"]):
            base = f"/sections/{si}/clauses/{ci}"
            clauses.append(
                Clause(
                    id=raw["id"],
                    section=sec["id"],
                    title=raw["title"],
                    description=raw.get("description"),
                    applies_when=cond(raw.get("applies_when"), f"{base}/applies_when"),
                    waived_by=cond(raw.get("waived_by"), f"{base}/waived_by"),
                    requires=cond(raw["requires"], f"{base}/requires"),
                    undocumented=Status(raw.get("undocumented", "not_documented")),
                    cites=tuple(raw["cites"]),
                    rationale=MappingProxyType(
                        {Status(k): v for k, v in raw.get("rationale", {}).items()}
                    ),
                    recommendation=raw["recommendation"],
                    documentation=tuple(raw.get("documentation", ())),
                    pointer=base,
                    finding=MappingProxyType(
                        {Status(k): v for k, v in raw.get("finding", {}).items()}
                    ),
                    origin=resolution.origins.get(f"clause:{raw['id']}"),
                )
            )
        sections.append(Section(sec["id"], sec["title"], sec.get("description"), tuple(clauses)))

    rules = []
    for ri, raw in enumerate(data.get("rules", [])):
        base = f"/rules/{ri}"
        values: dict[str, Any] = {}
        for name, value in raw["derive"].get("set", {}).items():
            if isinstance(value, Mapping):
                alias, _, field = value["from"].partition(".")
                values[name] = FromField(alias, field)
            else:
                values[name] = value
        rules.append(
            DeriveRule(
                id=raw["id"],
                description=raw.get("description"),
                bindings=tuple(
                    parse_binding(b, f"{base}/for_each/{i}")
                    for i, b in enumerate(raw.get("for_each", []))
                ),
                when=cond(raw.get("when"), f"{base}/when"),
                fact=raw["derive"]["fact"],
                values=MappingProxyType(values),
                pointer=base,
                origin=resolution.origins.get(f"rule:{raw['id']}"),
            )
        )

    alternative = None
    if "alternative" in data:
        alt = data["alternative"]
        alternative = Alternative(
            when=parse_condition(alt["when"], "/alternative/when", settings),
            summary=alt.get("summary", ""),
            lines=tuple(
                AlternativeLine(
                    x["procedure"],
                    x["segments"],
                    x["replaces"],
                    tuple(x.get("drops", ())),
                    _codes(x.get("codes", ())),
                )
                for x in alt["lines"]
            ),
        )

    effective = data["effective"]
    return Policy(
        id=data["id"],
        version=str(data["version"]),
        title=data["title"],
        description=data.get("description"),
        status=Lifecycle(data["status"]),
        effective_from=date.fromisoformat(effective["from"]),
        effective_until=date.fromisoformat(effective["until"]) if "until" in effective else None,
        procedures=_procedures(data),
        reads=tuple(data.get("reads", ())),
        settings=MappingProxyType(settings),
        setting_notes=MappingProxyType({k: v["description"] for k, v in raw_settings.items()}),
        below_threshold_words=tuple(w.lower() for w in words),
        references=tuple(
            Reference(r["id"], r["citation"], r.get("doi"), r.get("url"), r.get("note"))
            for r in data["references"]
        ),
        derived=MappingProxyType(
            {
                name: DerivedType(name, d["description"], MappingProxyType(dict(d["fields"])))
                for name, d in data.get("facts", {}).items()
            }
        ),
        rules=tuple(rules),
        sections=tuple(sections),
        alternative=alternative,
        sha256=_sha256(document),
        # A shared value set or module is part of what the policy says, so its hash covers it.
        content_sha256=content_sha256(_hashed(document, expansion, resolution, plan)),
        supersedes=data.get("supersedes"),
        changelog=tuple(
            Change(c["change"], c["reason"], tuple(c.get("cites", ())))
            for c in data.get("changelog", ())
        ),
        path=document.path,
        document=document,
        value_sets=MappingProxyType(expansion.value_sets),
        imports=tuple(
            Import(m.name, m.version, m.data["title"], m.path, m.sha256) for m in resolution.modules
        ),
        plan=None if plan is None else _applied(plan, base_settings, settings),
        redirects=MappingProxyType(resolution.redirects),
    )


def _procedures(data: Mapping[str, Any]) -> tuple[Procedure, ...]:
    # only the policy file lists procedures (neither a module nor a plan can change them), so
    # a version read but not built (`_Window`) knows them as its built Policy would
    return tuple(
        Procedure(
            p["procedure"],
            tuple(p.get("cpt", ())),
            _codes(p.get("codes", ())),
            tuple(p.get("includes", ())),
        )
        for p in data["procedures"]
    )


def _applied(
    plan: plans.Plan, base: Mapping[str, Any], settings: Mapping[str, Threshold]
) -> AppliedPlan:
    return AppliedPlan(
        plan.id,
        plan.title,
        plan.line_of_business,
        plan.path,
        plan.sha256,
        tuple(
            (name, Threshold(base[name]["value"], base[name]["unit"], name), settings[name])
            for name in plan.settings
        ),
        tuple((cid, change.get("reason")) for cid, change in plan.clauses.items()),
    )


def _hashed(
    document: source.Document,
    expansion: valuesets.Expansion,
    resolution: modules.Resolution,
    plan: plans.Plan | None,
) -> Any:
    # a policy with nothing shared hashes as its own data, as before shared files existed
    if not expansion.shared and not resolution.modules and plan is None:
        return document.data
    hashed: dict[str, Any] = {"policy": document.data}
    if expansion.shared:
        hashed["value_sets"] = expansion.shared
    if resolution.modules:
        hashed["modules"] = {m.ref: m.data for m in resolution.modules}
    if plan is not None:
        hashed["plan"] = plan.document.data
    return hashed


def content_sha256(data: Any) -> str:
    """Return the SHA-256 of a document's canonical JSON (sorted keys, no spaces).

    Key order, layout, comments and YAML anchors are not part of it: a reformatted copy hashes
    the same, an edited value does not.
    """
    return digest.canonical_sha256(data)


def _check_place(policy: Policy, path: Path) -> None:
    _check_placed(policy.id, policy.version, path, policy.locate)


def _check_placed(
    policy_id: str, version: str, path: Path, locate: Callable[[str], Location]
) -> None:
    # The folder layout is how `--policy ID@VERSION` finds a file, so a mismatch is an error.
    problems = []
    if path.stem != version:
        problems.append(
            Problem(
                "version_mismatch",
                f"version `{version}` does not match the file name `{path.name}`",
                locate("/version"),
            )
        )
    if path.parent.name != policy_id and path.parent.parent.name == "policies":
        problems.append(
            Problem(
                "id_mismatch",
                f"id `{policy_id}` does not match the folder `{path.parent.name}`",
                locate("/id"),
            )
        )
    if problems:
        raise PolicyError(problems)


class Dated(Protocol):
    """What choosing the version in force, and the policy that governs a service line, read of
    a policy version: a built Policy, or a version only read and checked (`_Window`)."""

    @property
    def ref(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def status(self) -> Lifecycle: ...
    @property
    def effective_from(self) -> date: ...
    @property
    def effective_until(self) -> date | None: ...
    @property
    def procedures(self) -> tuple[Procedure, ...]: ...

    def in_force(self, on: date) -> bool: ...


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(frozen=True, eq=False, repr=False)
class _Window:
    """A policy version's file, read and checked as `load_policy` does (parsed, valid against
    the schema, in its place), but not built: its lifecycle, effective window and procedures,
    which are all that choosing the version in force, and whether it governs a service line,
    need. Imports and plans cannot change them."""

    path: Path
    document: source.Document
    id: str
    version: str
    status: Lifecycle
    effective_from: date
    effective_until: date | None
    procedures: tuple[Procedure, ...]

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @classmethod
    def read(cls, path: Path) -> _Window:
        document = parse_cache.load(path)
        schemas.validate(document, POLICY_SCHEMA)
        data = document.data
        effective = data["effective"]
        window = cls(
            path,
            document,
            data["id"],
            str(data["version"]),
            Lifecycle(data["status"]),
            date.fromisoformat(effective["from"]),
            date.fromisoformat(effective["until"]) if "until" in effective else None,
            _procedures(data),
        )
        _check_placed(data["id"], window.version, path, document.location)
        return window

    def in_force(self, on: date) -> bool:
        if on < self.effective_from:
            return False
        return self.effective_until is None or on <= self.effective_until


@dataclass(frozen=True)
class PolicyRef:
    """A policy named on the command line: `id` or `id@version`."""

    id: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> PolicyRef:
        name, _, version = text.partition("@")
        return cls(name, version or None)

    def __str__(self) -> str:
        return f"{self.id}@{self.version}" if self.version else self.id


D = TypeVar("D", bound=Dated)

# Each YAML file under a folder: (path, size, modification time in ns), sorted.
FolderState = tuple[tuple[str, int, int], ...]


def folder_state(root: Path) -> FolderState:
    """Return every YAML file under `root` (policy versions, plans, tests, the shared modules
    and value sets) with its size and modification time: two equal states mean no file a
    Library read, or could read, was added, removed or rewritten in between. A stat per file,
    no reading: cheap enough for a process to check every second."""
    found = []
    for path in sorted(root.rglob("*.yaml")) if root.is_dir() else []:
        try:
            stat = path.stat()
        except OSError:  # removed while listed: the next look sees it gone
            continue
        found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


class Library:
    """The policies under a folder laid out as `<id>/<version>.yaml`, loaded on demand."""

    # `shared`: one Library per folder for the whole process
    _SHARED: ClassVar[dict[Path, Library]] = {}

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else resources.policies_dir()
        self._cache: dict[Path, Policy] = {}
        self._windows: dict[Path, _Window] = {}
        self._versions: dict[str, list[Path]] | None = None
        self._checked: set[str] = set()

    @classmethod
    def shared(cls, root: str | Path | None = None) -> Library:
        """Return the process's Library of the folder (by default the bundled policies), so
        that a policy is read and built once however many parts of a process ask for it (a
        referenced policy, the policy of a line). For folders whose files do not change while
        the process runs: a Library never reads a file twice (a long-running process compares
        `folder_state` and calls `forget_shared` when they changed)."""
        folder = Path(root).resolve() if root is not None else resources.policies_dir()
        library = cls._SHARED.get(folder)
        if library is None:
            library = cls._SHARED[folder] = cls(folder)
        return library

    @classmethod
    def forget_shared(cls) -> None:
        """Drop the process's Libraries, so that the next `shared` reads its folder afresh: a
        long-running process (the service) calls it when the files under a folder changed."""
        cls._SHARED.clear()

    def _listing(self) -> dict[str, list[Path]]:
        # Read the folder once: a batch asks which policies exist for every case, and
        # policies, like the files they are loaded from, do not change during a run.
        if self._versions is None:
            folders = (
                # _shared holds what policies import (value sets), not a policy
                sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("_"))
                if self.root.is_dir()
                else []
            )
            self._versions = {
                f.name: sorted(f.glob("*.yaml"), key=lambda p: (_version_key(p.stem), p.stem))
                for f in folders
            }
        return self._versions

    def paths(self) -> Iterator[Path]:
        """Yield every policy file, sorted by id then version."""
        for versions in self._listing().values():
            yield from versions

    def load(self, path: Path) -> Policy:
        if path not in self._cache:
            window = self._windows.pop(path, None)
            if window is None:
                self._cache[path] = load_policy(path)
            else:  # read and checked (schema, place) already: only the model is left to build
                self._cache[path] = build_policy(window.document)
        return self._cache[path]

    def _window(self, path: Path) -> Dated:
        """The version in `path`, built if it already was, else only read and checked."""
        built = self._cache.get(path)
        if built is not None:
            return built
        window = self._windows.get(path)
        if window is None:
            window = self._windows[path] = _Window.read(path)
        return window

    def all(self) -> list[Policy]:
        """Return every policy version, sorted by id then version.

        Raises PolicyError when two versions of one policy are in force on the same day.
        """
        return [p for policy_id in self._listing() for p in self.versions(policy_id)]

    def ids(self) -> list[str]:
        return [name for name, versions in self._listing().items() if versions]

    def versions(self, policy_id: str) -> list[Policy]:
        """Return every version of a policy, oldest first.

        Raises PolicyError when the windows of two of them overlap: which one is in force
        would otherwise depend on the order of the files.
        """
        versions = [self.load(p) for p in self._listing().get(policy_id, [])]
        if policy_id not in self._checked:
            pairs = window_overlaps(versions)
            if pairs:
                raise PolicyError([overlap_problem(a, b, b) for a, b in pairs])
            self._checked.add(policy_id)
        return versions

    def get(self, ref: PolicyRef | str, on: date | None = None) -> Policy:
        """Return the named version, else the version in force on `on`, else the newest active
        version.

        A retired version stays in force for the dates inside its window; a draft is returned
        only when named. Raises PolicyNotFoundError naming what exists, and PolicyError when
        two versions are in force on the same day.
        """
        return self.load(self.chosen(ref, on))

    def dated(self, path: Path) -> Dated:
        """The version in `path` (from `chosen`) as far as choosing it needs: its window and
        procedures, without building the Policy (`load` does that)."""
        return self._window(path)

    def chosen(self, ref: PolicyRef | str, on: date | None = None) -> Path:
        """Return the file of the version `get` returns, read and checked but not built.

        Raises as `get` does.
        """
        if isinstance(ref, str):
            ref = PolicyRef.parse(ref)
        folder = self.root / ref.id
        if ref.id not in self._listing():
            known = ", ".join(f"`{i}`" for i in self.ids()) or "none"
            raise PolicyNotFoundError.single(
                "unknown_policy",
                f"unknown policy `{ref.id}` (known: {known})",
                Location(str(self.root)),
            )
        paths = self._listing()[ref.id]
        if ref.version is not None:
            path = folder / f"{ref.version}.yaml"
            if not path.is_file():
                known = ", ".join(f"`{p.stem}`" for p in paths) or "none"
                raise PolicyNotFoundError.single(
                    "unknown_version",
                    f"policy `{ref.id}` has no version `{ref.version}` (versions: {known})",
                    Location(str(folder)),
                )
            return path
        # Every version is read and checked against the schema, as `versions` does, but only
        # the one chosen is built (a third of a cold `evaluate` went on building versions that
        # were not in force). Overlapping windows are reported as `versions` reports them.
        dated = [(path, self._window(path)) for path in paths]
        if ref.id not in self._checked:
            if window_overlaps([version for _, version in dated]):
                self.versions(ref.id)  # raises the overlap, located, as it always has
            self._checked.add(ref.id)
        if on is not None:
            chosen = [
                path
                for path, version in dated
                if version.status is not Lifecycle.DRAFT and version.in_force(on)
            ]
        else:
            chosen = [path for path, version in dated if version.status is Lifecycle.ACTIVE]
        if not chosen:
            when = f" in force on {on.isoformat()}" if on else ""
            raise PolicyNotFoundError.single(
                "no_version_in_force",
                f"policy `{ref.id}` has no {'' if on else 'active '}version{when}",
                Location(str(folder)),
            )
        return chosen[-1]


def window_overlaps(versions: Sequence[D]) -> list[tuple[D, D]]:
    """Return (earlier, later) for each pair of active or retired versions whose windows
    overlap. Drafts take no part: they are used only when named."""
    dated = sorted(
        (p for p in versions if p.status is not Lifecycle.DRAFT),
        key=lambda p: (p.effective_from, _version_key(p.version), p.version),
    )
    return [
        (earlier, later)
        for i, later in enumerate(dated)
        for earlier in dated[:i]
        if earlier.effective_until is None or earlier.effective_until >= later.effective_from
    ]


def overlap_problem(earlier: Policy, later: Policy, at: Policy) -> Problem:
    """Return the error for two versions in force on the same day, located in `at`."""
    return Problem(
        "overlapping_versions",
        f"`{later.ref}` and `{earlier.ref}` are both in force on "
        f"{later.effective_from.isoformat()}",
        at.locate("/effective"),
        f"end `{earlier.ref}` with `effective.until` before "
        f"{later.effective_from.isoformat()}, or make one a draft",
    )


def window_gaps(versions: Sequence[Policy]) -> list[tuple[Policy, Policy]]:
    """Return (earlier, later) for each pair of consecutive dated versions with days between."""
    dated = sorted(
        (p for p in versions if p.status is not Lifecycle.DRAFT), key=lambda p: p.effective_from
    )
    return [
        (a, b)
        for a, b in itertools.pairwise(dated)
        if a.effective_until is not None and (b.effective_from - a.effective_until).days > 1
    ]


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    # Numeric parts compare as numbers so that 2025.10 sorts after 2025.9.
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))


def _codes(raw: Any) -> tuple[LevelCodes, ...]:
    return tuple(LevelCodes(c["first"], c.get("additional")) for c in raw)


# --- references between policies ------------------------------------------------------------------


def _conditions(policy: Policy) -> Iterator[Condition]:
    for clause in policy.clauses:
        yield from (c for c in (clause.applies_when, clause.waived_by, clause.requires) if c)
    yield from (rule.when for rule in policy.rules if rule.when is not None)
    if policy.alternative is not None:
        yield policy.alternative.when


def policy_references(policy: Policy) -> list[PolicyIs]:
    """Return every `{policy: ID, is: ...}` node of a policy, in file order."""
    return [n for root in _conditions(policy) for n in walk(root) if isinstance(n, PolicyIs)]


def reference_path(refers: Mapping[str, set[str]], start: str, goal: str) -> list[str] | None:
    """Return the ids from `start` to `goal` along references (depth first), or None."""
    stack, seen = [[start]], {start}
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        for nxt in sorted(refers.get(path[-1], ())):
            if nxt == goal or nxt not in seen:
                seen.add(nxt)
                stack.append([*path, nxt])
    return None


def reference_cycles(
    policy: Policy, refers: Mapping[str, set[str]]
) -> Iterator[tuple[PolicyIs, str, str]]:
    """Yield, for each reference of `policy` that leads back to it, the node, the message and
    the hint of the `reference_cycle` problem. `refers` maps policy ids to the ids their
    versions refer to. A policy referring to itself is the compiler's (`cycle`)."""
    for ref in policy_references(policy):
        if ref.policy == policy.id:
            continue
        path = reference_path(refers, ref.policy, policy.id)
        if path is not None:
            cycle = " -> ".join([policy.id, *path])
            yield (
                ref,
                f"`{policy.id}` needs the determination of `{ref.policy}`, which needs "
                f"`{policy.id}`'s: {cycle}",
                "one of the policies must decide without the other",
            )
