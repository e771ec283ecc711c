"""The PAS response Bundle: a ClaimResponse with the review action of each item, the documents
requested as CommunicationRequests, and an OperationOutcome listing what was not mapped."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from evaluator.api import CaseReview, LineResult
from evaluator.case.from_fhir import Unmapped
from evaluator.decide.decision import ClauseResult, Decision
from evaluator.language.model import Status

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
X12_ACTION = "https://codesystem.x12.org/005010/306"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
REASON_EXTENSION = "https://necessity.dev/fhir/StructureDefinition/review-reason"

# X12 278 HCR01 (code list 306) as the PAS examples display them.
ACTION_DISPLAY = {
    "A1": "Certified in total",
    "A2": "Certified - partial",
    "A3": "Not Certified",
    "A4": "Pended",
    "A6": "Modified",
}


def _failed(decision: Decision) -> list[ClauseResult]:
    return [c for c in decision.clauses if c.status in (Status.NOT_MET, Status.NOT_DOCUMENTED)]


def _reason_text(result: LineResult) -> str:
    line = result.line
    if result.decision is None or result.policy is None:
        return (
            f"Line {line.id}: no policy governs this procedure; pended for manual review, "
            "never approved by default."
        )
    policy = result.policy
    text = (
        f"Line {line.id}: {result.determination.replace('_', ' ')} under policy "
        f"{policy.id} {policy.version}."
    )
    failed = _failed(result.decision)
    if failed:
        text += (
            " "
            + "; ".join(f"{c.id} ({c.title}): {c.status.value.replace('_', ' ')}" for c in failed)
            + "."
        )
    return text


def _reason_extension(result: LineResult) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "determination", "valueCode": result.determination}]
    if result.policy is not None and result.decision is not None:
        parts.append(
            {"url": "policy", "valueString": f"{result.policy.id}@{result.policy.version}"}
        )
        parts += [{"url": "clause", "valueString": c.id} for c in _failed(result.decision)]
    return {"url": REASON_EXTENSION, "extension": parts}


def _documents(result: LineResult) -> list[str]:
    if result.decision is None:
        return []
    return [request.document for request in result.decision.documentation_requests]


def claim_response_bundle(
    review: CaseReview,
    claim: dict[str, Any],
    unmapped: Iterable[Unmapped],
    sequences: dict[str, int],
) -> dict[str, Any]:
    """Return the response Bundle for a reviewed Claim; `sequences` maps line id to the Claim's
    item sequence."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    claim_id = claim.get("id", "claim")
    response_id = f"{claim_id}-response"
    items, notes, communications = [], [], []
    for number, result in enumerate(review.lines, 1):
        sequence = sequences[result.line.id]
        action = result.x12_action
        review_action = {
            "url": PAS + "extension-reviewAction",
            "extension": [
                {
                    "url": "code",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": X12_ACTION,
                                "code": action,
                                "display": ACTION_DISPLAY.get(action, action),
                            }
                        ]
                    },
                }
            ],
        }
        items.append(
            {
                "extension": [_reason_extension(result)],
                "itemSequence": sequence,
                "noteNumber": [number],
                "adjudication": [
                    {
                        "extension": [review_action],
                        "category": {"coding": [{"system": ADJUDICATION, "code": "submitted"}]},
                    }
                ],
            }
        )
        notes.append({"number": number, "type": "display", "text": _reason_text(result)})
        documents = _documents(result)
        if documents:
            communications.append(
                {
                    "resourceType": "CommunicationRequest",
                    "id": f"{claim_id}-documents-{sequence}",
                    "status": "active",
                    "subject": claim.get("patient"),
                    "about": [{"reference": f"Claim/{claim_id}"}],
                    "reasonCode": [
                        {"text": f"Documentation for item {sequence} ({result.line.id})"}
                    ],
                    "payload": [{"contentString": document} for document in documents],
                }
            )
    claim_response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": response_id,
        "meta": {"profile": [PAS + "profile-claimresponse"]},
        "identifier": claim.get("identifier", []),
        "status": "active",
        "type": claim.get("type"),
        "use": "preauthorization",
        "patient": claim.get("patient"),
        "created": now,
        "insurer": claim.get("insurer"),
        "requestor": claim.get("provider"),
        "request": {"reference": f"Claim/{claim_id}"},
        "outcome": "complete",
        "disposition": review.overall.value.replace("_", " "),
        "item": items,
        "processNote": notes,
        "communicationRequest": [
            {"reference": f"CommunicationRequest/{c['id']}"} for c in communications
        ],
    }
    resources: list[dict[str, Any]] = [claim_response, *communications]
    issues = [
        {
            "severity": "warning",
            "code": "not-supported",
            "diagnostics": u.message,
            "expression": [u.expression],
        }
        for u in unmapped
    ]
    if issues:
        resources.append(
            {"resourceType": "OperationOutcome", "id": f"{claim_id}-unmapped", "issue": issues}
        )
        claim_response["extension"] = [
            {
                "url": "https://necessity.dev/fhir/StructureDefinition/unmapped",
                "valueReference": {"reference": f"OperationOutcome/{claim_id}-unmapped"},
            }
        ]
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PAS + "profile-pas-response-bundle"]},
        "type": "collection",
        "timestamp": now,
        "entry": [
            {"fullUrl": f"urn:necessity:{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }
