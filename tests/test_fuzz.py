"""Fuzzing the CLI with case documents: never a traceback, a documented exit code, the same
output twice.

Documents come from two sources: generated from case.schema.json (structure a case may have,
valid or not in the details), and mutations of the example cases (real cases a slip away from
valid). Each is piped to `necessity evaluate - --format json`. `make test` runs a few examples of
each; `make fuzz` sets NECESSITY_FUZZ_EXAMPLES for a long run. (hypothesis-jsonschema would
generate from the schema, but its 0.23 release fails on current Hypothesis, hence the small
generator below.)
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.cli.main import ExitCode, main
from evaluator.read.schemas import load_schema

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "cases").glob("*.json"))
CASE_SCHEMA = load_schema("case")
# Exit 4 means the engine failed: a genuine engine error, which no case should cause.
DOCUMENTED = {
    ExitCode.MEDICALLY_NECESSARY,
    ExitCode.NOT_MEDICALLY_NECESSARY,
    ExitCode.INVALID_INPUT,
    ExitCode.INSUFFICIENT_DOCUMENTATION,
}
FUZZ = settings(
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("NECESSITY_FUZZ_EXAMPLES", "12")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- documents from the schema -----------------------------------------------------------------

_DATES = st.dates(datetime.date(1850, 1, 1), datetime.date(2230, 12, 31)).map(
    lambda d: d.isoformat()
)
_MONTHS = st.tuples(st.integers(1880, 2220), st.integers(0, 13)).map(
    lambda ym: f"{ym[0]}-{ym[1]:02d}"
)
_FORMATS = {"date": _DATES, "partial-date": _DATES | _MONTHS}
_MAX_DEPTH = 8
# Text a JSON or YAML file can hold (lone surrogates are a mutation, below).
_TEXT = st.characters(exclude_categories=["Cs", "Cc"])


def from_schema(node: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Return a strategy for instances shaped by the schema `node` (of case.schema.json)."""
    if isinstance(node, bool):
        return st.none()
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return from_schema(CASE_SCHEMA["$defs"][name], depth)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    for keyword in ("anyOf", "oneOf"):
        if keyword in node:
            return st.one_of([from_schema(branch, depth) for branch in node[keyword]])
    kind = node.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**node, "type": each}, depth) for each in kind])
    if kind == "object":
        properties = node.get("properties", {})
        required = [key for key in node.get("required", []) if key in properties]
        optional = (
            {}
            if depth >= _MAX_DEPTH
            else {
                key: from_schema(value, depth + 1)
                for key, value in properties.items()
                if key not in required
            }
        )
        return st.fixed_dictionaries(
            {key: from_schema(properties[key], depth + 1) for key in required}, optional=optional
        )
    if kind == "array":
        low = node.get("minItems", 0)
        return st.lists(
            from_schema(node.get("items", {}), depth + 1),
            min_size=low,
            max_size=min(node.get("maxItems", low + 3), low + 3),
        )
    if kind == "string":
        if node.get("format") in _FORMATS:
            return _FORMATS[node["format"]]
        if "pattern" in node:
            pattern = st.from_regex(node["pattern"], fullmatch=True, alphabet=_TEXT)
            return pattern.filter(lambda s: len(s) < 40)
        low = node.get("minLength", 0)
        return st.text(_TEXT, min_size=low, max_size=low + 12)
    if kind == "integer":
        return st.integers(node.get("minimum", -5), node.get("maximum", 400))
    if kind == "number":
        return st.floats(node.get("minimum", -5.0), node.get("maximum", 400.0), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return st.none()


# --- mutations of the examples -----------------------------------------------------------------

_HOSTILE_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        0.5,
        10**15 - 1,
        10**15,
        1e300,
        2**63,
        "",
        " ",
        "x" * 300,
        "0001-01-01",
        "9999-12-31",
        "2025-02-30",
        "13/2025",
        "2025-06",
        "L9",
        "T12-S2",
        "S2-T12",
        "L4-L4",
        "6 months",
        "1000000 days",
        "lone \ud800",
        [],
        {},
        [None],
        {"statements": []},
    ]
)


def _pointers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _pointers(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _pointers(item, (*path, index))
    return found


@st.composite
def mutated_examples(draw: st.DrawFn) -> Any:
    document = json.loads(draw(st.sampled_from(EXAMPLES)).read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_pointers(document)[1:]))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["delete", "replace", "duplicate", "borrow"]))
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(_HOSTILE_VALUES)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(json.loads(json.dumps(parent[last])))
        else:  # another value from the same document, in the wrong place
            source = draw(st.sampled_from(_pointers(document)))
            value: Any = document
            for step in source:
                value = value[step]
            parent[last] = json.loads(json.dumps(value))
    return document


# --- the property ------------------------------------------------------------------------------


def _evaluate(text: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["evaluate", "-", "--format", "json"], input=text)
    output = result.stdout + result.stderr
    if result.exit_code in (ExitCode.MEDICALLY_NECESSARY, 1, 3):
        data = json.loads(result.stdout)
        data.pop("evaluated_at", None)  # the one field allowed to differ between runs
        output = json.dumps(data, sort_keys=True) + result.stderr
    return result.exit_code, output


def _check(document: Any) -> None:
    text = json.dumps(document, ensure_ascii=True)  # a lone surrogate travels as \ud800
    code, output = _evaluate(text)
    assert "Traceback" not in output, output
    assert code in DOCUMENTED, output
    assert _evaluate(text) == (code, output), "two runs of the same case differ"


@FUZZ
@given(from_schema(CASE_SCHEMA))
def test_schema_shaped_cases_never_crash(document: Any) -> None:
    _check(document)


@FUZZ
@given(mutated_examples())
def test_mutated_examples_never_crash(document: Any) -> None:
    _check(document)
