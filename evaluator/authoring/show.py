"""A policy as the criteria document a clinical reviewer reads, in Markdown or plain text."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from evaluator.authoring.coverage import reachable_statuses
from evaluator.decide.findings import fill_settings
from evaluator.language.conditions import Condition, Threshold
from evaluator.language.describe import (
    choice_text,
    outline,
    threshold_text,
    value_text,
    where_text,
    with_article,
    words,
)
from evaluator.language.model import Clause, DeriveRule, FromField, Policy, Reference, Status

Settings = Mapping[str, Threshold]

__all__ = ["WIDTH", "policy_markdown", "policy_text"]

WIDTH = 100
_TEMPLATE = re.compile(r"\{([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\}")
_READING = (
    "How to read these criteria. A threshold states its edge: 'at least' and 'at most' include "
    "the value named, 'more than' and 'less than' exclude it. Each clause ends met, not met, not "
    "documented or not applicable. Any clause not met makes the request not medically necessary; "
    "otherwise any clause not documented makes the documentation insufficient (the request is "
    "pended for the documents listed); otherwise the request is medically necessary. An adverse "
    "result is a recommendation for physician review, never by itself a denial."
)
# What a requirement the records leave undecided makes of the clause (`undocumented`).
_UNDOCUMENTED = {
    Status.NOT_DOCUMENTED: "not documented; the request is pended for the documents requested.",
    Status.NOT_MET: "not met, because this criterion must be demonstrated in the records.",
}
# A space after a digit joins a number to its unit: "50 %" must not break across lines.
_NUMBER_SPACE = re.compile(r"(?<=[0-9]) ")
_JOINED = "\x00"


# --- the document as blocks, rendered twice ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True, slots=True)
class _Para:
    text: str
    label: str | None = None


@dataclass(frozen=True, slots=True)
class _List:
    """A nested list: each line is `"  " * depth + "- " + text`; `label` introduces it."""

    lines: tuple[str, ...]
    label: str | None = None


@dataclass(frozen=True, slots=True)
class _Fields:
    """Short labelled values, one a line."""

    items: tuple[tuple[str, str], ...]


_Block = _Heading | _Para | _List | _Fields


def _template(text: str, markdown: bool, settings: Settings) -> str:
    # `{setting.name}` is the (effective) policy's value; `{type.field}` is filled in per case,
    # so a published criterion shows what goes there
    text = fill_settings(text, settings)
    left, right = ("\\[", "\\]") if markdown else ("[", "]")

    def replace(match: re.Match[str]) -> str:
        fact, field = words(match.group(1)), match.group(2)
        name = f"{fact}s" if field == "segment" else f"{fact} {words(field)}s"
        return f"{left}{name}{right}"

    return " ".join(_TEMPLATE.sub(replace, text).split())


def _condition(label: str, condition: Condition | None) -> Iterator[_Block]:
    if condition is not None:
        yield _List(tuple(outline(condition, aliases={})), label)


def _clause(
    clause: Clause, markdown: bool, reachable: frozenset[Status], settings: Settings
) -> Iterator[_Block]:
    yield _Heading(4, f"{clause.id}: {fill_settings(clause.title, settings)}")
    if clause.origin:
        yield _Para(f"shared clause `{clause.origin}` (see Shared modules)", "From")
    if clause.description:
        yield _Para(fill_settings(clause.description, settings))
    yield from _condition("Applies when", clause.applies_when)
    yield from _condition("Waived (not applicable) when", clause.waived_by)
    yield from _condition("Requires", clause.requires)
    # A clause that can never be undecided (a `demonstrated` one) needs no such line.
    if clause.undocumented is not Status.NOT_DOCUMENTED or Status.NOT_DOCUMENTED in reachable:
        yield _Para(_UNDOCUMENTED[clause.undocumented], "If the records cannot decide it")
    if clause.documentation:
        yield _List(
            tuple(f"- {_template(d, markdown, settings)}" for d in clause.documentation),
            "Documents requested when a missing document could change the status",
        )
    yield _Para(_template(clause.recommendation, markdown, settings), "Recommendation")
    yield _Para(", ".join(f"[{n}]" for n in clause.cites), "References")


def _setting_lines(policy: Policy) -> list[str]:
    lines = []
    for name, setting in policy.settings.items():
        shown = threshold_text(Threshold(setting.value, setting.unit))
        note = policy.setting_notes.get(name)
        lines.append(f"- `{name}`: {shown}" + (f". {note}" if note else ""))
    if policy.below_threshold_words:
        lines.append(
            "- Words that place a measurement below every threshold: "
            + ", ".join(policy.below_threshold_words)
            + " (any other word in place of a number leaves the measurement not documented)"
        )
    return lines


def _value_set_lines(policy: Policy) -> list[str]:
    """One line per value set the criteria use: its name, purpose, unit and codes."""
    lines = []
    for name, value_set in sorted(policy.value_sets.items()):
        unit = f" Compared in {value_set.unit}." if value_set.unit else ""
        oid = f" (VSAC {value_set.oid})" if value_set.oid else ""
        codes = ", ".join(value_set.codes)
        lines.append(f"- `{name}`{oid}: {value_set.purpose}{unit} Codes: {codes}")
    return lines


def _rule(rule: DeriveRule) -> list[str]:
    aliases = {b.alias: b.fact for b in rule.bindings}
    head = f"- `{rule.id}`" + (f" (from module `{rule.origin}`)" if rule.origin else "")
    head += f": {rule.description}" if rule.description else ""
    lines = [head]
    if rule.bindings:
        lines.append(
            "  - for each "
            + " and each ".join(
                f"{words(b.fact)}{where_text(b.where, aliases)}" for b in rule.bindings
            )
            + (", when:" if rule.when else "")
        )
    if rule.when is not None:
        lines.extend("    " + line for line in outline(rule.when, aliases=aliases))
    sets = []
    for name, value in rule.values.items():
        if isinstance(value, FromField):
            bound = f"the {words(aliases.get(value.alias, value.alias))}"
            source = bound if value.field == name else f"the {words(value.field)} of {bound}"
            sets.append(f"{words(name)} from {source}")
        else:
            sets.append(f"{words(name)}: {value_text(value)}")
    gives = f"  - gives {with_article(words(rule.fact))}"
    lines.append(gives + (f" ({'; '.join(sets)})" if sets else ""))
    return lines


def _derived(policy: Policy) -> Iterator[_Block]:
    if not policy.rules:
        return
    yield _Heading(2, "Derived facts")
    yield _Para(
        "Facts the policy derives from the case facts; the clauses above refer to them by name."
    )
    declared = list(policy.derived)
    for name in declared + sorted({r.fact for r in policy.rules} - set(declared)):
        yield _Heading(3, words(name))
        derived = policy.derived.get(name)
        if derived is not None:
            yield _Para(derived.description)
            fields = ", ".join(f"{words(f)} ({kind})" for f, kind in derived.fields.items())
            if fields:
                yield _Para(fields, "Fields")
        lines = [line for rule in policy.rules if rule.fact == name for line in _rule(rule)]
        if lines:
            yield _List(tuple(lines), "Derived by")


def _alternative(policy: Policy, markdown: bool) -> Iterator[_Block]:
    alternative = policy.alternative
    if alternative is None:
        return
    yield _Heading(2, "Alternative")
    yield _Para(
        "When the request as submitted does not qualify, the narrower request the facts support "
        "is reported as a partial-approval candidate."
    )
    yield from _condition("Reported when", alternative.when)
    yield _Para(_template(alternative.summary, markdown, policy.settings), "Summary")
    yield _List(
        tuple(f"- {words(x.procedure)} at the {words(x.segments)}s" for x in alternative.lines),
        "Service lines",
    )


def _reference(ref: Reference, markdown: bool) -> str:
    text = f"- [{ref.id}] {' '.join(ref.citation.split())}"
    if ref.doi:
        doi = f"doi:{ref.doi}"
        text += f" [{doi}](https://doi.org/{ref.doi})" if markdown else f" {doi}"
    if ref.url:
        text += f" <{ref.url}>" if markdown else f" {ref.url}"
    if ref.note:
        text += f" Relied on for: {ref.note}"
    return text


def _blocks(policy: Policy, markdown: bool) -> Iterator[_Block]:
    yield _Heading(1, policy.title)
    until = policy.effective_until.isoformat() if policy.effective_until else "further notice"
    yield _Fields(
        (
            ("Policy", f"`{policy.ref}`"),
            ("Status", policy.status.value),
            ("In force", f"from {policy.effective_from.isoformat()} until {until}"),
            *((("Replaces", f"`{policy.id}@{policy.supersedes}`"),) if policy.supersedes else ()),
            *(
                (("Plan", f"`{policy.plan.id}`: {policy.plan.title} (overlay)"),)
                if policy.plan
                else ()
            ),
        )
    )
    if policy.description:
        yield _Para(policy.description)
    yield _Para(_READING)
    yield _Heading(2, "Procedures")
    yield _List(
        tuple(
            f"- {words(p.procedure)}"
            + (f" (CPT {choice_text(list(p.cpt), 'and')})" if p.cpt else "")
            for p in policy.procedures
        )
    )
    if policy.reads:
        kinds = choice_text([words(k) for k in policy.reads], "and")
        yield _Para(
            f"The lines it governs are judged with the facts of the {kinds} lines of the same "
            "request, which describe the same operation."
        )
    yield from _plan(policy)
    settings = _setting_lines(policy)
    if settings:
        yield _Heading(2, "Settings")
        yield _List(tuple(settings))
    if policy.imports:
        yield _Heading(2, "Shared modules")
        yield _Para(
            "The policy imports these modules, each pinned by version; their settings, value"
            " sets, derived facts and clauses are shown below as part of the policy."
        )
        yield _List(
            tuple(
                f"- `{m.ref}`: {m.title} (_shared/{m.module}/{m.version}.yaml)"
                for m in policy.imports
            )
        )
    value_sets = _value_set_lines(policy)
    if value_sets:
        yield _Heading(2, "Value sets")
        yield _List(tuple(value_sets))
    yield _Heading(2, "Criteria")
    reachable = reachable_statuses(policy)
    for section in policy.sections:
        yield _Heading(3, section.title)
        if section.description:
            yield _Para(section.description)
        for clause in section.clauses:
            yield from _clause(clause, markdown, reachable[clause.id], policy.settings)
    yield from _derived(policy)
    yield from _alternative(policy, markdown)
    yield from _changelog(policy)
    yield _Heading(2, "References")
    yield _List(tuple(_reference(r, markdown) for r in policy.references))


def _plan(policy: Policy) -> Iterator[_Block]:
    plan = policy.plan
    if plan is None:
        return
    yield _Heading(2, "Plan overlay")
    business = words(plan.line_of_business)
    yield _Para(
        f"These criteria are `{policy.ref}` as the plan `{plan.id}` ({business}) applies them;"
        " the settings and waivers below differ from the base policy, and the"
        " criteria that follow are the effective ones."
    )
    lines = [
        f"- setting `{name}`: {threshold_text(Threshold(old.value, old.unit))} in the base"
        f" policy, {threshold_text(Threshold(new.value, new.unit))} under the plan"
        for name, old, new in plan.settings
    ]
    lines += [
        f"- {cid}: the plan replaces the waiver" + (f". {' '.join(why.split())}" if why else "")
        for cid, why in plan.clauses
    ]
    yield _List(tuple(lines))


def _changelog(policy: Policy) -> Iterator[_Block]:
    if not policy.changelog:
        return
    yield _Heading(2, "Changes in this version")
    yield _List(
        tuple(
            f"- {' '.join(c.change.split())} Why: {' '.join(c.reason.split())}"
            + (f" [{', '.join(str(n) for n in c.cites)}]" if c.cites else "")
            for c in policy.changelog
        )
    )


# --- renderers -----------------------------------------------------------------------------------


def _markdown(block: _Block) -> str:
    if isinstance(block, _Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, _Fields):
        return "\n".join(f"- **{label}:** {text}" for label, text in block.items)
    label = f"**{block.label}:**" if block.label else ""
    if isinstance(block, _Para):
        return f"{label} {block.text}" if label else block.text
    body = "\n".join(block.lines)
    return f"{label}\n\n{body}" if label else body


_UNDERLINES = {1: "=", 2: "-", 3: "~"}


def _wrap(text: str, first: str, rest: str) -> str:
    filled = textwrap.fill(
        _NUMBER_SPACE.sub(_JOINED, text),
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
        break_long_words=False,
    )
    return filled.replace(_JOINED, " ")


def _plain(block: _Block) -> str:
    if isinstance(block, _Heading):
        mark = _UNDERLINES.get(block.level)
        return f"{block.text}\n{mark * len(block.text)}" if mark else block.text
    if isinstance(block, _Fields):
        width = max(len(label) for label, _ in block.items) + 2
        return "\n".join(
            f"{label + ':':<{width}}{text.replace('`', '')}" for label, text in block.items
        )
    if isinstance(block, _Para):
        text = block.text.replace("`", "")
        return _wrap(
            f"{block.label}: {text}" if block.label else text, "", "  " * bool(block.label)
        )
    lines = [f"{block.label}:"] if block.label else []
    shift = "  " if block.label else ""
    for line in block.lines:
        body = line.lstrip(" ")
        indent = shift + line[: len(line) - len(body)]
        lines.append(_wrap(body.replace("`", "")[2:], indent + "- ", indent + "  "))
    return "\n".join(lines)


def policy_markdown(policy: Policy) -> str:
    """Return the policy as a Markdown criteria document (what a plan publishes)."""
    return "\n\n".join(_markdown(b) for b in _blocks(policy, markdown=True)) + "\n"


def policy_text(policy: Policy) -> str:
    """Return the policy as a plain-text criteria document, wrapped at WIDTH columns."""
    return "\n\n".join(_plain(b) for b in _blocks(policy, markdown=False)) + "\n"
