"""FHIR R4 in and out: a Da Vinci PAS request Bundle as a case (mapping.yaml), and the review as
a ClaimResponse Bundle. Needs the `service` extra (fhir.resources)."""

from __future__ import annotations
