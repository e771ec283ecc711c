"""Claim/$submit: a PAS request Bundle reviewed line by line, answered with a response Bundle."""

from __future__ import annotations

from typing import Any

from evaluator import api
from evaluator.case.from_fhir import bundle_to_case
from evaluator.fhir.response import claim_response_bundle
from evaluator.language.policies import Library
from evaluator.read import source


def submit(document: source.Document, library: Library) -> dict[str, Any]:
    """Return the ClaimResponse Bundle for a request Bundle (every item reviewed under the
    policy that governs it, as `necessity evaluate` without --policy).

    Raises SchemaError for a Bundle that is not valid FHIR or holds no Claim, and the errors of
    `api.review_case`.
    """
    mapped = bundle_to_case(document)
    review = api.review_case(mapped.case, library)
    items = mapped.data["request"]["lines"]
    sequences = {
        line["id"]: item.get("sequence", index + 1)
        for index, (line, item) in enumerate(zip(items, mapped.claim.get("item", []), strict=True))
    }
    return claim_response_bundle(review, mapped.claim, mapped.unmapped, sequences)
