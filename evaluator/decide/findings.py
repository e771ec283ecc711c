"""A failed clause's finding: one sentence about this patient, from the clause's `finding` template.

The template is the policy's wording; the values come from what the engine matched and derived.
A placeholder reads the facts the clause's deciding evidence matched or bound (the segments that
failed, the therapy course that fell short); a fact type that evidence did not read falls back to
every fact of that type the case holds or the engine derived (the request date, the segments
that were found unstable). Nothing here decides anything: a value is shown, never compared.

Placeholders (docs/authoring.md, "Findings"; lint's `unknown_placeholder` checks each):

- `{type.field}`: the field's values, formatted by its kind in the fact dictionary (segments as
  ranges, durations in weeks and days, measurements with their unit, codes as words);
- `{type.date_field.before_request}`: how long before the request that date lies;
- `{type[field=value].field}`: only the facts whose field has that value;
- `{#type[field=value]}`: how many such facts there are;
- `{...|text}`: the text to show when there is no value (else "not recorded");
- `{documents}`: the documents the case's facts were taken from;
- `{setting.name}`: the policy setting's value with its unit ("3 months", "8.0 %"). It is the
  effective policy's value, so a plan overlay's number shows under that plan; it reads no fact,
  so decision assembly fills it once per effective policy (`fill_settings`), and it may stand
  in any clause text, the title and description included.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaluator.language.conditions import Threshold
from evaluator.language.describe import unit_text, value_text, words
from evaluator.language.dictionary import FactType, FieldInfo
from evaluator.vocab.dates import instant_text
from evaluator.vocab.levels import LevelError, format_segments

NOT_RECORDED = "not recorded"
DOCUMENTS = "documents"
SETTING = "setting"
BEFORE_REQUEST = "before_request"
_NAME = r"[a-z_][a-z0-9_]*"
BRACES = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER = re.compile(
    rf"(?P<count>#)?(?P<fact>{_NAME})"
    rf"(?P<filters>(?:\[{_NAME}=[A-Za-z0-9_.-]+\])*)"
    rf"(?:\.(?P<field>{_NAME})(?:\.(?P<view>{_NAME}))?)?"
    r"(?:\|(?P<fallback>[^{}|]*))?"
)
_FILTER = re.compile(rf"\[({_NAME})=([A-Za-z0-9_.-]+)\]")
_UNIT_TEXT = {"deg": " degrees", "%": "%", "grade": "/5", "count": ""}
_DATE_IN_SOURCE = re.compile(r"^\d{4}(-\d{2}){0,2}$|^\d{2}/\d{4}$")
# Texts worked out from a few words (segment ranges, a value in words, the documents of a set of
# sources) are kept by what they are made of: the same segments and sources recur in every
# finding and every policy of a case, and the same values across cases. Each memo is bounded
# (hostile cases may vary them without end) and holds only strings, which never change.
_MEMO_LIMIT = 4096
_RANGES: dict[tuple[str, ...], str] = {}
_WORDS: dict[str, str] = {}
_DOCUMENTS: dict[tuple[str, ...], str] = {}


# ... and in characters: a case may hold 4 MiB of text, and 4,096 of its longest strings kept
# past the case would hold gigabytes in a long-running service; a longer key is not kept.
_MEMO_KEY_LIMIT = 1024


def _kept(memo: dict[Any, str], key: str | tuple[str, ...], text: str) -> str:
    size = len(key) if isinstance(key, str) else sum(map(len, key))
    if size > _MEMO_KEY_LIMIT:
        return text
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = text
    return text


def segment_ranges(segments: Sequence[str]) -> str:
    """Return `format_segments(segments)` (memoised): ranges of the segments, sorted. Raises
    LevelError, as format_segments does, for a name that is not a motion segment (not kept)."""
    key = tuple(segments)
    found = _RANGES.get(key)
    return _kept(_RANGES, key, format_segments(key)) if found is None else found


def _words(value: str) -> str:
    found = _WORDS.get(value)
    return _kept(_WORDS, value, words(value)) if found is None else found


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One parsed `{...}` of a finding template."""

    text: str
    fact: str
    field: str | None = None
    filters: tuple[tuple[str, str], ...] = ()
    count: bool = False
    view: str | None = None
    fallback: str | None = None


@functools.lru_cache(maxsize=1024)
def parse(inner: str) -> Placeholder | str:
    """Return the placeholder written inside one pair of braces, or why it is malformed.

    Cached: a policy's templates are filled for every case (the result is immutable)."""
    if inner == DOCUMENTS:
        return Placeholder(inner, DOCUMENTS)
    found = _PLACEHOLDER.fullmatch(inner)
    if found is None:
        return "is not `{type.field}`, `{type[field=value].field}`, `{#type}` or `{setting.name}`"
    count, field, view = bool(found["count"]), found["field"], found["view"]
    if found["fact"] == SETTING:
        if count or found["filters"] or view or found["fallback"] is not None or not field:
            return "is not `{setting.name}`: a setting takes no count, filter, view or fallback"
        return Placeholder(inner, SETTING, field)
    if count and field:
        return "counts facts: `{#type}` or `{#type[field=value]}` takes no field"
    if not count and not field:
        return "names no field: write `{type.field}`"
    if view not in (None, BEFORE_REQUEST):
        return f"`.{view}` is not a view of a field (only `.{BEFORE_REQUEST}`)"
    return Placeholder(
        inner,
        found["fact"],
        field,
        tuple(_FILTER.findall(found["filters"] or "")),
        count,
        view,
        found["fallback"],
    )


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a placeholder cannot be filled; `unknown` and `known` say what to suggest instead."""

    placeholder: str
    text: str
    unknown: str = ""
    known: tuple[str, ...] = ()


def problems(
    text: str, types: Mapping[str, FactType], settings: Mapping[str, Threshold] | None = None
) -> Iterable[Problem]:
    """Yield a Problem for every placeholder of a template that cannot be filled (`settings`:
    the policy's, when given a `{setting.name}` must name one of them)."""
    for match in BRACES.finditer(text):
        whole, parsed = match.group(0), parse(match.group(1))
        if isinstance(parsed, str):
            yield Problem(whole, parsed)
            continue
        if parsed.fact == SETTING:
            name = parsed.field or ""
            if settings is not None and name not in settings:
                known = ", ".join(f"`{s}`" for s in settings) or "none"
                text = f"names unknown setting `{name}` (settings: {known})"
                yield Problem(whole, text, name, (*settings,))
            continue
        if parsed.fact == DOCUMENTS:
            continue
        fact = types.get(parsed.fact)
        if fact is None:
            yield Problem(whole, f"names unknown fact type `{parsed.fact}`", parsed.fact, (*types,))
            continue
        named = [f for f, _ in parsed.filters] + ([parsed.field] if parsed.field else [])
        for name in named:
            if name not in fact.fields:
                text = f"fact `{parsed.fact}` has no field `{name}`"
                yield Problem(whole, text, name, (*fact.fields,))
        for name, value in parsed.filters:
            info = fact.fields.get(name)
            if info is not None and info.enum and value not in info.enum:
                text = f"`{value}` is not a value of `{parsed.fact}.{name}`"
                yield Problem(whole, text, value, info.enum)
        info = fact.fields.get(parsed.field or "")
        if parsed.view == BEFORE_REQUEST and info is not None and info.kind != "date":
            yield Problem(whole, f"`.{BEFORE_REQUEST}` needs a date; `{parsed.field}` is not")


def reads(text: str) -> Iterable[str]:
    """Yield the fact types a template's placeholders read (well-formed ones only)."""
    for match in BRACES.finditer(text):
        parsed = parse(match.group(1))
        if isinstance(parsed, Placeholder) and parsed.fact not in (DOCUMENTS, SETTING):
            yield parsed.fact


def setting_text(threshold: Threshold, *, finding: bool = False) -> str:
    """Return a setting's value as a clause text states it: the number as the policy writes it
    (`8.0 %`, not the `8 %` of a condition) with its unit in words (`3 months`, `1 month`); in
    a finding, in the units of the patient's values beside it (`75%`, as `74%`)."""
    value, unit = threshold.value, threshold.unit
    number = repr(value) if isinstance(value, float) else str(value)
    shown = unit_text(value, unit)
    return number + (_UNIT_TEXT.get(unit, shown) if finding else shown)


def fill_settings(text: str, settings: Mapping[str, Threshold], *, finding: bool = False) -> str:
    """Return the text with each `{setting.name}` replaced by that setting's value (the
    effective policy's: a plan's number under the plan); `finding`: the text is a finding
    template (`setting_text`). Any other placeholder, and a setting the policy lacks (lint's
    `unknown_placeholder`), stays as written."""
    if "{" + SETTING + "." not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        parsed = parse(match.group(1))
        if isinstance(parsed, Placeholder) and parsed.fact == SETTING:
            found = settings.get(parsed.field or "")
            if found is not None:
                return setting_text(found, finding=finding)
        return match.group(0)

    return BRACES.sub(replace, text)


class Pool:
    """Every fact a case's findings may read, indexed by type once for all its templates."""

    def __init__(self, facts: Sequence[Mapping[str, Any]]) -> None:
        self.facts = facts
        self.by_type: dict[Any, list[Mapping[str, Any]]] = {}
        for fact in facts:
            self.by_type.setdefault(fact.get("t"), []).append(fact)
        self._documents: str | None = None

    def documents(self) -> str:
        """The documents the facts were taken from, in words (`_documents`): worked out once
        per set of sources (the facts' distinct `src` strings, in order, are all it reads)."""
        if self._documents is None:
            sources = _sources(self.facts)
            found = _DOCUMENTS.get(sources)
            if found is None:
                found = _kept(_DOCUMENTS, sources, _and(_of_sources(sources)) or NOT_RECORDED)
            self._documents = found
        return self._documents


def fill(
    text: str,
    read: Sequence[Mapping[str, Any]],
    every: Sequence[Mapping[str, Any]] | Pool,
    types: Mapping[str, FactType],
) -> str:
    """Return the template with each placeholder replaced by the values it names.

    `read`: the facts the clause's deciding evidence matched or bound; `every`: the case's facts
    and the facts the engine derived, in that order (or a Pool of them, shared by the case's
    templates).
    """
    everything = every if isinstance(every, Pool) else Pool(every)
    read_types = {str(f.get("t")) for f in read}
    out = []
    for literal, parsed in _parts(text):
        if parsed is None:
            out.append(literal)
        elif parsed.fact == DOCUMENTS:
            out.append(everything.documents())
        else:
            out.append(_filled(parsed, read, read_types, everything, types))
    return " ".join("".join(out).split())


@functools.lru_cache(maxsize=1024)
def _parts(text: str) -> tuple[tuple[str, Placeholder | None], ...]:
    """Return a template cut at its placeholders, as `BRACES.sub` would visit them: each piece
    of text (None) and each placeholder a case fills; a malformed placeholder (lint reports
    it) and a `{setting.name}` (filled per effective policy: `fill_settings`) stay as written.

    Cached: a policy's templates are filled for every case (the result is immutable)."""
    pieces = BRACES.split(text)
    out: list[tuple[str, Placeholder | None]] = [(pieces[0], None)]
    for inner, after in zip(pieces[1::2], pieces[2::2], strict=True):
        parsed = parse(inner)
        if isinstance(parsed, str) or parsed.fact == SETTING:
            out.append(("{" + inner + "}", None))
        else:
            out.append(("", parsed))
        out.append((after, None))
    return tuple(out)


def _filled(
    parsed: Placeholder,
    read: Sequence[Mapping[str, Any]],
    read_types: set[str],
    everything: Pool,
    types: Mapping[str, FactType],
) -> str:
    """Return one placeholder's text: from the facts read when they hold its type, else from
    every fact of the type."""
    if parsed.fact in read_types:
        pool: Iterable[Mapping[str, Any]] = [f for f in read if f.get("t") == parsed.fact]
    else:
        pool = everything.by_type.get(parsed.fact, ())
    filters = parsed.filters
    if filters:
        pool = [f for f in pool if all(_filter_text(f.get(k)) == v for k, v in filters)]
    facts = _unique(pool)
    if parsed.count:
        return str(len(facts))
    assert parsed.field is not None  # parse() guarantees a field unless counting
    info = types[parsed.fact].fields.get(parsed.field) if parsed.fact in types else None
    shown = _values(facts, parsed.field, info, parsed.view)
    if not shown:
        return parsed.fallback if parsed.fallback is not None else NOT_RECORDED
    return shown


def _filter_text(value: Any) -> str:
    # `[supervised=true]`: yes/no fields are written as YAML writes them
    return str(value).lower() if isinstance(value, bool) else str(value)


def _unique(facts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: dict[str, Mapping[str, Any]] = {}
    for fact in facts:
        seen.setdefault(str(fact.get("id")), fact)
    return list(seen.values())


def _values(
    facts: Sequence[Mapping[str, Any]], field: str, info: FieldInfo | None, view: str | None
) -> str:
    kind = info.kind if info else "string"
    if view == BEFORE_REQUEST:
        texts = [_before_request(f, field) for f in facts]
    elif kind == "segment":
        segments = [str(f[field]) for f in facts if field in f]
        try:
            return _and(segment_ranges(segments).split(", ")) if segments else ""
        except LevelError:
            texts = segments
    elif kind == "duration":
        texts = [_duration(f, field) for f in facts]
    else:
        texts = [_value(f, field, info) for f in facts]
    return _and(list(dict.fromkeys(t for t in texts if t)))


def _value(fact: Mapping[str, Any], field: str, info: FieldInfo | None) -> str:
    value = fact.get(field)
    if value is None:
        word = fact.get(f"{field}_word")  # a measurement stated as a word
        return f'"{word}"' if word is not None else ""
    if isinstance(value, str):
        if info is not None and info.kind == "date":
            return instant_text(value)
        if info is not None and info.kind == "level":
            return value
        return _words(value)
    unit = "" if info is None or info.unit is None or isinstance(value, bool) else info.unit
    return value_text(value) + _UNIT_TEXT.get(unit, f" {unit}" if unit else "")


def _and(texts: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`: texts already in words, joined as written."""
    return (
        texts[0]
        if len(texts) == 1
        else ", ".join(texts[:-1]) + " and " + texts[-1]
        if texts
        else ""
    )


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _weeks(days: int) -> str:
    weeks, rest = divmod(days, 7)
    if not weeks:
        return _plural(rest, "day")
    return _plural(weeks, "week") + (f" and {_plural(rest, 'day')}" if rest else "")


def _bounds(fact: Mapping[str, Any], name: str) -> tuple[int, int] | None:
    lo, hi = fact.get(f"{name}_lo"), fact.get(f"{name}_hi")
    return (lo, hi) if isinstance(lo, int) and isinstance(hi, int) else None


def _duration(fact: Mapping[str, Any], field: str) -> str:
    bounds = _bounds(fact, field)
    if bounds is None:
        return ""
    lo, hi = bounds
    return _weeks(lo) if lo == hi else f"between {_weeks(lo)} and {_weeks(hi)}"


def _span(bounds: tuple[int, int], unit: str) -> str:
    lo, hi = bounds
    return _plural(lo, unit) if lo == hi else f"{lo} to {hi} {unit}s"


def _before_request(fact: Mapping[str, Any], field: str) -> str:
    """`2 months (91 days)`: the engine's distances from the date to the request date."""
    days = _bounds(fact, f"{field}_days_before_request")
    if days is None or days[0] < 0:
        return ""
    months = _bounds(fact, f"{field}_months_before_request")
    if months is None or months[0] < 1:
        return _span(days, "day")
    return f"{_span(months, 'month')} ({_span(days, 'day')})"


def _sources(facts: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Return the facts' distinct sources, in order: all `_documents` reads of them."""
    return tuple(dict.fromkeys(s for s in (f.get("src") for f in facts) if isinstance(s, str)))


def _documents(facts: Iterable[Mapping[str, Any]]) -> list[str]:
    """Return the documents the facts were taken from, one entry per kind of document:
    `the clinic notes of 2025-01-15 and 2025-05-05`, `the request form`."""
    return _of_sources(_sources(facts))


def _of_sources(sources: tuple[str, ...]) -> list[str]:
    dates: dict[str, set[str]] = {}
    # one pass per distinct source: many facts come from the same page of the same document
    for source in sources:
        if not source.strip():
            continue
        document, _, rest = source.partition(" ")
        dated = rest.split(" ", 1)[0]
        dates.setdefault(document, set())
        if _DATE_IN_SOURCE.match(dated):
            dates[document].add(dated)
    out = []
    for document, when in dates.items():
        name = words(document) + ("s" if len(when) > 1 else "")
        out.append(f"the {name}" + (f" of {_and(sorted(when))}" if when else ""))
    return out


__all__ = [
    "BRACES",
    "NOT_RECORDED",
    "Placeholder",
    "Pool",
    "Problem",
    "fill",
    "fill_settings",
    "parse",
    "problems",
    "reads",
    "segment_ranges",
    "setting_text",
]
