"""Loads a case file (case.schema.json) into the `Case` model, facts normalised."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

from evaluator.case.facts import Conflict, Fact, FactValue, build, parsed_date
from evaluator.errors import CaseError, Location
from evaluator.read import schemas
from evaluator.read.source import Document, load
from evaluator.vocab.dates import PartialDate

CASE_SCHEMA = "case"


@dataclass(frozen=True)
class ServiceLine:
    """One requested procedure: its id, kind, CPT codes (primary first) and wording."""

    id: str
    procedure: str
    cpts: tuple[str, ...]
    description: str | None = None


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(frozen=True, eq=False, repr=False)
class Case:
    """A validated case: the request, its service lines, its facts and any source conflicts."""

    case_id: str
    path: str
    request_date: PartialDate
    lines: tuple[ServiceLine, ...]
    facts: tuple[Fact, ...]
    conflicts: tuple[Conflict, ...]
    service_date: date | None
    # Kept for locating evidence and conflicts in the file; not part of the case's identity.
    _document: Document = field(repr=False, compare=False)
    # The member's plan (request.plan): the overlay each policy is applied with (plans.py).
    plan: str | None = None

    @property
    def data(self) -> Mapping[str, Any]:
        """The case as validated (read-only use: an alternative request copies it)."""
        data: Mapping[str, Any] = self._document.data
        return data

    def location(self, pointer: str) -> Location:
        """Return where ``pointer`` is in the case file (line and column when it was read)."""
        return self._document.location(pointer)

    @property
    def in_force_date(self) -> date:
        """The date that chooses the policy version in force: the date of service when the case
        gives one, else the request date (docs/auditing.md, "Which version applies")."""
        return self.service_date or self.request_date.lo

    def line(self, line_id: str) -> ServiceLine:
        """Return the service line with id ``line_id``; raises ``KeyError`` if there is none."""
        for line in self.lines:
            if line.id == line_id:
                return line
        raise KeyError(line_id)

    def fact_dicts(self) -> list[dict[str, FactValue]]:
        """Return the facts as the engine asserts them (``{"t": ..., "id": ..., ...}``)."""
        return [fact.as_dict() for fact in self.facts]


def load_case(path: str | Path) -> Case:
    """Read, validate and normalise a case file (JSON or YAML).

    Returns the ``Case``. Raises ``SourceError`` (unreadable or malformed file), ``SchemaError``
    (every violation of case.schema.json, located) or ``CaseError`` (unknown spinal level, range
    in the wrong order, impossible date: every such problem, located).
    """
    return case_from_document(load(path))


def case_from_data(data: Mapping[str, Any], name: str) -> Case:
    """Validate and normalise a case given as data (e.g. embedded in another file).

    ``name`` stands for the file in locations, which carry JSON pointers but no line numbers.
    Returns the ``Case``; raises ``SchemaError`` or ``CaseError`` as ``load_case`` does.
    """
    # A deep copy through JSON: the case must not share (mutable) data with the caller.
    plain = json.loads(json.dumps(data))
    return case_from_document(Document(plain, name, MappingProxyType({})))


def _service_date(document: Document, requested: date) -> date | None:
    text = document.data["request"].get("service_date")
    if text is None:
        return None
    try:
        service = date.fromisoformat(text)
    except ValueError:
        raise CaseError.single(
            "bad_date",
            f"`{text}` is not a date (YYYY-MM-DD)",
            document.location("/request/service_date"),
        ) from None
    if service < requested:
        # The date of service chooses the version: one before the request chose a retired,
        # laxer version for a request judged on facts up to the request (a 2024 version
        # without the therapy and impairment clauses approved a 2025 request).
        raise CaseError.single(
            "bad_date",
            f"the planned date of service {text} is before the request date "
            f"{requested.isoformat()}",
            document.location("/request/service_date"),
            "give the date the service is planned for, on or after the request date",
        )
    return service


def case_from_document(document: Document) -> Case:
    """Validate and normalise an already-read document.

    Returns the ``Case``; raises ``SchemaError`` or ``CaseError`` as ``load_case`` does.
    """
    schemas.validate(document, CASE_SCHEMA)
    normalised = build(document)
    data = document.data
    request = data["request"]
    lines = tuple(
        ServiceLine(
            line["id"], line["procedure"], tuple(line.get("cpt", ())), line.get("description")
        )
        for line in request["lines"]
    )
    # Already parsed without error by build(), which raises on a bad request date.
    request_date = parsed_date(request["date"])
    return Case(
        case_id=data["case_id"],
        path=document.path,
        request_date=request_date,
        lines=lines,
        facts=normalised.facts,
        conflicts=normalised.conflicts,
        service_date=_service_date(document, request_date.lo),
        _document=document,
        plan=request.get("plan"),
    )
