"""Decision records: what makes a decision reproducible, and the append-only decision log.

`provenance` is computed for every decision; `log_entries` turns a decision (or a per-line
review) as JSON into log lines and `append_lines` appends them so that concurrent writers never
interleave partial lines. Batch calls `log_decision` with each record's result.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import operator
import os
import uuid
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluator.case.cases import Case
from evaluator.errors import Location, SourceError
from evaluator.language.model import Policy
from evaluator.read import resources, schemas
from evaluator.read.digest import canonical_sha256

CASE_SCHEMA = "case"
# The key for masking identifying fields: from this variable, else a key file beside the log.
MASK_KEY_VARIABLE = "NECESSITY_MASK_KEY"


@functools.cache
def schemas_sha256() -> str:
    """Return the SHA-256 over every schema file (the fact dictionary among them), by name."""
    digest = hashlib.sha256()
    for path in sorted(resources.schemas_dir().glob("*.schema.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def case_sha256(facts: Iterable[Mapping[str, Any]]) -> str:
    """Return the SHA-256 of a case's normalised facts, in id order."""
    return canonical_sha256(sorted((dict(f) for f in facts), key=_fact_id))


def _fact_id(fact: Mapping[str, Any]) -> str:
    return str(fact["id"])


_BY_ID = operator.itemgetter("id")


# id(case) -> (the case, weakly; its case_sha256). A Case is frozen and so is each of its facts
# (fields a read-only mapping of str, int, float or bool), so a case's hash never changes: it
# is worked out once per Case object, for every policy that judges the case. The entry goes
# when its case does, before the case's id can be given to another object; a live entry whose
# case is not the one asked about is never read (tests/test_records.py).
_DIGESTS: dict[int, tuple[weakref.ref[Case], str]] = {}


def case_digest(case: Case, fact_dicts: list[dict[str, Any]] | None = None) -> str:
    """Return `case_sha256` of the case's facts, worked out once per Case object.

    `fact_dicts`: what `case.fact_dicts()` would return (every fact, in order), when the caller
    made it already (`api.facts_for` keeping every fact): hashed as it is, not made again.
    """
    key = id(case)
    entry = _DIGESTS.get(key)
    if entry is not None and entry[0]() is case:
        return entry[1]
    if fact_dicts is None or len(fact_dicts) != len(case.facts):
        # fact_dicts hands out copies already: no second copy (case_sha256 copies what it is
        # given)
        fact_dicts = case.fact_dicts()
    # A case's fact ids are text (`facts.Fact`): sorted by them as they are, with no call a fact
    digest = canonical_sha256(sorted(fact_dicts, key=_BY_ID))

    def forget(ref: weakref.ref[Case]) -> None:
        if _DIGESTS.get(key, (None, ""))[0] is ref:
            del _DIGESTS[key]

    # a Case that cannot be referenced weakly is hashed every time, never kept by address
    with contextlib.suppress(TypeError):
        _DIGESTS[key] = (weakref.ref(case, forget), digest)
    return digest


def provenance(policy: Policy, facts: Iterable[Mapping[str, Any]] | Case) -> dict[str, Any]:
    """Return the provenance block of a decision (schemas/decision.schema.json) on a case's
    facts, or on a case (its hash worked out once: `case_digest`)."""
    block: dict[str, Any] = {
        "policy_id": policy.id,
        "policy_version": policy.version,
        "policy_sha256": policy.sha256,
        "policy_content_sha256": policy.content_sha256,
        "evaluator_version": resources.evaluator_version(),
        "schemas_sha256": schemas_sha256(),
        "case_sha256": case_digest(facts) if isinstance(facts, Case) else case_sha256(facts),
    }
    if policy.imports:
        block["imports"] = {
            m.module: {"version": m.version, "sha256": m.sha256} for m in policy.imports
        }
    if policy.plan is not None:
        plan = policy.plan
        block["plan"] = {
            "id": plan.id,
            "line_of_business": plan.line_of_business,
            "sha256": plan.sha256,
        }
    return block


# --- the decision log -----------------------------------------------------------------------------


@functools.cache
def identifying_fields() -> tuple[str, ...]:
    """Return the top-level case fields the case schema marks `x-identifying`."""
    properties = schemas.load_schema(CASE_SCHEMA)["properties"]
    return tuple(name for name, spec in properties.items() if spec.get("x-identifying"))


def mask_key(log: Path) -> bytes:
    """Return the key for masking: $NECESSITY_MASK_KEY, else `<log>.key` (created, mode 0600).

    A keyed hash, not a plain one: a case id cannot be recovered by hashing guesses without it.
    """
    given = os.environ.get(MASK_KEY_VARIABLE)
    if given:
        return given.encode("utf-8")
    path = log.with_name(log.name + ".key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as out:
        import secrets  # noqa: PLC0415  (only for a decision log)

        out.write(secrets.token_hex(32) + "\n")
    return path.read_bytes().strip()


def _mask(value: str, key: bytes) -> str:
    import hmac  # noqa: PLC0415  (only for a decision log)

    return "hmac-sha256:" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def log_entries(
    result: Mapping[str, Any], evaluated_at: str | None, key: bytes | None
) -> list[dict[str, Any]]:
    """Return the log lines of one decision or per-line review (its JSON form), one per policy
    decision. With `key`, fields the case schema marks identifying are replaced by a keyed hash.
    """
    lines = result.get("lines")
    decisions = [result] if lines is None else [x for x in lines if x.get("provenance")]
    case_fields = {name: result[name] for name in identifying_fields() if name in result}
    if key is not None:
        case_fields = {name: _mask(str(value), key) for name, value in case_fields.items()}
    entries = []
    for decision in decisions:
        prov = decision["provenance"]
        governed = (
            {
                x["line"]: x["determination"]
                for x in lines
                if x.get("policy") and x["policy"]["id"] == prov["policy_id"]
            }
            if lines is not None
            else None
        )
        entries.append(
            {
                "decision_id": str(uuid.uuid4()),
                "time": evaluated_at or datetime.now(UTC).isoformat(timespec="seconds"),
                **case_fields,
                **prov,
                "determination": decision["determination"],
                "lines": governed,
                "failed_clauses": [
                    c["id"]
                    for c in decision["clauses"]
                    if c["status"] in ("not_met", "not_documented")
                ],
            }
        )
    return entries


def append_lines(path: Path, entries: Iterable[Mapping[str, Any]]) -> None:
    """Append whole JSON lines to `path` in one write under an exclusive lock.

    O_APPEND puts every write at the end; the lock keeps another process's write from landing
    between ours when a write is split; the write is repeated until every byte is out.
    """
    data = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in entries)
    if not data:
        return
    payload = data.encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as error:
        raise SourceError.single(
            "unwritable_log", f"cannot open the decision log: {error.strerror}", Location(str(path))
        ) from None
    try:
        import fcntl  # noqa: PLC0415  (only for a decision log)

        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def log_decision(
    path: Path, result: Mapping[str, Any], evaluated_at: str | None, mask: bool = True
) -> None:
    """Append the log lines of one decision or review (JSON form) to the decision log."""
    append_lines(path, log_entries(result, evaluated_at, mask_key(path) if mask else None))
