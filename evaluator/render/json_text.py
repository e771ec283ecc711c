"""The JSON text of a decision, as a batch writes it, made without the standard library walking
every value of `decision_json`'s dict.

`decision_json_text(d, at)` is exactly `json.dumps(decision_json(d, at), ensure_ascii=False,
sort_keys=True)`. The text of what a policy states (a clause's id, titles, status words,
citations and documentation; the policy block; its references; the review note) is the same in
every decision of the policy, so each piece is made once and kept (bounded); what the case
decides (evidence, fact values, provenance) is written by the standard library's encoder, piece
by piece, in the order `sort_keys` gives. tests/test_batch_encoding.py compares the two texts on
every example case, bench cases and mutated cases. A decision with an explanation is written by
the standard library whole (a debugging aid, never a batch's hot path).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from json import encoder as _json_encoder
from json.encoder import encode_basestring
from typing import Any

from evaluator.decide.decision import ClauseResult, Decision, Evidence, FactView
from evaluator.language.conditions import Truth
from evaluator.language.model import Determination, Reference, Status
from evaluator.render.decision import (
    _alternative_json,
    _references_json,
    _request_json,
    decision_json,
    review_note,
)

__all__ = ["decision_json_text", "json_value"]

_STANDARD = json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False)
# The encoder `_STANDARD.encode` makes for every call, made once: the same C function with the
# same options (no cycle check, as check_circular=False; the same error for what is no JSON).
# typeshed does not declare it; CPython's json module has it unless built without its C part
_MAKE_ENCODER: Callable[..., Callable[[Any, int], list[str]]] | None = getattr(
    _json_encoder, "c_make_encoder", None
)
_CHUNKS = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, _STANDARD.default, encode_basestring, None, ": ", ", ", True, False, True
    )
)


def json_value(value: Any) -> str:
    """Return `json.dumps(value, ensure_ascii=False, sort_keys=True)`."""
    if type(value) is str:
        return encode_basestring(value)  # what the encoder calls for a str
    if value is None:
        return "null"
    if _CHUNKS is None:  # a Python without the json module's C part
        return _STANDARD.encode(value)
    return "".join(_CHUNKS(value, 0))


# Pieces of text kept by what they are made of; emptied when full, so memory stays flat over any
# batch whatever its policies. A key holds each part's type beside its value wherever two
# values could be equal and write differently (True == 1 == 1.0), and a float's text (-0.0).
_KEPT = 4096
_PIECES: dict[Hashable, str] = {}


def _kept(key: Hashable, make: Callable[[], str]) -> str:
    text = _PIECES.get(key)
    if text is None:
        if len(_PIECES) >= _KEPT:
            _PIECES.clear()
        text = _PIECES[key] = make()
    return text


def _typed(values: tuple[Any, ...]) -> tuple[Any, ...]:
    types = tuple(map(type, values))
    if float in types:  # -0.0 == 0.0, and they write differently
        return (values, types, tuple(map(repr, values)))
    return (values, types)


_TRUTH_TEXT = {
    Truth.TRUE: json_value("true"),
    Truth.FALSE: json_value("false"),
    Truth.UNKNOWN: json_value("unknown"),
}
_STATUS_TEXT = {status: json_value(status.value) for status in Status}
_DETERMINATION_TEXT = {d: json_value(d.value) for d in Determination}


_STR = encode_basestring


def _fact_text(fact: FactView) -> str:
    # json_value's str case inline: four values a fact, a dozen facts a decision
    i, src, t = fact.id, fact.source, fact.type
    return (
        f'{{"id": {_STR(i) if type(i) is str else json_value(i)}, '
        f'"source": {_STR(src) if type(src) is str else json_value(src)}, '
        f'"type": {_STR(t) if type(t) is str else json_value(t)}, '
        f'"values": {json_value(dict(fact.values))}}}'
    )


def _evidence_text(ev: Evidence) -> str:
    condition = ev.condition
    return (
        f'{{"binding": {json_value(dict(ev.binding)) if ev.binding else "{}"}, '
        f'"condition": {_STR(condition) if type(condition) is str else json_value(condition)}, '
        f'"facts": [{", ".join(map(_fact_text, ev.facts))}], "value": {_TRUTH_TEXT[ev.value]}}}'
    )


def _clause_head(citations: tuple[int, ...], documentation: tuple[str, ...]) -> str:
    return (
        f'{{"citations": {json_value(list(citations))}, '
        f'"documentation": {json_value(list(documentation))}, "evidence": ['
    )


def _clause_tail(c: ClauseResult) -> str:
    return "".join(
        (
            '], "finding": ',
            json_value(c.finding),
            ', "id": ',
            json_value(c.id),
            ', "rationale": ',
            json_value(c.rationale),
            ', "recommendation": ',
            json_value(c.recommendation),
            ', "section": ',
            json_value(c.section),
            ', "section_title": ',
            json_value(c.section_title),
            ', "status": ',
            _STATUS_TEXT[c.status],
            ', "title": ',
            json_value(c.title),
            "}",
        )
    )


def _clause_text(c: ClauseResult) -> str:
    head = _kept(
        ("head", _typed(c.citations), _typed(c.documentation)),
        lambda: _clause_head(c.citations, c.documentation),
    )
    stated = (c.finding, c.id, c.rationale, c.recommendation, c.section, c.section_title, c.title)
    tail = _kept(("tail", c.status, _typed(stated)), lambda: _clause_tail(c))
    return head + ", ".join(map(_evidence_text, c.evidence)) + tail


def _references_text(references: tuple[Reference, ...]) -> str:
    stated = tuple(_typed((r.id, r.citation, r.doi, r.url, r.note)) for r in references)
    return _kept(("references", stated), lambda: json_value(_references_json(references)))


def _review_note_text(decision: Decision) -> str:
    # review_note's words depend on these three alone
    key = (decision.determination, _typed((decision.policy_id, decision.policy_version)))
    return _kept(("note", key), lambda: json_value(review_note(decision)))


def _policy_text(decision: Decision) -> str:
    stated = (
        decision.policy_id,
        decision.policy_sha256,
        decision.policy_title,
        decision.policy_version,
    )
    return _kept(
        ("policy", _typed(stated)),
        lambda: json_value(dict(zip(("id", "sha256", "title", "version"), stated, strict=True))),
    )


def decision_json_text(decision: Decision, evaluated_at: str | None = None) -> str:
    """Return `json.dumps(decision_json(decision, evaluated_at), ensure_ascii=False,
    sort_keys=True)`: its keys in sorted order, each value as `decision_json` makes it."""
    if decision.explanation is not None:
        return json_value(decision_json(decision, evaluated_at))
    alt = decision.alternative
    conflicts = [
        {k: c.get(k) for k in ("fact", "field", "values", "reason")} for c in decision.conflicts
    ]
    requests = [_request_json(r) for r in decision.documentation_requests]
    return "".join(
        (
            '{"alternative": ',
            "null" if alt is None else json_value(_alternative_json(alt)),
            ', "case_id": ',
            json_value(decision.case_id),
            ', "clauses": [',
            ", ".join(map(_clause_text, decision.clauses)),
            '], "conflicts": ',
            json_value(conflicts) if conflicts else "[]",
            ', "determination": ',
            _DETERMINATION_TEXT[decision.determination],
            ', "documentation_requests": ',
            json_value(requests) if requests else "[]",
            ', "evaluated_at": ',
            json_value(evaluated_at),
            ', "policy": ',
            _policy_text(decision),
            ', "provenance": ',
            json_value(dict(decision.provenance)),
            ', "references": ',
            _references_text(decision.references),
            ', "review_note": ',
            _review_note_text(decision),
            ', "x12_action": ',
            json_value(decision.x12_action),
            "}",
        )
    )
