"""`necessity verify`: replay a recorded decision and compare it with what it says."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator import api
from evaluator.case import cases
from evaluator.errors import Location, SourceError
from evaluator.language.policies import Library, PolicyRef
from evaluator.read import gitsource, source
from evaluator.render import decision as render
from evaluator.render import review as render_review


@dataclass(frozen=True)
class Difference:
    """One value that differs: where (a JSON pointer), as recorded and as replayed."""

    pointer: str
    recorded: Any
    replayed: Any


@dataclass(frozen=True)
class Verification:
    replayed: dict[str, Any]
    differences: tuple[Difference, ...]

    @property
    def identical(self) -> bool:
        return not self.differences


def differences(recorded: Any, replayed: Any, pointer: str = "") -> Iterator[Difference]:
    """Yield every leaf where two JSON values differ, keyed by JSON pointer."""
    if isinstance(recorded, Mapping) and isinstance(replayed, Mapping):
        for key in [*recorded, *(k for k in replayed if k not in recorded)]:
            at = f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"
            yield from differences(recorded.get(key), replayed.get(key), at)
    elif (
        isinstance(recorded, list)
        and isinstance(replayed, list)
        and (len(recorded) == len(replayed))
    ):
        for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            yield from differences(a, b, f"{pointer}/{i}")
    elif recorded != replayed:
        yield Difference(pointer or "/", recorded, replayed)


def _named_versions(recorded: Mapping[str, Any], where: str) -> list[PolicyRef]:
    lines = recorded.get("lines")
    blocks = [recorded] if lines is None else [x for x in lines if x.get("provenance")]
    refs = []
    for block in blocks:
        prov = block.get("provenance")
        if not isinstance(prov, Mapping) or "policy_id" not in prov:
            raise SourceError.single(
                "not_a_record",
                "the decision carries no provenance (made before decision records existed?)",
                Location(where, pointer="/provenance"),
            )
        refs.append(PolicyRef(str(prov["policy_id"]), str(prov["policy_version"])))
    return refs


def verify(
    recorded: Mapping[str, Any], case_path: str | Path, library: Library, where: str = ""
) -> Verification:
    """Re-evaluate the case under the version the record names and compare.

    Raises PolicyNotFoundError when that version is not in `library`, and the usual input and
    engine errors.
    """
    refs = _named_versions(recorded, where)
    for ref in refs:
        library.get(ref)  # raises PolicyNotFoundError when the version is not available
    case = cases.load_case(case_path)
    stamp = recorded.get("evaluated_at")
    replayed: dict[str, Any]
    if "lines" in recorded:
        review = api.review_case(case, library)
        replayed = render_review.review_json(review, stamp)
        # A line decided by another version than recorded shows as a provenance difference.
    else:
        decision = api.evaluate(case, library.get(refs[0]))
        replayed = render.decision_json(decision, stamp)
    return Verification(replayed, tuple(differences(recorded, replayed)))


def library_at(spec: str | None, workdir: Path) -> Library:
    """Return the library named by --policies-dir: a folder, `git:REV` (the bundled-policies
    folder `policies` at that revision) or `git:REV:folder`; None for the bundled policies."""
    if spec is None:
        return Library()
    if gitsource.is_git(spec):
        rev, _, folder = spec[len(gitsource.PREFIX) :].partition(":")
        return Library(gitsource.export(rev, folder or "policies", workdir))
    return Library(spec)


def verify_file(
    decision_path: str | Path, case_path: str | Path, policies: str | None = None
) -> Verification:
    """Read a decision JSON file and verify it; see `verify` and `library_at`."""
    recorded = source.load(decision_path).data
    if not isinstance(recorded, Mapping):
        raise SourceError.single(
            "not_a_record", "expected a JSON decision object", Location(str(decision_path))
        )
    with tempfile.TemporaryDirectory(prefix="necessity-verify-") as tmp:
        return verify(recorded, case_path, library_at(policies, Path(tmp)), str(decision_path))
