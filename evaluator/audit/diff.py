"""`necessity diff`: a semantic diff of two policy versions, keyed by ids, over the model.

Conditions are compared as trees without their file positions; the parts of `all` and `any` as
sets, thresholds by value and unit (a setting and the same number written inline are equal).
So moving, reordering, reformatting, anchors against expanded copies and comments make no
difference. Each change to what a clause decides comes with a witness (witness.py) or is
called decision-neutral.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from evaluator.audit import witness
from evaluator.authoring import testing
from evaluator.errors import InputError, Location, SourceError
from evaluator.language import policies
from evaluator.language.conditions import (
    OP_SYMBOLS,
    All,
    AnyOf,
    ClauseIs,
    Compare,
    Condition,
    Count,
    Every,
    Exists,
    Latest,
    Some,
    Threshold,
    walk,
    written,
)
from evaluator.language.describe import (
    field_label,
    head_text,
    leaf_text,
    threshold_text,
    value_text,
    words,
)
from evaluator.language.model import Clause, DeriveRule, Policy
from evaluator.language.policies import Library, PolicyRef
from evaluator.read import gitsource

# --- reading A and B ------------------------------------------------------------------------------


def load(spec: str, library: Library | None = None) -> Policy:
    """Return the policy named by `ID@VERSION`, a file path, or `git:REV:path`."""
    if gitsource.is_git(spec):
        rev, path = gitsource.split(spec)
        data = gitsource.show(rev, path)
        # A file of its own name, so the version/file-name check still applies.
        folder = Path(tempfile.mkdtemp(prefix="necessity-diff-"))
        copy = folder / Path(path).name
        copy.write_bytes(data)
        return policies.load_policy(copy)
    if Path(spec).is_file():
        return policies.load_policy(spec)
    if "@" in spec and "/" not in spec:
        return (library or Library()).get(PolicyRef.parse(spec))
    raise SourceError.single(
        "file_not_found",
        "no such file, and not ID@VERSION or git:REV:path",
        Location(spec),
    )


# --- comparing ------------------------------------------------------------------------------------


def canon(value: Any) -> Any:
    """Return a comparable form: no file positions, thresholds by value and unit, the parts of
    `all`/`any` as sorted tuples, mappings as sorted items."""
    if isinstance(value, Threshold):
        return ("threshold", float(value.value), value.unit)
    if isinstance(value, All | AnyOf):
        parts = tuple(sorted((canon(p) for p in value.parts), key=repr))
        return (type(value).__name__, parts, value.note)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            *(
                _unordered(canon(getattr(value, f.name)))
                if f.name in _SETS
                else canon(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.name not in ("pointer", "section", "setting", "expansion")
            ),
        )
    if isinstance(value, Mapping):
        return tuple(sorted(((str(k), canon(v)) for k, v in value.items()), key=repr))
    if isinstance(value, tuple | list):
        return tuple(canon(v) for v in value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Fields whose order means nothing: filters are a conjunction, `one_of` a set, N-of-M parts a set.
_SETS = frozenset({"where", "values", "parts", "operand"})


def _unordered(value: Any) -> Any:
    if not isinstance(value, tuple) or value[:1] == ("threshold",):
        return value
    return tuple(sorted(value, key=repr))


def same(a: Any, b: Any) -> bool:
    return bool(canon(a) == canon(b))


def _relation(leaf: Compare) -> str:
    text = leaf_text(leaf)
    return text.split(": ", 1)[1] if ": " in text else text


def condition_changes(old: Condition | None, new: Condition | None) -> list[str]:
    """Return the changed leaves of a condition, in words (`translation at least 2 mm -> at
    least 3 mm`, `>= -> >`, added and removed parts)."""
    if same(old, new):
        return []
    if old is None or new is None:
        shown = leaf_text(new if old is None else old)  # type: ignore[arg-type]
        return [f"{'added' if old is None else 'removed'}: {shown}"]
    if isinstance(old, Compare) and isinstance(new, Compare):
        return _compare_changes(old, new)
    if type(old) is type(new):
        a, b = list(written(old)), list(written(new))
        if not a and not b:
            return [f"{leaf_text(old)} -> {leaf_text(new)}"]
        here = [] if same(_shell(old), _shell(new)) else [f"{head_text(old)} -> {head_text(new)}"]
        # Equal parts pair off wherever they are; the rest pair in order or are added/removed.
        left = [x for x in a if not any(same(x, y) for y in b)]
        right = [y for y in b if not any(same(x, y) for x in a)]
        for x, y in zip(left, right, strict=False):
            here.extend(condition_changes(x, y))
        here.extend(f"removed: {_line(x)}" for x in left[len(right) :])
        here.extend(f"added: {_line(y)}" for y in right[len(left) :])
        return here
    return [f"{_line(old)} -> {_line(new)}"]


def _line(condition: Condition) -> str:
    """The condition in one line, each compound's parts in brackets after its head: flattened
    to its leaves it would read `any of (none of (A), B)` as `A; B`."""
    parts = written(condition)
    if not parts:
        return leaf_text(condition)
    return f"{head_text(condition).removesuffix(':')} ({'; '.join(_line(p) for p in parts)})"


def _shell(condition: Condition) -> Any:
    # The node without its children: `at least 2 of` vs `at least 3 of`, a changed binding.
    if isinstance(condition, All | AnyOf):
        return type(condition).__name__
    fields = [f.name for f in dataclasses.fields(condition)]
    return tuple(
        canon(getattr(condition, n))
        for n in fields
        if n not in ("parts", "part", "require", "expansion")
    )


def _relation_text(leaf: Compare) -> str:
    operand = leaf.operand
    if isinstance(operand, Threshold):
        shown = threshold_text(Threshold(operand.value, operand.unit))
    elif isinstance(operand, tuple):
        shown = ", ".join(value_text(v) for v in operand)
    elif operand is None:
        shown = ""
    else:
        shown = value_text(operand)
    return f"{words(leaf.op.value)} {shown}".strip()


def _compare_changes(old: Compare, new: Compare) -> list[str]:
    key_old = (old.fact, old.field, old.measure, old.minus, old.of, canon(old.where))
    key_new = (new.fact, new.field, new.measure, new.minus, new.of, canon(new.where))
    if key_old != key_new:
        return [f"{leaf_text(old)} -> {leaf_text(new)}"]
    out = []
    if old.op != new.op or not same(old.operand, new.operand):
        subject = f"{words(old.fact)} {field_label(old.field)}"
        out.append(f"{subject} {_relation_text(old)} -> {_relation_text(new)}")
    if old.op != new.op:
        out.append(f"`{OP_SYMBOLS[old.op]}` -> `{OP_SYMBOLS[new.op]}`")
    if old.if_absent != new.if_absent:
        out.append(
            f"no such fact counts as {old.if_absent.name.lower()} -> {new.if_absent.name.lower()}"
        )
    return out


# --- the diff -------------------------------------------------------------------------------------

UNDOCUMENTED_WORDS = {"not_documented": "not documented", "not_met": "not met"}


@dataclass(frozen=True)
class Change:
    """One difference: what kind of thing, its id, added/removed/changed, and the details.

    `decides` says whether the change can alter a decision: True with a witness, False when it
    is decision-neutral, None when the search found no witness for a change to logic.
    """

    category: str
    key: str
    action: str
    details: tuple[str, ...] = ()
    decides: bool | None = False
    witness: witness.Witness | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "id": self.key,
            "change": self.action,
            "details": list(self.details),
            "decision": {True: "can_change", False: "neutral", None: "no_witness_found"}[
                self.decides
            ],
            "witness": self.witness.as_json() if self.witness else None,
        }


@dataclass(frozen=True)
class Diff:
    old: Policy
    new: Policy
    changes: tuple[Change, ...]

    @property
    def identical(self) -> bool:
        return not self.changes


def _text_fields(old: Any, new: Any, names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        a, b = getattr(old, name), getattr(new, name)
        if name == "changelog" and not same(a, b):
            added = [c.change for c in b if not any(same(c, x) for x in a)]
            out.append(
                f"changelog: {len(added)} new entries: " + "; ".join(_short(c) for c in added)
            )
        elif not same(a, b):
            out.append(f"{words(name)}: {_short(a)} -> {_short(b)}")
    return out


_SHORT = 90  # characters of a changed text shown on one line


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        value = {str(k): v for k, v in value.items()}
    text = " ".join(str(value).split()) if value is not None else "(none)"
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def _keyed(
    category: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    details: Any,
) -> list[Change]:
    out = []
    for key in [*old, *(k for k in new if k not in old)]:
        if key not in new:
            out.append(Change(category, key, "removed"))
        elif key not in old:
            out.append(Change(category, key, "added"))
        elif not same(old[key], new[key]):
            out.append(Change(category, key, "changed", tuple(details(old[key], new[key]))))
    return out


def _clause_details(old: Clause, new: Clause) -> list[str]:
    out = []
    for name in ("applies_when", "waived_by", "requires"):
        for line in condition_changes(getattr(old, name), getattr(new, name)):
            out.append(f"{words(name)}: {line}")
    if old.undocumented != new.undocumented:
        a = UNDOCUMENTED_WORDS.get(old.undocumented.value, old.undocumented.value)
        b = UNDOCUMENTED_WORDS.get(new.undocumented.value, new.undocumented.value)
        out.append(f"missing facts count as {a} -> {b}")
    texts = ("title", "description", "cites", "rationale", "finding", "recommendation")
    out += _text_fields(old, new, (*texts, "documentation", "origin"))
    return out


def _logic(clause: Clause) -> Any:
    return canon((clause.applies_when, clause.waived_by, clause.requires, clause.undocumented))


def _rule_details(old: DeriveRule, new: DeriveRule) -> list[str]:
    out = [f"when: {line}" for line in condition_changes(old.when, new.when)]
    if not same(old.bindings, new.bindings):
        out.append("for each: changed")
    return out + _text_fields(old, new, ("fact", "values", "description", "origin"))


def _metadata(old: Policy, new: Policy) -> list[Change]:
    names = (
        "title",
        "description",
        "status",
        "effective_from",
        "effective_until",
        "supersedes",
        "changelog",
        "below_threshold_words",
        "derived",
        "alternative",
    )
    return [
        Change("metadata", name, "changed", (line,), None if name in _LOGIC_META else False)
        for name in names
        for line in _text_fields(old, new, (name,))
    ]


# Metadata that the engine reads: a change may alter a decision, though no clause shows it.
_LOGIC_META = frozenset({"below_threshold_words", "derived", "alternative"})


def compare(old: Policy, new: Policy, bases: Sequence[witness.Facts] = ()) -> Diff:
    """Return the semantic diff of two policy versions, each logic change with a witness
    searched among `bases` (and their threshold mutations)."""
    changes: list[Change] = []
    changes += _metadata(old, new)
    changes += _keyed(
        "setting",
        old.settings,
        new.settings,
        lambda a, b: [
            f"{threshold_text(Threshold(a.value, a.unit))} -> "
            f"{threshold_text(Threshold(b.value, b.unit))}"
        ],
    )
    changes += _keyed(
        "setting note",
        old.setting_notes,
        new.setting_notes,
        lambda a, b: [f"{_short(a)} -> {_short(b)}"],
    )
    changes += _keyed(
        "reference",
        {str(r.id): r for r in old.references},
        {str(r.id): r for r in new.references},
        lambda a, b: _text_fields(a, b, ("citation", "doi", "url", "note")),
    )
    changes += _keyed(
        "procedure",
        {p.procedure: p for p in old.procedures},
        {p.procedure: p for p in new.procedures},
        lambda a, b: [f"CPT {', '.join(a.cpt)} -> {', '.join(b.cpt)}"],
    )
    # What an imported module says is merged into the settings, rules and clauses compared
    # here, so its version alone decides nothing.
    changes += _keyed(
        "import",
        {m.module: m for m in old.imports},
        {m.module: m for m in new.imports},
        lambda a, b: (
            [f"version {a.version} -> {b.version}"]
            if a.version != b.version
            else [f"content {a.sha256[:12]} -> {b.sha256[:12]}"]
        ),
    )
    # A setting is read through the conditions that use it: those say what it decides.
    changes = [
        dataclasses.replace(c, decides=None) if c.category == "setting" else c for c in changes
    ]
    rules = _keyed(
        "rule", {r.id: r for r in old.rules}, {r.id: r for r in new.rules}, _rule_details
    )
    changes += [dataclasses.replace(r, decides=None) for r in rules]
    old_clauses = {c.id: c for c in old.clauses}
    new_clauses = {c.id: c for c in new.clauses}
    keys = [*old_clauses, *(k for k in new_clauses if k not in old_clauses)]
    changed_rules = {c.key for c in changes if c.category == "rule"}
    own = {
        k
        for k in keys
        if k not in old_clauses
        or k not in new_clauses
        or _logic(old_clauses[k]) != _logic(new_clauses[k])
    }
    reach = _affected(old, own, changed_rules) | _affected(new, own, changed_rules)
    if any(c.category == "metadata" and c.decides is None for c in changes):
        reach = set(keys)  # words, derived types or the alternative: anything may move
    entries: list[tuple[str, str, list[str], bool]] = []
    for key in keys:
        a, b = old_clauses.get(key), new_clauses.get(key)
        if a is not None and b is not None:
            details = _clause_details(a, b)
            if details or key in reach:
                action = "changed" if details else "affected"
                entries.append((key, action, details, key in own))
        else:
            entries.append((key, "removed" if b is None else "added", [], True))
    searched = [key for key, _, _, _ in entries if key in own or key in reach]
    in_old, in_new = _comparisons(old), _comparisons(new)
    shared = {canon(x) for x in in_old} & {canon(x) for x in in_new}
    moved = [leaf for leaf in (*in_old, *in_new) if canon(leaf) not in shared]
    # First the comparisons only one version has; then, for clauses still without a witness,
    # every comparison (a changed clause reference needs the referenced clause moved).
    found = witness.find_all(searched, old, new, bases, moved) if searched else {}
    rest = [key for key in searched if key not in found]
    if rest:
        near = _near(old, rest) + _near(new, rest)
        found |= witness.find_all(rest, old, new, bases, near)
    for key, action, details, own_logic in entries:
        shown = found.get(key)
        if shown is None and not details and action == "affected":
            continue  # reads a changed rule or setting, but no case tells the versions apart
        decides: bool | None = True if shown else (None if own_logic else False)
        changes.append(Change("clause", key, action, tuple(details), decides, shown))
    return Diff(old, new, tuple(changes))


def _reads(condition: Condition | None) -> tuple[set[str], set[str]]:
    """Return the fact types and the clauses a condition reads."""
    facts: set[str] = set()
    clauses: set[str] = set()
    for node in walk(condition) if condition is not None else []:
        if isinstance(node, Compare | Exists):
            facts.add(node.fact)
        elif isinstance(node, Every | Some | Count | Latest):
            facts.add(node.binding.fact)
        elif isinstance(node, ClauseIs):
            clauses.add(node.clause)
    return facts, clauses


def _affected(policy: Policy, clauses: set[str], rules: set[str]) -> set[str]:
    """Return the clauses of `policy` whose status can move when the given clauses and rules
    change: those that read, through derived facts and clause references, a changed one."""
    moved_clauses = set(clauses)
    moved_facts = {r.fact for r in policy.rules if r.id in rules}
    while True:
        before = (len(moved_clauses), len(moved_facts))
        for rule in policy.rules:
            facts, refs = _reads(rule.when)
            facts |= {b.fact for b in rule.bindings}
            if facts & moved_facts or refs & moved_clauses:
                moved_facts.add(rule.fact)
        for clause in policy.clauses:
            facts, refs = set(), set()
            for part in (clause.applies_when, clause.waived_by, clause.requires):
                f, r = _reads(part)
                facts |= f
                refs |= r
            if facts & moved_facts or refs & moved_clauses:
                moved_clauses.add(clause.id)
        if (len(moved_clauses), len(moved_facts)) == before:
            return moved_clauses


def _near(policy: Policy, keys: Sequence[str]) -> list[Compare]:
    """Return the comparisons of the clauses and of the clauses they reference."""
    by_id = {c.id: c for c in policy.clauses}
    wanted = set(keys)
    for key in keys:
        if key in by_id:
            clause = by_id[key]
            for part in (clause.applies_when, clause.waived_by, clause.requires):
                wanted |= _reads(part)[1]
    chosen = [by_id[k] for k in wanted if k in by_id]
    return witness.leaves([x for c in chosen for x in (c.applies_when, c.waived_by, c.requires)])


def _comparisons(policy: Policy) -> list[Compare]:
    conditions = [x for c in policy.clauses for x in (c.applies_when, c.waived_by, c.requires)]
    return witness.leaves([*conditions, *(r.when for r in policy.rules)])


def _all_cases(policy_id: str, library: Library) -> list[witness.Facts]:
    """Return the facts of every case in the policy's test suites (the witness search bases)."""
    out: list[witness.Facts] = []
    seen: set[str] = set()
    folder = library.root / policy_id / "tests"
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            suite = testing.load_suite(path, library)
        except InputError:
            continue
        for test in suite.tests:
            facts = tuple(test.case.fact_dicts())
            key = repr(facts)
            if key not in seen:
                seen.add(key)
                out.append(facts)
    return out


def diff(a: str, b: str, library: Library | None = None) -> Diff:
    """Load A and B (ID@VERSION, path or git:REV:path) and compare them."""
    library = library or Library()
    old, new = load(a, library), load(b, library)
    bases = _all_cases(new.id, library) if old.id == new.id else []
    if old.id != new.id:
        bases += _all_cases(old.id, library)
    return compare(old, new, bases)
