"""The service's OpenAPI 3.1 description.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so the request and response bodies are described
by the project's own schemas (schemas/*.schema.json), embedded as they are: the files stay the
one source of truth for the formats, and nothing here repeats them.
"""

from __future__ import annotations

from typing import Any

from evaluator.read.schemas import load_schema

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `errors` holds one located entry per problem, "
    "with the same stable codes and messages as the command line.",
    "required": ["type", "title", "status", "detail", "code", "errors"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "The CLI's message lines."},
        "code": {"type": "string", "description": "Stable code of the first problem."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "file": {"type": ["string", "null"]},
                    "line": {"type": ["integer", "null"]},
                    "column": {"type": ["integer", "null"]},
                    "pointer": {"type": ["string", "null"]},
                    "hint": {"type": ["string", "null"]},
                },
            },
        },
    },
}


def _problems(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed body or bad query parameter",
        404: "Unknown policy or version",
        406: "None of the Accept types is offered",
        413: "Body larger than the limit",
        422: "Well-formed but invalid (schema or normalisation)",
        500: "Engine or internal error: no determination was made",
        503: "Evaluation exceeded the time limit: no determination was made",
    }
    return {
        str(status): {
            "description": reasons[status],
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for status in statuses
    }


def _fhir_body(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/fhir+json": {"schema": {"type": "object"}}},
    }


def document(version: str) -> dict[str, Any]:
    """Return the OpenAPI document of the service."""
    case = {"$ref": "#/components/schemas/Case"}
    decision = {"$ref": "#/components/schemas/Decision"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "necessity",
            "version": version,
            "description": "Medical-necessity review of prior-authorization requests. An adverse "
            "result is a recommendation for physician review, not a denial.",
        },
        "paths": {
            "/health": {
                "get": {
                    "summary": "Liveness: the worker has loaded and compiled its policies",
                    "responses": {"200": {"description": "Healthy"}},
                }
            },
            "/policies": {
                "get": {
                    "summary": "Every policy version in the library (as `necessity policies`)",
                    "responses": {"200": {"description": '`{"policies": [...]}`'}},
                }
            },
            "/policies/{policy_id}/{version}": {
                "get": {
                    "summary": "A policy's criteria document (as `necessity show`)",
                    "parameters": [
                        {
                            "name": "policy_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "version",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "Markdown (default), plain text or HTML by Accept",
                            "content": {
                                "text/markdown": {"schema": {"type": "string"}},
                                "text/plain": {"schema": {"type": "string"}},
                                "text/html": {"schema": {"type": "string"}},
                            },
                        },
                        **_problems(404, 406),
                    },
                }
            },
            "/evaluate": {
                "post": {
                    "summary": "Evaluate a case (as `necessity evaluate --format json`)",
                    "description": "Without `policy`, every service line is reviewed under the "
                    "policy that governs it; with it, that policy's decision on the whole case. "
                    "`Accept: text/markdown` or `text/html` returns the notice instead.",
                    "parameters": [
                        {
                            "name": "policy",
                            "in": "query",
                            "required": False,
                            "description": "ID or ID@VERSION, as `--policy`",
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": case}},
                    },
                    "responses": {
                        "200": {
                            "description": "The decision (any determination)",
                            "content": {
                                "application/json": {"schema": decision},
                                "text/markdown": {"schema": {"type": "string"}},
                                "text/html": {"schema": {"type": "string"}},
                            },
                        },
                        **_problems(400, 406, 413, 422, 500, 503),
                    },
                }
            },
            "/fhir/Claim/$submit": {
                "post": {
                    "summary": "Da Vinci PAS Claim/$submit: a request Bundle in, a ClaimResponse "
                    "Bundle out (FHIR R4)",
                    "requestBody": {"required": True, **_fhir_body("PAS request Bundle")},
                    "responses": {
                        "200": _fhir_body(
                            "PAS response Bundle: ClaimResponse (review action per item), "
                            "CommunicationRequest (documents requested), OperationOutcome "
                            "(what could not be mapped)"
                        ),
                        **_problems(400, 413, 422, 500, 503),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Case": load_schema("case"),
                "Decision": load_schema("decision"),
                "Problem": PROBLEM_SCHEMA,
            }
        },
    }
