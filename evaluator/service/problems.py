"""RFC 9457 problem details: the product's errors as `application/problem+json` responses."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from evaluator.errors import (
    CaseError,
    EngineError,
    NecessityError,
    PolicyError,
    PolicyNotFoundError,
    SchemaError,
    SourceError,
)
from evaluator.render import decision as render

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "https://necessity.dev/problems/"

# A malformed body is a bad request (400); a well-formed one that breaks the case schema or
# cannot be normalised is unprocessable (422). A policy that fails to compile is the server's
# fault, as is the engine: 500, and never a determination.
_STATUS: tuple[tuple[type[NecessityError], int, str], ...] = (
    (SourceError, 400, "Malformed request"),
    (SchemaError, 422, "Invalid case"),
    (CaseError, 422, "Invalid case"),
    (PolicyNotFoundError, 404, "Policy not found"),
    (PolicyError, 500, "Policy error"),
    (EngineError, 500, "Engine error: no determination was made"),
)


def status_of(error: NecessityError) -> tuple[int, str]:
    """Return the HTTP status and title for one of the product's errors."""
    for kind, status, title in _STATUS:
        if isinstance(error, kind):
            return status, title
    return 400, "Invalid input"


def problem(
    status: int,
    title: str,
    code: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Return a problem+json response; `errors` holds one located entry per problem."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": errors or [],
    }
    return Response(
        json.dumps(body, indent=2, ensure_ascii=False) + "\n",
        status_code=status,
        media_type=PROBLEM_TYPE,
        headers=headers,
    )


def from_error(
    error: NecessityError, status: int | None = None, title: str | None = None
) -> Response:
    """Return the problem response for `error`: the CLI's located messages, one per line in
    `detail` and one object per problem (code, message, file, line, column, pointer, hint)."""
    default_status, default_title = status_of(error)
    prefix = "engine error" if isinstance(error, EngineError) else "error"
    return problem(
        status or default_status,
        title or default_title,
        error.code,
        "\n".join(render.problem_lines(error, prefix)),
        [p.as_dict() for p in error.problems],
    )
