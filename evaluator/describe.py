"""Plain-language text for conditions: used in evidence, renderings and diffs."""

from __future__ import annotations

from .conditions import (
    All,
    AnyOf,
    ClauseIs,
    Compare,
    Condition,
    Count,
    Demonstrated,
    Every,
    Exists,
    Not,
    NOf,
    Op,
    Some,
    Threshold,
    WhereEq,
    WhereItem,
    WhereOneOf,
    WhereSameAs,
)

_OP_WORDS = {
    Op.AT_LEAST: "at least",
    Op.MORE_THAN: "more than",
    Op.AT_MOST: "at most",
    Op.LESS_THAN: "less than",
    Op.EQUALS: "is",
    Op.NOT_EQUALS: "is not",
    Op.ONE_OF: "is one of",
    Op.NOT_ONE_OF: "is none of",
    Op.ABOVE: "is above",
    Op.AT_OR_ABOVE: "is at or above",
    Op.BELOW: "is below",
    Op.AT_OR_BELOW: "is at or below",
    Op.DOCUMENTED: "is documented",
}
_UNIT_TEXT = {"deg": " degrees", "%": " %", "count": "", "grade": "/5"}


def words(name: str) -> str:
    """Return an identifier as words: `fused_segment` -> `fused segment`."""
    return name.replace("_", " ")


def value_text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return words(str(value)) if isinstance(value, str) else str(value)


def threshold_text(threshold: Threshold) -> str:
    unit = _UNIT_TEXT.get(threshold.unit, f" {threshold.unit}")
    text = f"{value_text(threshold.value)}{unit}"
    return f"{text} (setting {threshold.setting})" if threshold.setting else text


def where_text(items: tuple[WhereItem, ...]) -> str:
    parts = []
    for item in items:
        if isinstance(item, WhereEq):
            parts.append(f"{words(item.field)} {value_text(item.value)}")
        elif isinstance(item, WhereOneOf):
            parts.append(f"{words(item.field)} {' or '.join(value_text(v) for v in item.values)}")
        elif isinstance(item, WhereSameAs):
            parts.append(f"at the same {words(item.field)} as {item.alias}")
    return f" ({', '.join(parts)})" if parts else ""


def leaf_text(condition: Condition) -> str:
    """Return one line for a leaf (comparison, existence or clause reference)."""
    if isinstance(condition, Compare):
        subject = f"{words(condition.fact)}{where_text(condition.where)}: {words(condition.field)}"
        if condition.minus:
            subject += f" minus {words(condition.minus)}"
        if condition.measure == "time_before_request":
            subject += ", time before the request,"
        op = _OP_WORDS[condition.op]
        operand = condition.operand
        if isinstance(operand, Threshold):
            return f"{subject} {op} {threshold_text(operand)}"
        if isinstance(operand, tuple):
            return f"{subject} {op} {', '.join(value_text(v) for v in operand)}"
        if operand is None:
            return f"{subject} {op}"
        return f"{subject} {op} {value_text(operand)}"
    if isinstance(condition, Exists):
        noun = words(condition.fact)
        article = "an" if noun[0] in "aeiou" else "a"
        return f"{article} {noun}{where_text(condition.where)} is documented"
    if isinstance(condition, ClauseIs):
        return f"clause {condition.clause} is {words(condition.status)}"
    return head_text(condition)


def head_text(condition: Condition) -> str:
    """Return the heading line of a compound condition."""
    if isinstance(condition, All):
        return "all of:"
    if isinstance(condition, AnyOf):
        return "any of:"
    if isinstance(condition, NOf):
        return f"at least {condition.at_least} of:"
    if isinstance(condition, Not):
        return "not:"
    if isinstance(condition, Demonstrated):
        return "demonstrated (undocumented counts as no):"
    if isinstance(condition, Every):
        b = condition.binding
        return f"for every {words(b.fact)}{where_text(b.where)} ({b.alias}):"
    if isinstance(condition, Some):
        b = condition.binding
        return f"for some {words(b.fact)}{where_text(b.where)} ({b.alias}):"
    if isinstance(condition, Count):
        b = condition.binding
        return f"at least {condition.at_least} of the {words(b.fact)}s{where_text(b.where)} ({b.alias}):"
    return leaf_text(condition)


def outline(condition: Condition, indent: int = 0) -> list[str]:
    """Return the condition as indented lines, one per node."""
    from .conditions import children

    lines = ["  " * indent + "- " + head_text(condition)]
    for child in children(condition):
        lines.extend(outline(child, indent + 1))
    return lines
