"""The lint rule table: every code with its severity and description, one function per check."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from evaluator.api import program_for
from evaluator.authoring.coverage import reachable_statuses
from evaluator.authoring.lint_ranges import Leaf, Scope, always_any, groups, never_all
from evaluator.decide import findings
from evaluator.errors import PolicyError
from evaluator.language.conditions import (
    ClauseIs,
    Compare,
    Condition,
    Count,
    Demonstrated,
    Distinct,
    Every,
    Exists,
    Not,
    Op,
    Some,
    Threshold,
    Truth,
    WhereItem,
    WhereSameAs,
    children,
    walk,
)
from evaluator.language.dictionary import FactType
from evaluator.language.model import Lifecycle, Policy, Status
from evaluator.language.policies import (
    overlap_problem,
    policy_references,
    reference_cycles,
    window_gaps,
    window_overlaps,
)
from evaluator.read import schemas
from evaluator.read.source import make_pointer

_NONE = FactType("", many=False, fields={})


class Severity(StrEnum):
    """How much a finding matters: errors fail `necessity lint` (exit 1), the others do not."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Origin(StrEnum):
    """Which stage finds a code; INPUT means the file could not be read (exit 2)."""

    INPUT = "input"
    LOADER = "loader"
    COMPILER = "compiler"
    LINT = "lint"


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    severity: Severity
    description: str
    origin: Origin


@dataclass(frozen=True, slots=True)
class Hit:
    """What a check reports: a JSON pointer into the policy and a message; the table adds the
    code and the severity."""

    pointer: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class Context:
    """A policy and its fact dictionary (case facts plus the policy's derived types)."""

    policy: Policy
    types: Mapping[str, FactType]


PolicyCheck = Callable[[Context], Iterable[Hit]]
LibraryCheck = Callable[[Sequence[Policy]], Iterable[tuple[Policy, Hit]]]

RULES: dict[str, Rule] = {}
POLICY_CHECKS: dict[str, PolicyCheck] = {}
LIBRARY_CHECKS: dict[str, LibraryCheck] = {}


def _register(code: str, severity: Severity, description: str, origin: Origin) -> None:
    if code in RULES:
        raise ValueError(f"lint code {code!r} is registered twice")
    RULES[code] = Rule(code, severity, description, origin)


def policy_rule(
    code: str, severity: Severity, description: str
) -> Callable[[PolicyCheck], PolicyCheck]:
    """Return a decorator that registers a check run once per policy."""

    def register(check: PolicyCheck) -> PolicyCheck:
        _register(code, severity, description, Origin.LINT)
        POLICY_CHECKS[code] = check
        return check

    return register


def library_rule(
    code: str, severity: Severity, description: str
) -> Callable[[LibraryCheck], LibraryCheck]:
    """Return a decorator that registers a check run once over all policies linted together."""

    def register(check: LibraryCheck) -> LibraryCheck:
        _register(code, severity, description, Origin.LINT)
        LIBRARY_CHECKS[code] = check
        return check

    return register


def rule_for(code: str) -> Rule:
    """Return the rule of a finding's code; an unlisted code is an unreadable-input error."""
    if code in RULES:
        return RULES[code]
    if code.startswith("schema_"):
        return Rule(code, Severity.ERROR, RULES["schema_*"].description, Origin.INPUT)
    return Rule(code, Severity.ERROR, "the file cannot be read", Origin.INPUT)


# --- codes found while reading, loading and compiling (not re-implemented here) ---------------

for _code, _text in (
    ("file_not_found", "a path given to lint does not exist"),
    ("no_policy_files", "a folder given to lint holds no policy files"),
    ("unreadable_file", "a file cannot be read or is not utf-8 text"),
    ("malformed_yaml", "a file is not well-formed YAML or JSON"),
    ("duplicate_key", "a mapping repeats a key"),
    ("empty_document", "a file holds no data"),
    ("schema_*", "a file violates schemas/policy.schema.json (one code per JSON Schema keyword)"),
):
    _register(_code, Severity.ERROR, _text, Origin.INPUT)
for _code, _text in (
    ("version_mismatch", "a policy's version differs from its file name"),
    ("id_mismatch", "a policy's id differs from its folder under policies/"),
    ("unknown_value_set", "an `in_value_set` names a set neither declared nor shared"),
    ("value_set_name_mismatch", "a shared value set's name differs from its file name"),
    ("quantity_needs_threshold", "a coded quantity is compared without a threshold"),
    ("unknown_module", "an import names a shared module or version that does not exist"),
    ("unknown_import", "a clause's `use` names a template its module does not have"),
    ("import_cycle", "shared modules import each other in a cycle"),
    ("unknown_plan_key", "a plan overlay names a setting or clause its base policy lacks"),
    ("unknown_plan_base", "a plan overlay names a base policy or version that is not there"),
    (
        "import_clash",
        "an id is defined both by the policy and by an imported module (or by two modules), or"
        " one module is imported at two versions",
    ),
):
    _register(_code, Severity.ERROR, _text, Origin.LOADER)
for _code, _text in (
    ("unknown_fact", "a condition names a fact type the case schema does not define"),
    ("unknown_field", "a condition, filter or derived value names a field its fact does not have"),
    ("unknown_setting", "a threshold names a setting the policy does not define"),
    ("unknown_value", "a value is not in the field's list of allowed values"),
    ("wrong_type", "a value has the wrong type for its field (text, number, true/false)"),
    ("unit_mismatch", "a threshold's unit does not fit the field's unit"),
    ("not_numeric", "a threshold compares a field that is not a number"),
    ("not_a_level", "a spinal-level comparison on a field that is not a level"),
    ("unknown_level", "a spinal level that does not exist"),
    ("date_needs_measure", "a threshold on a date without `measure: time_before_request`"),
    ("unknown_clause", "a condition refers to a clause id the policy does not define"),
    ("unknown_alias", "a `same_as` names an alias no enclosing binding defines"),
    ("alias_reused", "a binding reuses an alias already bound around it"),
    ("undeclared_fact", "a rule derives a fact type not declared under `facts`"),
    ("cycle", "derivation rules or clauses depend on themselves"),
    ("duplicate_clause", "two clauses share an id"),
    ("unknown_reference", "a clause cites a reference number the policy does not define"),
    ("impossible_n_of", "an N-of-M asks for more parts than it has"),
    ("n_of_too_large", "an N-of-M expands to too many combinations for the engine"),
    ("not_segments", "an alternative line names a fact type without a `segment` or `line` field"),
    ("nested_count", "a `count` inside every/some/count (the engine cannot count per element)"),
    ("engine_limit", "the compiled policy exceeds a durable_rules limit (rules, joins, values)"),
    ("not_a_date", "a time comparison (within, before, after, apart) on a field not a date"),
    ("not_a_side", "a `same_side_as` on a field whose values are not left, right, bilateral"),
    ("unbound_time", "the time between two facts where the compared fact is not bound"),
    ("optional_join", "a `same_as` reads a field its bound fact need not carry (compile/joins.py)"),
    ("disputed_latest", "a `latest` whose `where` tests a field the records may dispute"),
):
    _register(_code, Severity.ERROR, _text, Origin.COMPILER)


# --- helpers ------------------------------------------------------------------------------------


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """Return a "did you mean" hint for the closest known name, or None."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean `{close[0]}`?" if close else None


def _roots(policy: Policy) -> Iterator[tuple[Condition, Scope, str | None]]:
    """Yield each top-level condition, the aliases bound around it and the fact its rule
    derives (None outside rules)."""
    for clause in policy.clauses:
        for cond in (clause.applies_when, clause.waived_by, clause.requires):
            if cond is not None:
                yield cond, {}, None
    for rule in policy.rules:
        if rule.when is not None:
            yield rule.when, {b.alias: b.fact for b in rule.bindings}, rule.fact
    if policy.alternative is not None:
        yield policy.alternative.when, {}, None


def scoped(cond: Condition, scope: Scope) -> Iterator[tuple[Condition, Scope]]:
    """Yield every node of a condition with the aliases bound around it."""
    yield cond, scope
    if isinstance(cond, Every | Some | Count):
        scope = {**scope, cond.binding.alias: cond.binding.fact}
    for child in children(cond):
        yield from scoped(child, scope)


_BRACES = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER = re.compile(r"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)")


def _templates(policy: Policy) -> Iterator[tuple[str, str]]:
    """Yield (pointer, text) for every text with `{type.field}` placeholders."""
    for clause in policy.clauses:
        for status, text in clause.rationale.items():
            yield f"{clause.pointer}/rationale/{status.value}", text
        yield f"{clause.pointer}/recommendation", clause.recommendation
        for i, text in enumerate(clause.documentation):
            yield f"{clause.pointer}/documentation/{i}", text
    if policy.alternative is not None:
        yield "/alternative/summary", policy.alternative.summary


def _headings(policy: Policy) -> Iterator[tuple[str, str]]:
    """Yield (pointer, text) for every clause title and description: no fact is filled in
    there, only `{setting.name}`."""
    for clause in policy.clauses:
        yield f"{clause.pointer}/title", clause.title
        if clause.description:
            yield f"{clause.pointer}/description", clause.description


def _findings(policy: Policy) -> Iterator[tuple[str, str]]:
    """Yield (pointer, text) for every `finding` template (decide/findings.py placeholders)."""
    for clause in policy.clauses:
        for status, text in clause.finding.items():
            yield f"{clause.pointer}/finding/{status.value}", text


@dataclass(frozen=True, slots=True)
class _Read:
    fact: str
    pointer: str
    owner: str | None  # the fact the reading rule derives: reading itself is no use


def _reads(policy: Policy) -> list[_Read]:
    reads = []
    for root, scope, owner in _roots(policy):
        for node, inner in scoped(root, scope):
            # a comparison on a bound alias reads the binding's fact, counted at the binding
            if isinstance(node, Exists) or (isinstance(node, Compare) and node.fact not in inner):
                reads.append(_Read(node.fact, node.pointer, owner))
            elif isinstance(node, Every | Some | Count):
                reads.append(_Read(node.binding.fact, node.binding.pointer, owner))
    for rule in policy.rules:
        reads.extend(_Read(b.fact, b.pointer, rule.fact) for b in rule.bindings)
    for pointer, text in _templates(policy):
        for match in _BRACES.finditer(text):
            found = _PLACEHOLDER.fullmatch(match.group(1))
            if found and found.group(1) != findings.SETTING:
                reads.append(_Read(found.group(1), pointer, None))
    for pointer, text in _findings(policy):
        reads.extend(_Read(name, pointer, None) for name in findings.reads(text))
    if policy.alternative is not None:
        for i, line in enumerate(policy.alternative.lines):
            reads.append(_Read(line.segments, f"/alternative/lines/{i}/segments", None))
    return [r for r in reads if r.fact != r.owner]


# --- the checks, in the order --list-rules prints them -----------------------------------------


@policy_rule(
    "unused_derived_fact",
    Severity.WARNING,
    "a derived fact type is declared but no condition, template or alternative line reads it",
)
def unused_derived_fact(ctx: Context) -> Iterator[Hit]:
    used = {read.fact for read in _reads(ctx.policy)}
    produced = {rule.fact for rule in ctx.policy.rules}
    for name in ctx.policy.derived:
        if name not in used:
            verb = "derived" if name in produced else "declared"
            yield Hit(
                make_pointer(["facts", name]),
                f"derived fact `{name}` is {verb} but never used",
                "use it in a condition, a template or the alternative, or remove it",
            )


@policy_rule(
    "unproduced_derived_fact",
    Severity.ERROR,
    "a derived fact type is read but no rule derives it, so it never exists",
)
def unproduced_derived_fact(ctx: Context) -> Iterator[Hit]:
    produced = {rule.fact for rule in ctx.policy.rules}
    first_read: dict[str, _Read] = {}
    for read in _reads(ctx.policy):
        first_read.setdefault(read.fact, read)
    for name in ctx.policy.derived:
        if name not in produced and name in first_read:
            line = ctx.policy.locate(first_read[name].pointer).line
            yield Hit(
                make_pointer(["facts", name]),
                f"derived fact `{name}` is used (line {line}) but no rule derives it",
                f"add a rule with `derive: {{fact: {name}}}`",
            )


@policy_rule("duplicate_rule", Severity.ERROR, "two derivation rules share an id")
def duplicate_rule(ctx: Context) -> Iterator[Hit]:
    seen: set[str] = set()
    for i, rule in enumerate(ctx.policy.rules):
        if rule.id in seen:
            yield Hit(f"/rules/{i}/id", f"rule id `{rule.id}` is used twice")
        seen.add(rule.id)


@policy_rule("duplicate_reference", Severity.ERROR, "two references share a number")
def duplicate_reference(ctx: Context) -> Iterator[Hit]:
    seen: set[int] = set()
    for i, ref in enumerate(ctx.policy.references):
        if ref.id in seen:
            yield Hit(f"/references/{i}/id", f"reference {ref.id} is defined twice")
        seen.add(ref.id)


def _luhn(digits: str) -> bool:
    """LOINC's mod-10 check digit: the Luhn sum of the code with its check digit is 0 mod 10."""
    # every second digit from the right is doubled and its digits summed (divmod by 10)
    total = sum(
        sum(divmod(int(char) * (2 if i % 2 else 1), 10)) for i, char in enumerate(reversed(digits))
    )
    return total % 10 == 0


@policy_rule(
    "unknown_code",
    Severity.ERROR,
    "a value set's code cannot be a code of its system (form, LOINC check digit)",
)
def unknown_code(ctx: Context) -> Iterator[Hit]:
    spec = schemas.load_schema("policy")["$defs"]["value_set"]["properties"]["codes"]
    patterns, checks = spec["x-code-patterns"], spec["x-check-digits"]
    for name, value_set in sorted(ctx.policy.value_sets.items()):
        for coded in value_set.codes:
            system, _, code = coded.partition("|")
            bad = re.fullmatch(patterns[system], code) is None or (
                checks.get(system) == "mod10" and not _luhn(code.replace("-", ""))
            )
            if not bad:
                continue
            where = f" (in {value_set.origin})" if value_set.shared else ""
            pointer = value_set.pointer  # a shared set: where the policy uses it
            if not value_set.shared:
                same = [c for c in value_set.codes if c.startswith(f"{system}|")]
                pointer = f"{value_set.pointer}/codes/{system}/{same.index(coded)}"
            yield Hit(
                pointer,
                f"value set `{name}`{where}: `{code}` is not a {system} code",
                "check the code against the code system's release",
            )


@policy_rule("unused_value_set", Severity.WARNING, "a value set the policy declares but never uses")
def unused_value_set(ctx: Context) -> Iterator[Hit]:
    document = ctx.policy.document
    declared = document.data.get("value_sets", {}) if document is not None else {}
    for name in declared:
        if name not in ctx.policy.value_sets:
            yield Hit(
                f"/value_sets/{name}",
                f"value set `{name}` is not used by any condition",
                "select facts with `where: {code: {in_value_set: NAME}}`, or remove it",
            )


# compile/compiler.py names a program compiled node by node so, its ruleset apart from the
# folded one's; `compile_policy` and api.program_for fall back to it, silently, when the engine
# refuses the folded program
_UNFOLDED = "~unfolded"


@policy_rule(
    "unfolded",
    Severity.WARNING,
    "the engine refuses the policy's folded program: it runs node by node, with about twice"
    " the firings",
)
def unfolded(ctx: Context) -> Iterator[Hit]:
    try:
        program = program_for(ctx.policy)  # compiled once per content: lint compiled it already
    except PolicyError:
        return  # a policy that does not compile: its problems are findings already
    if _UNFOLDED in program.name:
        yield Hit(
            "",
            "the engine refuses this policy's folded program (past one of its limits), so the"
            " policy runs on the per-node lowering: the same decisions with about twice the"
            " rule firings per case",
            "give the clause testing the most alternatives on one fact fewer of them, or split"
            " it; folding is described in evaluator/compile/folding.py",
        )


@policy_rule("no_citation", Severity.ERROR, "a clause cites no reference")
def no_citation(ctx: Context) -> Iterator[Hit]:
    for clause in ctx.policy.clauses:
        if not clause.cites:
            yield Hit(f"{clause.pointer}/cites", f"clause `{clause.id}` cites no reference")


@policy_rule(
    "bad_read",
    Severity.ERROR,
    "a `reads` entry names an unknown procedure kind or one the policy governs itself",
)
def bad_read(ctx: Context) -> Iterator[Hit]:
    known = ctx.types["line"].fields["procedure"].enum
    own = {p.procedure for p in ctx.policy.procedures}
    for i, kind in enumerate(ctx.policy.reads):
        if kind in own:
            yield Hit(
                f"/reads/{i}",
                f"the policy governs `{kind}` itself; its lines are always read",
                "remove it from `reads`",
            )
        elif kind not in known:
            hint = did_you_mean(kind, known)
            yield Hit(f"/reads/{i}", f"`{kind}` is not a procedure kind", hint)


@policy_rule(
    "unreachable_documentation",
    Severity.WARNING,
    "a clause lists documents no case can request (never not documented, never undecided)",
)
def unreachable_documentation(ctx: Context) -> Iterator[Hit]:
    reach = reachable_statuses(ctx.policy)
    for clause in ctx.policy.clauses:
        statuses = reach[clause.id]
        if not clause.documentation or Status.NOT_DOCUMENTED in statuses:
            continue
        # A decision asks for documents on a not met clause when part of what decided it is
        # undecided: missing facts counted as not met, a derived fact's route, another clause.
        undecided = clause.undocumented is Status.NOT_MET or any(
            isinstance(node, ClauseIs)
            or (isinstance(node, Exists) and ctx.types.get(node.fact, _NONE).derived)
            for node in walk(clause.requires)
        )
        if Status.NOT_MET in statuses and undecided:
            continue
        yield Hit(
            f"{clause.pointer}/documentation",
            f"clause `{clause.id}` can never be not documented or undecided, so its "
            "documents are never requested",
            "remove `documentation`, or let missing facts leave the clause undecided",
        )


@policy_rule("uncited_reference", Severity.WARNING, "a reference no clause cites")
def uncited_reference(ctx: Context) -> Iterator[Hit]:
    cited = {n for clause in ctx.policy.clauses for n in clause.cites}
    for i, ref in enumerate(ctx.policy.references):
        if ref.id not in cited:
            yield Hit(
                f"/references/{i}",
                f"reference {ref.id} is not cited by any clause",
                "cite it under a clause's `cites`, or remove it",
            )


@policy_rule(
    "unknown_placeholder",
    Severity.ERROR,
    "a `{type.field}` placeholder in a rationale, finding, recommendation, document or summary "
    "names no fact field, or a `{setting.name}` in any clause text no setting of the policy",
)
def unknown_placeholder(ctx: Context) -> Iterator[Hit]:
    settings = ctx.policy.settings
    for pointer, text in _headings(ctx.policy):
        for match in _BRACES.finditer(text):
            parsed = findings.parse(match.group(1))
            if not isinstance(parsed, findings.Placeholder) or parsed.fact != findings.SETTING:
                yield Hit(
                    pointer,
                    f"placeholder `{match.group(0)}` in a title or description is not"
                    " `{setting.name}` (no case is filled in there)",
                    "name a setting, e.g. `{setting.conservative_care_minimum}`, or move the"
                    " fact to a rationale or finding",
                )
                continue
            yield from _setting_hits(pointer, match.group(0), settings)
    for pointer, text in _findings(ctx.policy):
        for problem in findings.problems(text, ctx.types, settings):
            yield Hit(
                pointer,
                f"placeholder `{problem.placeholder}` {problem.text}",
                did_you_mean(problem.unknown, problem.known)
                if problem.unknown
                else "see docs/authoring.md, Findings: e.g. `{physical_therapy.duration}`, "
                "`{conservative_care.start.before_request}`",
            )
    for pointer, text in _templates(ctx.policy):
        for match in _BRACES.finditer(text):
            # exactly the form the decision fills in: no spaces inside the braces
            found = _PLACEHOLDER.fullmatch(match.group(1))
            if found is None:
                yield Hit(
                    pointer,
                    f"placeholder `{match.group(0)}` is not `{{type.field}}`",
                    "write the fact type and field, e.g. `{unstable_segment.segment}`",
                )
                continue
            name, field = found.groups()
            fact = ctx.types.get(name)
            if name == findings.SETTING:
                yield from _setting_hits(pointer, match.group(0), settings)
            elif fact is None:
                yield Hit(
                    pointer,
                    f"placeholder `{match.group(0)}` names unknown fact type `{name}`",
                    did_you_mean(name, ctx.types),
                )
            elif field not in fact.fields:
                yield Hit(
                    pointer,
                    f"placeholder `{match.group(0)}`: fact `{name}` has no field `{field}`",
                    did_you_mean(field, fact.fields),
                )


def _setting_hits(pointer: str, text: str, settings: Mapping[str, Threshold]) -> Iterator[Hit]:
    """Yield a hit for each `{setting.name}` of the text that names no setting of the policy."""
    for problem in findings.problems(text, {}, settings):
        yield Hit(
            pointer,
            f"placeholder `{problem.placeholder}` {problem.text}",
            did_you_mean(problem.unknown, problem.known),
        )


def _leaf_groups(ctx: Context, conjunctive: bool) -> Iterator[list[Leaf]]:
    for root, scope, _owner in _roots(ctx.policy):
        for node, inner in scoped(root, scope):
            yield from groups(node, inner, ctx.types, conjunctive)


def _line(ctx: Context, leaf: Leaf) -> int | None:
    return ctx.policy.locate(leaf.node.pointer).line


@policy_rule(
    "contradiction",
    Severity.ERROR,
    "an `all` whose comparisons on one field can never all be true (at_least 6 and less_than 3)",
)
def contradiction(ctx: Context) -> Iterator[Hit]:
    seen: set[str] = set()  # a nested `all` is checked alone and inside its parent
    for group in _leaf_groups(ctx, conjunctive=True):
        for end in range(2, len(group) + 1):
            if never_all(group[:end]) and group[end - 1].node.pointer not in seen:
                seen.add(group[end - 1].node.pointer)
                last, earlier = group[end - 1], group[: end - 1]
                lines = ", ".join(str(_line(ctx, leaf)) for leaf in earlier)
                yield Hit(
                    last.node.pointer,
                    f"`{last.text}` can never hold together with the condition"
                    f"{'s' if len(earlier) > 1 else ''} on line {lines}: this `all` is never true",
                    "check the numbers and edges; one of the comparisons is probably reversed",
                )
                break


@policy_rule(
    "tautology",
    Severity.WARNING,
    "an `any` whose comparisons on one field cover every value (at_least 3 or less_than 3)",
)
def tautology(ctx: Context) -> Iterator[Hit]:
    seen: set[str] = set()
    for group in _leaf_groups(ctx, conjunctive=False):
        for end in range(2, len(group) + 1):
            if always_any(group[:end]) and group[end - 1].node.pointer not in seen:
                seen.add(group[end - 1].node.pointer)
                last = group[end - 1]
                lines = ", ".join(str(_line(ctx, leaf)) for leaf in group[: end - 1])
                yield Hit(
                    last.node.pointer,
                    f"with line {lines} this `any` is true for every documented "
                    f"`{last.key.fact}.{last.key.field}`; only the undocumented case remains "
                    "(unknown)",
                    "if the point is that the field is documented, say `documented: true`",
                )
                break


def _vacuous(cond: Condition, negated: bool = False) -> Iterator[Every]:
    """Yield each `every` that holds on an empty set where that makes its clause more met:
    `if_empty: true`, or `if_empty: false` under a `not`."""
    vacuous = isinstance(cond, Every) and cond.if_empty is not Truth.UNKNOWN
    if vacuous and (cond.if_empty is Truth.TRUE) != negated:  # type: ignore[union-attr]
        yield cond  # type: ignore[misc]
    inner = not negated if isinstance(cond, Not) else negated
    for child in children(cond):
        yield from _vacuous(child, inner)


@policy_rule(
    "vacuous_every",
    Severity.ERROR,
    "an `every` that holds when there is nothing to check (`if_empty: true`) in a clause with no "
    "`applies_when`: the clause would be met on an empty request",
)
def vacuous_every(ctx: Context) -> Iterator[Hit]:
    for clause in ctx.policy.clauses:
        if clause.applies_when is not None:
            continue  # the author states when the clause applies, e.g. when the set is not empty
        # true in `requires` makes the clause met, in `waived_by` not applicable
        roots = [c for c in (clause.requires, clause.waived_by) if c is not None]
        for node in (n for root in roots for n in _vacuous(root)):
            fact, value = node.binding.fact, node.if_empty.name.lower()
            yield Hit(
                f"{node.pointer}/every/if_empty",
                f"`every {fact}` with `if_empty: {value}` lets clause `{clause.id}` pass when "
                f"there is no `{fact}`: nothing would be checked",
                f"remove `if_empty` (an empty set is then not documented), or add `applies_when: "
                f"{{exists: {{fact: {node.binding.fact}}}}}`",
            )


def _negated_demonstrations(cond: Condition, negated: bool = False) -> Iterator[Demonstrated]:
    """Yield each `demonstrated` under an odd number of `not`s."""
    if isinstance(cond, Demonstrated) and negated:
        yield cond
    inner = not negated if isinstance(cond, Not) else negated
    for child in children(cond):
        yield from _negated_demonstrations(child, inner)


def _fields_read(cond: Condition, scope: Scope) -> Iterator[tuple[str, str]]:
    """Yield (fact type, field) for every field a condition compares or tests by value in a
    `where`, the names bound around it resolved through `scope`."""
    for node, inner in scoped(cond, scope):
        where: tuple[WhereItem, ...] = ()
        if isinstance(node, Compare):
            fact, where = inner.get(node.fact, node.fact), node.where
            yield from ((fact, name) for name in (node.field, node.minus) if name)
            other, _, field = (node.of or "").partition(".")
            if other in inner and field:
                yield inner[other], field
        elif isinstance(node, Exists):
            fact, where = node.fact, node.where
        elif isinstance(node, Every | Some | Count):
            fact, where = node.binding.fact, node.binding.where
        for item in where:
            if not isinstance(item, WhereSameAs):
                yield fact, item.field


@policy_rule(
    "negated_demonstrated",
    Severity.ERROR,
    "a `not: demonstrated:` over a field of a fact type whose values a document dated possibly "
    "after the request leaves out (x-as-of-source) when the field has no x-disputed marker: the "
    "left-out value reads as never documented, `demonstrated` makes it false and `not` true, "
    "so the clause passes on what the record may contradict (domain rules 5 and 9 want it not "
    "documented); with the marker, `demonstrated` keeps such a value unknown",
)
def negated_demonstrated(ctx: Context) -> Iterator[Hit]:
    # Found at stop 21: a 50 % SI block reported in the request's month approved through
    # `not demonstrated some(block below 75 %)`; without `demonstrated` it pends. Since stop
    # 23 a field with an x-disputed marker is safe by construction (the nicotine module's
    # cotinine and quit date), so what remains is an error.
    for root, scope, _ in _roots(ctx.policy):
        for node in _negated_demonstrations(root):
            unsafe = sorted(
                {
                    f"{fact}.{name}"
                    for fact, name in _fields_read(node.part, scope)
                    if (t := ctx.types.get(fact)) is not None
                    and t.as_of_source
                    and (info := t.fields.get(name)) is not None
                    and info.disputed is None
                }
            )
            if unsafe:
                yield Hit(
                    f"{node.pointer}/demonstrated",
                    f"`not: demonstrated:` reads {', '.join(f'`{n}`' for n in unsafe)}, whose "
                    "values a document dated possibly after the request leaves out as if never "
                    "stated: the condition is true on what the record may contradict",
                    "drop `demonstrated` so that a left-out value leaves the clause not "
                    "documented, or give the field an x-disputed marker in "
                    "schemas/facts.schema.json",
                )


@policy_rule(
    "constant_pairwise",
    Severity.ERROR,
    "a comparison of two facts that cannot depend on the facts: a date or side compared with "
    "itself, or `distinct` over names bound to different fact types",
)
def constant_pairwise(ctx: Context) -> Iterator[Hit]:
    for root, scope, _ in _roots(ctx.policy):
        for node, inner in scoped(root, scope):
            if isinstance(node, Distinct):
                kinds = {inner.get(a) for a in node.aliases}
                if len(kinds) == len(node.aliases) and None not in kinds:
                    yield Hit(
                        f"{node.pointer}/distinct",
                        f"`{', '.join(node.aliases)}` are bound to different fact types, so "
                        "they are always different facts",
                        "compare two names bound to the same fact type, or remove `distinct`",
                    )
            elif isinstance(node, Compare) and (node.of or node.op is Op.SAME_SIDE_AS):
                other = node.of if node.op is not Op.SAME_SIDE_AS else str(node.operand)
                if other == f"{node.fact}.{node.field}":
                    key = "same_side_as" if node.op is Op.SAME_SIDE_AS else "of"
                    yield Hit(
                        f"{node.pointer}/{key}",
                        f"`{node.fact}.{node.field}` is compared with itself",
                        "name another date or side",
                    )


# Phrases that state which side of a number its edge falls on; "near" is a few words away.
_EDGE = re.compile(
    r"(?<![\w])(at least|at most|more than|less than|fewer than|greater than|or more|or less|"
    r"or fewer|or greater|or higher|or lower|or longer|or shorter|or worse|or better|"
    r"no more than|no less than|not more than|not less than|below|above|exceed\w*|within|"
    r"up to)(?![\w])|>=|<=|>|<|≥|≤",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?!\w)")
_BEFORE, _AFTER = 4, 3  # words before / after a number searched for an edge phrase
_EDGE_WORDS = {
    Op.AT_LEAST: "at least / or more",
    Op.MORE_THAN: "more than",
    Op.AT_MOST: "at most / or less",
    Op.LESS_THAN: "less than / below",
}


def _mentions(text: str, value: float) -> Iterator[bool]:
    """Yield, for each mention of `value` in the text, whether an edge phrase is near it."""
    for match in _NUMBER.finditer(text):
        if float(match.group(1)) != value:
            continue
        before = " ".join(text[: match.start()].split()[-_BEFORE:])
        after = " ".join(text[match.end() :].split()[:_AFTER])
        yield _EDGE.search(f"{before} {text[match.start() : match.end()]} {after}") is not None


def _thresholds(conds: Iterable[Condition | None]) -> list[Compare]:
    # NaN marks an unknown setting, which the compiler reports
    return [
        node
        for cond in conds
        if cond is not None
        for node, _scope in scoped(cond, {})
        if isinstance(node, Compare)
        and isinstance(node.operand, Threshold)
        and not math.isnan(node.operand.value)
    ]


@policy_rule(
    "unstated_edge",
    Severity.WARNING,
    "a description gives a threshold's number without saying which side of it counts",
)
def unstated_edge(ctx: Context) -> Iterator[Hit]:
    texts: list[tuple[list[tuple[str, str]], list[Compare]]] = []
    settings = ctx.policy.settings
    for clause in ctx.policy.clauses:
        # read as shown: `at least {setting.x}` states the edge of the setting's number
        described = [(f"{clause.pointer}/title", findings.fill_settings(clause.title, settings))]
        if clause.description:
            text = findings.fill_settings(clause.description, settings)
            described.append((f"{clause.pointer}/description", text))
        conds = (clause.applies_when, clause.waived_by, clause.requires)
        texts.append((described, _thresholds(conds)))
    for rule in ctx.policy.rules:
        if rule.description:
            described = [(f"{rule.pointer}/description", rule.description)]
            texts.append((described, _thresholds([rule.when])))
    for described, leaves in texts:
        done: set[float] = set()
        for leaf in leaves:
            assert isinstance(leaf.operand, Threshold)
            value = leaf.operand.value
            mentioned = [(p, list(_mentions(text, value))) for p, text in described]
            mentioned = [(p, edges) for p, edges in mentioned if edges]
            if value in done or not mentioned or any(any(e) for _, e in mentioned):
                continue
            done.add(value)
            shown = f"{value:g}"
            line = ctx.policy.locate(leaf.pointer).line
            yield Hit(
                mentioned[0][0],
                f"`{shown}` is the threshold `{leaf.op.value} {shown} {leaf.operand.unit}` "
                f"(line {line}) but the text does not say whether {shown} itself counts",
                f"say it with the edge, e.g. `{_EDGE_WORDS[leaf.op]}`",
            )


@library_rule(
    "overlapping_versions",
    Severity.ERROR,
    "two active or retired versions of one policy are in force on the same day",
)
def overlapping_versions(policies: Sequence[Policy]) -> Iterator[tuple[Policy, Hit]]:
    for earlier, later in _by_id(policies, window_overlaps):
        problem = overlap_problem(earlier, later, later)
        yield later, Hit("/effective", problem.message, problem.hint)


@library_rule(
    "version_gap",
    Severity.WARNING,
    "days between two consecutive versions of one policy when none is in force",
)
def version_gap(policies: Sequence[Policy]) -> Iterator[tuple[Policy, Hit]]:
    for earlier, later in _by_id(policies, window_gaps):
        yield (
            later,
            Hit(
                "/effective",
                f"no version of `{later.id}` is in force between "
                f"{(earlier.effective_until or later.effective_from).isoformat()} (last day of "
                f"`{earlier.ref}`) and {later.effective_from.isoformat()} (first day of "
                f"`{later.ref}`)",
                f"start `{later.ref}` the day after `{earlier.ref}` ends",
            ),
        )


def _by_id(
    policies: Sequence[Policy],
    find: Callable[[Sequence[Policy]], list[tuple[Policy, Policy]]],
) -> Iterator[tuple[Policy, Policy]]:
    groups: dict[str, list[Policy]] = {}
    for policy in policies:
        groups.setdefault(policy.id, []).append(policy)
    for versions in groups.values():
        yield from find(versions)


@library_rule(
    "overlapping_procedures",
    Severity.ERROR,
    "two active policies govern the same procedure kind on the same day",
)
def overlapping_procedures(policies: Sequence[Policy]) -> Iterator[tuple[Policy, Hit]]:
    # A line is routed to the first governing policy by id: a second one would never be used,
    # silently. Kind `other` is routed by CPT code and may be shared.
    active = sorted((p for p in policies if p.status is Lifecycle.ACTIVE), key=lambda p: p.ref)
    for i, later in enumerate(active):
        for earlier in active[:i]:
            if earlier.id == later.id or not _windows_overlap(earlier, later):
                continue
            kinds = {x.procedure for x in earlier.procedures} & {
                x.procedure for x in later.procedures
            }
            kinds.discard("other")
            if kinds:
                shared = ", ".join(f"`{k}`" for k in sorted(kinds))
                yield (
                    later,
                    Hit(
                        "/procedures",
                        f"`{later.ref}` and `{earlier.ref}` both govern {shared} while both are "
                        "in force; lines would go to the first by id only",
                        "split the procedure kinds, or end or retire one of the policies",
                    ),
                )


@library_rule(
    "reference_cycle",
    Severity.ERROR,
    "policies refer to each other's determinations in a cycle (none could be evaluated first)",
)
def reference_cycle(policies: Sequence[Policy]) -> Iterator[tuple[Policy, Hit]]:
    refers: dict[str, set[str]] = {}
    for policy in policies:
        refers.setdefault(policy.id, set()).update(r.policy for r in policy_references(policy))
    for policy in policies:
        for ref, message, hint in reference_cycles(policy, refers):
            yield policy, Hit(ref.pointer, message, hint)


def _windows_overlap(a: Policy, b: Policy) -> bool:
    a_ends = a.effective_until or date.max
    b_ends = b.effective_until or date.max
    return a.effective_from <= b_ends and b.effective_from <= a_ends


__all__ = [
    "LIBRARY_CHECKS",
    "POLICY_CHECKS",
    "RULES",
    "Context",
    "Hit",
    "Origin",
    "Rule",
    "Severity",
    "rule_for",
]
