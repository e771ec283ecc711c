"""Normalises a validated case document into flat typed facts (docs/architecture.md, "Facts")."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from operator import attrgetter
from types import MappingProxyType
from typing import Any, NamedTuple

from evaluator.errors import CaseError, Collector
from evaluator.read import parse_cache, resources, schemas
from evaluator.read.source import Document
from evaluator.vocab import units
from evaluator.vocab.codes import value_set_codes
from evaluator.vocab.dates import (
    DateError,
    Interval,
    PartialDate,
    days_between,
    month_position,
    months_between,
    months_to_reach_between,
    parse_date,
    parse_duration,
    parse_instant,
    within,
)
from evaluator.vocab.levels import (
    Level,
    LevelError,
    Segment,
    expand_range,
    parse_level,
    parse_segment,
)

FactValue = str | int | float | bool
# (fact field, value as the case states it, JSON pointer of that value)
Given = tuple[str, Any, str]

# The parts of a case that are more than a renaming (lines, physical therapy, imaging) have
# their own methods below; every other part maps to facts by the case schema's annotations
# (`coded_sections`).
_REQUEST = "date urgency"
_LINE = "id=line procedure side same_day"
_RESECTION = "level=segment facetectomy_pct pars_resection"
_PHYSICAL_THERAPY = "status supervised start end visits"
_STUDY = "id=study modality date performed standing full_length"
_FINDING = (
    "level=segment stenosis neural_compression spondylolisthesis listhesis_grade"
    " listhesis_mm=listhesis"
)
_DYNAMIC = "level=segment translation_mm=translation angulation_deg=angulation"
_ALIGNMENT = (
    "films_taken cobb_deg=cobb pelvic_incidence_deg=pelvic_incidence"
    " lumbar_lordosis_deg=lumbar_lordosis sva_mm=sva pelvic_tilt_deg=pelvic_tilt"
)
_RANGES = {"fusion": "fused_segment", "decompression": "decompressed_segment"}
# The key of a service line (case.schema.json) that each line-attached fact type comes from:
# an alternative request is built by rewriting these keys.
LINE_SEGMENTS = tuple(_RANGES.values())
LINE_PARTS = {
    **{fact_type: key for key, fact_type in _RANGES.items()},
    "pelvic_fixation": "pelvic_fixation",
    "planned_resection": "resections",
}
# The joints of a paired structure a line's side names (case.schema.json `side`).
_JOINTS = {"left": ("left",), "right": ("right",), "bilateral": ("left", "right")}
_INHERITED = "standing full_length"  # alignment fields that belong to the study
_DATED = "date"  # the study's date on its alignment and each flexion-extension measurement
_QUOTE_CHARS = 80
_MAX_DEPTH = 8  # case sections nest two or three levels; deeper means a $ref cycle
_NO_DEFAULT = object()
# Dates, levels and ranges repeat from case to case (the same dates against the same request
# date): what each becomes is a pure function of its text, kept in a cache this size (bounded,
# so memory stays flat over any batch). Only text is cached: errors are raised every time.
_CONVERSIONS = 4096
# Exact types a JSON value has that are never a mapping (checked before the slower isinstance
# of the Mapping ABC); the plain ones among them convert to a field as they are.
_PLAIN = frozenset({str, int, float, bool, type(None)})
_SCALARS = _PLAIN | {list}
_INDEX = attrgetter("index")
# The fact types whose dates are never "after the request": the request's own, a conflict's.
_NEVER_LATE = frozenset({"request", "conflict"})
_new = object.__new__


@dataclass(frozen=True)
class Fact:
    """One normalised fact: its type, a case-unique id, and scalar fields (never None)."""

    type: str
    id: str
    fields: Mapping[str, FactValue]
    # The fields as a plain dict (`fields` is a read-only view of it): as_dict copies it.
    _plain: dict[str, FactValue] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A read-only copy, so a fact handed on cannot be changed behind its id.
        plain = dict(self.fields)
        object.__setattr__(self, "fields", MappingProxyType(plain))
        object.__setattr__(self, "_plain", plain)

    def __hash__(self) -> int:
        return hash((self.type, self.id, tuple(sorted(self.fields.items()))))

    def as_dict(self) -> dict[str, FactValue]:
        """Return the fact as the engine sees it: ``{"t": type, "id": id, **fields}`` (a new
        dict each time)."""
        return {"t": self.type, "id": self.id, **self._plain}


@dataclass(frozen=True)
class Conflict:
    """Sources of the highest rank that disagree on a field, which is therefore left absent."""

    fact: str  # fact type
    ref: str  # id of the fact missing the field
    field: str
    values: tuple[tuple[str, str], ...]  # (value as stated, document kind), each once
    pointer: str  # the field in the case, for locating the statements
    # why: the sources disagree (the field is left absent) or disagree and the value that
    # makes the case worse decides (`worse_kept`); a date or value stated after the request is
    # left absent (`after_request`) or, as it can only make the case worse, counted
    # (`late_counted`, listed where it contradicts the other statements)
    reason: str = "sources_disagree"

    @property
    def text(self) -> str:
        """Return the values with their documents: ``never (clinic_note), current (lab_result)``."""
        return ", ".join(f"{value} ({document})" for value, document in self.values)


# eq=False, repr=False: never compared, hashed or printed (api.Request says why)
@dataclass(frozen=True, eq=False, repr=False)
class Normalised:
    """The facts of a case and the conflicts found while resolving statements."""

    facts: tuple[Fact, ...]
    conflicts: tuple[Conflict, ...] = field(default=())


def normalise(document: Document) -> tuple[Fact, ...]:
    """Return the facts of a validated case document. Raises ``CaseError`` (see ``build``)."""
    return build(document).facts


def build(document: Document) -> Normalised:
    """Return the facts and conflicts of a case document already valid against case.schema.json.

    Raises ``CaseError`` with every problem the schema cannot catch, each located in the
    document: ``unknown_level`` (e.g. L6), ``bad_range`` (a range or segment written caudal
    first, or a segment whose levels are not adjacent), ``bad_date`` (an impossible date, an end
    before its start, an unusable duration), ``duplicate_id`` (two lines or studies, one id),
    ``duplicate_segment`` (a motion segment or joint on two lines of one procedure kind).
    """
    return _Builder(document).run()


@cache
def fact_kinds() -> Mapping[str, Mapping[str, str | None]]:
    """Return each fact type's fields, in schema order, with their ``x-kind`` (None if plain)."""
    defs = schemas.load_schema("facts")["$defs"]
    return {
        name: {f: spec.get("x-kind") for f, spec in definition["properties"].items()}
        for name, definition in defs.items()
    }


# eq=False, repr=False: never compared, hashed or printed (api.Request says why)
@dataclass(frozen=True, eq=False, repr=False)
class CodedSection:
    """A case section whose items map to facts by the schema's annotations alone."""

    key: str  # the case path, e.g. si_joint/pain (a list gives one fact per item)
    fact: str  # the fact type (x-fact)
    # case property -> (fact field (x-field), shape of its value (x-fact-shape) or None)
    fields: Mapping[str, tuple[str, str | None]]
    # period property -> (status property, statuses): an item in such a status whose period has
    # no end is ongoing, and lasts until the request date (x-ongoing-while)
    ongoing: Mapping[str, tuple[str, frozenset[str]]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # period properties whose fact field is an instant within the period (x-bounds-instant):
    # an observation over a period happened some time in it, so its order against a day the
    # period holds is unknown
    instants: frozenset[str] = frozenset()


@cache
def coded_sections() -> tuple[CodedSection, ...]:
    """Return the case sections annotated ``x-fact``, in schema order.

    Adding a field to such a section is a schema edit: ``x-field`` names the fact field and the
    value's definition says its shape (a coding, a quantity, a period, a level range).
    """
    root = schemas.load_schema("case")
    defs = root["$defs"]

    def target(spec: Mapping[str, Any]) -> Mapping[str, Any]:
        # Follow $refs and array items down to the schema of one item.
        while "$ref" in spec or spec.get("type") == "array":
            spec = defs[spec["$ref"].rsplit("/", 1)[1]] if "$ref" in spec else spec["items"]
        return spec

    found = []

    def walk(node: Mapping[str, Any], path: str) -> None:
        if path.count("/") > _MAX_DEPTH:  # a $ref cycle in the schema: a defect, say so
            raise RecursionError(f"case.schema.json nests too deep at {path}")
        for key, spec in node.get("properties", {}).items():
            item, at = target(spec), f"{path}/{key}".lstrip("/")
            if "x-fact" in item:
                fields = {
                    prop: (sub["x-field"], target(sub).get("x-fact-shape"))
                    for prop, sub in item["properties"].items()
                    if "x-field" in sub
                }
                ongoing = {
                    prop: (status, frozenset(values))
                    for prop, sub in item["properties"].items()
                    for status, values in sub.get("x-ongoing-while", {}).items()
                }
                instants = frozenset(
                    prop for prop, sub in item["properties"].items() if sub.get("x-bounds-instant")
                )
                found.append(
                    CodedSection(
                        at,
                        item["x-fact"],
                        MappingProxyType(fields),
                        MappingProxyType(ongoing),
                        instants,
                    )
                )
            if item.get("type") == "object" and item is not node:
                walk(item, at)

    walk(root, "")
    return tuple(found)


# A coded section's property as it converts: (property, fact field, shape or None, the schema's
# default or _NO_DEFAULT), read from the schema once rather than for every item of every case.
_Prop = tuple[str, str, str | None, Any]


@cache
def _walks() -> tuple[tuple[CodedSection, tuple[str, ...], tuple[_Prop, ...]], ...]:
    """Return each coded section with the keys leading to it and its properties in the order
    they convert (the code first: a quantity's analyte-specific unit depends on it)."""
    found = []
    for section in coded_sections():
        defaults = case_defaults(section.key)
        props: list[_Prop] = [
            (prop, name, shape, defaults.get(prop, _NO_DEFAULT))
            for prop, (name, shape) in section.fields.items()
        ]
        props.sort(key=lambda step: step[1] != "code")  # stable: schema order otherwise
        found.append((section, tuple(section.key.split("/")), tuple(props)))
    return tuple(found)


@cache
def _timed(fact_type: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """Return the date fields of a fact type, each with the field of its first possible day
    (``start``, ``start_lo``), and its duration fields, in schema order."""
    kinds = fact_kinds()[fact_type]
    return (
        tuple((name, f"{name}_lo") for name, kind in kinds.items() if kind == "date"),
        tuple(name for name, kind in kinds.items() if kind == "duration"),
    )


@cache
def code_systems() -> Mapping[str, str]:
    """Return the short name (LOINC, SNOMEDCT, ...) of each code system URI a case may use."""
    return MappingProxyType(dict(schemas.load_schema("case")["$defs"]["coding"]["x-systems"]))


def _said(stated: Iterable[tuple[Any, Mapping[str, Any], str]]) -> tuple[tuple[str, str], ...]:
    """The values and the documents stating them, as a conflict lists them (once each)."""
    return tuple(dict.fromkeys((_text(v), s.get("document", "other")) for v, s, _ in stated))


class _Unsettled(NamedTuple):
    """What `_Builder.settle` found about one item (fields by their fact names)."""

    disputed: set[str]  # left absent: the best-ranked items describing the thing disagree
    outranked: set[str]  # left out: a better-ranked item describing the thing says otherwise
    disputes: list[tuple[str, tuple[Any, ...], str, str]]  # (field, values, pointer, why)
    # field -> the value the better-ranked items agree on, for an outranked field
    overruled: dict[str, Any]


@cache
def one_per(fact_type: str) -> tuple[str, ...]:
    """Return the fields (x-one-per) whose values name the one thing that several items of
    a case of this fact type may describe, each a source on it; none for most types."""
    definition = schemas.load_schema("facts")["$defs"][fact_type]
    return tuple(definition.get("x-one-per", ()))


@cache
def covers(fact_type: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """Return, for each field of this fact type that says `x-covers`, the values that name
    several things at once (a bilateral test) with the values naming each of those things
    (left, right); none for most types."""
    props = schemas.load_schema("facts")["$defs"][fact_type].get("properties", {})
    return {
        name: {value: tuple(each) for value, each in prop["x-covers"].items()}
        for name, prop in props.items()
        if "x-covers" in prop
    }


@cache
def primary_documents() -> frozenset[str]:
    """Return the document kinds the case schema marks as primary records."""
    return frozenset(schemas.load_schema("case")["$defs"]["document"]["x-primary-documents"])


@cache
def case_defaults(path: str) -> Mapping[str, Any]:
    """Return the schema ``default`` of each property of the case objects at ``path`` (a/b).

    The schema is the one place conventions such as "a named level without the finding counts
    as absent" are written, so they are read from it rather than repeated here.
    """
    root = schemas.load_schema("case")

    def deref(node: Mapping[str, Any]) -> Mapping[str, Any]:
        # Follow $refs and array items down to the object schema the path names.
        while "$ref" in node or node.get("type") == "array":
            node = (
                root["$defs"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node["items"]
            )
        return node

    node = deref(root)
    for key in path.split("/"):
        node = deref(node["properties"][key])
    found = {
        key: spec["default"] if "default" in spec else deref(spec).get("default", _NO_DEFAULT)
        for key, spec in node["properties"].items()
    }
    return {key: value for key, value in found.items() if value is not _NO_DEFAULT}


@cache
def _pairs(spec: str) -> tuple[tuple[str, str], ...]:
    """Return ``(case key, fact field)`` for each word of a mapping spec such as ``a b=c``."""
    return tuple((word.partition("=")[0], word.partition("=")[2] or word) for word in spec.split())


@cache
def _mapping(spec: str, path: str) -> tuple[tuple[str, str, Any], ...]:
    """Return ``(case key, fact field, the schema's default or _NO_DEFAULT)`` for each word of a
    mapping spec (``_pairs``) of the case objects at schema path ``path``: read once, not per
    object (a few specs, a few paths)."""
    defaults = case_defaults(path)
    return tuple((key, name, defaults.get(key, _NO_DEFAULT)) for key, name in _pairs(spec))


@lru_cache(maxsize=_CONVERSIONS)
def _schema_path(pointer: str) -> str:
    """Return the schema path of the case object at ``pointer``: the pointer without list
    indexes (/imaging/0/findings/2 is at imaging/findings), so every default the schema
    states is honoured wherever it is."""
    return "/".join(t for t in pointer.split("/")[1:] if not t.isdigit())


@lru_cache(maxsize=_CONVERSIONS)
def _dated_text(
    name: str, text: str, request: str | None, service: str | None
) -> Mapping[str, FactValue]:
    """Return `_date_fields` of a date's text, the request and service dates given by their
    text (which names a parsed date as well as the date does, and hashes in less time)."""
    return _date_fields(name, text, _quiet_date(request), _quiet_date(service))


def _date_fields(
    name: str, text: str, request: PartialDate | None, service: PartialDate | None
) -> Mapping[str, FactValue]:
    """Return the fields the date ``text`` of field ``name`` becomes (shared: read only).

    Raises ``DateError`` for a date that is not one.
    """
    # A plain dict typed read-only rather than a MappingProxyType: every caller copies it into
    # a fact's fields with dict.update, which copies a dict in C and a proxy key by key.
    day = parse_instant(text)
    lo, hi = day.lo.toordinal(), day.hi.toordinal()
    out: dict[str, FactValue] = {name: day.text, f"{name}_lo": lo, f"{name}_hi": hi}
    # Calendar positions, so that months between two facts' dates are field arithmetic
    # in the engine (dates.month_position).
    for bound, when in (("lo", day.lo), ("hi", day.hi)):
        out[f"{name}_mday_{bound}"] = month_position(when)
        out[f"{name}_mend_{bound}"] = month_position(when, as_end=True)
    for anchor, to in (("request", request), ("service", service)):
        if to is None:
            continue
        for unit, between in (
            ("days", days_between),
            ("months", months_between),
            ("months_up", months_to_reach_between),
        ):
            distance = between(day, to)
            out[f"{name}_{unit}_before_{anchor}_lo"] = distance.lo
            out[f"{name}_{unit}_before_{anchor}_hi"] = distance.hi
    return out


@lru_cache(maxsize=_CONVERSIONS)
def _level_fields(kind: str, name: str, text: str) -> Mapping[str, FactValue]:
    """Return the fields a level or segment becomes (shared: read only); raises LevelError."""
    parsed: Level | Segment = parse_level(text) if kind == "level" else parse_segment(text)
    index = parsed.index if isinstance(parsed, Level) else parsed.upper.index
    return {name: parsed.name, f"{name}_index": index}  # a dict: see _date_fields


@lru_cache(maxsize=_CONVERSIONS)
def _range_segments(text: str) -> tuple[Segment, ...]:
    """Return the motion segments of one range, sorted, each once; raises LevelError."""
    return tuple(sorted(set(expand_range(text))))


def _grouped(
    keys: list[tuple[Any, ...]], items: list[tuple[Any, str]]
) -> list[list[tuple[Any, str]]]:
    """Return the items that share a key, two or more a group, in order (an empty key, an
    item that names nothing, shares it with no other)."""
    groups: dict[tuple[Any, ...], list[tuple[Any, str]]] = {}
    for key, item in zip(keys, items, strict=True):
        if key:
            groups.setdefault(key, []).append(item)
    return [found for found in groups.values() if len(found) > 1]


def _covering(
    keys: list[tuple[Any, ...]],
    items: list[tuple[Any, str]],
    spans: list[dict[str, tuple[str, ...]]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, str]]]:
    """Return ``keys`` and ``items`` with each item whose key names several things at once
    (x-covers: a bilateral test names the left and the right one) listed again under the
    key of each thing it names, so that it is a source on each; an item whose values are
    all of their own is listed once. A group of such an item alone is a group of one."""
    out_keys: list[tuple[Any, ...]] = []
    out_items: list[tuple[Any, str]] = []
    for key, item in zip(keys, items, strict=True):
        out_keys.append(key)
        out_items.append(item)
        for i, value in enumerate(key):
            for each in spans[i].get(value, ()) if isinstance(value, str) else ():
                out_keys.append((*key[:i], each, *key[i + 1 :]))
                out_items.append(item)
    return out_keys, out_items


def _identity_value(kind: str | None, raw: Any) -> Any:
    """Return a value that names a thing as its vocabulary spells it (L4-5 is L4-L5), or as
    stated when it is none of the vocabulary's (the fact's conversion reports it)."""
    if kind in ("level", "segment") and type(raw) is str:
        try:
            return _level_fields(kind, kind, raw)[kind]
        except LevelError:
            return raw
    return raw


def _items(value: Any, pointer: str) -> Iterator[tuple[Any, str]]:
    """Yield ``(item, pointer)`` for each item of a list, or the one object itself."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield item, f"{pointer}/{i}"
    elif value is not None:
        yield value, pointer


def _quiet_date(text: Any) -> PartialDate | None:
    """Return the date ``text`` is (a text through the cache), or None for anything no date."""
    try:
        return _parsed_instant(text) if type(text) is str else parse_date(text)
    except DateError:
        return None


@lru_cache(maxsize=_CONVERSIONS)
def _parsed_instant(text: str) -> PartialDate:
    """Return ``parse_instant(text)``, cached as `parsed_date` is."""
    return parse_instant(text)


@lru_cache(maxsize=_CONVERSIONS)
def parsed_date(text: str) -> PartialDate:
    """Return ``parse_date(text)`` for a text, cached (a date is immutable); raises DateError
    (every time: only dates are cached)."""
    return parse_date(text)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _src(source: Mapping[str, Any]) -> str:
    """Return a one-line provenance: ``surgeon_letter 2025-06-02 "very subtle curvature"``."""
    # Concatenated, not a list joined: a case has a source a fact, and this is a third of the
    # time of building and joining a list of parts.
    text: str = source["document"]
    if "date" in source:
        text = text + " " + source["date"]
    if "quote" in source:
        quote = " ".join(source["quote"].split()).replace('"', "'")
        if len(quote) > _QUOTE_CHARS:
            quote = quote[: _QUOTE_CHARS - 3].rstrip() + "..."
        text = text + ' "' + quote + '"'
    return text


class _Builder:
    """Walks one case document, emitting facts and collecting problems and conflicts."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.data: Mapping[str, Any] = document.data
        self.problems = Collector()
        self.facts: list[Fact] = []
        self.conflicts: list[Conflict] = []
        self.counts: dict[str, int] = {}
        # The sources of the statements that decided the fields of the fact being emitted.
        self.deciding: list[str] = []
        # The same per field, as the sources themselves: a date field the schema dates by the
        # document stating a value (x-source-date-of) takes their date.
        self.decided: dict[str, list[Mapping[str, Any]]] = {}
        # Per field of the fact being emitted that the schema keeps late values of (x-late-of):
        # the values (with where they are) documents after the request state, left out of it.
        self.late_kept: dict[str, list[tuple[Any, str]]] = {}
        # Per item (its pointer): the fields it states that other items describing the same
        # thing disagree on, those they outrank (`settle`), and the conflicts to report with
        # its fact.
        self.unsettled: dict[str, _Unsettled] = {}
        # The statements (by id) a late document makes that count as they only add
        # (`AsOf.may_add`): where one disagrees with the others, the worse value decides.
        self.late_adding: set[int] = set()
        # A bad request date is reported when the request fact converts it; distances are
        # then left out rather than measured to nothing.
        self.request = _quiet_date(self.data["request"]["date"])
        # The planned date of service, when given: dates also get their distances to it.
        service = self.data["request"].get("service_date")
        self.service = _quiet_date(service) if service is not None else None
        # The last day a date may be, as an ordinal: a fact dated later is `after_request`.
        self.limit = None if self.request is None else self.request.hi.toordinal()
        # What the two stand for in the cache of converted dates.
        self.anchors = (
            None if self.request is None else self.request.text,
            None if self.service is None else self.service.text,
        )
        # What each earlier line requested (`requested`): the line's id and pointer per claim.
        self.claimed: dict[tuple[Any, ...], tuple[str, str]] = {}

    def run(self) -> Normalised:
        request = self.data["request"]
        self.unique_ids(request["lines"], "/request/lines", "service line")
        self.unique_ids(self.data.get("imaging", []), "/imaging", "imaging study")
        self.emit("case", [("case_id", self.data["case_id"], "/case_id")])
        self.emit("request", self.mapped(request, "/request", _REQUEST), request.get("source"))
        for line, pointer in _items(request["lines"], "/request/lines"):
            self.line(line, pointer)
        for section, keys, props in _walks():
            if keys[0] not in self.data:  # most cases have a few of the sections
                continue
            value: Any = self.data
            for key in keys:
                value = value.get(key) if _is_mapping(value) else None
            if value is None:
                continue
            items: Any = _items(value, "/" + section.key)
            # items that may describe one thing (x-one-per): two at least to disagree
            if isinstance(value, list) and len(value) > 1 and one_per(section.fact):
                items = list(items)
                self.settle(section, items)
            for item, pointer in items:
                self.coded(section, props, item, pointer)
        care = self.data.get("conservative_care", {})
        if "physical_therapy" in care:
            self.physical_therapy(care["physical_therapy"], "/conservative_care/physical_therapy")
        for study, pointer in _items(self.data.get("imaging"), "/imaging"):
            self.study(study, pointer)
        for c in self.conflicts:
            given = (
                ("fact", c.fact),
                ("ref", c.ref),
                ("field", c.field),
                ("values", c.text),
                ("reason", c.reason),
            )
            self.emit("conflict", [(name, value, c.pointer) for name, value in given])
        self.problems.raise_if_any(CaseError)
        return Normalised(tuple(self.facts), tuple(self.conflicts))

    def unique_ids(self, items: list[Mapping[str, Any]], pointer: str, what: str) -> None:
        """Add a ``duplicate_id`` problem for each id already used by an earlier item."""
        # Facts refer to lines and studies by id, so a repeated id would merge two of them.
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item["id"] in seen:
                message = f'{what} id "{item["id"]}" is used twice'
                self.problems.add(
                    "duplicate_id", message, self.document.location(f"{pointer}/{i}/id")
                )
            seen.add(item["id"])

    # -- the parts of a case that are more than a renaming ------------------------------------

    def line(self, line: Mapping[str, Any], pointer: str) -> None:
        source = line.get("source")
        segments = {
            key: self.ranges(line[key], f"{pointer}/{key}") if key in line else []
            for key in _RANGES
        }
        reached = [lv for segs in segments.values() for s in segs for lv in (s.upper, s.lower)]
        fields = self.mapped(line, pointer, _LINE)
        if line.get("cpt"):
            fields.append(("cpt", line["cpt"][0], f"{pointer}/cpt/0"))
        if reached:
            top, bottom = min(reached, key=_INDEX), max(reached, key=_INDEX)  # Level's order
            fields += [("upper", top.name, pointer), ("lower", bottom.name, pointer)]
        fields.append(("pelvic_fixation", "pelvic_fixation" in line, pointer))
        self.emit("line", fields, source)
        self.requested(line, pointer, segments)
        own = ("line", line["id"], f"{pointer}/id")
        for key, fact_type in _RANGES.items():
            for s in segments[key]:
                at = f"{pointer}/{key}"
                parts = [("segment", s.name, at), ("upper", s.upper.name, at)]
                self.emit(fact_type, [own, *parts, ("lower", s.lower.name, at)], source)
        if "pelvic_fixation" in line:
            fixation, at = line["pelvic_fixation"], f"{pointer}/pelvic_fixation"
            fields = [own, *self.mapped(fixation, at, "method")]
            self.emit("pelvic_fixation", fields, fixation.get("source", source))
        for item, at in _items(line.get("resections"), f"{pointer}/resections"):
            fields = [own, *self.mapped(item, at, _RESECTION)]
            self.emit("planned_resection", fields, item.get("source", source))

    def requested(
        self, line: Mapping[str, Any], pointer: str, segments: Mapping[str, list[Segment]]
    ) -> None:
        """Add a ``duplicate_segment`` problem when the line requests a motion segment or joint
        that an earlier line of its procedure kind requested (one problem per line)."""
        # Each line is certified on its own and the lines are one operation, so one segment
        # on two lines would be certified twice, and which line is meant only the requester
        # can say. Lines of different kinds (a decompression beside a fusion) share segments.
        kind: tuple[Any, ...] = (line["procedure"],)
        if line["procedure"] == "other":  # routed by CPT code (api.governs): the code is the kind
            if not line.get("cpt"):
                return  # no policy governs it, and two may be any two procedures
            kind += (line["cpt"][0],)
        # A motion segment is one thing whatever side a line names: a left and a right line
        # over one segment would each be certified for it. Bad levels are their own problem.
        claims = [
            ((*kind, key, s.name), f"{pointer}/{key}", f"{s.name} ({key})")
            for key in _RANGES
            for s in segments[key]
        ]
        if not any(key in line for key in _RANGES):
            # A side names the joints of a paired structure; a line without one takes both.
            joints = _JOINTS[line.get("side", "bilateral")]
            side_at = f"{pointer}/side" if "side" in line else pointer
            claims = [((*kind, "side", j), side_at, f"the {j} joint") for j in joints]
        repeated = next((c for c in claims if c[0] in self.claimed), None)
        if repeated is not None:
            claim, at, what = repeated
            first, first_at = self.claimed[claim]
            message = (
                f'service line "{line["id"]}" requests {what} for {line["procedure"]}, '
                f'as line "{first}" ({first_at}) does: request each segment or joint once'
            )
            self.problems.add("duplicate_segment", message, self.document.location(at))
        # A repeating line's other segments are claimed too: a third line repeating one of
        # them is reported now, not after the second is corrected.
        for claim, _, _ in claims:
            self.claimed.setdefault(claim, (str(line["id"]), pointer))

    def physical_therapy(self, therapy: Mapping[str, Any], pointer: str) -> None:
        fields = self.mapped(therapy, pointer, _PHYSICAL_THERAPY)
        # An ongoing course with no end date lasts until the request date, never past it.
        ongoing = "end" not in therapy and _ongoing(therapy, self.request)
        if ongoing:
            fields.append(("end", self.data["request"]["date"], f"{pointer}/status"))
        between: Interval | None = None
        if "start" in therapy and ("end" in therapy or ongoing):
            # Bad dates are reported once, when the start and end fields themselves convert.
            start = _quiet_date(therapy["start"])
            end = _quiet_date(therapy["end"]) if "end" in therapy else self.request
            if start is not None and end is not None and end.hi >= start.lo:
                between = days_between(start, end)
        # A documented duration is used as written: it beats what imprecise dates would give.
        # Dates that cannot hold it however read (end - start + 1, the last day counted)
        # contradict it: neither is taken, and the reviewer sees both (domain.md section 3,
        # items 6 and 9), else a '6 weeks' beside 36 exact days would meet a 6-week minimum.
        if "duration" in therapy:
            try:
                days = parse_duration(therapy["duration"])
            except DateError as error:
                where = self.document.location(f"{pointer}/duration")
                self.problems.add("bad_date", error.message, where)
            else:
                if between is not None and days > between.hi + 1:
                    self.duration_beyond_dates(therapy, days, between.hi + 1, pointer)
                else:
                    fields.append(("duration", Interval(days, days), f"{pointer}/duration"))
        elif between is not None:
            # Days cannot be negative; the lower bound across two month-only dates can be.
            fields.append(("duration", Interval(max(0, between.lo), between.hi), pointer))
        self.emit("physical_therapy", fields, therapy.get("source"))

    def duration_beyond_dates(
        self, therapy: Mapping[str, Any], days: int, most: int, pointer: str
    ) -> None:
        """Report a stated duration of ``days`` that the therapy's dates, at ``most`` days
        long, cannot hold: a conflict on the fact ``emit`` makes next."""
        ref = f"physical_therapy:{self.counts.get('physical_therapy', 0) + 1}"
        end = (
            str(therapy["end"])
            if "end" in therapy
            else f"the request ({self.data['request']['date']})"
        )
        values = (
            (str(therapy["duration"]), f"{days} days as written"),
            (f"{therapy['start']} to {end}", f"at most {most} days by its dates"),
        )
        self.conflicts.append(
            Conflict("physical_therapy", ref, "duration", values, f"{pointer}/duration")
        )

    def study(self, study: Mapping[str, Any], pointer: str) -> None:
        source = study.get("source")
        fields = self.mapped(study, pointer, _STUDY)
        views: Mapping[str, Any] | None = study.get("flexion_extension")
        at = f"{pointer}/flexion_extension"
        if views is not None:
            # Views with measurements were obtained unless the record says otherwise.
            fields.append(("flexion_extension", views.get("performed", True), at))
        self.emit("imaging_study", fields, source)
        own = ("study", study["id"], f"{pointer}/id")
        modality = ("modality", study["modality"], f"{pointer}/modality")
        unseen = self.unseen(study, pointer)
        findings: list[tuple[Mapping[str, Any], str, list[Given]]] = []
        for item, item_at in _items(study.get("findings"), f"{pointer}/findings"):
            fields = [own, modality, *self.mapped(item, item_at, _FINDING)]
            if unseen is not None:
                self.left_out("imaging_finding", fields, item, item_at, unseen)
            elif not self.restated_late("imaging_finding", fields, item, item_at, study):
                findings.append((item, item_at, fields))
        if len(findings) > 1:
            self.settle_findings(findings, source or {}, f"{pointer}/findings")
        for item, item_at, fields in findings:
            if self.unsettled and (unsettled := self.unsettled.pop(item_at, None)):
                # An outranked value gives way to the better-ranked items' (as a fact without
                # it, its comparisons would be unknown); a disputed one is left absent.
                overruled = unsettled.overruled
                given = [(g[0], overruled[g[0]], g[2]) if g[0] in overruled else g for g in fields]
                given = self.settled("imaging_finding", given, unsettled, item_at, True)
                self.disputes("imaging_finding", unsettled)
                self.emit("imaging_finding", given, item.get("source", source))
            else:
                self.emit("imaging_finding", fields, item.get("source", source))
        if unseen is not None:
            views, study = self.leave_out_measured(study, pointer, views, own, unseen)
            if unseen[1] == "after_request":
                return  # nothing a study taken after the request reports shows anything
        # The study's date orders its measurements against other studies' (`latest`); one
        # (possibly) after the request is left out of the study with a conflict of its own, and
        # its measurements are undated rather than flagged a second time.
        late = self.late_date(study.get("date"), "study") is not None
        dated = [] if late else self.mapped(study, pointer, _DATED)
        if views is not None:
            said = views.get("source", source)
            performed = self.mapped(views, at, "performed")
            segments = [
                (item, item_at, [own, *dated, *performed, *self.mapped(item, item_at, _DYNAMIC)])
                for item, item_at in _items(views.get("segments"), f"{at}/segments")
            ]
            stated = [given for _, _, fields in segments for given in fields] or performed
            if self.restated_late("dynamic_study", stated, views, at, study):
                segments, performed = [], []
            if not segments and performed:
                self.emit("dynamic_study", [own, *performed], said)
            for item, item_at, fields in segments:
                if not self.restated_late("dynamic_study", fields, item, item_at, study):
                    self.emit("dynamic_study", fields, item.get("source", said))
        if "alignment" in study:
            alignment, at = study["alignment"], f"{pointer}/alignment"
            # Whether the films were standing and full-length is a property of the study.
            inherited = self.mapped(study, pointer, _INHERITED)
            fields = [own, *dated, *inherited, *self.mapped(alignment, at, _ALIGNMENT)]
            if not self.restated_late("alignment", fields, alignment, at, study):
                self.emit("alignment", fields, alignment.get("source", source))

    def leave_out_measured(
        self,
        study: Mapping[str, Any],
        pointer: str,
        views: Mapping[str, Any] | None,
        own: Given,
        unseen: tuple[tuple[str, str], str, str],
    ) -> tuple[Mapping[str, Any] | None, Mapping[str, Any]]:
        """Leave out, with a conflict each, what an unseen study measured: the flexion-extension
        views' segments and an alignment with a measurement (kept, its views' 3.0 mm
        translation or its films' Cobb angle approved). Return the views without their
        segments and the study without such an alignment. A study taken after the request
        loses its whole alignment; one not performed keeps an alignment that only says the
        films were not taken (what makes a clause needing them not met, not undocumented)."""
        at = f"{pointer}/flexion_extension"
        segments = views.get("segments") if views is not None else None
        parts = [
            (item, item_at, _DYNAMIC, "dynamic_study")
            for item, item_at in _items(segments, f"{at}/segments")
        ]
        alignment: Mapping[str, Any] | None = study.get("alignment")
        late = unseen[1] == "after_request"
        if alignment is not None and (late or set(alignment) - {"films_taken", "source"}):
            parts.append((alignment, f"{pointer}/alignment", _ALIGNMENT, "alignment"))
            study = {key: value for key, value in study.items() if key != "alignment"}
        for part, part_at, spec, fact_type in parts:
            self.left_out(
                fact_type, [own, *self.mapped(part, part_at, spec)], part, part_at, unseen
            )
        if views is not None:
            views = {key: value for key, value in views.items() if key != "segments"}
        return views, study

    def unseen(
        self, study: Mapping[str, Any], pointer: str
    ) -> tuple[tuple[str, str], str, str] | None:
        """Return (the statement, the reason, where it is stated) when what a study's report
        lists shows nothing, else None.

        A study documented as not performed demonstrates nothing (domain.md section 3 item 1):
        its findings were read off no images, and kept they showed compression beside another
        study that was performed (approved). A study taken after the request cannot
        demonstrate what must precede it: its date was left out, but its findings, views and
        measurements approved a request made before it was taken, unless its report is dated
        by the request. (A report signed after its study is routine, so a late report alone
        leaves out nothing.)"""
        if study.get("performed", True) is False:
            document = study.get("source", {}).get("document", "record")
            return ("study not performed", document), "sources_disagree", f"{pointer}/performed"
        dated = _quiet_date(study.get("date"))
        if dated is None or self.request is None or dated.lo <= self.request.hi:
            return None
        # A report dated by the request vouches that the images existed then (the two dates
        # contradict each other; the study's own date is left out all the same).
        report = _quiet_date(study.get("source", {}).get("date"))
        if report is not None and report.hi <= self.request.hi:
            return None
        late = (str(study["date"]), f"study, after the request date {self.request.text}")
        return late, "after_request", f"{pointer}/date"

    def left_out(
        self,
        fact_type: str,
        given: list[Given],
        part: Mapping[str, Any],
        pointer: str,
        unseen: tuple[tuple[str, str], str, str],
    ) -> None:
        """Leave out a part of a study (``unseen``), with a conflict naming the fields the
        part states so that the reviewer sees what was not counted and why."""
        stated, reason, at = unseen
        count = self.counts[fact_type] = self.counts.get(fact_type, 0) + 1
        order = list(fact_kinds()[fact_type])
        # the fields the part itself states, not its study's nor the schema's defaults
        prefix = f"{pointer}/"
        named = sorted(
            {name for name, _, w in given if w.startswith(prefix) and _key(w, prefix) in part},
            key=order.index,
        )
        ref = f"{fact_type}:{count}"
        self.conflicts.append(Conflict(fact_type, ref, ", ".join(named), (stated,), at, reason))

    def restated_late(
        self,
        fact_type: str,
        given: list[Given],
        part: Mapping[str, Any],
        pointer: str,
        study: Mapping[str, Any],
    ) -> bool:
        """True, with an ``after_request`` conflict, for a part of an imaging study (a finding,
        the flexion-extension views or a measurement of them, the alignment) whose own source
        is dated after the request, or possibly after it: such a re-reading of the images was
        written too late to show anything, and it is left out as if never stated. What a part
        inherits from its study holds as of the study's date instead (`after_request`), and so
        does what a source dated as the study states (its own report, given again)."""
        said = part.get("source")
        if said is None or said.get("date") in (
            study.get("date"),
            study.get("source", {}).get("date"),
        ):
            return False
        late = self.late_source(said)
        if late is None or self.limit is None:
            return False
        self.left_out(
            fact_type, given, part, pointer, (late, "after_request", f"{pointer}/source/date")
        )
        return True

    def coded(
        self,
        section: CodedSection,
        props: tuple[_Prop, ...],
        item: Mapping[str, Any],
        pointer: str,
    ) -> None:
        """Emit the fact of one coded item, each field by the shape its schema annotates;
        `props` are the section's properties (`_walks`), the code first."""
        given: list[Given] = []
        code = ""
        for prop, name, shape, default in props:
            if prop in item:
                value = item[prop]
            elif default is _NO_DEFAULT:
                continue
            else:
                value = default
            at = f"{pointer}/{prop}"
            if shape == "coding":
                coded = f"{code_systems()[value['system']]}|{value['code'].strip()}"
                given.append((name, coded, at))
                if name == "code":
                    code = coded
                    if "display" in value:
                        given.append(("display", value["display"], f"{at}/display"))
            elif shape == "quantity":
                given += self.quantity(section.fact, code, value, at)
            elif shape == "period":
                for bound, suffix in (("start", ""), ("end", "_end")):
                    if bound in value:
                        given.append((f"{name}{suffix}", value[bound], f"{at}/{bound}"))
                # An ongoing course with no end date lasts until the request date, never past it.
                status = section.ongoing.get(prop)
                if (
                    status is not None
                    and "start" in value
                    and "end" not in value
                    and item.get(status[0]) in status[1]
                    and self.request is not None
                ):
                    given.append((f"{name}_end", self.data["request"]["date"], f"{at}/start"))
                first, last = _quiet_date(value.get("start", "")), _quiet_date(value.get("end", ""))
                if first is not None and last is not None and last.hi < first.lo:
                    message = f'end "{value["end"]}" is before start "{value["start"]}"'
                    self.problems.add("bad_date", message, self.document.location(f"{at}/end"))
                elif (
                    prop in section.instants
                    and (first is not None or "start" not in value)
                    and (last is not None or "end" not in value)
                    and ("start" in value or "end" in value)
                ):
                    # Not the start: the start orders it before a day the period holds and
                    # dates it before a request the period reaches past. (A bound that is no
                    # date is reported as the start's or end's own field.)
                    given.append((name, within(value.get("start"), value.get("end")), at))
            elif shape == "range":
                segments = self.ranges(value, at)
                if segments:
                    given.append(("upper", segments[0].upper.name, at))
                    given.append(("lower", segments[-1].lower.name, at))
            else:
                given.append((name, value, at))
        if self.unsettled and (unsettled := self.unsettled.pop(pointer, None)):
            disputed, outranked, _, _ = unsettled
            given = [g for g in given if g[0] not in outranked]
            # A disputed field's marker: not on an item possibly after the request, whose
            # values are all left out (`as_of_request`).
            source = item.get("source")
            mark = not isinstance(source, Mapping) or self.late_source(source) is None
            given = self.settled(section.fact, given, unsettled, pointer, mark)
            if not disputed and {g[0] for g in given} <= set(one_per(section.fact)):
                # Outranked on all it said, it only names the thing: as one of the best-ranked
                # items' statements it would be left out, and as a fact without the value it
                # would make the comparisons over the thing unknown.
                return
            self.disputes(section.fact, unsettled)
        self.emit(section.fact, given, item.get("source"))

    def settled(
        self, fact_type: str, given: list[Given], unsettled: _Unsettled, pointer: str, mark: bool
    ) -> list[Given]:
        """Return ``given`` without the fields that items describing one thing dispute
        (`settle`), with each one's marker (x-disputed) where ``mark``: an `exists` testing
        the field then reads the fact as unknown rather than as one without the value."""
        disputed = unsettled.disputed
        given = [g for g in given if g[0] not in disputed]
        if mark:
            markers = _plan(fact_type).markers
            given += [(markers[n], True, pointer) for n in sorted(disputed) if n in markers]
        return given

    def disputes(self, fact_type: str, unsettled: _Unsettled) -> None:
        """Report the conflicts `settle` found on an item, with the fact emitted next."""
        ref = f"{fact_type}:{self.counts.get(fact_type, 0) + 1}"  # the id emit gives
        for name, values, at, why in unsettled.disputes:
            self.conflicts.append(Conflict(fact_type, ref, name, values, at, why))

    def settle(self, section: CodedSection, items: list[tuple[Any, str]]) -> None:
        """Leave out (`unsettled`) the fields that items describing one thing disagree on.

        Items of a section whose fact type says `x-one-per` (facts.schema.json) and that state
        the same values of those fields (or, alike, none) are several sources on one thing
        (two reports on whether imaging excluded a tumour): each is still a fact of its own,
        and a comparison over several facts is true when any one makes it true, so the
        favourable one would silently win. As for statements that disagree (`resolve`),
        primary records outrank summaries; where the best-ranked items disagree, the field
        is left absent on every item that states it, with a `sources_disagree` conflict
        (domain rule 9: conflicting documentation is not documented); an outranked item's
        differing value is left out. An item whose source is clearly after the request
        disputes nothing: its values are left out on their own (`as_of_request`) and never
        take away a timely one; but a value it may still add because it only makes the case
        worse (x-as-of-source may_add: a tumour shown) outweighs the timely items' other
        values, which are left out (`worse_kept`), as a late statement's would be.
        """
        identity = one_per(section.fact)
        adds = _plan(section.fact).as_of_source
        props = {name: prop for prop, (name, _) in section.fields.items()}
        named = [props.get(name, name) for name in identity]
        # The identifying fields are enumerated words (facts.schema.json), so hashable; one
        # neither states (a side) is None in both keys: they may be the same, so they group.
        keys = [
            tuple([item.get(p) for p in named]) if _is_mapping(item) else () for item, _ in items
        ]
        spans = covers(section.fact)
        if spans:  # an item whose value names several things (bilateral) is a source on each
            keys, items = _covering(keys, items, [spans.get(name, {}) for name in identity])
        if len(set(keys)) == len(keys):  # most: each item describes a thing of its own
            return
        fields = {prop: name for prop, (name, _) in section.fields.items() if name not in identity}
        defaults = case_defaults(section.key)
        groups = _grouped(keys, items)
        ats = [frozenset(at for _, at in found) for found in groups]
        for i, (found, these) in enumerate(zip(groups, ats, strict=True)):
            if these in ats[:i] or any(these < others for others in ats):
                continue  # a bilateral item's group, within a side's: settled with the side's
            late: list[tuple[Mapping[str, Any], str]] = []
            group: list[tuple[Mapping[str, Any], Mapping[str, Any], str]] = []
            for item, at in found:
                if self.clearly_late(item):
                    late.append((item, at))
                else:
                    group.append((item, item.get("source") or {}, at))
            if len(group) <= 1 and not (group and late and adds is not None):
                continue
            self.settle_fields(fields, defaults, group, late, adds)

    def settle_fields(
        self,
        fields: Mapping[str, str],
        defaults: Mapping[str, Any],
        group: list[tuple[Mapping[str, Any], Mapping[str, Any], str]],
        late: list[tuple[Mapping[str, Any], str]],
        adds: AsOf | None,
    ) -> None:
        """Settle the fields (case property -> fact field) that the timely items of one thing,
        each with the source it speaks by, state (`settle`); ``late`` are the items clearly
        after the request, whose values only count where they only add (``adds``)."""
        primary = primary_documents()
        for prop, name in fields.items():
            stating = [
                (item.get(prop, defaults.get(prop)), source, pointer)
                for item, source, pointer in group
                if prop in item or prop in defaults
            ]
            worse = [
                (item[prop], item.get("source") or {}, at)
                for item, at in late
                if adds is not None and prop in item and adds.adds(name, item[prop])
            ]
            if worse:
                self.outweigh(name, prop, stating, worse)
                continue
            ranked = [(v, s, at, s.get("document") in primary) for v, s, at in stating]
            if len({json.dumps(v, sort_keys=True) for v, _, _, _ in ranked}) <= 1:
                continue  # they agree, or at most one states it
            best = max(r for _, _, _, r in ranked)
            kept = [(v, s, at) for v, s, at, r in ranked if r == best]
            said = {json.dumps(v, sort_keys=True) for v, _, _ in kept}
            if len(said) == 1:  # the best-ranked agree: an outranked item's value is out
                for v, _, at, _ in ranked:
                    if json.dumps(v, sort_keys=True) not in said:
                        self.unsettled_at(at).outranked.add(name)
                        self.unsettled_at(at).overruled[name] = kept[0][0]
                continue
            values = _said(kept)
            at = stating[0][2]
            self.unsettled_at(at).disputes.append(
                (name, values, f"{at}/{prop}", "sources_disagree")
            )
            for _, _, at in stating:
                self.unsettled_at(at).disputed.add(name)

    def settle_findings(
        self,
        findings: list[tuple[Mapping[str, Any], str, list[Given]]],
        source: Mapping[str, Any],
        pointer: str,
    ) -> None:
        """Settle the findings of one study that name one segment (x-one-per: study and
        segment): one report grading a segment twice ("moderate stenosis at L4-L5", and
        "L4-5: no stenosis") is two sources on one thing, and as two facts the favourable one
        would win. The timely findings only (a re-reading dated after the request was left
        out), each speaking by its own source or else the study's report."""
        identity = set(one_per("imaging_finding"))
        kinds = fact_kinds()["imaging_finding"]
        keys = [
            tuple(_identity_value(kinds[g[0]], g[1]) for g in fields if g[0] in identity)
            for _, _, fields in findings
        ]
        if len(set(keys)) == len(keys):  # most: each finding names a segment of its own
            return
        names = {key: name for key, name in _pairs(_FINDING) if name not in identity}
        defaults = case_defaults(_schema_path(pointer))
        for found in _grouped(keys, [(item, at) for item, at, _ in findings]):
            group = [(item, item.get("source") or source, at) for item, at in found]
            self.settle_fields(names, defaults, group, [], None)

    def outweigh(
        self,
        name: str,
        prop: str,
        stating: list[tuple[Any, Mapping[str, Any], str]],
        worse: list[tuple[Any, Mapping[str, Any], str]],
    ) -> None:
        """Leave out the timely items' values that a late item's worse value (x-as-of-source
        may_add) outweighs, with one `worse_kept` conflict, told on the late item: it is the
        one emitted, while an outweighed item that only names the thing is not (`coded`)."""
        added = {json.dumps(v, sort_keys=True) for v, _, _ in worse}
        outweighed = [
            (v, s, at) for v, s, at in stating if json.dumps(v, sort_keys=True) not in added
        ]
        for _, _, at in outweighed:
            self.unsettled_at(at).outranked.add(name)
        if outweighed:
            at = worse[0][2]
            values = _said([*outweighed, worse[0]])
            self.unsettled_at(at).disputes.append((name, values, f"{at}/{prop}", "worse_kept"))

    def clearly_late(self, item: Mapping[str, Any]) -> bool:
        """True for an item whose source is dated after the request, not only possibly."""
        source = item.get("source")
        late = self.late_source(source) if isinstance(source, Mapping) else None
        return late is not None and not self.possibly_late(late[0])

    def unsettled_at(self, pointer: str) -> _Unsettled:
        return self.unsettled.setdefault(pointer, _Unsettled(set(), set(), [], {}))

    def quantity(
        self, fact_type: str, code: str, value: Mapping[str, Any], pointer: str
    ) -> list[Given]:
        """Return the quantity as the fact field its unit converts to (units.py)."""
        found = units.target(fact_type, (code,), value["unit"])
        if found is None:
            known = ", ".join(units.known_units(fact_type))
            self.problems.add(
                "unknown_unit",
                f'unknown unit "{value["unit"]}" (known: {known})',
                self.document.location(f"{pointer}/unit"),
            )
            return []
        converted = found.convert(value["value"])
        bounds = units.value_range(fact_type, code, found.field)
        if bounds is not None and not bounds[0] <= converted <= bounds[1]:
            # A value the analyte cannot take is a data error, never a threshold met.
            # the range in the unit the case states it in, as the reader wrote the value
            low, high = (f"{round(b / found.factor, 4):g}" for b in bounds)
            self.problems.add(
                "out_of_range",
                f"{value['value']:g} {value['unit']} is impossible for {code} ({low} to {high} "
                f"{value['unit']})",
                self.document.location(f"{pointer}/value"),
            )
            return []
        return [(found.field, converted, f"{pointer}/value")]

    # -- values -------------------------------------------------------------------------------

    def mapped(self, obj: Mapping[str, Any], pointer: str, spec: str) -> list[Given]:
        """Return the fields ``spec`` maps from ``obj``, filling in its schema's defaults."""
        found: list[Given] = []  # a loop, not a comprehension: see `emit`
        for key, name, default in _mapping(spec, _schema_path(pointer)):
            if key in obj:
                found.append((name, obj[key], f"{pointer}/{key}"))
            elif default is not _NO_DEFAULT:
                found.append((name, default, f"{pointer}/{key}"))
        return found

    def ranges(self, value: Any, pointer: str) -> list[Segment]:
        """Return the motion segments of a range or list of ranges, sorted, each once."""
        if type(value) is str:  # one range, as most lines give it: its segments are cached
            try:
                return list(_range_segments(value))
            except LevelError as error:
                self.level_problem(error, pointer)
                return []
        found: set[Segment] = set()
        for text, at in _items(value, pointer):
            try:
                found.update(_range_segments(text) if type(text) is str else expand_range(text))
            except LevelError as error:
                self.level_problem(error, at)
        return sorted(found)

    def level_problem(self, error: LevelError, pointer: str) -> None:
        # levels.py words every vocabulary failure "unknown spinal level ..."; anything else it
        # rejects is an order or adjacency mistake in a range or segment.
        code = "unknown_level" if error.message.startswith("unknown spinal level") else "bad_range"
        self.problems.add(code, error.message, self.document.location(pointer))

    def convert(
        self, kind: str | None, name: str, raw: Any, pointer: str
    ) -> Mapping[str, FactValue]:
        """Return the fact fields one case value becomes, by the field's ``x-kind`` (the
        mapping may be shared with other facts: read it, never change it)."""
        convert = _CONVERTERS.get(kind)
        return {name: raw} if convert is None else convert(self, name, raw, pointer)

    # One converter per x-kind, chosen once per fact type (`_plan`) rather than per value.

    def _date(self, name: str, raw: Any, pointer: str) -> Mapping[str, FactValue]:
        try:
            # text (always, past the schema) is cached; anything else converts afresh
            if type(raw) is str:
                return _dated_text(name, raw, *self.anchors)
            return _date_fields(name, raw, self.request, self.service)
        except DateError as error:
            self.problems.add("bad_date", error.message, self.document.location(pointer))
            return {}

    def _duration(self, name: str, raw: Any, _pointer: str) -> Mapping[str, FactValue]:
        return {f"{name}_lo": raw.lo, f"{name}_hi": raw.hi}

    def _level(
        self, name: str, raw: Any, pointer: str, kind: str = "level"
    ) -> Mapping[str, FactValue]:
        levelled = _level_fields if type(raw) is str else _level_fields.__wrapped__
        try:
            return levelled(kind, name, raw)
        except LevelError as error:
            self.level_problem(error, pointer)
            return {}

    def _segment(self, name: str, raw: Any, pointer: str) -> Mapping[str, FactValue]:
        # `_level`'s body for a segment: a call less for each segment of a case
        levelled = _level_fields if type(raw) is str else _level_fields.__wrapped__
        try:
            return levelled("segment", name, raw)
        except LevelError as error:
            self.level_problem(error, pointer)
            return {}

    def _measurement(self, name: str, raw: Any, _pointer: str) -> Mapping[str, FactValue]:
        if isinstance(raw, str):
            return {f"{name}_word": " ".join(raw.lower().split())}
        # durable_rules cannot parse exponent notation: `plain` rounds only a float Python would
        # write with one (rounded, 7.99999 became 8.0)
        return {name: raw if isinstance(raw, int) else units.plain(float(raw))}

    def resolve(
        self, fact: tuple[str, str], kind: str | None, given: Given
    ) -> Mapping[str, FactValue]:
        """Return the fields of one value, resolving ``{"statements": [...]}`` by source rank."""
        name, raw, pointer = given
        if not (_is_mapping(raw) and "statements" in raw):
            return self.convert(kind, name, raw, pointer)
        if self.limit is not None and _plan(fact[0]).as_of_source is None:
            # A statement holds as of its own document, whatever the fact's type: a therapy
            # note after the request saying "completed" would outrank a timely letter.
            statements = self.having_a_say(fact[0], fact[1], AsOf(), name, raw, pointer)
            if statements is None:
                return _disputed(fact[0], name)
            if not statements:
                return {}
            raw = {**raw, "statements": statements}
        primary = primary_documents()
        stated = [
            (s, self.convert(kind, name, s["value"], f"{pointer}/statements/{i}/value"))
            for i, s in enumerate(raw["statements"])
        ]
        # Primary records outrank summaries: only the best-ranked statements have a say.
        best = max(s["source"]["document"] in primary for s, _ in stated)
        kept = [(s, out) for s, out in stated if (s["source"]["document"] in primary) == best]
        if all(out == kept[0][1] for _, out in kept):
            # The evidence names the statements that decided the value, not the outranked ones.
            self.deciding.extend(_src(statement["source"]) for statement, _ in kept)
            self.decided[name] = [statement["source"] for statement, _ in kept]
            return kept[0][1]
        values = dict.fromkeys((_text(s["value"]), s["source"]["document"]) for s, _ in kept)
        # Timely records that disagree leave the field not documented (domain rule 9); only a
        # late document's value that can only make the case worse still decides (keep_worse).
        late = any(id(s) in self.late_adding for s, _ in kept)
        worst = _worst(fact[0], name, kept) if late else None
        why = "sources_disagree" if worst is None else "worse_kept"
        self.conflicts.append(Conflict(fact[0], fact[1], name, tuple(values), pointer, why))
        if worst is None:
            return _disputed(fact[0], name)
        self.deciding.append(_src(worst[0]["source"]))
        self.decided[name] = [worst[0]["source"]]
        return worst[1]

    def emit(
        self, fact_type: str, given: list[Given], source: Mapping[str, Any] | None = None
    ) -> None:
        """Add a fact of ``fact_type`` made from the given values and its source."""
        count = self.counts[fact_type] = self.counts.get(fact_type, 0) + 1
        fact_id = f"{fact_type}:{count}"
        plan = _plan(fact_type)
        if plan.late_fields or self.late_kept or self.decided:  # most facts: neither
            self.forget(plan)
        # The last of a name wins. (A loop: a comprehension is a call of its own, 2.5 times the
        # time of a loop over a fact's few values; dict(zip(...)) costs more still.)
        by_name: dict[str, Given] = {}
        for value in given:
            by_name[value[0]] = value
        if plan.as_of_source and self.limit is not None:
            by_name, uncertain = self.as_of_request(fact_type, fact_id, by_name, source)
            if not by_name and given and not uncertain and _many(fact_type):
                # Every value came too late: kept as an empty fact, it would enter a count's
                # or an every's scope as one not documented and turn a denial into a pend.
                # One only possibly late is kept: it may have held at the request, and left
                # out of an every's scope it would let the others approve.
                self.keep_apart(plan, given, source)
                return
        fields: dict[str, FactValue] = {}
        if self.deciding:  # the last fact's; most facts have none (a list less a fact)
            self.deciding = []
        names = tuple(by_name)
        # the steps kept for these names (`_Plan.steps`), without a call for the common case
        steps = plan._kept.get(names) or plan.steps(names)
        for name, kind, convert in steps:  # schema order, always
            value = by_name[name]
            _, raw, at = value
            # What `resolve` gives, sooner: statements are the one value it does more for.
            if type(raw) in _PLAIN or not (_is_mapping(raw) and "statements" in raw):
                if convert is None:
                    fields[name] = raw
                else:
                    fields.update(convert(self, name, raw, at))
            else:
                fields.update(self.resolve((fact_type, fact_id), kind, value))
        if "end_hi" in fields:
            end, start = fields["end_hi"], fields.get("start_lo")
            if isinstance(end, int) and isinstance(start, int) and end < start:
                message = f'end "{fields["end"]}" is before start "{fields["start"]}"'
                self.problems.add("bad_date", message, self.document.location(by_name["end"][2]))
        # Only a fact with a date can have one after the request (`after_request` says which).
        limit = self.limit
        if limit is not None:
            for low in plan.first_days:
                if isinstance(v := fields.get(low), int) and v > limit:
                    self.after_request(fact_type, fact_id, fields, by_name)
                    break
        if plan.late_fields or plan.source_dates:
            self.kept_apart(plan, fields, by_name, source)
        if self.deciding:
            sources = [*self.deciding, *([_src(source)] if source is not None else [])]
            fields["src"] = "; ".join(dict.fromkeys(sources))
        elif source is not None:
            fields["src"] = _src(source)
        # Fact(fact_type, fact_id, fields) without copying `fields`, which no one else holds
        # (each fact would be copied twice otherwise): what __init__ and __post_init__ set,
        # set directly in the instance's dict (the class is frozen against setting attributes,
        # not its dict), here rather than in a method, which costs a call a fact.
        # tests/test_facts.py checks such facts against the constructor's.
        fact = _new(Fact)
        own = fact.__dict__
        own["type"] = fact_type
        own["id"] = fact_id
        own["fields"] = MappingProxyType(fields)
        own["_plain"] = fields
        self.facts.append(fact)

    def keep_apart(self, plan: _Plan, given: list[Given], source: Mapping[str, Any] | None) -> None:
        """Emit a fact whose every value came too late as the type that keeps such facts
        apart (x-late-of on a type), if the schema names one: a late HbA1c at or above a limit
        cannot show the level before the request, but it contradicts control at it, which a
        policy may weigh; nothing reading the fact's own type sees it. Its dates (and the
        durations they bound) are left out, as every date after the request is (its
        `after_request` conflict names them): no fact orders events by a date after the
        request, and being late is what its type says."""
        if plan.late_type is None:
            return
        dates, durations = _timed(plan.late_type)
        timed = {name for name, _ in dates}.union(durations)
        self.emit(plan.late_type, [g for g in given if g[0] not in timed], source)

    def forget(self, plan: _Plan) -> None:
        """Forget what the last fact's statements decided and left out, keeping a place for
        the late values of the fields the fact keeps apart (x-late-of)."""
        self.decided = {}
        self.late_kept = {of: [] for _, of in plan.late_fields}

    def kept_apart(
        self,
        plan: _Plan,
        fields: dict[str, FactValue],
        by_name: Mapping[str, Given],
        source: Mapping[str, Any] | None,
    ) -> None:
        """Add the fields made from others' statements rather than stated: late values kept
        apart (x-late-of) and dates taken from the documents stating a value (x-source-date-of).
        After `after_request`: the date of a document that has a say is never late."""
        for kept_as, of in plan.late_fields:
            fields.update(self.late_field(plan.fact_type, kept_as, self.late_kept[of]))
        for dated, of in plan.source_dates:
            if dated not in by_name and of in fields:
                stating = self.decided.get(of) or ([source] if source is not None else [])
                fields.update(self.source_date(dated, stating, by_name[of][2]))

    def late_field(
        self, fact_type: str, name: str, late: list[tuple[Any, str]]
    ) -> Mapping[str, FactValue]:
        """Return the fields of ``name``, which keeps the values of another field that documents
        after the request state (x-late-of): a policy may weigh what they contradict (a
        positive cotinine after the request against abstinence before it) without their
        deciding the field itself. Late documents that disagree leave it unknown (rule 9)."""
        if not late:
            return {}
        if len({json.dumps(value, sort_keys=True) for value, _ in late}) > 1:
            return _disputed(fact_type, name)
        value, pointer = late[0]
        return self.convert(fact_kinds()[fact_type][name], name, value, pointer)

    def source_date(
        self, name: str, sources: list[Mapping[str, Any]], pointer: str
    ) -> Mapping[str, FactValue]:
        """Return the fields of date field ``name`` dated by the documents stating a value (the
        latest of those that agree on it, which shows the value held then); none when no such
        document states its date, so that what needs the date is not documented."""
        dates = [
            (dated, source["date"])
            for source in sources
            if "date" in source and (dated := _quiet_date(source["date"])) is not None
        ]
        if not dates:
            return {}
        latest = max(dates, key=lambda pair: (pair[0].lo, pair[0].hi))[1]
        return self._date(name, latest, f"{pointer}/source/date")

    def as_of_request(
        self,
        fact_type: str,
        fact_id: str,
        by_name: dict[str, Given],
        source: Mapping[str, Any] | None,
    ) -> tuple[dict[str, Given], bool]:
        """Return the given values of an ``x-as-of-source`` fact without those stated by a
        document dated after the request, left out with ``after_request`` conflicts, and
        whether the date is only possibly after it (a month reaching past the request).

        Such a fact's values have no date of their own (a nicotine status, a cotinine level):
        they hold as of the document that states them (or as of the fact's own date where the
        schema names one, `AsOf.dated_by`: an ODI's effective date), and a document written
        after the request cannot show what held before it. A month-only date that may be
        after the request is left out too: there is no interval to carry the doubt into the
        comparisons, so only leaving the value undocumented fails closed; the fact itself is
        kept (`emit`), as it may have held at the request, with what says which fact it is
        (`AsOf.identified_by`: an observation's code), so that an `every` over it is not
        documented rather than decided by the others. The values a late document may still
        state (`AsOf.may_add`: a diagnosis named, a current smoker) can only make a case
        worse, so they count as if timely.
        """
        rule = _plan(fact_type).as_of_source or AsOf()
        late, at = self.late_values(rule, by_name, source)
        if late is None:
            for given in by_name.values():
                raw = given[1]
                if type(raw) not in _PLAIN and _is_mapping(raw) and "statements" in raw:
                    break
            else:
                # Most facts: nothing late and no statements to judge one by one, so every
                # value holds as given (what the loop below keeps, in the same order).
                return by_name, False
        uncertain = late is not None and self.possibly_late(late[0])
        # A late fact that still adds a value (a tumour shown) keeps what says which fact it
        # is (`identified_by`: the condition shown), or the value would name nothing.
        identify = uncertain or (
            late is not None
            and bool(rule.identified_by)
            and any(rule.adds(name, given[1]) for name, given in by_name.items())
        )
        kept: dict[str, Given] = {}
        left_out: list[str] = []
        for name, given in by_name.items():
            raw, pointer = given[1], given[2]
            if _is_mapping(raw) and "statements" in raw:
                statements = self.having_a_say(fact_type, fact_id, rule, name, raw, pointer)
                if statements:
                    kept[name] = (name, {**raw, "statements": statements}, pointer)
                elif statements is None:  # unknown: no default either, and said so
                    marker = _plan(fact_type).markers.get(name)
                    if marker is not None:
                        kept[marker] = (marker, True, pointer)
                elif late is None and (default := _case_default(pointer)) is not _NO_DEFAULT:
                    # A timely fact whose every statement of the field came too late says as
                    # much as one that never stated it: the schema's default (a diagnosis
                    # named without a status counts as stated).
                    kept[name] = (name, default, pointer)
            elif late is None or rule.adds(name, raw) or (identify and name in rule.identified_by):
                kept[name] = given
            else:
                left_out.append(name)
                if not uncertain and name in self.late_kept:
                    self.late_kept[name].append((raw, pointer))
                if uncertain and (marker := _plan(fact_type).markers.get(name)) is not None:
                    # possibly timely: unknown, not a value no source states
                    kept[marker] = (marker, True, given[2])
        if late is not None and left_out:
            # One conflict for all the values one late document (or date) states: the
            # reviewer needs the document once, not once per field.
            order = list(fact_kinds()[fact_type])
            named = ", ".join(sorted(left_out, key=order.index))
            self.conflicts.append(Conflict(fact_type, fact_id, named, (late,), at, "after_request"))
        return kept, uncertain

    def late_values(
        self, rule: AsOf, by_name: Mapping[str, Given], source: Mapping[str, Any] | None
    ) -> tuple[tuple[str, str] | None, str]:
        """Return (the date and why it is too late, or None; its JSON pointer) for the values
        of a fact: as of its own date when the schema names one it states, else its
        document's."""
        for name in rule.dated_by:
            if name in by_name and type(raw := by_name[name][1]) is str:
                late = self.late_date(raw, name)
                if late is not None and self.timely_document(raw, source):
                    late = None
                return late, by_name[name][2]
        late = None if source is None else self.late_source(source)
        if late is None:  # most facts: where it would be is never needed
            for name in rule.begun_by:
                if name in by_name and type(raw := by_name[name][1]) is str:
                    began = self.late_date(raw, name)
                    if began is not None and not self.timely_document(raw, source):
                        return began, by_name[name][2]
            return None, ""
        # the fact's own source: beside the least nested of its values
        pointer = min((given[2] for given in by_name.values()), key=_depth, default="")
        return late, f"{pointer.rsplit('/', 1)[0]}/source/date"

    def timely_document(self, text: str, source: Mapping[str, Any] | None) -> bool:
        """True when a date that may reach past the request (a month) is stated by a document
        dated by the request: nothing is measured after the document that states it."""
        said = None if source is None or "date" not in source else _quiet_date(source["date"])
        dated = _quiet_date(text)
        return (
            self.request is not None
            and said is not None
            and dated is not None
            and said.hi <= self.request.hi
            and dated.lo <= self.request.hi
        )

    def having_a_say(
        self,
        fact_type: str,
        fact_id: str,
        rule: AsOf,
        name: str,
        raw: Mapping[str, Any],
        pointer: str,
    ) -> list[Any] | None:
        """Return the statements of a field that have a say at the request: the timely ones,
        and the late ones that only add (`AsOf.may_add`: they count as if timely, as they can
        only make the case worse); each other late one is left out with an ``after_request``
        conflict, and a late one that adds is listed too where it contradicts the others.

        None when the field is unknown: a statement only possibly after the request (a month
        reaching past it) may have been timely, and read so it would change what the timely
        statements decide (a therapy note outranking a letter), unless what they decide is a
        value that only makes the case worse."""
        kept, adding, doubtful = [], [], []
        for i, statement in enumerate(raw["statements"]):
            why = self.late_source(statement["source"])
            if why is None:
                kept.append(statement)
                continue
            at = f"{pointer}/statements/{i}/source/date"
            if rule.adds(name, statement["value"]):
                kept.append(statement)
                self.late_adding.add(id(statement))
                adding.append(Conflict(fact_type, fact_id, name, (why,), at, "late_counted"))
                continue
            if self.possibly_late(why[0]):
                doubtful.append(statement)
            elif name in self.late_kept:
                self.late_kept[name].append((statement["value"], at))
            self.conflicts.append(Conflict(fact_type, fact_id, name, (why,), at, "after_request"))
        if adding and len({json.dumps(s["value"], sort_keys=True) for s in kept}) > 1:
            self.conflicts.extend(adding)  # the reviewer sees the late document had a say
        if (
            doubtful
            and not kept
            and name in _plan(fact_type).markers
            and _case_default(pointer) is _NO_DEFAULT
        ):
            # Stated only where it may post-date the request: it may have held at the request,
            # so the field is unknown, not one no source states (rule 5: not documented). A
            # field with a default keeps it: a diagnosis named counts as stated, and a ruling
            # out possibly too late does not take the exclusion away.
            return None
        if kept and doubtful:
            decided = _reading(kept)
            if decided != _reading([*kept, *doubtful]) and not (
                len(decided) == 1 and rule.adds(name, json.loads(next(iter(decided))))
            ):
                return None
        return kept

    def late_source(self, source: Mapping[str, Any]) -> tuple[str, str] | None:
        """Return (the document's date, why it is too late) for a source dated after the
        request date or possibly after it (a month reaching past it), else None."""
        if "date" not in source:
            return None
        return self.late_date(source["date"], source["document"])

    def late_date(self, text: Any, what: str) -> tuple[str, str] | None:
        """Return (the date, why it is too late) for a date after the request date or
        possibly after it (a month reaching past it), else None; ``what`` names its holder."""
        if self.request is None:
            return None
        dated = _quiet_date(text)
        if dated is None or dated.hi <= self.request.hi:
            return None
        when = "after" if dated.lo > self.request.hi else "possibly after"
        return (str(text), f"{what}, {when} the request date {self.request.text}")

    def possibly_late(self, text: str) -> bool:
        """True for a date (late_date's) whose first day is by the request: it may be timely."""
        dated = _quiet_date(text)
        return self.request is not None and dated is not None and dated.lo <= self.request.hi

    def after_request(
        self,
        fact_type: str,
        fact_id: str,
        fields: dict[str, FactValue],
        by_name: Mapping[str, Given],
    ) -> None:
        """Leave out every date of the fact that is after the request date, with a conflict.

        Nothing dated after the request can demonstrate what must precede it (a therapy course
        "ending" in 2052 is a typo, not six years of therapy): the date, its distances to the
        request and the fact's durations (which run to or from it) become undocumented, and the
        reviewer sees why. A month-only date that only may be later keeps its interval: the
        comparisons are then unknown where the bounds disagree.
        """
        if self.request is None or fact_type in _NEVER_LATE:
            return
        dates, durations = _timed(fact_type)
        if not dates:
            return
        limit = self.request.hi.toordinal()
        late = [name for name, low in dates if isinstance(v := fields.get(low), int) and v > limit]
        if not late:
            return
        dropped = list(durations)
        for name in late:
            stated = (str(fields[name]), f"after the request date {self.request.text}")
            self.conflicts.append(
                Conflict(fact_type, fact_id, name, (stated,), by_name[name][2], "after_request")
            )
            dropped.append(name)
        for name in dropped:
            for key in [k for k in fields if k == name or _derived_from(k, name)]:
                del fields[key]


Converter = Callable[[_Builder, str, Any, str], Mapping[str, FactValue]]
# The converter of each x-kind (facts.schema.json); a kind not here is taken as it is.
_CONVERTERS: dict[str | None, Converter] = {
    "date": _Builder._date,
    "duration": _Builder._duration,
    "level": _Builder._level,  # a level is its default kind: one call less a value
    "segment": _Builder._segment,
    "measurement": _Builder._measurement,
}


# How many different sets of fields given for one fact type have their steps kept (a case
# gives the same few again and again; bounded, so memory stays flat whatever cases come).
_STEPS_KEPT = 256
Step = tuple[str, str | None, Converter | None]


# eq=False, repr=False: never compared, hashed or printed (api.Request says why)
@dataclass(frozen=True, eq=False, repr=False)
class _Plan:
    """How a fact type's fields are made, decided once per type rather than once per value."""

    fact_type: str
    # (field, x-kind, its converter or None for a value taken as it is), in schema order
    fields: tuple[Step, ...]
    names: frozenset[str]
    # the field of each date's first possible day, but for facts never dated after the request
    first_days: tuple[str, ...]
    # x-as-of-source: its values hold as of the document stating them (`as_of_request`)
    as_of_source: AsOf | None = None
    # x-disputed: field -> the field that says it is disputed (its sources disagree)
    markers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # x-source-date-of: (date field, the field whose stating documents date it when the case
    # states no date of its own), e.g. a cotinine's date from its lab result
    source_dates: tuple[tuple[str, str], ...] = ()
    # x-late-of: (field, the field whose values stated after the request it keeps)
    late_fields: tuple[tuple[str, str], ...] = ()
    # the type (its x-late-of names this one) that keeps a fact of this type whose every
    # value is definitely late, or None: such a fact is then dropped
    late_type: str | None = None
    # the steps for the fields given, by the names given in the order given
    _kept: dict[tuple[str, ...], tuple[Step, ...]] = field(default_factory=dict)

    def steps(self, given: tuple[str, ...]) -> tuple[Step, ...]:
        """Return the steps of the fields named in ``given``, in schema order; raises
        ``KeyError`` for a name the fact type does not have (a table out of step with the
        dictionary: a bug)."""
        found = self._kept.get(given)
        if found is None:
            if not self.names.issuperset(given):
                missing = sorted(set(given) - self.names)
                raise KeyError(f"{self.fact_type} has no fields {missing}")
            found = tuple(step for step in self.fields if step[0] in given)
            if len(self._kept) < _STEPS_KEPT:
                self._kept[given] = found
        return found


@cache
def _plan(fact_type: str) -> _Plan:
    kinds = fact_kinds()[fact_type]
    defs = schemas.load_schema("facts")["$defs"]
    definition = defs[fact_type]
    markers = {
        name: spec["x-disputed"]
        for name, spec in definition["properties"].items()
        if "x-disputed" in spec
    }
    # A field's marker is made right after it: a plain value, never converted.
    steps: list[Step] = []
    for name, kind in kinds.items():
        steps.append((name, kind, _CONVERTERS.get(kind)))
        if name in markers:
            steps.append((markers[name], None, None))
    return _Plan(
        fact_type,
        tuple(steps),
        frozenset(name for name, _, _ in steps),
        () if fact_type in _NEVER_LATE else tuple(low for _, low in _timed(fact_type)[0]),
        AsOf.read(definition.get("x-as-of-source")),
        MappingProxyType(markers),
        tuple(
            (name, spec["x-source-date-of"])
            for name, spec in definition["properties"].items()
            if "x-source-date-of" in spec
        ),
        tuple(
            (name, spec["x-late-of"])
            for name, spec in definition["properties"].items()
            if "x-late-of" in spec
        ),
        next((name for name, spec in defs.items() if spec.get("x-late-of") == fact_type), None),
    )


def _disputed(fact_type: str, name: str) -> Mapping[str, FactValue]:
    """Return the fields of a field whose sources disagree: none, but its marker where the
    schema names one (x-disputed), so that a `where` on it reads unknown rather than "no
    such fact" (a disputed diagnosis is not documented, never absent: domain rule 9)."""
    marker = _plan(fact_type).markers.get(name)
    return {} if marker is None else {marker: True}


# eq=False, repr=False: never compared, hashed or printed (api.Request says why)
@dataclass(frozen=True, eq=False, repr=False)
class AsOf:
    """How late documents are judged for an ``x-as-of-source`` fact type (facts.schema.json):
    ``true``, or an object with ``dated_by`` and ``may_add``."""

    # date fields that, when the fact states one (the first found), date its values instead of
    # the document (an observation's effective date)
    dated_by: tuple[str, ...] = ()
    # field -> the values a late document may still state, None for any: they can only make
    # a case worse (a diagnosis named is an exclusion), never take away what held before
    may_add: Mapping[str, tuple[str, ...] | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # where a late document's value that only adds disagrees with the others, the worse value
    # decides (`_worst`): the late document may make the case worse, and it does. Timely
    # records that disagree leave the field not documented instead (domain rule 9; marked
    # where the schema says `x-disputed`, so that a `where` reads it as unknown)
    keep_worse: bool = False
    # fields that say which fact it is (an observation's code: what was measured, not what
    # held), kept for a fact dated only possibly after the request so that it stays in the
    # scopes it belongs to, its stated values unknown
    identified_by: tuple[str, ...] = ()
    # date fields on which the fact began (an injection's or a therapy course's start): one
    # after the request means the event had not happened by it, so its values are late
    # however timely its document (a timely note planning an injection next month)
    begun_by: tuple[str, ...] = ()

    @classmethod
    def read(cls, annotation: Any) -> AsOf | None:
        """Return the rule an ``x-as-of-source`` annotation states (None without one)."""
        if annotation is True:
            return cls()
        if not isinstance(annotation, Mapping):
            return None
        adds = {
            name: None if values is True else _added(values)
            for name, values in annotation.get("may_add", {}).items()
        }
        return cls(
            tuple(annotation.get("dated_by", ())),
            MappingProxyType(adds),
            annotation.get("keep_worse") is True,
            tuple(annotation.get("identified_by", ())),
            tuple(annotation.get("begun_by", ())),
        )

    def adds(self, name: str, value: Any) -> bool:
        """True when a late document stating ``value`` for field ``name`` only adds."""
        if name not in self.may_add:
            return False
        allowed = self.may_add[name]
        return allowed is None or value in allowed


def _added(values: Any) -> tuple[str, ...]:
    """Return the values a ``may_add`` entry lists, or the codes (``SYSTEM|CODE``) of the
    shared module's value set it names: which codes report a finding is policy knowledge,
    kept once, in the module the policies read it from."""
    if not isinstance(values, Mapping):
        return tuple(values)
    return shared_value_set(str(values["module"]), str(values["version"]), values["value_set"])


@cache
def shared_value_set(module: str, version: str, name: str) -> tuple[str, ...]:
    """Return the codes (``SYSTEM|CODE``, the form a coded fact's field holds) of value set
    ``name`` in the bundled module policies/_shared/MODULE/VERSION.yaml.

    Raises LookupError when the module version or its value set does not exist.
    """
    path = resources.policies_dir() / "_shared" / module / f"{version}.yaml"
    if not path.is_file():
        raise LookupError(f"no shared module `{module}` version `{version}` ({path})")
    found = (parse_cache.load(path).data.get("value_sets") or {}).get(name)
    if not isinstance(found, Mapping):
        raise LookupError(f"module `{module}` version `{version}` has no value set `{name}`")
    return value_set_codes(found["codes"])


def _worst(
    fact_type: str, name: str, stated: list[tuple[Mapping[str, Any], Mapping[str, FactValue]]]
) -> tuple[Mapping[str, Any], Mapping[str, FactValue]] | None:
    """Return the statement (with its fields), among sources that disagree (a late one that
    only adds among them), whose value can only make a case worse (x-as-of-source
    ``may_add``, in its order) for a type that says ``keep_worse`` (a diagnosis), else None:
    a late confirmation after a timely ruling-out excludes, as it would alone."""
    rule = _plan(fact_type).as_of_source
    allowed = rule.may_add.get(name, ()) if rule is not None and rule.keep_worse else ()
    if allowed is None:  # any value adds, so none is worse than another
        return None
    for value in allowed:
        for statement, out in stated:
            if statement["value"] == value:
                return statement, out
    return None


def _reading(statements: list[Any]) -> frozenset[str]:
    """Return the values (as JSON) of the best-ranked statements, as `_Builder.resolve` ranks
    them: one value decides, several disagree. Compared as stated, before conversion, so two
    spellings of one value count as a disagreement (the field left unknown: fail closed)."""
    primary = primary_documents()
    best = max(s["source"]["document"] in primary for s in statements)
    return frozenset(
        json.dumps(s["value"], sort_keys=True)
        for s in statements
        if (s["source"]["document"] in primary) == best
    )


def _key(pointer: str, prefix: str) -> str:
    """Return the first key of ``pointer`` past ``prefix``."""
    return pointer[len(prefix) :].split("/", 1)[0]


def _many(fact_type: str) -> bool:
    """True for a fact type of which a case may have many facts (x-cardinality): asked only
    of a fact whose every value came too late, so never cached."""
    cardinality: str = schemas.load_schema("facts")["$defs"][fact_type]["x-cardinality"]
    return cardinality == "many"


def _depth(pointer: str) -> int:
    return pointer.count("/")


def _case_default(pointer: str) -> Any:
    """Return the case schema's default for the property at ``pointer``, or _NO_DEFAULT."""
    parent, _, key = pointer.rpartition("/")
    return case_defaults(_schema_path(parent)).get(key, _NO_DEFAULT)


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or (type(value) not in _SCALARS and isinstance(value, Mapping))


def _ongoing(therapy: Mapping[str, Any], request: PartialDate | None) -> bool:
    """True for a course the record calls ongoing (one plain status) with a request date."""
    return therapy.get("status") == "ongoing" and request is not None


def _derived_from(key: str, name: str) -> bool:
    """True when `key` is one of the fields a date or duration `name` becomes (facts.py)."""
    if key in (f"{name}_lo", f"{name}_hi"):
        return True
    rest = key[len(name) + 1 :] if key.startswith(f"{name}_") else ""
    return rest[:5] in ("mday_", "mend_") or "_before_request_" in key or "_before_service_" in key
