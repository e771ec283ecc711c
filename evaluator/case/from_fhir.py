"""A FHIR R4 request Bundle (Da Vinci PAS shape) as a case, through fhir_mapping.yaml.

The Bundle is parsed and validated by `fhir.resources` (its R4B models, which read R4 Claim,
Observation, Condition, Procedure and DocumentReference alike); the mapping file then says which
codes become which case fields. The case is validated against case.schema.json like any other.
What the mapping cannot place is returned in `Mapped.unmapped`, never dropped silently.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evaluator.case import facts
from evaluator.case.cases import Case, case_from_data
from evaluator.errors import InputError, Location, Problem, SchemaError
from evaluator.read import schemas, source
from evaluator.vocab import units
from evaluator.vocab.dates import DateError, parse_date

MAPPING_FILE = Path(__file__).with_name("fhir_mapping.yaml")

# Resources a request Bundle carries that hold no clinical facts for the review: parties,
# coverage and the like. They are read (and validated) but not reported as unmapped.
CONTEXT_RESOURCES = frozenset(
    {
        "Patient",
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Coverage",
        "Location",
        "Encounter",
        "DocumentReference",
    }
)


# Elements of a mapped clinical resource that identify or administer it rather than state a
# fact; any other element the mapping does not read (a value, a component, a note) is reported.
ADMINISTRATIVE = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "text",
        "language",
        "implicitRules",
        "identifier",
        "status",
        "subject",
        "patient",
        "encounter",
        "category",
        "clinicalStatus",
        "issued",
        "performer",
        "recorder",
        "asserter",
        "recordedDate",
        "dateAsserted",
        "informationSource",
        "intent",
        "requester",
        "authoredOn",
    }
)
# What `fill` reads besides the elements the rule names.
_READ = frozenset(
    {"extension", "derivedFrom", "report", "evidence", "code", "hasMember", "contained"}
)
# FHIR statuses under which a resource states nothing: entered in error (the record should
# never have existed), an observation cancelled (never made), a procedure not done. Read as
# any other status, an ODI or a never-smoker status entered in error met its clause.
_WITHDRAWN = {
    "Observation": frozenset({"entered-in-error", "cancelled"}),
    "Procedure": frozenset({"entered-in-error", "not-done"}),
}
_UCUM = "http://unitsofmeasure.org"
# What `coded_element` returns for a name that is not one of its elements.
_NOT_CODED = object()


@dataclass(frozen=True)
class Unmapped:
    """Something in the Bundle the mapping does not place: where (FHIRPath) and why."""

    expression: str
    message: str


@dataclass(frozen=True)
class Mapped:
    """The case built from a Bundle, the Claim it came from, and what could not be mapped."""

    case: Case
    claim: dict[str, Any]
    data: dict[str, Any]
    unmapped: tuple[Unmapped, ...]


@functools.cache
def mapping() -> dict[str, Any]:
    """Return the mapping file's data (read once)."""
    data: dict[str, Any] = source.load(MAPPING_FILE).data
    return data


def _code_key(coding: Mapping[str, Any]) -> str | None:
    """Return `alias|code` for a coding whose system the mapping names, else None."""
    systems: dict[str, str] = mapping()["systems"]
    for alias, url in systems.items():
        if coding.get("system") == url and coding.get("code"):
            return f"{alias}|{coding['code']}"
    return None


def _codes(concept: Mapping[str, Any] | None) -> list[str]:
    if not concept:
        return []
    return [k for k in (_code_key(c) for c in concept.get("coding", [])) if k is not None]


def _shown(concept: Mapping[str, Any] | None) -> str:
    if not concept:
        return "no code"
    codings = [f"{c.get('system', '?')}|{c.get('code', '?')}" for c in concept.get("coding", [])]
    return ", ".join(codings) or repr(concept.get("text", "no code"))


def _case_coding(concept: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Return the first coding of `concept` in a code system the case format knows (its
    `coding` definition), as the case writes a coding; None when it has none."""
    for coding in (concept or {}).get("coding", []):
        if coding.get("system") in facts.code_systems() and coding.get("code"):
            out = {"system": coding["system"], "code": coding["code"]}
            if coding.get("display"):
                out["display"] = coding["display"]
            return out
    return None


def _in_value_set(concept: Mapping[str, Any] | None, name: str) -> bool:
    """True when a coding of `concept` is in the mapping's value set `name`."""
    codes = mapping()["value_sets"][name]["codes"]
    for coding in (concept or {}).get("coding", []):
        system = facts.code_systems().get(coding.get("system", ""))
        if system is not None and coding.get("code") in codes.get(system, ()):
            return True
    return False


def _date(value: Any) -> str | None:
    """Return a FHIR date or dateTime as the case writes a date (the day, or the month)."""
    return str(value)[:10] if value else None


def _last_day(text: Any) -> str | None:
    """Return the last day a date text may be (ISO, comparable as text), None if no date."""
    if not isinstance(text, str):
        return None
    try:
        return parse_date(text).hi.isoformat()
    except DateError:
        return None


def _holding(period: Mapping[str, Any]) -> str | None:
    """Return the narrowest date the case writes (a day, a month) holding every day of a
    period, None when none does (an open end, a period across months)."""
    start, end = _date(period.get("start")), _date(period.get("end"))
    try:
        first, last = parse_date(start or ""), parse_date(end or "")
    except DateError:
        return None
    if first.lo == last.hi:
        return first.lo.isoformat()
    if (first.lo.year, first.lo.month) == (last.hi.year, last.hi.month) and first.lo <= last.hi:
        return first.lo.isoformat()[:7]
    return None


def _period(period: Mapping[str, Any] | None) -> dict[str, str] | None:
    out = {k: d for k in ("start", "end") if (d := _date((period or {}).get(k)))}
    return out or None


def validate_bundle(document: source.Document) -> dict[str, Any]:
    """Validate the Bundle with the FHIR models; return it as normalised FHIR JSON.

    Raises SchemaError (code `fhir_invalid`) with one located problem per violation.
    """
    from fhir.resources.R4B.bundle import Bundle  # noqa: PLC0415  (slow import, needed here only)

    try:
        bundle = Bundle.model_validate(document.data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            pointer = source.make_pointer(str(p) for p in item["loc"] if p != "__root__")
            located = document.location(pointer)
            problems.append(Problem("fhir_invalid", str(item["msg"]).lower(), located))
        raise SchemaError(problems) from None
    data: dict[str, Any] = json.loads(bundle.model_dump_json(exclude_none=True))
    return data


class _Builder:
    """Fills a case from the resources of one Bundle."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.bundle = bundle
        self.unmapped: list[Unmapped] = []
        self.by_ref: dict[str, tuple[int, dict[str, Any]]] = {}
        # Values several resources may state (e.g. smoking status), gathered by (target, field)
        # and written once all are read: agreeing sources give the value, disagreeing ones the
        # case's `statements`, so a conflict is reported rather than one source overwriting
        # another.
        self.stated: dict[tuple[str, str], list[tuple[Any, dict[str, Any] | None]]] = {}
        # The source of the result a `latest` rule holds, per `into`: where a later result may
        # or may not be the latest, both become statements of its value (`is_latest`).
        self.held_sources: dict[str, Any] = {}
        # The list items (`into: .../-`) whose stated fields several resources may state: one
        # item per list and fixed fields (`set`: a diagnosis's name), so that two Conditions
        # disagreeing on a diagnosis's status are one diagnosis whose records disagree
        # (domain rule 9), not two diagnoses of which either decides.
        self.items: dict[str, dict[str, Any]] = {}
        # Where in the Bundle each case object and field came from (FHIRPath), so that an
        # error in the mapped case is reported at the Bundle's line, not at a pointer into a
        # document the user never wrote. Keyed by id(); the object is kept to keep the id.
        self.origins: dict[int, tuple[dict[str, Any], str, dict[str, str]]] = {}
        for index, entry in enumerate(bundle.get("entry", [])):
            resource = entry.get("resource")
            if not resource:
                continue
            kind, rid = resource["resourceType"], resource.get("id")
            if rid:
                self.by_ref[f"{kind}/{rid}"] = (index, resource)
            if entry.get("fullUrl"):
                self.by_ref[entry["fullUrl"]] = (index, resource)
            # A contained resource is referred to as `#id` (PAS puts supporting resources in
            # the Claim's `contained` as often as in the Bundle).
            for inner in resource.get("contained", []):
                if inner.get("id"):
                    self.by_ref[f"#{inner['id']}"] = (index, inner)

    def report(self, expression: str, message: str) -> None:
        self.unmapped.append(Unmapped(expression, message))

    def resolve(self, reference: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if not reference or "reference" not in reference:
            return None
        found = self.by_ref.get(reference["reference"])
        return found[1] if found else None

    # ---- sources ------------------------------------------------------------------------

    def source_of(self, reference: Mapping[str, Any] | None, where: str) -> dict[str, Any] | None:
        document = self.resolve(reference)
        if document is None or document.get("resourceType") != "DocumentReference":
            if reference:
                self.report(
                    where,
                    f"reference {reference.get('reference')!r} is not a "
                    "DocumentReference in the Bundle",
                )
            return None
        kinds = [mapping()["documents"].get(k) for k in _codes(document.get("type"))]
        kind = next((k for k in kinds if k), None)
        if kind is None:
            self.report(
                where,
                f"document type {_shown(document.get('type'))} is not mapped; "
                "the source is recorded as `other`",
            )
            kind = "other"
        out: dict[str, Any] = {"document": kind}
        if document.get("date"):
            out["date"] = document["date"][:10]
        if document.get("description"):
            out["quote"] = document["description"]
        return out

    # ---- case-field extensions ----------------------------------------------------------

    def fields(self, holder: Mapping[str, Any], target: dict[str, Any], where: str) -> None:
        url = mapping()["case_field_extension"]
        for index, extension in enumerate(holder.get("extension", [])):
            if extension.get("url") != url:
                self.report(
                    f"{where}.extension[{index}]",
                    f"extension {extension.get('url')!r} is not mapped",
                )
                continue
            self.field(extension, target, f"{where}.extension[{index}]")

    def field(self, extension: Mapping[str, Any], target: dict[str, Any], where: str) -> None:
        parts = {e.get("url"): e for e in extension.get("extension", [])}
        path = parts.get("path", {}).get("valueString")
        value_holder = parts.get("value")
        if not path or value_holder is None:
            self.report(where, "a case-field extension needs `path` and `value`")
            return
        value = self.value(value_holder, where)
        if value is not None:
            _put(target, path, value)

    def value(self, holder: Mapping[str, Any], where: str) -> Any:
        for key in (
            "valueBoolean",
            "valueString",
            "valueInteger",
            "valueCode",
            "valueDate",
            "valueDateTime",
            "valueDecimal",
        ):
            if key in holder:
                return holder[key]
        if "valueQuantity" in holder:
            return holder["valueQuantity"].get("value")
        if "valueReference" in holder:
            return self.source_of(holder["valueReference"], where)
        self.report(where, "value type is not mapped")
        return None

    # ---- standard elements --------------------------------------------------------------

    def element(
        self,
        resource: Mapping[str, Any],
        name: str,
        where: str,
        rule: Mapping[str, Any] | None = None,
    ) -> Any:
        coded = self.coded_element(resource, name, where, rule or {})
        if coded is not _NOT_CODED:
            return coded
        if name == "id":
            return resource.get("id")
        if name == "code.text":
            return (resource.get("code") or {}).get("text")
        if name == "medication.text":
            return (resource.get("medicationCodeableConcept") or {}).get("text")
        if name == "verificationStatus":
            codes = [
                c.get("code") for c in (resource.get("verificationStatus") or {}).get("coding", [])
            ]
            # FHIR's `confirmed` is the case's `confirmed`; anything short of it is `stated`
            # (named, not shown by primary records), and `refuted` is `ruled_out`.
            if "refuted" in codes:
                return "ruled_out"
            if "confirmed" in codes:
                return "confirmed"
            return "stated" if codes else None
        if name in ("effective", "onset"):
            if f"{name}DateTime" in resource or f"{name}Period" not in resource:
                return _date(resource.get(f"{name}DateTime"))
            # It happened some time in the period: its start would date it before a day the
            # period holds, or before a request the period reaches past.
            held = _holding(resource[f"{name}Period"])
            if held is None:
                self.report(
                    f"{where}.{name}Period",
                    "no day or month holds the whole period (open, or across months): the "
                    "date is not mapped",
                )
            return held
        if name.startswith(("performed.", "effective.")):
            base, _, end = name.partition(".")
            # Performed (or taken) at an instant, it started and ended that day: with no end,
            # the case would read a course ongoing up to the request, one session as months.
            # An open Period keeps no end: FHIR's Period calls a missing end ongoing.
            if f"{base}DateTime" in resource:
                return _date(resource[f"{base}DateTime"])
            return _date((resource.get(f"{base}Period") or {}).get(end))
        if name == "bodySite.side":
            sites = resource.get("bodySite")
            sites = sites if isinstance(sites, list) else [sites] if sites else []
            for site in sites:
                for key in _codes(site):
                    side = mapping()["laterality"].get(key)
                    if side:
                        return side
            return None
        if name == "bodySite.level":
            sites = resource.get("bodySite")
            for site in sites if isinstance(sites, list) else [sites]:
                for key in _codes(site):
                    if key.startswith("level|"):
                        return key.split("|", 1)[1]
            return None
        raise ValueError(f"fhir_mapping.yaml names an unknown element {name!r} ({where})")

    def coded_element(
        self, resource: Mapping[str, Any], name: str, where: str, rule: Mapping[str, Any]
    ) -> Any:
        """Read the elements of the coded sections (observations, conditions, past procedures,
        medications); return _NOT_CODED for any other name."""
        if name == "code":
            concept = resource.get("code") or resource.get("medicationCodeableConcept")
            return _case_coding(concept)
        if name in ("valueCodeableConcept", "method"):
            concept = resource.get(name)
            found = _case_coding(concept)
            if concept and found is None:
                message = f"{_shown(concept)} is in no code system a case uses"
                self.report(f"{where}.{name}", message)
            return found
        if name == "valueCodeableConcept.mapped":
            concept = resource.get("valueCodeableConcept")
            value = next((rule["values"][k] for k in _codes(concept) if k in rule["values"]), None)
            if concept and value is None:
                message = f"value {_shown(concept)} is not mapped"
                self.report(f"{where}.valueCodeableConcept", message)
            return value
        if name == "valueBoolean":
            return resource.get("valueBoolean")
        if name.startswith("valueQuantity"):
            at = f"{where}.valueQuantity"
            found = self.quantity(resource.get("valueQuantity"), name, at)
            code = _case_coding(resource.get("code"))
            analyte = [f"{facts.code_systems()[code['system']]}|{code['code']}"] if code else []
            if (
                isinstance(found, dict)
                and units.target("observation", analyte, found["unit"]) is None
            ):
                # One result in a unit no table converts must not fail the whole request.
                self.report(
                    at, f"unit `{found['unit']}` does not convert; the result is not mapped"
                )
                return None
            return found
        if name == "effectiveDateTime":
            return _date(resource.get("effectiveDateTime"))
        if name == "effectivePeriod":
            return _period(resource.get("effectivePeriod"))
        if name == "bodySite":
            sites = resource.get("bodySite")
            for site in sites if isinstance(sites, list) else [sites] if sites else []:
                lateral = set(mapping()["laterality"])
                found = _case_coding(
                    {"coding": [c for c in site.get("coding", []) if _code_key(c) not in lateral]}
                )
                if found:
                    return found
            return None
        if name == "clinicalStatus":
            return next((c.get("code") for c in _codings(resource.get("clinicalStatus"))), None)
        if name == "verificationStatus.code":
            return next((c.get("code") for c in _codings(resource.get("verificationStatus"))), None)
        if name == "verificationStatus.affirmed":
            # Diabetes on the record unless refuted: when in doubt the stricter clause applies.
            codes = {c.get("code") for c in _codings(resource.get("verificationStatus"))}
            return None if "entered-in-error" in codes else "refuted" not in codes
        if name == "performed":
            return _date(
                resource.get("performedDateTime")
                or (resource.get("performedPeriod") or {}).get("start")
            )
        if name == "taken":
            if "effectiveDateTime" in resource:
                return {"start": _date(resource["effectiveDateTime"])}
            if "effectivePeriod" in resource:
                return _period(resource["effectivePeriod"])
            dosage = (resource.get("dosageInstruction") or [{}])[0]
            repeat = (dosage.get("timing") or {}).get("repeat") or {}
            return _period(repeat.get("boundsPeriod"))
        if name == "status":
            status = resource.get("status")
            allowed = _case_enum("medication", "status")
            if status is not None and status not in allowed:
                self.report(f"{where}.status", f"status `{status}` is not mapped")
                return None
            return status
        return _NOT_CODED

    def quantity(self, quantity: Mapping[str, Any] | None, name: str, where: str) -> Any:
        """A valueQuantity as the case writes one ({value, unit}, the UCUM code preferred to
        the display unit), or, for `valueQuantity.value[UNIT]`, its number when it is in UNIT."""
        if not quantity:
            return None
        unit = quantity.get("code") if quantity.get("system") == _UCUM else None
        unit = unit or quantity.get("unit")
        if quantity.get("value") is None or not unit:
            self.report(where, "a quantity needs a value and a UCUM unit")
            return None
        if name == "valueQuantity":
            return {"value": quantity["value"], "unit": unit}
        wanted = name.removeprefix("valueQuantity.value[").removesuffix("]")
        if unit != wanted:
            self.report(where, f"a quantity in `{unit}` is not mapped (only `{wanted}` is)")
            return None
        return quantity["value"]

    def unread(
        self, resource: Mapping[str, Any], rules: list[Mapping[str, Any]], where: str
    ) -> None:
        """Report the elements of a resource that none of the rules mapping it reads."""
        read = {k for rule in rules for e in rule.get("elements", {}) for k in _element_keys(e)}
        for key in sorted(set(resource) - ADMINISTRATIVE - _READ):
            if not any(key.startswith(prefix) for prefix in read):
                self.report(f"{where}.{key}", f"element `{key}` is not mapped")

    def fill(
        self,
        resource: Mapping[str, Any],
        rule: Mapping[str, Any],
        where: str,
        reported: bool = False,
    ) -> dict[str, Any]:
        """Return the case value a rule makes of the resource; `reported`: the caller has
        reported the unread elements (of a resource several rules map)."""
        out: dict[str, Any] = dict(rule.get("set", {}))
        if not reported:
            self.unread(resource, [rule], where)
        fields: dict[str, str] = {}
        self.origins[id(out)] = (out, where, fields)
        for element, field in rule.get("elements", {}).items():
            value = self.element(resource, element, where, rule)
            if value is not None:
                _put(out, "/" + field, value)
                if element in resource:  # an element of the resource, not one built from several
                    fields["/" + field] = f"{where}.{element}"
        self.fields(resource, out, where)
        documents = [
            (f"{where}.{key}[0]", r)
            for key in ("derivedFrom", "report")
            for r in resource.get(key, [])[:1]
        ]
        documents += [
            (f"{where}.evidence[0].detail[0]", r)
            for e in resource.get("evidence", [])[:1]
            for r in e.get("detail", [])[:1]
        ]
        for at, reference in documents:
            found = self.source_of(reference, at)
            if found:
                # A case-field extension (e.g. a month-only `/source/date`, which a
                # DocumentReference's instant cannot hold) refines the document's source.
                out["source"] = found | out.get("source", {})
        return out

    # ---- the Claim ----------------------------------------------------------------------

    def claim(self, claim: dict[str, Any], where: str) -> dict[str, Any]:
        request: dict[str, Any] = {"date": str(claim.get("created", ""))[:10], "lines": []}
        for key in _codes(claim.get("priority")):
            urgency = mapping()["request"]["urgency"].get(key)
            if urgency:
                request["urgency"] = urgency
        infos = {s["sequence"]: (i, s) for i, s in enumerate(claim.get("supportingInfo", []))}
        used: set[int] = set()
        for index, item in enumerate(claim.get("item", [])):
            request["lines"].append(self.item(item, infos, used, f"{where}.item[{index}]"))
        for sequence, (index, info) in infos.items():
            reference = info.get("valueReference")
            if reference is not None and sequence not in used:
                # Supporting information that points at a resource: the resource is mapped
                # (or reported) on its own, as a Bundle entry or a contained resource.
                if self.resolve(reference) is None:
                    self.report(
                        f"{where}.supportingInfo[{index}].valueReference",
                        f"reference {reference.get('reference')!r} is not in the Bundle",
                    )
                continue
            if sequence not in used:
                self.report(
                    f"{where}.supportingInfo[{index}]",
                    "supporting information no item "
                    "points to (item.informationSequence) is not mapped",
                )
        self.fields(claim, request, where)
        if claim.get("diagnosis"):
            self.report(
                f"{where}.diagnosis",
                "Claim.diagnosis is not mapped: send each diagnosis as a Condition",
            )
        return request

    def item(
        self,
        item: dict[str, Any],
        infos: dict[int, tuple[int, dict[str, Any]]],
        used: set[int],
        where: str,
    ) -> dict[str, Any]:
        service = item.get("productOrService") or {}
        cpts = [k.split("|", 1)[1] for k in _codes(service) if k.startswith("cpt|")]
        for detail in item.get("detail", []):
            cpts += [
                k.split("|", 1)[1]
                for k in _codes(detail.get("productOrService"))
                if k.startswith("cpt|")
            ]
        rule = next(
            (mapping()["procedures"][k] for k in _codes(service) if k in mapping()["procedures"]),
            None,
        )
        line: dict[str, Any] = {"id": _line_id(item), "procedure": "other", "cpt": cpts}
        fields: dict[str, str] = {}
        self.origins[id(line)] = (line, where, fields)
        if rule is None:
            self.report(
                f"{where}.productOrService",
                f"procedure {_shown(service)} is not mapped "
                "to a procedure kind; the line is reviewed as `other` (by CPT)",
            )
        else:
            line["procedure"] = rule["procedure"]
        if service.get("text"):
            line["description"] = service["text"]
        level = self.element(item, "bodySite.level", where)
        if level is not None:
            if rule is None or "levels" not in rule:
                self.report(f"{where}.bodySite", "levels on a procedure that takes none")
            else:
                line[rule["levels"]] = level
                fields["/" + rule["levels"]] = f"{where}.bodySite"
        for site in item.get("subSite", []):
            for key in _codes(site):
                if key in mapping()["laterality"]:
                    line["side"] = mapping()["laterality"][key]
        for sequence in item.get("informationSequence", []):
            found = infos.get(sequence)
            if found is None:
                self.report(f"{where}.informationSequence", f"no supportingInfo {sequence}")
                continue
            used.add(sequence)
            index, info = found
            self.fields(info, line, f"{where}.supportingInfo[{index}]")
        return line

    # ---- the clinical resources ---------------------------------------------------------

    def resources(self, case: dict[str, Any], claim_index: int) -> None:
        members: set[int] = set()
        found: list[tuple[str, dict[str, Any]]] = []
        for index, entry in enumerate(self.bundle.get("entry", [])):
            resource = entry.get("resource") or {}
            if index != claim_index:
                found.append((f"Bundle.entry[{index}].resource", resource))
            found += [
                (f"Bundle.entry[{index}].resource.contained[{i}]", inner)
                for i, inner in enumerate(resource.get("contained", []))
            ]
        for where, resource in found:
            kind = resource.get("resourceType")
            if kind in CONTEXT_RESOURCES or kind == "Claim" or id(resource) in members:
                continue
            if self.withdrawn(resource, where):
                continue
            rules = [r for r in mapping()["resources"] if _matches(r, resource)]
            status = resource.get("status")
            # A rule that names the resource's status among those it skips does not match it (a
            # medication not taken is no conservative care), while a later rule still may.
            skipped = [r for r in rules if status in r.get("skip_status", ())]
            rules = [r for r in rules if r not in skipped]
            if skipped and not rules:
                self.report(
                    f"{where}.status",
                    f"{kind} with status `{status}` states no {skipped[0]['into']}: not mapped",
                )
                continue
            if not rules:
                self.report(
                    where,
                    f"{kind} with code {_shown(_concept(resource))} is not mapped to a case field",
                )
                continue
            # The first matching rule maps the resource; `continue: true` offers it to the next
            # matching rule too (an HbA1c fills `diabetes` and is kept as a coded observation).
            chain = []
            for rule in rules:
                chain.append(rule)
                if not rule.get("continue"):
                    break
            self.unread(resource, chain, where)
            for rule in chain:
                self.apply(case, resource, rule, where, members)
        self.write_stated(case)

    def withdrawn(self, resource: Mapping[str, Any], where: str) -> bool:
        """True, reported, for a resource whose status says it states nothing (`_WITHDRAWN`;
        `entered-in-error` whatever its type)."""
        status, kind = resource.get("status"), resource.get("resourceType", "")
        if status != "entered-in-error" and status not in _WITHDRAWN.get(kind, ()):
            return False
        self.report(f"{where}.status", f"{kind} with status `{status}` states nothing: not mapped")
        return True

    def apply(
        self,
        case: dict[str, Any],
        resource: Mapping[str, Any],
        rule: Mapping[str, Any],
        where: str,
        members: set[int],
    ) -> None:
        value = self.fill(resource, rule, where, reported=True)
        if "members" in rule:
            found = [
                self.member(ref, rule["members"], f"{where}.hasMember[{i}]", members)
                for i, ref in enumerate(resource.get("hasMember", []))
            ]
            value[rule["members"]["into"]] = [member for member in found if member is not None]
        if "as_of" in rule and (dated := self.as_of(resource, rule, value.get("source"))):
            value["source"] = dated
        into = rule["into"]
        if rule.get("stated") and into.endswith("/-"):
            into = f"{into}{json.dumps(rule.get('set', {}), sort_keys=True)}"
        for field in rule.get("stated", []):
            if field in value:
                statements = self.stated.setdefault((into, field), [])
                statements.append((value.pop(field), value.get("source")))
        if rule.get("stated"):
            value.pop("source", None)
        if "latest" in rule and (
            _after_request(case, value.get(rule["latest"])) or not self.is_latest(case, rule, value)
        ):
            return
        if into in self.items:
            return  # the item is there already: this resource only states its fields
        if value:
            _put(case, rule["into"], value)
            if into != rule["into"]:
                self.items[into] = _get(case, rule["into"][:-2])[-1]

    @staticmethod
    def as_of(
        resource: Mapping[str, Any], rule: Mapping[str, Any], found: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """Return the source of a value that has no date of its own (a smoking status, a
        diabetes diagnosis): it holds as of the resource's `as_of` element (`effective`: the
        dateTime or the period's last day; `recordedDate`), or as of its document, whichever
        may be later, so that the case's ``x-as-of-source`` check leaves out a value stated
        after the request. Without a DocumentReference the source is `other`."""
        name = rule["as_of"]
        period = resource.get(f"{name}Period") or {}
        observed = _date(
            period.get("end")
            or resource.get(f"{name}DateTime")
            or resource.get(name)
            or period.get("start")
        )
        if observed is None:
            return dict(found) if found else None
        out = dict(found or {"document": "other"})
        if (_last_day(observed) or "") > (_last_day(out.get("date")) or ""):
            out["date"] = observed
        return out

    def is_latest(
        self, case: dict[str, Any], rule: Mapping[str, Any], value: dict[str, Any]
    ) -> bool:
        """For a `latest: DATE` rule (one result per case, e.g. the HbA1c): True when `value`
        is to replace the result held, which it then clears. A result and its date travel
        together: one with no usable value replaces nothing (it is reported), an undated one
        never replaces a dated one, and an older one never a newer, whatever the Bundle's order.

        Dates are days or months (intervals): where neither result is surely the later (a
        month holding the other's day, the same day) and their values differ, either may be
        the latest, so both are kept as statements of the value, which disagree (domain rules
        5 and 9: not documented, with a conflict) rather than one chosen by how the dates sort
        as text or by the Bundle's order.
        """
        latest, fields = rule["latest"], set(rule["elements"].values())
        if not (fields - {latest}) & value.keys():
            return False
        held = _get(case, rule["into"]) or {}
        if fields & held.keys():
            order = _later(value.get(latest), held.get(latest))
            if order == 0 and self.both_stated(rule, held, value, fields - {latest}):
                return False
            if order < 0 or (order == 0 and str(value.get(latest)) < str(held.get(latest))):
                return False
            for field in fields:
                held.pop(field, None)
        self.held_sources[rule["into"]] = value.get("source")
        return True

    def both_stated(
        self,
        rule: Mapping[str, Any],
        held: dict[str, Any],
        value: Mapping[str, Any],
        fields: set[str],
    ) -> bool:
        """Make each of `fields` on which the held result and `value` differ statements of
        both (or add `value`'s to the held statements); True when any differed."""
        differ = [f for f in sorted(fields) if f in held and f in value and held[f] != value[f]]
        for field in differ:
            said = held[field]
            if not (isinstance(said, dict) and "statements" in said):
                found = self.held_sources.get(rule["into"]) or {"document": "other"}
                said = {"statements": [{"value": said, "source": found}]}
            found = value.get("source") or {"document": "other"}
            said["statements"].append({"value": value[field], "source": found})
            held[field] = said
        return bool(differ)

    def write_stated(self, case: dict[str, Any]) -> None:
        for (into, field), said in self.stated.items():
            # a list item's fields are set on the item itself (`items`)
            item = self.items.get(into)
            target, at = (case, into) if item is None else (item, "")
            if len({json.dumps(v, sort_keys=True) for v, _ in said}) == 1:
                value, found = said[0]
                _put(target, f"{at}/{field}", value)
                if found and "source" not in ((_get(target, at) if at else target) or {}):
                    _put(target, f"{at}/source", found)
                continue
            statements = [{"value": v, "source": s or {"document": "other"}} for v, s in said]
            _put(target, f"{at}/{field}", {"statements": statements})

    def member(
        self, reference: Mapping[str, Any], rule: Mapping[str, Any], where: str, seen: set[int]
    ) -> dict[str, Any] | None:
        """Return the case value of a member (a study's finding); None for one withdrawn."""
        resource = self.resolve(reference)
        if resource is None:
            self.report(where, f"member {reference.get('reference')!r} is not in the Bundle")
            return {}
        seen.add(id(resource))
        if self.withdrawn(resource, where):
            return None
        if rule["code"] not in _codes(resource.get("code")):
            self.report(where, f"member with code {_shown(resource.get('code'))} is not mapped")
        return self.fill(resource, rule, where)


def _element_keys(element: str) -> tuple[str, ...]:
    """Return the FHIR JSON keys (prefixes, for choice types) that a mapping element reads."""
    base = element.split(".", 1)[0]
    return {
        "medication": ("medicationCodeableConcept",),
        "code": ("code", "medicationCodeableConcept"),
        "taken": ("effective", "dosageInstruction"),
    }.get(base, (base,))


def _concept(resource: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The resource's code (a medication's is its medicationCodeableConcept)."""
    concept: Mapping[str, Any] | None = resource.get("code") or resource.get(
        "medicationCodeableConcept"
    )
    return concept


def _codings(concept: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return list((concept or {}).get("coding", []))


def _matches(rule: Mapping[str, Any], resource: Mapping[str, Any]) -> bool:
    """True when a `resources` rule of mapping.yaml applies to the resource: its type, then its
    code (`code: alias|code`, `code: {in_value_set: NAME}`), or any code of a system the case
    format knows (`coded: true`, the coded sections)."""
    kinds = rule["resource"] if isinstance(rule["resource"], list) else [rule["resource"]]
    if resource.get("resourceType") not in kinds:
        return False
    concept = _concept(resource)
    code = rule.get("code")
    if isinstance(code, str) and code not in _codes(concept):
        return False
    if isinstance(code, dict) and not _in_value_set(concept, code["in_value_set"]):
        return False
    return not rule.get("coded") or _case_coding(concept) is not None


@functools.cache
def _case_enum(definition: str, field: str) -> frozenset[str]:
    """The values case.schema.json allows for `field` of `definition`."""
    spec = schemas.load_schema("case")["$defs"][definition]["properties"][field]
    return frozenset(spec["enum"])


def _after_request(case: Mapping[str, Any], text: Any) -> bool:
    """True for a date surely after the request date (its first day after the request's last):
    such a result shows nothing of what held at the request, so a `latest` rule never holds
    it, and an older timely result stays the one held. Its coded section still keeps it, and
    the case's normalisation keeps it apart (facts.schema.json late_observation), so that a
    policy may weigh what it contradicts. A month reaching past the request may be timely: it
    stays a candidate, whose value the normalisation leaves unknown."""
    if not text:
        return False
    try:
        dated, request = parse_date(str(text)), parse_date(str(case["request"]["date"]))
    except DateError:
        return False
    return dated.lo > request.hi


def _later(new: Any, held: Any) -> int:
    """1 when a result dated `new` is surely later than one dated `held`, -1 when surely
    earlier, 0 when either may be (days or months overlapping; a date that does not parse).
    An undated result is never later than a dated one; a dated one replaces an undated one."""
    if not held:
        return 0 if not new else 1
    if not new:
        return -1
    try:
        first, second = parse_date(str(new)), parse_date(str(held))
    except DateError:
        return 0
    return 1 if first.lo > second.hi else -1 if first.hi < second.lo else 0


def _get(target: Mapping[str, Any], pointer: str) -> Any:
    """Return the value at a JSON pointer below `target` (None when absent; `-` is absent)."""
    node: Any = target
    for token in source.split_pointer(pointer):
        if not isinstance(node, dict) or token not in node:
            return None
        node = node[token]
    return node


def _line_id(item: Mapping[str, Any]) -> str:
    for extension in item.get("extension", []):
        if extension.get("url", "").endswith("extension-itemTraceNumber"):
            value = (extension.get("valueIdentifier") or {}).get("value")
            if value:
                return str(value)
    return f"item-{item.get('sequence')}"


def _put(target: dict[str, Any], pointer: str, value: Any) -> None:
    """Set `value` at a JSON pointer below `target`, creating objects and lists; a last token
    `-` appends to a list."""
    tokens = source.split_pointer(pointer)
    node: Any = target
    for token, after in zip(tokens, [*tokens[1:], None], strict=True):
        if after is None:
            if token == "-":
                node.append(value)
            elif isinstance(node.get(token), dict) and isinstance(value, dict):
                node[token].update(value)
            else:
                node[token] = value
            return
        default: Any = [] if after == "-" else {}
        if token == "-":
            node.append(default)
            node = node[-1]
        else:
            node = node.setdefault(token, default)


def bundle_to_case(document: source.Document) -> Mapped:
    """Return the case a PAS request Bundle describes, and what could not be mapped.

    Raises SchemaError (`fhir_invalid`: not valid FHIR; `fhir_no_claim`: no Claim) or the
    errors of `case_from_data` when the mapped case breaks case.schema.json.
    """
    bundle = validate_bundle(document)
    entries = bundle.get("entry", [])
    claims = [
        i for i, e in enumerate(entries) if (e.get("resource") or {}).get("resourceType") == "Claim"
    ]
    if len(claims) != 1:
        raise SchemaError.single(
            "fhir_no_claim",
            f"a request Bundle holds exactly one Claim (found {len(claims)})",
            Location(document.path, None, None, "/entry"),
        )
    builder = _Builder(bundle)
    claim = entries[claims[0]]["resource"]
    where = f"Bundle.entry[{claims[0]}].resource"
    identifiers = claim.get("identifier", [])
    case_id = identifiers[0].get("value") if identifiers else claim.get("id")
    case: dict[str, Any] = {"case_id": str(case_id or "fhir-claim")}
    case["request"] = builder.claim(claim, where)
    builder.origins[id(case["request"])] = (case["request"], where, {})
    builder.resources(case, claims[0])
    try:
        mapped = case_from_data(case, document.path)
    except InputError as error:
        raise type(error)(_in_bundle(error.problems, case, builder, document)) from None
    return Mapped(mapped, claim, case, tuple(builder.unmapped))


def _in_bundle(
    problems: tuple[Problem, ...],
    case: dict[str, Any],
    builder: _Builder,
    document: source.Document,
) -> list[Problem]:
    """Place each problem of the mapped case at the Bundle element it came from (its line and
    JSON pointer), naming the case field in the message; a problem with no known origin keeps
    the case's pointer, said to be in the mapped case."""
    origins: dict[str, str] = {}

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            found = builder.origins.get(id(node))
            if found is not None and found[0] is node:
                origins[pointer] = found[1]
                origins.update({pointer + sub: path for sub, path in found[2].items()})
            for key, value in node.items():
                walk(value, pointer + source.make_pointer([key]))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{pointer}/{index}")

    walk(case, "")
    longest_first = sorted(origins, key=len, reverse=True)
    out = []
    for problem in problems:
        at = problem.location.pointer or ""
        # the longest mapped prefix, on token boundaries
        prefix = next(
            (p for p in longest_first if at == p or at.startswith(p + "/")),
            None,
        )
        if prefix is None:
            message = f"{problem.message} (in the case mapped from the Bundle, at {at or '/'})"
            unplaced = Location(document.path, None, None, at)
            out.append(Problem(problem.code, message, unplaced, problem.hint))
            continue
        message = f"{problem.message} (mapped to the case's {at})"
        located = document.location(_fhirpath_pointer(origins[prefix]))
        out.append(Problem(problem.code, message, located, problem.hint))
    return out


def _fhirpath_pointer(path: str) -> str:
    """`Bundle.entry[3].resource.valueQuantity` -> `/entry/3/resource/valueQuantity`."""
    tokens = []
    for part in path.removeprefix("Bundle").strip(".").split("."):
        name, _, index = part.partition("[")
        tokens.append(name)
        if index:
            tokens.append(index.rstrip("]"))
    return source.make_pointer(tokens)
