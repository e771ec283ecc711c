"""Plan overlays: a line of business's changes to a base policy (policies/<id>/plans/<plan>.yaml).

A plan (schemas/plan.schema.json) names its base policy (a version, or `in force`) and gives
new values for some of its settings and new waivers for some of its clauses. Applied at load
(`effective`), it yields a Policy like any other, so the compiler, the engine, show and the
test suites see the effective policy; the policy's content hash and the decision's provenance
cover the plan. Every key must exist in the base (`unknown_plan_key`, located in the plan).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.errors import CaseError, Location, PolicyError, Problem
from evaluator.language.model import Lifecycle, Policy
from evaluator.read import digest, parse_cache, resources, schemas, source

PLAN_SCHEMA = "plan"
FOLDER = "plans"
IN_FORCE = "in force"


@dataclass(frozen=True)
class Plan:
    """A plan file as read and validated."""

    id: str
    title: str
    line_of_business: str
    base_policy: str
    # None: whichever version is in force
    base_version: str | None
    settings: Mapping[str, Mapping[str, Any]]
    clauses: Mapping[str, Mapping[str, Any]]
    path: str
    sha256: str
    document: source.Document = field(repr=False, compare=False)

    def locate(self, pointer: str) -> Location:
        return self.document.location(pointer)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; raises SourceError, SchemaError or PolicyError (a plan
    whose id differs from its file name)."""
    document = parse_cache.load(path)
    schemas.validate(document, PLAN_SCHEMA)
    data = document.data
    if Path(path).stem != data["plan"]:
        raise PolicyError.single(
            "unknown_plan_base",
            f"plan `{data['plan']}` does not match the file name `{Path(path).name}`",
            document.location("/plan"),
        )
    version = str(data["base"]["version"])
    return Plan(
        id=data["plan"],
        title=data["title"],
        line_of_business=data["line_of_business"],
        base_policy=data["base"]["policy"],
        base_version=None if version == IN_FORCE else version,
        settings=data.get("settings", {}),
        clauses=data.get("clauses", {}),
        path=document.path,
        sha256=digest.canonical_sha256(data),
        document=document,
    )


def overlay_problems(plan: Plan, policy: Policy) -> Iterator[Problem]:
    """Yield what does not fit between a plan and a base policy version, located in the plan:
    another policy, else another version than the one pinned (each alone: the overlay cannot
    apply at all), else every key the base lacks and every unit that differs."""
    if plan.base_policy != policy.id:
        yield Problem(
            "unknown_plan_base",
            f"plan `{plan.id}` is an overlay of `{plan.base_policy}`, not of `{policy.id}`",
            plan.locate("/base/policy"),
        )
        return
    if plan.base_version is not None and plan.base_version != policy.version:
        # The overlay cannot apply at all, and its keys were written for the version it names:
        # checked against this one they would only add noise. The version alone is the problem.
        yield Problem(
            "plan_version_not_in_force",
            f"plan `{plan.id}` is written for `{policy.id}@{plan.base_version}`, but"
            f" `{policy.ref}` is the version that applies",
            plan.locate("/base/version"),
            "write the plan for the version in force, or `version: in force`",
        )
        return
    for name, value in plan.settings.items():
        base = policy.settings.get(name)
        if base is None:
            known = ", ".join(f"`{s}`" for s in policy.settings) or "none"
            import difflib  # noqa: PLC0415  (only to suggest a name for an unknown one)

            close = difflib.get_close_matches(name, list(policy.settings), n=1)
            yield Problem(
                "unknown_plan_key",
                f"`{policy.ref}` has no setting `{name}` (settings: {known})",
                plan.locate(source.make_pointer(("settings", name))),
                f"did you mean `{close[0]}`?" if close else None,
            )
        elif base.unit != value["unit"]:
            yield Problem(
                "unit_mismatch",
                f"setting `{name}` of `{policy.ref}` is in {base.unit}, not {value['unit']}",
                plan.locate(source.make_pointer(("settings", name, "unit"))),
            )
    ids = {c.id for c in policy.clauses}
    for clause_id in plan.clauses:
        if clause_id not in ids:
            import difflib  # noqa: PLC0415

            close = difflib.get_close_matches(clause_id, sorted(ids), n=1)
            yield Problem(
                "unknown_plan_key",
                f"`{policy.ref}` has no clause `{clause_id}`",
                plan.locate(source.make_pointer(("clauses", clause_id))),
                f"did you mean `{close[0]}`?" if close else None,
            )


def bases(plan: Plan, candidates: Iterable[Policy]) -> list[Policy]:
    """Return the versions among `candidates` the plan applies to: the pinned one, else every
    version that can be in force (the drafts only when there is nothing else)."""
    versions = [p for p in candidates if p.id == plan.base_policy]
    if plan.base_version is not None:
        return [p for p in versions if p.version == plan.base_version]
    dated = [p for p in versions if p.status is not Lifecycle.DRAFT]
    return dated or versions


def missing_base(plan: Plan) -> Problem:
    """Return the problem of a plan whose base policy or pinned version is not there."""
    wanted = plan.base_policy + (f"@{plan.base_version}" if plan.base_version else "")
    return Problem(
        "unknown_plan_base",
        f"plan `{plan.id}` is an overlay of `{wanted}`, which is not there",
        plan.locate("/base/version" if plan.base_version else "/base/policy"),
    )


def overlay_data(plan: Plan, data: dict[str, Any]) -> None:
    """Apply the plan to a policy's (resolved) data in place."""
    for name, value in plan.settings.items():
        data["settings"][name] = {**data["settings"][name], "value": value["value"]}
    for section in data["sections"]:
        for clause in section["clauses"]:
            if clause["id"] in plan.clauses:
                clause["waived_by"] = plan.clauses[clause["id"]]["waived_by"]


def _folders(policy: Policy) -> list[Path]:
    # beside the policy, then the bundled policies' (as for shared modules)
    own = Path(policy.path).resolve().parent / FOLDER
    return list(dict.fromkeys((own, resources.policies_dir() / policy.id / FOLDER)))


def find(policy: Policy, plan_id: str) -> Path | None:
    """Return the plan file of that name for the policy, if there is one."""
    return next(
        (f / f"{plan_id}.yaml" for f in _folders(policy) if (f / f"{plan_id}.yaml").is_file()),
        None,
    )


def known(policy: Policy, plan_id: str) -> bool:
    """True when some policy beside this one (or bundled) has a plan of that name."""
    roots = {Path(policy.path).resolve().parent.parent, resources.policies_dir()}
    return any(any(root.glob(f"*/{FOLDER}/{plan_id}.yaml")) for root in roots)


def unknown_plan(plan_id: str, at: Location) -> CaseError:
    """Return the error for a case naming a plan no policy has (a typo must not apply the
    base policy silently)."""
    return CaseError(
        [
            Problem(
                "unknown_plan",
                f"no policy has a plan overlay `{plan_id}` (policies/<id>/{FOLDER}/{plan_id}.yaml)",
                at,
            )
        ]
    )
