"""The alternative request: the narrower scope a policy derived, built as a request of its own.

The alternative is evaluated, not assumed: the requested lines it modifies are rewritten (their
segments replaced by the alternative's, the parts the policy drops left out) into a new case
that the same policy judges in the same engine. Lines the alternative does not name are not
part of it: other policies judge them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from evaluator.case.cases import Case, case_from_data
from evaluator.case.facts import LINE_PARTS
from evaluator.decide.decision import AlternativeScope
from evaluator.language.model import LevelCodes, Policy


def request(case: Case, policy: Policy, scope: AlternativeScope) -> Case:
    """Return the alternative request as a case: the requested lines `scope` modifies, each
    with the alternative's segments in place of the replaced ones.

    Raises CaseError or SchemaError only on a bug (the parts come from a valid case).
    """
    assert policy.alternative is not None
    # New dicts only for what changes (the request and the lines it keeps): `case_from_data`
    # makes the one deep copy, so the case's own data is never changed.
    requested = case.data["request"]
    by_id = {line["id"]: line for line in requested["lines"]}
    kept: list[dict[str, Any]] = []
    for line_id in dict.fromkeys(x.line for x in scope.lines):
        line = dict(by_id[line_id])
        for spec in policy.alternative.lines:
            line.pop(LINE_PARTS[spec.replaces], None)
            for dropped in spec.drops:
                line.pop(LINE_PARTS.get(dropped, dropped), None)
        for spec, alt in _pairs(policy, scope, line_id):
            line[LINE_PARTS[spec.replaces]] = list(alt.constructs)
        kept.append(line)
    data = {**case.data, "request": {**requested, "lines": kept}}
    return case_from_data(data, f"{case.path}#alternative")


def _pairs(policy: Policy, scope: AlternativeScope, line_id: str) -> list[tuple[Any, Any]]:
    assert policy.alternative is not None
    specs = {spec.procedure: spec for spec in policy.alternative.lines}
    return [(specs[alt.procedure], alt) for alt in scope.lines if alt.line == line_id]


def with_codes(case: Case, policy: Policy, scope: AlternativeScope) -> AlternativeScope:
    """Return the scope with each line's CPT codes for its number of segments, by the codes
    of the requested line's technique (the policy's table, by level count)."""
    assert policy.alternative is not None
    requested = {line.id: line.cpts for line in case.lines}
    lines = []
    for alt in scope.lines:
        spec = next(s for s in policy.alternative.lines if s.procedure == alt.procedure)
        table = spec.codes or next(
            (p.codes for p in policy.procedures if p.procedure == alt.procedure), ()
        )
        rule = _technique(table, requested.get(alt.line, ()))
        cpt = rule.for_levels(len(alt.segments)) if rule else ()
        lines.append(dataclasses.replace(alt, cpt=cpt))
    return AlternativeScope(scope.summary, tuple(lines), scope.decision)


def _technique(table: tuple[LevelCodes, ...], billed: tuple[str, ...]) -> LevelCodes | None:
    for rule in table:
        if rule.first in billed or (rule.additional and rule.additional in billed):
            return rule
    return table[0] if table else None
