"""Plain-language text for conditions: used in evidence, renderings and diffs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

from evaluator.language.conditions import (
    All,
    AnyOf,
    ClauseIs,
    Compare,
    Condition,
    Count,
    Demonstrated,
    Distinct,
    Every,
    Exists,
    Latest,
    NOf,
    Not,
    Op,
    PolicyIs,
    Some,
    Threshold,
    Truth,
    Undecided,
    WhereEq,
    WhereItem,
    WhereOneOf,
    WhereSameAs,
    written,
)
from evaluator.read import schemas

# `aliases` below maps a name bound by `every`/`some`/`count` (or a rule's `for_each`) to its
# fact type, so that text can say "the fused segment" where the policy says `seg`. Without it
# (evidence, which shows the bound values beside the text) the name itself is used.
Aliases = Mapping[str, str]

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
    Op.WITHIN: "within",
    Op.BEFORE: "at least",
    Op.AFTER: "at least",
    Op.APART: "at least",
    Op.SAME_SIDE_AS: "is on the same side as",
}
# How a time comparison ends: `within 90 days before the request`, `at least 1 day after ...`.
_TIME_TAIL = {
    Op.WITHIN: "before",
    Op.BEFORE: "before",
    Op.AFTER: "after",
    Op.APART: "before or after",
}
# The edge is in the words ("at least" counts it, "more than" does not); the unit follows.
_UNIT_TEXT = {"deg": " degrees", "%": " %", "count": "", "grade": "/5"}
_SINGULAR = {"days": " day", "weeks": " week", "months": " month"}
# Words a clinical reader expects capitalised: acronyms, eponyms, spinal levels.
_CAPITALISED = {
    "si": "SI",
    "mri": "MRI",
    "ct": "CT",
    "sva": "SVA",
    "hba1c": "HbA1c",
    "cpt": "CPT",
    "faber": "FABER",
    "fortin": "Fortin",
    "gaenslen": "Gaenslen",
    "cobb": "Cobb",
}
_LEVEL = re.compile(r"^[ctls][0-9]{1,2}$")
# Field names that read badly as words; anything else is its name in words.
_FIELD_LABELS = {
    "cobb": "Cobb angle",
    "sva": "sagittal vertical axis (SVA)",
    "pelvic_incidence": "pelvic incidence (PI)",
    "lumbar_lordosis": "lumbar lordosis (LL)",
    "pelvic_tilt": "pelvic tilt (PT)",
    "facetectomy_pct": "facet resection",
    "upper": "upper level",
    "lower": "lower level",
}


# Yes/no fields a reader expects in words: `performed no` reads "not performed".
_BOOLEAN_WORDS = {"performed": ("performed", "not performed")}


def boolean_text(field: str, value: bool) -> str | None:
    """Return a yes/no field as a phrase (`not performed`), or None to say `field yes/no`."""
    phrases = _BOOLEAN_WORDS.get(field)
    return None if phrases is None else phrases[0 if value else 1]


def words(name: str) -> str:
    """Return an identifier as words: `fused_segment` -> `fused segment`, `mri` -> `MRI`."""
    return " ".join(
        part.upper() if _LEVEL.match(part) else _CAPITALISED.get(part, part)
        for part in name.split("_")
    )


@cache
def _schema_labels() -> Mapping[str, str]:
    # `x-label` in the fact dictionary: a coded quantity's fields (value_mm, value_kg_m2) all
    # read "value", since the threshold beside them states the unit
    defs = schemas.load_schema("facts")["$defs"]
    return {
        f: spec["x-label"]
        for d in defs.values()
        for f, spec in d["properties"].items()
        if "x-label" in spec
    }


def field_label(name: str) -> str:
    """Return the name a reader knows a fact field by: `cobb` -> `Cobb angle`."""
    return _FIELD_LABELS.get(name) or _schema_labels().get(name) or words(name)


def fact_label(name: str) -> str:
    """Return the name a reader knows a fact type by: `red_flag` -> `red flag`."""
    # evidence lines start with the fact type in words (tests/test_conditions.py relies on it)
    return words(name)


def value_text(value: object) -> str:
    """Return a literal as a reader writes it: yes/no, 8 for 8.0, words for identifiers."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if not isinstance(value, str):
        return str(value)
    text = words(value)
    # `status is not not done` misreads; quoted, the value is plainly a value
    return f'"{text}"' if text.split(" ")[0] in ("not", "no") else text


def choice_text(values: tuple[object, ...] | list[object], conjunction: str = "or") -> str:
    """Return values as a list a reader writes: `a`, `a or b`, `a, b or c`."""
    shown = [value_text(v) for v in values]
    if len(shown) <= 1:
        return "".join(shown)
    return f"{', '.join(shown[:-1])} {conjunction} {shown[-1]}"


def unit_text(value: float, unit: str) -> str:
    """Return the unit as it follows a number (` months`, ` month` after 1, ` %`, `/5`)."""
    if value == 1 and unit in _SINGULAR:
        return _SINGULAR[unit]
    return _UNIT_TEXT.get(unit, f" {unit}")


def threshold_text(threshold: Threshold) -> str:
    """Return a threshold with its unit (`3 months`, `30 degrees`, `3/5`) and its setting."""
    text = f"{value_text(threshold.value)}{unit_text(threshold.value, threshold.unit)}"
    return f"{text}{_SETTING.format(threshold.setting)}" if threshold.setting else text


def _alias_text(alias: str, aliases: Aliases | None) -> str:
    if aliases and alias in aliases:
        return f"the {fact_label(aliases[alias])}"
    return alias


def _other_text(alias: str, fact: str, aliases: Aliases | None) -> str:
    """Name the second fact of a pairwise comparison; `another X (alias)` when both facts are of
    one type, so `the X ... the X` does not hide which is which."""
    if aliases and alias in aliases and aliases.get(fact, fact) == aliases[alias]:
        return f"another {fact_label(aliases[alias])} ({alias})"
    return _alias_text(alias, aliases)


def where_text(items: tuple[WhereItem, ...], aliases: Aliases | None = None) -> str:
    """Return the filters on a fact as a phrase to follow its name (with a leading space).

    Joins read "at the same segment as the fused segment"; the other filters follow in
    parentheses: "(modality: MRI, CT or CT myelogram)".
    """
    joins, filters = [], []
    for item in items:
        if isinstance(item, WhereSameAs):
            other = _alias_text(item.alias, aliases)
            if item.field == item.other:
                joins.append(f"at the same {field_label(item.field)} as {other}")
            else:
                joins.append(
                    f"with {field_label(item.field)} equal to the {field_label(item.other)}"
                    f" of {other}"
                )
        elif isinstance(item, WhereOneOf) and item.value_set is not None:
            filters.append(f"{field_label(item.field)} in value set {item.value_set}")
        elif isinstance(item, WhereOneOf):
            filters.append(f"{field_label(item.field)}: {choice_text(item.values)}")
        elif isinstance(item, WhereEq):
            phrase = boolean_text(item.field, item.value) if isinstance(item.value, bool) else None
            filters.append(phrase or f"{field_label(item.field)}: {value_text(item.value)}")
    text = "".join(f" {join}" for join in joins)
    return text + (f" ({'; '.join(filters)})" if filters else "")


def _subject(fact: str, where: tuple[WhereItem, ...], aliases: Aliases | None) -> str:
    noun = _alias_text(fact, aliases) if aliases and fact in aliases else fact_label(fact)
    return noun + where_text(where, aliases)


def with_article(noun: str) -> str:
    """Return `noun` after `a` or `an`: `an unstable segment`."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _compare_text(condition: Compare, aliases: Aliases | None) -> str:
    field = field_label(condition.field)
    if condition.minus:
        field += f" minus {field_label(condition.minus)}"
    op, operand = _OP_WORDS[condition.op], condition.operand
    if condition.op in _TIME_TAIL and isinstance(operand, Threshold):
        other = date_text(condition.of or "request", condition.fact, aliases)
        tail = _TIME_TAIL[condition.op]
        relation = f"is {op} {threshold_text(operand)} {tail} {other}"
    elif condition.op is Op.SAME_SIDE_AS:
        alias, _, other_field = str(operand).partition(".")
        relation = (
            f"{op} the {field_label(other_field)} of {_other_text(alias, condition.fact, aliases)}"
            " (bilateral counts as both sides)"
        )
    elif isinstance(operand, Threshold):
        # "at least" alone reads as a sentence only with a verb in front
        relation = f"is {op} {threshold_text(operand)}"
        if condition.measure == "time_before_request":
            relation += " before the request"
    elif isinstance(operand, tuple):
        relation = f"{op} {choice_text(operand)}"
    elif operand is None:
        relation = op
    else:
        relation = f"{op} {value_text(operand)}"
    text = f"{_subject(condition.fact, condition.where, aliases)}: {field} {relation}"
    if condition.if_absent is not Truth.UNKNOWN:
        outcome = "yes" if condition.if_absent is Truth.TRUE else "no"
        text += _IF_ABSENT.format(outcome)
    return text


def date_text(of: str, fact: str, aliases: Aliases | None = None) -> str:
    """Return the second date of a time comparison in words: `the request`, `the date of
    service`, `its end`, `the date of the diagnostic block`."""
    if of == "request":
        return "the request"
    if of == "service":
        return "the date of service"
    alias, _, field = of.partition(".")
    if alias == fact:
        return f"its {field_label(field)}"
    return f"the {field_label(field)} of {_other_text(alias, fact, aliases)}"


# Author's notes in a condition's text (which setting, what absence counts as); a reader of a
# case's evidence needs neither, so `plain` drops them.
_SETTING = " (setting {})"
_IF_ABSENT = " (counts as {} when there is none)"
_NOTES = re.compile(
    "|".join(re.escape(n).replace(r"\{\}", "[a-z0-9_]+") for n in (_SETTING, _IF_ABSENT))
)


def plain(text: str) -> str:
    """Return condition text without the author's notes: `... at least 3 mm`."""
    return _NOTES.sub("", text)


def leaf_text(condition: Condition, *, aliases: Aliases | None = None) -> str:
    """Return one line for a leaf (comparison, existence or clause reference).

    A compound condition gets its heading line (see `head_text`).
    """
    if isinstance(condition, Compare):
        return _compare_text(condition, aliases)
    if isinstance(condition, Exists):
        noun = _subject(condition.fact, condition.where, aliases)
        return f"there is {with_article(noun)}"
    if isinstance(condition, ClauseIs):
        return f"clause {condition.clause} is {words(condition.status)}"
    if isinstance(condition, PolicyIs):
        return f"policy {condition.policy} finds it {words(condition.determination)}"
    if isinstance(condition, Distinct):
        kinds = {(aliases or {}).get(a, "") for a in condition.aliases}
        listed = ", ".join(condition.aliases[:-1]) + f" and {condition.aliases[-1]}"
        if len(kinds) == 1 and "" not in kinds:
            return f"{listed} are different {fact_label(kinds.pop())}s"
        return f"{listed} are different facts"
    if isinstance(condition, Undecided):
        return "the latest ones disagree, or their order is not documented (not documented)"
    return head_text(condition, aliases=aliases)


def _binding_text(
    fact: str,
    where: tuple[WhereItem, ...],
    alias: str,
    aliases: Aliases | None,
    plural: bool = False,
) -> str:
    noun = fact_label(fact) + ("s" if plural else "")
    # with aliases the children say "the fused segment"; without, they say `seg`
    named = "" if aliases is not None else f" ({alias})"
    return f"{noun}{where_text(where, aliases)}{named}"


def head_text(condition: Condition, *, aliases: Aliases | None = None) -> str:
    """Return the heading line of a compound condition (ending in `:`).

    A leaf gets its own line (see `leaf_text`).
    """
    if isinstance(condition, All):
        return "all of:"
    if isinstance(condition, AnyOf):
        return "any of:"
    if isinstance(condition, NOf):
        return f"at least {condition.at_least} of:"
    if isinstance(condition, Not):
        return "none of:"
    if isinstance(condition, Demonstrated):
        # Not "not documented counts as no": since stop 23 a value the records state but leave
        # unsettled (conflicting sources, a possibly late one: x-disputed) keeps its unknown.
        return "demonstrated in the records (a value no record states counts as no):"
    if isinstance(condition, Every):
        b = condition.binding
        text = f"for every {_binding_text(b.fact, b.where, b.alias, aliases)}"
        if condition.if_empty is not Truth.UNKNOWN:  # the default needs no words: not documented
            outcome = "yes" if condition.if_empty is Truth.TRUE else "no"
            text += f" (counts as {outcome} when there is none)"
        return text + ":"
    if isinstance(condition, Some):
        b = condition.binding
        return f"for at least one {_binding_text(b.fact, b.where, b.alias, aliases)}:"
    if isinstance(condition, Count):
        b = condition.binding
        noun = _binding_text(b.fact, b.where, b.alias, aliases, plural=condition.at_least != 1)
        return f"at least {condition.at_least} {noun} such that:"
    if isinstance(condition, Latest):
        b = condition.binding
        noun = _binding_text(b.fact, b.where, b.alias, aliases, plural=True)
        return (
            f"the latest {noun} by {field_label(condition.by)} (a later one supersedes an "
            "earlier one; ones of the same day that disagree are not documented):"
        )
    return leaf_text(condition, aliases=aliases)


def _note(condition: Condition) -> str:
    return f" (note: {condition.note})" if condition.note else ""


def outline(condition: Condition, indent: int = 0, *, aliases: Aliases | None = None) -> list[str]:
    """Return the condition as a nested list, one `- ` line per node, two spaces per level.

    With `aliases` (possibly empty), bound facts are named by their type ("the fused segment").
    """
    if aliases is not None and isinstance(condition, Every | Some | Count | Latest):
        aliases = {**aliases, condition.binding.alias: condition.binding.fact}
    lines = ["  " * indent + "- " + head_text(condition, aliases=aliases) + _note(condition)]
    for child in written(condition):
        lines.extend(outline(child, indent + 1, aliases=aliases))
    return lines
