"""Value sets: named code lists a policy declares or reads from policies/_shared/valuesets/.

A value set is data (policy.schema.json `$defs/value_set`). At load it expands to the condition
language's existing forms, so the compiler never sees it: ``{in_value_set: bmi}`` in a `where`
becomes ``{one_of: ["LOINC|39156-5", ...]}``, and a threshold on a coded quantity
(``field: value``) becomes a threshold on the fact field its unit converts to (units.py), in
that field's unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.errors import PolicyError, Problem
from evaluator.language.model import ValueSet
from evaluator.read import schemas, source
from evaluator.read.plain import copied
from evaluator.vocab import units
from evaluator.vocab.codes import value_set_codes

SHARED_FOLDER = ("_shared", "valuesets")
VALUE_SET_SCHEMA = "valueset"
_THRESHOLD_OPS = ("at_least", "more_than", "at_most", "less_than")
_BINDERS = ("every", "some", "count")


def shared_folder(policy_path: str | Path) -> Path:
    """Return policies/_shared/valuesets for a policy at policies/<id>/<version>.yaml."""
    return Path(policy_path).resolve().parent.parent.joinpath(*SHARED_FOLDER)


def _value_set(
    name: str, raw: Mapping[str, Any], origin: str, pointer: str, shared: bool = False
) -> ValueSet:
    return ValueSet(
        name,
        raw["purpose"],
        value_set_codes(raw["codes"]),
        raw.get("unit"),
        raw.get("oid"),
        origin,
        pointer,
        shared,
    )


# eq=False, repr=False: never compared, hashed or printed; every generated method is
# compiled at import, by every process (benchmarks/cold_start.py)
@dataclass(eq=False, repr=False)
class Expansion:
    """The policy's data with value sets expanded, and the value sets it uses."""

    data: dict[str, Any]
    value_sets: dict[str, ValueSet]
    # shared sets as read, by name: the policy's hash covers them
    shared: dict[str, Any]


class _Expander:
    def __init__(
        self,
        document: source.Document,
        settings: Mapping[str, Any],
        imported: Mapping[str, tuple[Mapping[str, Any], str]],
    ) -> None:
        self.document = document
        self.settings = settings
        self.declared = {
            name: _value_set(name, raw, document.path, f"/value_sets/{name}")
            for name, raw in document.data.get("value_sets", {}).items()
        }
        # declared by an imported module (modules.py): found like the policy's own
        for name, (raw, origin) in imported.items():
            self.declared[name] = _value_set(name, raw, origin, "", shared=True)
        self.used: dict[str, ValueSet] = {}
        self.shared: dict[str, Any] = {}
        self.problems: list[Problem] = []

    def lookup(self, name: str, pointer: str) -> ValueSet | None:
        if name in self.declared:
            self.used[name] = self.declared[name]
            return self.declared[name]
        if name in self.used:
            return self.used[name]
        path = shared_folder(self.document.path) / f"{name}.yaml"
        # a policy read from standard input has no folder, so no shared value sets
        if self.document.path == source.STDIN_NAME or not path.is_file():
            known = sorted({*self.declared, *self.available()})
            import difflib  # noqa: PLC0415  (only to suggest a name for an unknown one)

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            self.problems.append(
                Problem(
                    "unknown_value_set",
                    f"no value set `{name}`: the policy does not declare it and there is no"
                    f" {'/'.join(SHARED_FOLDER)}/{name}.yaml beside the policy folders{hint}",
                    self.document.location(pointer),
                )
            )
            return None
        shared = source.load(path)
        schemas.validate(shared, VALUE_SET_SCHEMA)
        if shared.data["name"] != name:
            self.problems.append(
                Problem(
                    "value_set_name_mismatch",
                    f"value set name `{shared.data['name']}` does not match the file `{path.name}`",
                    shared.location("/name"),
                )
            )
        found = _value_set(name, shared.data, str(path), pointer, shared=True)
        self.used[name] = found
        self.shared[name] = shared.data
        return found

    def available(self) -> list[str]:
        if self.document.path == source.STDIN_NAME:
            return []
        folder = shared_folder(self.document.path)
        return [p.stem for p in folder.glob("*.yaml")] if folder.is_dir() else []

    def where(self, where: dict[str, Any], pointer: str) -> list[ValueSet]:
        """Expand `in_value_set` filters in place; return the value sets on `code`."""
        on_code = []
        for field, value in where.items():
            if isinstance(value, Mapping) and "in_value_set" in value:
                found = self.lookup(value["in_value_set"], f"{pointer}/{field}/in_value_set")
                if found is not None:
                    # the name stays beside the codes so that renderings can say it
                    where[field] = {"one_of": list(found.codes), "value_set": found.name}
                    if field == "code":
                        on_code.append(found)
        return on_code

    def walk(self, node: Any, pointer: str, aliases: dict[str, tuple[str, list[ValueSet]]]) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                self.walk(item, f"{pointer}/{i}", aliases)
            return
        if not isinstance(node, dict):
            return
        sets: list[ValueSet] = []
        if isinstance(node.get("where"), dict):
            sets = self.where(node["where"], f"{pointer}/where")
        inner = aliases
        if "fact" in node and "as" in node:  # a binding: every, some, count, for_each
            inner = {**aliases, node["as"]: (node["fact"], sets)}
        elif isinstance(node.get("for_each"), list):
            # A rule's bindings hold in its `when` and `derive`, their siblings: read alone,
            # a threshold on a bound coded quantity (`late.value`) found no `value` field.
            for i, binding in enumerate(node["for_each"]):
                if isinstance(binding, dict) and "fact" in binding and "as" in binding:
                    where = binding.get("where")
                    found = (
                        self.where(where, f"{pointer}/for_each/{i}/where")
                        if isinstance(where, dict)
                        else []
                    )
                    inner = {**inner, binding["as"]: (binding["fact"], found)}
        elif "fact" in node and "field" in node:
            fact, bound = aliases.get(node["fact"], (node["fact"], []))
            self.quantity(node, fact, sets or bound, pointer)
        for key, value in node.items():
            if key != "where":
                self.walk(value, f"{pointer}/{key}", inner)

    def quantity(self, node: dict[str, Any], fact: str, sets: list[ValueSet], pointer: str) -> None:
        """Point a threshold on a coded quantity at the field its unit converts to."""
        if units.quantity_field(fact) is None or node["field"] != units.quantity_field(fact):
            return
        op = next((o for o in _THRESHOLD_OPS if o in node), None)
        if op is None:
            self.problems.append(
                Problem(
                    "quantity_needs_threshold",
                    f"`{node['field']}` of `{fact}` is a quantity: compare it with a threshold"
                    " (at_least, more_than, at_most, less_than)",
                    self.document.location(f"{pointer}/field"),
                )
            )
            return
        raw = node[op]
        if "setting" in raw:
            stated = self.settings.get(raw["setting"])
            if stated is None:
                return  # the compiler reports the unknown setting, located
            value, unit = stated["value"], stated["unit"]
        else:
            value, unit = raw["value"], raw["unit"]
        codes = [c for s in sets for c in s.codes]
        target = units.target(fact, codes, unit)
        at = self.document.location(f"{pointer}/{op}")
        if target is None:
            self.problems.append(
                Problem(
                    "unit_mismatch",
                    f"threshold unit `{unit}` does not convert for `{fact}.{node['field']}`"
                    f" (known: {', '.join(units.known_units(fact))})",
                    at,
                )
            )
            return
        for s in sets:
            expected = None if s.unit is None else units.target(fact, s.codes, s.unit)
            if s.unit is not None and (expected is None or expected.field != target.field):
                self.problems.append(
                    Problem(
                        "unit_mismatch",
                        f"threshold unit `{unit}` does not convert to `{s.unit}`, the unit of"
                        f" value set `{s.name}`",
                        at,
                    )
                )
                return
        node["field"] = target.field
        if "setting" in raw and target.factor == 1 and unit == target.unit:
            return  # the setting's name stays visible in renderings
        node[op] = {"value": target.convert(value), "unit": target.unit}


def expand(
    document: source.Document,
    data: Mapping[str, Any] | None = None,
    imported: Mapping[str, tuple[Mapping[str, Any], str]] | None = None,
) -> Expansion:
    """Return the policy data (by default the document's; with imports resolved, modules.py)
    with value sets expanded; `imported` are the value sets of imported modules, as (data,
    file). Raises PolicyError (located)."""
    own: dict[str, Any] = copied(dict(document.data if data is None else data))
    expander = _Expander(document, own.get("settings", {}), imported or {})
    for key in ("sections", "rules", "alternative"):
        if key in own:
            expander.walk(own[key], f"/{key}", {})
    if expander.problems:
        raise PolicyError(expander.problems)
    return Expansion(own, expander.used, expander.shared)
