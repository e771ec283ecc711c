"""compile/shaping.py on generated policies: the shaped program fires as the unshaped one.

The examples and bench cases (tests/test_shaping.py) exercise the shipped policies; these
generated ones reach what shaping's batch analysis must get right and the shipped ones barely
have: derived fact types derived in several stages (from case facts and from other derived
facts), read by later rules and clauses positively, negated (`not`, `every`) and counted;
clauses that read other clauses' statuses; nested every/some joined by `same_as`. Each policy
is compiled shaped and unshaped and run on random cases: any difference in firings, values,
candidates, derived facts, statuses or verdict fails. (With a negated fact of the rule's own
batch taken as arriving before it, several of these seeds fail.) `NECESSITY_FUZZ=long` runs
ten times as many.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from test_compiler import BASE_FACTS, TESTS, clause, document, write  # type: ignore[import-not-found]

from evaluator.compile import joins
from evaluator.compile.compiler import compile_policy
from evaluator.language.policies import load_policy
from tests.test_shaping import _outcome

LONG = os.environ.get("NECESSITY_FUZZ") == "long"
POLICIES = 400 if LONG else 40
CASES = 15
RESULTS = ("positive", "negative")
SIDES = ("left", "right", "bilateral")
TYPES = ("provocative_test", "d1", "d2", "d3")
FIELDS = {"test": "string", "side": "string", "result": "string"}


def _leaf(rng: random.Random, alias: str) -> dict[str, Any]:
    field = rng.choice(("result", "test", "side"))
    value = {"result": RESULTS, "test": TESTS[:3], "side": SIDES}[field]
    return {"fact": alias, "field": field, "equals": rng.choice(value)}


def _quantified(
    rng: random.Random, depth: int, scope: list[str], clauses: list[str]
) -> dict[str, Any]:
    kind = rng.random()
    alias = f"a{depth}{rng.randrange(9)}"
    over: dict[str, Any] = {"fact": rng.choice(TYPES), "as": alias}
    if scope and rng.random() < 0.5:
        field = rng.choice(("test", "result"))
        over["where"] = {
            field: {"same_as": f"{rng.choice(scope)}.{rng.choice(('test', 'result'))}"}
        }
    if kind < 0.4:
        body = _condition(rng, depth - 1, [*scope, alias], clauses)
        if_empty = rng.choice(("unknown", "false", "true"))
        return {"every": {**over, "require": body, "if_empty": if_empty}}
    if kind < 0.8 or scope:
        return {"some": {**over, "require": _condition(rng, depth - 1, [*scope, alias], clauses)}}
    return {"count": {**over, "require": _leaf(rng, alias), "at_least": rng.choice((1, 2, 3))}}


def _condition(
    rng: random.Random, depth: int, scope: list[str], clauses: list[str]
) -> dict[str, Any]:
    kind = rng.random()
    if scope and kind < 0.25:
        return _leaf(rng, rng.choice(scope))
    if depth <= 0 or kind < 0.35:
        if clauses and rng.random() < 0.3:
            status = rng.choice(("met", "not_met", "not_documented"))
            return {"clause": rng.choice(clauses), "is": status}
        exists: dict[str, Any] = {"fact": rng.choice(TYPES)}
        if rng.random() < 0.5:
            exists["where"] = {"result": rng.choice(RESULTS)}
        return {"exists": exists}
    kind = rng.random()
    if kind < 0.5:
        return _quantified(rng, depth, scope, clauses)
    if kind < 0.6:
        return {"not": _condition(rng, depth - 1, scope, clauses)}
    both = [_condition(rng, depth - 1, scope, clauses) for _ in range(2)]
    return {"all": both} if kind < 0.8 else {"any": both}


def _policy(rng: random.Random, pid: str) -> dict[str, Any]:
    """d1 from case facts (stage 1); d2 from d1 (stage 2) and from case facts (stage 1); d3
    from d2, from case facts, and from d1 joined to a case fact."""
    copy = {f: {"from": f"x.{f}"} for f in FIELDS}

    def rule(rid: str, of: str, derive: str, **extra: Any) -> dict[str, Any]:
        found = {"id": rid, "description": "d", "for_each": [{"fact": of, "as": "x"}]}
        return {**found, "when": _leaf(rng, "x"), "derive": {"fact": derive, "set": copy}, **extra}

    joined = {
        "for_each": [
            {"fact": "d1", "as": "x"},
            {"fact": "provocative_test", "as": "y", "where": {"test": {"same_as": "x.test"}}},
        ],
        "when": _leaf(rng, "y"),
    }
    rules = [
        rule("r1", "provocative_test", "d1"),
        rule("r2", "d1", "d2"),
        rule("r3", "provocative_test", "d2"),
        rule("r4", "d2", "d3"),
        rule("r5", "d1", "d3", **joined),
        rule("r6", "provocative_test", "d3"),
    ]
    rules[-1]["derive"]["set"] = {"test": {"from": "x.test"}, "result": "positive"}
    clauses: list[dict[str, Any]] = []
    for i in range(4):
        ids = [c["id"] for c in clauses]
        clauses.append(clause(f"G-{i}", _condition(rng, 3, [], ids)))
    facts = {name: {"description": "d", "fields": FIELDS} for name in ("d1", "d2", "d3")}
    found: dict[str, Any] = document(clauses, pid, facts=facts, rules=rules)
    return found


def _facts(rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(rng.randrange(6)):
        fact = {"t": "provocative_test", "id": f"pt{i}", "test": rng.choice(TESTS[:3])}
        if rng.random() < 0.8:
            fact["result"] = rng.choice(RESULTS)
        if rng.random() < 0.8:
            fact["side"] = rng.choice(SIDES)
        out.append(fact)
    return [*BASE_FACTS, *out]


@pytest.mark.parametrize("seed", range(POLICIES))
def test_generated_policies_fire_the_same_shaped_and_unshaped(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = _policy(rng, f"gen-{seed}")
    # Joins on fields a derived fact need not carry are refused for authors (`optional_join`);
    # the engine's matching is what is compared here.
    with mock.patch.object(joins, "check", return_value=None):
        policy = load_policy(write(tmp_path, json.dumps(data, indent=1), data["id"]))
        shaped, unshaped = compile_policy(policy), compile_policy(policy, shaped=False)
    assert shaped.rules != unshaped.rules  # shaping did something
    for _ in range(CASES):
        facts = _facts(rng)
        assert _outcome(shaped, facts) == _outcome(unshaped, facts), (seed, facts)
