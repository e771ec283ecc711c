"""The engine gets only the fact types and fields some rule reads (ruleset.projection).

Leaving out a field that a rule reads would change a match without any error (a `$nex` test on a
dropped field passes), so these tests check the projection two ways: against the rendered
rulesets of every shipped and example policy, walked independently of the Program's tests, and
through the engine on hand-built rules whose outcome flips when a field is missing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import durable_rules_engine as dre
import pytest

from evaluator import api
from evaluator.compile.program import (
    STAGE,
    Absent,
    AllOf,
    CmpField,
    EmitFact,
    EmitStatus,
    Eq,
    Join,
    Pattern,
    Present,
    Program,
    Rule,
)
from evaluator.compile.ruleset import definition, projection
from evaluator.engine import durable
from evaluator.engine.durable import Engine, Trace
from evaluator.errors import EngineError
from evaluator.language.model import FromField, Status
from evaluator.language.policies import Library

ROOT = Path(__file__).parent.parent
_OPERATORS = {"$lt", "$lte", "$gt", "$gte", "$neq", "$ex", "$nex", "$mt", "$imt"}


def _programs() -> Iterator[Program]:
    for root in (None, ROOT / "benchmarks" / "policies"):
        library = Library() if root is None else Library(root)
        for policy in library.all():
            yield api.program_for(policy)


def _operand_fields(operand: Any, out: set[str]) -> None:
    """The fields an operand reads of another fact or of its own: joins and `$m`."""
    if not isinstance(operand, dict):
        return
    for key, value in operand.items():
        if key == "$m":
            out.add(value)
        elif key in ("$add", "$sub", "$mul", "$div", "$l", "$r"):
            _operand_fields(value, out)
        elif isinstance(value, str):  # a join: {alias: field of the joined fact}
            out.add(value)
        else:
            _operand_fields(value, out)


def _read(expr: dict[str, Any], fields: set[str], types: set[str | None]) -> None:
    """Collect from a rendered durable_rules expression every field it reads."""
    for key, value in expr.items():
        if key in ("$and", "$or"):
            for part in value:
                _read(part, fields, types)
        elif key in _OPERATORS:
            for prop, operand in value.items():
                fields.add(prop)
                _operand_fields(operand, fields)
        else:
            fields.add(key)
            _operand_fields(value, fields)


def _expr_types(expr: dict[str, Any]) -> set[str] | None:
    """The types a rendered expression can pass (None: any)."""
    if isinstance(expr.get("t"), str):
        return {expr["t"]}
    if "$and" in expr:
        for part in expr["$and"]:
            found = _expr_types(part)
            if found is not None:
                return found
        return None
    if "$or" in expr:
        union: set[str] = set()
        for part in expr["$or"]:
            found = _expr_types(part)
            if found is None:
                return None
            union |= found
        return union
    return None


@pytest.mark.parametrize("program", list(_programs()), ids=lambda p: p.name)
def test_every_field_and_type_a_rendered_rule_reads_is_projected(program: Program) -> None:
    kept = projection(program)
    for name, rule in definition(program).items():
        if name == "catch_all":
            continue
        for pattern in rule["all"]:
            ((_, expr),) = pattern.items()
            fields: set[str] = set()
            _read(expr, fields, set())
            lanes = {f for f in fields if f.startswith("_lane")}
            missing = fields - lanes - kept.fields - {"sid"}
            assert not missing, f"{name} reads {missing}, which the projection drops"
            kinds = _expr_types(expr)
            if kinds is None:
                assert kept.types is None, f"{name} matches any type"
            else:
                dropped = {k for k in kinds if not kept.keeps(k)}
                assert not dropped, f"{name} reads {dropped} facts, which are dropped"


def _hand(*rules: tuple[tuple[Pattern, ...], Any]) -> Program:
    marker = Pattern("stage", AllOf((Eq("t", STAGE), Eq("s", 1))))
    built = tuple(
        Rule(f"r{i}", 1, (marker, *patterns), action, "hand")
        for i, (patterns, action) in enumerate(rules)
    )
    return Program(f"projection-{uuid.uuid4().hex[:12]}", 1, built, {}, {}, None)


def _thing(test: Any) -> Pattern:
    return Pattern("f", AllOf((Eq("t", "thing"), test)))


def _status(trace: Trace, clause: str) -> str:
    return str(trace.statuses[clause].fact["status"])


def _runs(program: Program, facts: list[dict[str, Any]]) -> list[Trace]:
    """The same facts run alone, traced, and in a session shared with other cases."""
    engine = Engine.get()
    return [engine.run(program, facts, trace=True), *(engine.run(program, facts) for _ in "abc")]


def test_a_field_read_only_by_presence_tests_reaches_the_engine() -> None:
    program = _hand(
        ((_thing(Present("note")),), EmitStatus("X", Status.MET)),
        ((_thing(Absent("note")),), EmitStatus("X", Status.NOT_DOCUMENTED)),
    )
    facts = [{"t": "thing", "id": "thing:1", "note": "seen", "unused": 3}]
    for trace in _runs(program, facts):
        assert _status(trace, "X") == "met"


def test_both_fields_of_a_comparison_within_a_fact_reach_the_engine() -> None:
    # `lo` is read only as the other side of `hi > lo`
    program = _hand(
        ((_thing(CmpField(">", "hi", "lo", 0)),), EmitStatus("X", Status.MET)),
        ((_thing(CmpField("<=", "hi", "lo", 0)),), EmitStatus("X", Status.NOT_MET)),
    )
    for trace in _runs(program, [{"t": "thing", "id": "thing:1", "hi": 5, "lo": 2}]):
        assert _status(trace, "X") == "met"


def test_the_joined_field_of_the_other_fact_reaches_the_engine() -> None:
    # `part.ref == thing.code`: `code` appears in no test of a `thing` pattern of its own
    other = Pattern("g", AllOf((Eq("t", "part"), Join("ref", "f", "code"))))
    program = _hand(((_thing(Present("id")), other), EmitStatus("X", Status.MET)))
    facts = [{"t": "thing", "id": "thing:1", "code": "A"}, {"t": "part", "id": "p:1", "ref": "A"}]
    for trace in _runs(program, facts):
        assert _status(trace, "X") == "met"


def test_a_field_a_derived_fact_copies_reaches_the_engine() -> None:
    copy = EmitFact("derive", "copied", {"what": FromField("f", "label")}, {}, ())
    program = _hand(((Pattern("b_f", Eq("t", "thing")),), copy))
    for trace in _runs(program, [{"t": "thing", "id": "thing:1", "label": "kept", "src": "s"}]):
        (derived,) = trace.derived
        assert derived.fact["what"] == "kept"
        assert derived.fact["src"] == "s"  # provenance comes along


def test_what_no_rule_reads_never_reaches_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    program = _hand(((_thing(Present("note")),), EmitStatus("X", Status.MET)))
    sent: list[Any] = []
    real = dre.assert_facts

    def spy(handle: int, text: str) -> Any:
        sent.extend(json.loads(text))
        return real(handle, text)

    monkeypatch.setattr(dre, "assert_facts", spy)
    facts = [
        {"t": "thing", "id": "thing:1", "note": "seen", "display": "long text"},
        {"t": "request", "id": "request:1", "date": "2025-01-01"},
    ]
    for trace in _runs(program, facts):
        assert _status(trace, "X") == "met"
    kinds = {f["t"] for f in sent}
    assert "request" not in kinds
    assert all("display" not in f for f in sent)
    assert any(f["t"] == "thing" and f["note"] == "seen" for f in sent)


def test_a_fact_cannot_name_its_own_session() -> None:
    program = _hand(((_thing(Eq("sid", "elsewhere")),), EmitStatus("X", Status.MET)))
    assert "sid" not in projection(program).fields
    trace = Engine.get().run(program, [{"t": "thing", "id": "thing:1", "sid": "elsewhere"}])
    assert "X" not in trace.statuses


def test_a_rule_reading_a_one_letter_field_matches_in_every_run() -> None:
    # `c` once named a fact's case when cases were joined in one session; it is a field
    program = _hand(((_thing(Eq("c", "x")),), EmitStatus("X", Status.MET)))
    assert "c" in projection(program).fields
    facts = [{"t": "thing", "id": "thing:1", "c": "x"}]
    for trace in _runs(program, facts):
        assert _status(trace, "X") == "met"
    runs = [Engine.get().run(program, facts) for _ in range(2)]
    assert [_status(t, "X") for t in runs] == ["met", "met"]


# -- the fields kept per shape of fact (`_Plans.kept`, `_Session.admit`) -------------------------


def _sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every fact given to the engine from now on, as it was given."""
    sent: list[dict[str, Any]] = []
    real = dre.assert_facts

    def spy(handle: int, text: str) -> Any:
        sent.extend(json.loads(text))
        return real(handle, text)

    monkeypatch.setattr(dre, "assert_facts", spy)
    return sent


def test_facts_of_one_shape_each_give_the_engine_their_own_values() -> None:
    # the kept fields are worked out once per shape; the values are each fact's own, and a
    # null is left out (absent: undocumented) though the shape's first fact had a value there
    program = _hand(
        ((_thing(Present("note")),), EmitStatus("X", Status.MET)),
        ((_thing(Absent("note")),), EmitStatus("X", Status.NOT_DOCUMENTED)),
    )
    seen = [{"t": "thing", "id": "thing:1", "note": "seen", "unused": 3}]
    null = [{"t": "thing", "id": "thing:1", "note": None, "unused": 3}]
    for facts, status in ((seen, "met"), (null, "not_documented"), (seen, "met")):
        for trace in _runs(program, facts):
            assert _status(trace, "X") == status


def test_a_fact_keeps_its_own_field_order_and_a_marker_has_no_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the engine walks a fact's fields in its order, which decides the order of firings
    program = _hand(((_thing(Present("b")), _thing(Present("a"))), EmitStatus("X", Status.MET)))
    sent = _sent(monkeypatch)
    fact = {"t": "thing", "b": 1, "unused": 2, "id": "thing:1", "a": 3}
    for _ in range(2):  # the shape worked out, then taken from the memo
        trace = Engine.get().run(program, [dict(fact)])
        assert _status(trace, "X") == "met"
    things = [f for f in sent if f["t"] == "thing"]
    assert len(things) == 2
    for thing in things:
        assert list(thing) == ["sid", "t", "b", "id", "a", "c", "key"]
    markers = [f for f in sent if f["t"] == STAGE]
    assert markers
    assert all("key" not in m for m in markers)


def test_a_number_the_engine_cannot_take_fails_in_a_fact_of_a_known_shape() -> None:
    program = _hand(((_thing(Present("note")),), EmitStatus("X", Status.MET)))
    fine = [{"t": "thing", "id": "thing:1", "note": "seen", "unused": 3}]
    assert _status(Engine.get().run(program, fine), "X") == "met"
    # the same shape, with a number out of the engine's range in a field no rule reads
    broken = [{"t": "thing", "id": "thing:1", "note": "seen", "unused": float("inf")}]
    with pytest.raises(EngineError, match="cannot be given to the engine"):
        Engine.get().run(program, broken)


def test_facts_of_more_shapes_than_the_memo_holds_still_give_every_read_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(durable, "_SHAPES", 2)
    program = _hand(
        ((_thing(Present("note")),), EmitStatus("X", Status.MET)),
        ((_thing(Absent("note")),), EmitStatus("X", Status.NOT_DOCUMENTED)),
    )
    for extra in ("a", "b", "c", "d"):
        facts = [{"t": "thing", "id": "thing:1", extra: 1, "note": "seen"}]
        assert _status(Engine.get().run(program, facts), "X") == "met"
    assert len(durable._plans(program).kept) == 2
