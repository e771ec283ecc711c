"""A case with a missing, empty, late or contradicted fact, run right after the complete case
in the same process, is decided exactly as it is decided alone (issue 10): nothing of the
earlier case may stand in for a fact this case lacks, which would turn a pend into a wrong
approval. Each variant must give what it gives alone (verdict, statuses, values, or the same
engine error), in a session of its own (tests/test_sessions.py says why sessions are not
reused).
"""

from __future__ import annotations

from typing import Any

import pytest

from evaluator.compile.program import Program
from evaluator.engine import durable as engine
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from tests.test_sessions import _derived, _judged


def _late(fact: dict[str, Any]) -> dict[str, Any]:
    """The fact dated 40 days after the request (every derived day and month count moved)."""
    out = dict(fact)
    for name, value in fact.items():
        if name.endswith(("_days_before_request_lo", "_days_before_request_hi")):
            out[name] = -40
        elif "months" in name and "before_request" in name:
            out[name] = -2
        elif name.endswith(("_lo", "_hi")) and isinstance(value, int) and "_m" not in name:
            out[name] = value + 40 + 200  # past the request's own day number
    return out


def _variants(facts: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    types = sorted({f["t"] for f in facts} - {"case", "request", "line"})
    out = {f"missing {t}": [f for f in facts if f["t"] != t] for t in types}
    out["empty care"] = [f for f in facts if f["t"] not in ("care_component", "physical_therapy")]
    out["late therapy"] = [_late(f) if f["t"] == "physical_therapy" else f for f in facts]
    out["contradicted nicotine"] = [
        *facts,
        {"t": "nicotine", "id": "nicotine:99", "status": "current"},
    ]
    return out


def _outcome(program: Program, facts: list[dict[str, Any]], *, trace: bool) -> Any:
    try:
        return _derived(Engine.get().run(program, facts, trace=trace))
    except EngineError as error:
        return ("engine error", str(error))


@pytest.fixture(scope="module")
def fusion() -> tuple[Program, list[dict[str, Any]]]:
    return next(
        (p, f)
        for p, f in _judged()
        if p.name.startswith("lumbar-fusion") and any(x["t"] == "physical_therapy" for x in f)
    )


def test_a_weaker_case_after_a_complete_one_is_decided_as_alone(
    fusion: tuple[Program, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    program, facts = fusion
    complete = _outcome(program, facts, trace=True)
    variants = _variants(facts)
    alone = {name: _outcome(program, v, trace=True) for name, v in variants.items()}
    # the variants matter: some is decided otherwise than the complete case (else this
    # test could not tell a leak of the complete case's facts from a correct run)
    assert any(a[4 if a[0] != "engine error" else 0] != complete[4] for a in alone.values())
    sids: list[str] = []
    real = engine._Session.run

    def spy(self: engine._Session, given: Any) -> None:
        sids.append(self.sid)
        real(self, given)

    monkeypatch.setattr(engine._Session, "run", spy)
    for name, variant in variants.items():
        assert _outcome(program, facts, trace=False) == complete, name
        assert _outcome(program, variant, trace=False) == alone[name], name
    # each case in a session of its own
    assert len(set(sids)) == len(sids) == 2 * len(variants)
