"""Templates are cut at their placeholders once per text, not searched with a regular expression
for every case (issue 10): the text filled is the one `re.sub` gave, on arbitrary templates.

The references below are the implementations the cut replaced, kept here as the definition.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.decide import decision, findings
from evaluator.engine.durable import Engine
from evaluator.language.describe import choice_text
from evaluator.language.dictionary import with_derived
from evaluator.language.policies import Library
from evaluator.vocab.levels import format_segments

ROOT = Path(__file__).parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
CASE = load_case(FOUNDING)
POLICY = Library().get("lumbar-fusion", CASE.in_force_date)
FACTS = api.facts_for(CASE, POLICY)
TYPES = with_derived(POLICY.derived)


def reference_fill(
    text: str, read: Sequence[Mapping[str, Any]], every: findings.Pool, types: Any
) -> str:
    """`findings.fill` as it was: `BRACES.sub` with a function of each match."""
    read_types = {str(f.get("t")) for f in read}

    def replace(match: re.Match[str]) -> str:
        parsed = findings.parse(match.group(1))
        if isinstance(parsed, str):
            return match.group(0)
        if parsed.fact == findings.DOCUMENTS:
            return every.documents()
        if parsed.fact == findings.SETTING:
            return match.group(0)
        if parsed.fact in read_types:
            pool: Iterable[Mapping[str, Any]] = (f for f in read if f.get("t") == parsed.fact)
        else:
            pool = every.by_type.get(parsed.fact, ())
        facts = findings._unique(
            f for f in pool if all(findings._filter_text(f.get(k)) == v for k, v in parsed.filters)
        )
        if parsed.count:
            return str(len(facts))
        assert parsed.field is not None
        info = types[parsed.fact].fields.get(parsed.field) if parsed.fact in types else None
        shown = findings._values(facts, parsed.field, info, parsed.view)
        if not shown:
            return parsed.fallback if parsed.fallback is not None else findings.NOT_RECORDED
        return shown

    return " ".join(findings.BRACES.sub(replace, text).split())


def reference_template(assembler: Any, text: str, each: bool) -> str:
    """`_Assembler.template` as it was: `_TEMPLATE.sub` with a function of each match."""

    def replace(match: re.Match[str]) -> str:
        fact_type, field = match.group(1), match.group(2)
        if fact_type == findings.SETTING:
            return match.group(0)
        of_type = assembler.pool.by_type.get(fact_type, ())
        values = sorted({str(f[field]) for f in of_type if field in f})
        if not values:
            return decision._EMPTY
        if field == "segment":
            order = decision._segment_order(assembler.all_facts)
            named = sorted(values, key=order) if each else format_segments(values).split(", ")
            return choice_text(list(named), "and")
        return ", ".join(v.replace("_", " ") for v in values)

    return " ".join(decision._TEMPLATE.sub(replace, text).split())


_TYPES = [*sorted({str(f["t"]) for f in FACTS}), "unknown_type", "setting", "documents"]
_FIELDS = sorted({k for f in FACTS for k in f} | {"nothing", "date"})
_name = st.sampled_from(_TYPES)
_field = st.sampled_from(_FIELDS)
_placeholder = st.one_of(
    st.builds(lambda t, f: f"{{{t}.{f}}}", _name, _field),
    st.builds(lambda t, f, v: f"{{{t}[{f}={v}].{f}}}", _name, _field, st.sampled_from(["a", "L4"])),
    st.builds(lambda t: f"{{#{t}}}", _name),
    st.builds(lambda t, f, b: f"{{{t}.{f}|{b}}}", _name, _field, st.sampled_from(["", "none"])),
    st.builds(lambda t, f: f"{{{t}.{f}.before_request}}", _name, _field),
    st.just("{documents}"),
    st.just("{setting.months}"),
    st.just("{}"),
    st.just("{Bad Placeholder}"),
    st.just("{unclosed"),
    st.just("}{"),
)
_text = st.text(alphabet=" \n\tab{}.,", max_size=6)
TEMPLATES = st.lists(st.one_of(_placeholder, _text), max_size=8).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATES, st.integers(0, len(FACTS)))
def test_a_finding_reads_as_the_regex_filled_it(text: str, cut: int) -> None:
    pool = findings.Pool(FACTS)
    read = FACTS[:cut]
    assert findings.fill(text, read, pool, TYPES) == reference_fill(text, read, pool, TYPES)


@functools.cache
def _assembler() -> Any:
    program = api.program_for(POLICY)
    trace = Engine.get().run(program, FACTS)
    return decision._Assembler(decision._plan(POLICY, program), trace, FACTS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATES, st.booleans())
def test_a_clause_text_reads_as_the_regex_filled_it(text: str, each: bool) -> None:
    assembler = _assembler()
    assert assembler.template(text, each=each) == reference_template(assembler, text, each)
