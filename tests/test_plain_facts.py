"""`_Session._assert_plain` writes a derived value, candidate or status fact by hand, for speed,
"as `normalise` writes it" (engine/durable.py). The two must not drift apart: durable_rules
keys a fact by its content (trap 4)."""

from __future__ import annotations

from typing import Any

from evaluator.compile.program import VAL, EmitValue
from evaluator.engine import durable as engine
from evaluator.language.conditions import Truth
from tests.test_engine import hand_built


def test_a_plain_fact_is_written_as_normalise_writes_it() -> None:
    program = hand_built(EmitValue(VAL, "n", Truth.TRUE, ()))
    plain = engine._Session(0, program, "7")
    fact: dict[str, Any] = {"t": VAL, "n": "node/0", "v": int(Truth.TRUE), "k1": "seg:1"}
    plain._assert_plain(dict(fact))
    normalised = plain.normalise({**fact, "id": f"{VAL}0"})
    assert plain.pending == [normalised]
    # key order too: the engine reads the JSON text
    assert list(plain.pending[0]) == list(normalised)
