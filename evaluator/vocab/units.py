"""Units of coded quantities: which fact field a UCUM unit lands in and by what factor.

The table is data: ``x-units`` (unit -> field, factor) and ``x-analytes`` (per code, the units
that convert only for that analyte, such as mmol/L of glucose to mg/dL, and the range of values
the analyte can take in each field, such as an ODI's 0 to 100 %) on the fact types of
schemas/facts.schema.json that carry quantities (``x-quantity``). A case's quantity and a
policy's threshold go through the same table, so they always meet in the same field and unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from evaluator.read import schemas

# A converted quantity keeps 4 decimals; thresholds are converted to the same precision, so a
# value stated exactly at a threshold in the same unit stays exactly at it after conversion
# (100 [lb_av] is 45.3592 kg on both sides). A value that needs no conversion is kept as
# stated (`plain`): rounded, 7.99999 % became 8.0 and failed "below 8.0 %".
DECIMALS = 4
# Python writes a float with an exponent below this magnitude (1e-05), which durable_rules
# cannot parse; from it up to 1e16 it writes the float plainly.
_PLAIN_FROM = 1e-4


def plain(value: float) -> float:
    """Return ``value`` as the engine can take it: unchanged when Python writes it without an
    exponent (the engine compares it exactly), else rounded to DECIMALS places.

    Only a value below 1e-4 in magnitude is rounded (to 0 or 0.0001, signed): it may cross a
    threshold of exactly 0 or 0.0001, never one a clinical criterion states.
    """
    if value == 0 or abs(value) >= _PLAIN_FROM:
        return value
    return round(value, DECIMALS)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a quantity in some unit goes: the fact field, its unit, and the factor to it."""

    field: str
    unit: str
    factor: float

    def convert(self, value: float) -> float:
        """Return ``value`` in this target's unit, at the precision facts keep."""
        converted = value * self.factor  # a float, even at a factor of 1
        if self.factor == 1:  # the unit the fact keeps: nothing converted, nothing rounded
            return plain(converted)
        return round(converted, DECIMALS)


@cache
def _tables() -> Mapping[str, Mapping[str, Any]]:
    defs = schemas.load_schema("facts")["$defs"]
    return {name: spec for name, spec in defs.items() if "x-quantity" in spec}


def quantity_field(fact_type: str) -> str | None:
    """Return the logical field name of a fact type's quantity (``value``), or None."""
    spec = _tables().get(fact_type)
    return None if spec is None else str(spec["x-quantity"])


def known_units(fact_type: str) -> tuple[str, ...]:
    """Return every unit the fact type's quantities may be stated in, sorted."""
    spec = _tables()[fact_type]
    extra = {u for analyte in spec.get("x-analytes", {}).values() for u in analyte.get("units", {})}
    return tuple(sorted(set(spec["x-units"]) | extra))


def target(fact_type: str, codes: Iterable[str], unit: str) -> Target | None:
    """Return where a quantity in ``unit`` of any of ``codes`` goes, or None if it cannot.

    An analyte's own conversion (mmol/L of glucose) applies only when every code agrees on
    it; otherwise the general table decides (mmol/L stays mmol/L).
    """
    spec = _tables()[fact_type]
    props = spec["properties"]
    analytes = spec.get("x-analytes", {})
    codes = tuple(codes)
    own = [analytes.get(c, {}).get("units", {}).get(unit) for c in codes]
    if codes and all(own) and len({tuple(o) for o in own if o}) == 1:
        field, factor = own[0]
    elif unit in spec["x-units"]:
        field, factor = spec["x-units"][unit]
    else:
        return None
    return Target(field, props[field]["x-unit"], float(factor))


def value_range(fact_type: str, code: str, field: str) -> tuple[float, float] | None:
    """Return the lowest and highest value ``code`` can take in ``field`` (its analyte's
    ``range``), or None where the table gives none."""
    analyte = _tables()[fact_type].get("x-analytes", {}).get(code, {})
    bounds = analyte.get("range", {}).get(field)
    return None if bounds is None else (float(bounds[0]), float(bounds[1]))
