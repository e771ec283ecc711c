"""Cases: a case file (or a FHIR bundle) to a `Case` and its flat typed facts."""
