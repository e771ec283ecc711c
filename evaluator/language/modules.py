"""Shared modules: versioned files under policies/_shared/MODULE/VERSION.yaml that policies import.

A module (schemas/module.schema.json) holds settings, value sets, derived fact types, derivation
rules and clause templates. At load a policy's imports resolve into its own data, so everything
downstream (the model, the compiler, lint, show, coverage, diff) sees one policy: a module's
settings, value sets, fact types and rules join the policy's, and a clause with
`use: MODULE.NAME` takes the template's keys under its own id and citations. An id defined both
by the policy and by an import, or by two imports, is an error (`import_clash`): nothing is
silently shadowed. Imports are pinned by version and a module may import others; a cycle is an
error (`import_cycle`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.errors import Location, PolicyError, Problem
from evaluator.read import digest, parse_cache, resources, schemas, source
from evaluator.read.plain import copied

SHARED = "_shared"
MODULE_SCHEMA = "module"
# value sets keep their own unversioned folder under _shared (valuesets.py)
RESERVED = ("valuesets",)
# the keys a module contributes, merged into the policy's by id
_KEYED = ("settings", "value_sets", "facts")


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(frozen=True, eq=False, repr=False)
class Module:
    """One module version as read: its data and where it came from."""

    name: str
    version: str
    path: str
    data: Mapping[str, Any] = field(repr=False)
    sha256: str = ""
    document: source.Document | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(eq=False, repr=False)
class Resolution:
    """The policy's data with its imports merged, the modules read (dependencies first), and
    for each imported clause id and rule id the module it came from (`name@version`)."""

    data: dict[str, Any]
    modules: tuple[Module, ...] = ()
    origins: dict[str, str] = field(default_factory=dict)
    # value sets declared by modules, by name: the expander finds them like declared ones
    value_sets: dict[str, tuple[Mapping[str, Any], str]] = field(default_factory=dict)
    # a pointer into the merged policy whose content came from a module -> (that module's
    # document, the pointer there): problems found in imported content are located in the module
    redirects: dict[str, tuple[source.Document, str]] = field(default_factory=dict)


def shared_roots(policy_path: str) -> list[Path]:
    """Return where a policy's modules are looked for: policies/_shared beside its folder
    (policies/<id>/<version>.yaml), then the bundled policies' (a policy copied out of its
    library, a scratch copy for impact or a git revision for diff, still finds them: a module
    is pinned by version, so either copy says the same). A policy read from standard input has
    only the bundled ones."""
    bundled = resources.policies_dir() / SHARED
    if policy_path == source.STDIN_NAME:
        return [bundled]
    return list(dict.fromkeys((Path(policy_path).resolve().parent.parent / SHARED, bundled)))


class _Resolver:
    def __init__(self, document: source.Document) -> None:
        self.document = document
        self.roots = shared_roots(document.path)
        self.read: dict[str, Module] = {}  # by name: one version per policy
        self.order: list[Module] = []
        self.problems: list[Problem] = []

    def problem(self, code: str, message: str, at: Location, hint: str | None = None) -> None:
        self.problems.append(Problem(code, message, at, hint))

    def available(self) -> list[str]:
        return sorted(
            {
                p.name
                for root in self.roots
                if root.is_dir()
                for p in root.iterdir()
                if p.is_dir() and p.name not in RESERVED
            }
        )

    def load(self, raw: Mapping[str, Any], at: Location, chain: tuple[str, ...]) -> Module | None:
        name, version = str(raw["module"]), str(raw["version"])
        if name in chain:
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            self.problem("import_cycle", f"modules import each other in a cycle: {cycle}", at)
            return None
        if name in self.read:
            known = self.read[name]
            if known.version != version:
                self.problem(
                    "import_clash",
                    f"module `{name}` is imported at two versions, `{known.version}` and"
                    f" `{version}`",
                    at,
                    "pin one version of a module for the whole policy",
                )
                return None
            return known
        folder = next((r / name for r in self.roots if (r / name).is_dir()), None)
        if folder is None or name in RESERVED:
            import difflib  # noqa: PLC0415  (only to suggest a name for an unknown one)

            close = difflib.get_close_matches(name, self.available(), n=1)
            self.problem(
                "unknown_module",
                f"unknown module `{name}`: there is no {SHARED}/{name}/ beside the policy folders",
                at,
                f"did you mean `{close[0]}`?" if close else None,
            )
            return None
        path = folder / f"{version}.yaml"
        if not path.is_file():
            versions = ", ".join(f"`{p.stem}`" for p in sorted(folder.glob("*.yaml"))) or "none"
            self.problem(
                "unknown_module",
                f"module `{name}` has no version `{version}` (versions: {versions})",
                at,
            )
            return None
        document = parse_cache.load(path)  # cached like the policies that import it
        schemas.validate(document, MODULE_SCHEMA)
        data = document.data
        if data["module"] != name or str(data["version"]) != version:
            self.problem(
                "unknown_module",
                f"{SHARED}/{name}/{version}.yaml says it is module `{data['module']}` version"
                f" `{data['version']}`",
                document.location("/module"),
            )
            return None
        module = Module(name, version, str(path), data, digest.canonical_sha256(data), document)
        self.read[name] = module
        for i, inner in enumerate(data.get("imports", ())):
            self.load(inner, document.location(f"/imports/{i}"), (*chain, name))
        self.order.append(module)
        return module


def resolve(document: source.Document) -> Resolution:
    """Return the policy's data with its imports merged; raises PolicyError (located)."""
    data = copied(dict(document.data))
    imports = data.pop("imports", [])
    uses = [
        (si, ci, clause)
        for si, section in enumerate(data.get("sections", ()))
        for ci, clause in enumerate(section.get("clauses", ()))
        if "use" in clause
    ]
    if not imports and not uses:
        return Resolution(data)
    resolver = _Resolver(document)
    direct: dict[str, Module] = {}
    for i, raw in enumerate(imports):
        found = resolver.load(raw, document.location(f"/imports/{i}"), ())
        if found is not None:
            direct[found.name] = found
    resolution = Resolution(data, tuple(resolver.order))
    _merge(resolution, document, resolver)
    _place(resolution, document, resolver, direct, uses)
    if resolver.problems:
        raise PolicyError(resolver.problems)
    return resolution


def _merge(resolution: Resolution, document: source.Document, resolver: _Resolver) -> None:
    data = resolution.data
    owners: dict[tuple[str, str], str] = {}
    for key in _KEYED:
        for name in data.get(key, {}):
            owners[(key, name)] = "the policy"
    for rule in data.get("rules", ()):
        owners[("rules", rule["id"])] = "the policy"
    for module in resolution.modules:
        where = document.location(f"/imports/{_index(document, module.name)}")
        for key in _KEYED:
            for name, value in module.data.get(key, {}).items():
                if _clash(resolver, owners, key, name, module, where):
                    continue
                if key == "value_sets":
                    resolution.value_sets[name] = (value, module.path)
                else:
                    data.setdefault(key, {})[name] = copied(value)
        for j, rule in enumerate(module.data.get("rules", ())):
            if _clash(resolver, owners, "rules", rule["id"], module, where):
                continue
            data.setdefault("rules", []).append(copied(rule))
            resolution.origins[f"rule:{rule['id']}"] = module.ref
            if module.document is not None:
                at = f"/rules/{len(data['rules']) - 1}"
                resolution.redirects[at] = (module.document, f"/rules/{j}")


def _index(document: source.Document, name: str) -> int:
    # where the policy imports a module, or the first import (a module imported by another)
    for i, raw in enumerate(document.data.get("imports", ())):
        if raw["module"] == name:
            return i
    return 0


_KINDS = {"settings": "setting", "value_sets": "value set", "facts": "fact type", "rules": "rule"}


def _clash(
    resolver: _Resolver,
    owners: dict[tuple[str, str], str],
    key: str,
    name: str,
    module: Module,
    at: Location,
) -> bool:
    owner = owners.setdefault((key, name), f"module `{module.ref}`")
    if owner == f"module `{module.ref}`":
        return False
    resolver.problem(
        "import_clash",
        f"{_KINDS[key]} `{name}` is defined by {owner} and by module `{module.ref}`",
        at,
        "rename one of them, or drop the import",
    )
    return True


def _place(
    resolution: Resolution,
    document: source.Document,
    resolver: _Resolver,
    direct: Mapping[str, Module],
    uses: list[tuple[int, int, dict[str, Any]]],
) -> None:
    for si, ci, clause in uses:
        pointer = f"/sections/{si}/clauses/{ci}/use"
        name, _, template = str(clause["use"]).partition(".")
        module = direct.get(name)
        if module is None:
            imported = ", ".join(f"`{m}`" for m in direct) or "none"
            resolver.problem(
                "unknown_module",
                f"`use: {clause['use']}` names module `{name}`, which the policy does not"
                f" import (imports: {imported})",
                document.location(pointer),
                f"add `{{module: {name}, version: ...}}` under `imports`",
            )
            continue
        templates = module.data.get("clauses", {})
        if template not in templates:
            import difflib  # noqa: PLC0415

            close = difflib.get_close_matches(template, list(templates), n=1)
            resolver.problem(
                "unknown_import",
                f"module `{module.ref}` has no clause template `{template}`"
                f" (templates: {', '.join(f'`{t}`' for t in templates) or 'none'})",
                document.location(pointer),
                f"did you mean `{name}.{close[0]}`?" if close else None,
            )
            continue
        merged = {**copied(templates[template]), **clause}
        del merged["use"]
        if module.document is not None:
            for key in templates[template]:
                if key not in clause:  # the template's own text: a problem there is the module's
                    at = f"/sections/{si}/clauses/{ci}/{key}"
                    target = source.make_pointer(("clauses", template, key))
                    resolution.redirects[at] = (module.document, target)
        resolution.data["sections"][si]["clauses"][ci] = merged
        resolution.origins[f"clause:{clause['id']}"] = f"{module.ref} {template}"


def check_file(path: str | Path) -> None:
    """Validate a module file on its own (`necessity validate`): the schema, and its name and
    version against its place (policies/_shared/MODULE/VERSION.yaml). Raises InputError."""
    document = source.load(path)
    schemas.validate(document, MODULE_SCHEMA)
    place = Path(path)
    data = document.data
    if place.parent.parent.name == SHARED and (
        data["module"] != place.parent.name or str(data["version"]) != place.stem
    ):
        raise PolicyError.single(
            "unknown_module",
            f"{SHARED}/{place.parent.name}/{place.name} says it is module `{data['module']}`"
            f" version `{data['version']}`",
            document.location("/module"),
        )
