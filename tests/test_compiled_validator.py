"""The compiled validator (jsonschema-rs) against jsonschema on mutated documents.

evaluator.read.schemas accepts a document the compiled validator accepts (`SchemaSet.accepts`)
without asking jsonschema, so that must never accept what jsonschema rejects; where it rejects what
jsonschema accepts, jsonschema has the last word (slower, never wrong). The mutations are
seeded: the same few thousand documents every run.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from evaluator.read import source
from evaluator.read.resources import schemas_dir
from evaluator.read.schemas import format_checker, schema_set

ROOT = Path(__file__).resolve().parent.parent
# about 2,800 documents in all: cases are small and quick to validate, policies are not
MUTANTS_PER_SEED = {"case": 250, "policy": 60}

# Values a mutation puts in place of another: wrong types, edge strings, bad and good dates.
REPLACEMENTS: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    3.0,
    10**20,
    "",
    "x",
    "L4\n",
    "l4",
    "T12",
    "2025-02-30",
    "2025-1-01",
    "20250102",
    "2025-13",
    "13/2025",
    "03/2025",
    "2025-03",
    "2025-03-01",
    "\uff19",  # a digit to \\d, not to [0-9]
    [],
    {},
    [1, 1],
    {"unexpected": 1},
]


def _seeds() -> list[tuple[str, Path]]:
    seeds = [("case", path) for path in sorted((ROOT / "examples" / "cases").glob("*.json"))][:10]
    seeds += [("policy", path) for path in sorted((ROOT / "policies").glob("*/*.yaml"))]
    return seeds


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [text for value in data.values() for text in _strings(value)]
    if isinstance(data, list):
        return [text for value in data for text in _strings(value)]
    return [data] if isinstance(data, str) else []


def _mutate(data: Any, rng: random.Random) -> Any:
    mutant = copy.deepcopy(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = [path for path in _paths(mutant) if path]
        if not paths:
            break
        path = rng.choice(paths)
        parent = mutant
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        action = rng.randrange(5)
        if action == 0 and isinstance(parent, dict):
            del parent[last]
        elif action == 1 and isinstance(parent, dict):
            parent[str(last) + "_"] = parent[last]
        elif action == 2 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        elif action == 3 and isinstance(parent[last], str):
            parent[last] = rng.choice(("", " ", parent[last] * 2, parent[last].upper()))
        else:
            parent[last] = copy.deepcopy(rng.choice(REPLACEMENTS))
    return mutant


@pytest.mark.parametrize(
    ("schema", "path"), _seeds(), ids=lambda value: getattr(value, "name", value)
)
def test_compiled_validator_agrees_with_jsonschema(schema: str, path: Path) -> None:
    schemas = schema_set()
    explaining = schemas.validator(schema)
    data = source.load(path).data
    assert schemas.accepts(data, schema)
    rng = random.Random(path.name)
    verdicts = {True: 0, False: 0}
    for _ in range(MUTANTS_PER_SEED[schema]):
        mutant = _mutate(data, rng)
        valid = not any(True for _ in explaining.iter_errors(mutant))
        fast = schemas.accepts(mutant, schema)
        if fast != valid:
            # The fast path may only be the stricter one, and only where it knowingly leaves
            # the verdict to jsonschema: a string ending in a newline (Python's `$` matches
            # before it, Rust's does not).
            assert valid, json.dumps(mutant)[:2000]
            assert any(text.endswith("\n") for text in _strings(mutant))
            schemas.validate(source.Document(mutant, str(path), {}), schema)
        verdicts[valid] += 1
    # the mutations reach both verdicts, or the comparison would prove little
    assert verdicts[False] > 0


def test_the_bundled_schemas_are_valid_draft_2020_12() -> None:
    # evaluator.read.schemas trusts the bundled schemas rather than checking them in every process
    for path in sorted(schemas_dir().glob("*.schema.json")):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text("utf-8")))


def test_formats_are_the_same_functions() -> None:
    compiled = schema_set().compiled("case")
    assert format_checker().checkers.keys() == {"date", "partial-date"}
    assert compiled is schema_set().compiled("case")


def test_a_whole_float_is_no_integer_to_either() -> None:
    # JSON Schema counts 3.0 as an integer; the product does not, so neither may the fast path
    schemas = schema_set()
    data = source.load(ROOT / "examples" / "cases" / "t12-s2-fusion.json").data
    assert schemas.accepts(data, "case")
    data["patient"] = {"age": 62}
    assert schemas.accepts(data, "case")
    data["patient"] = {"age": 62.0}
    assert not schemas.accepts(data, "case")
    assert any(True for _ in schemas.validator("case").iter_errors(data))
