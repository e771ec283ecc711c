"""Decisions: what the engine derived, with evidence, trace, alternative and provenance."""
