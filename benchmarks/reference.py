"""The bench policy's six clauses in plain Python: the benchmark's reference and its ceiling.

Used only by the benchmark, which checks that necessity (and each peer engine) gives the same
statuses on every generated case. `flatten` reads a generated case document into `Facts` (the
same flat record the peers are given); `evaluate` decides the clauses in Kleene logic, as
docs/authoring.md states the operators.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from typing import Any

from benchmarks.benchgen import REQUEST, segments

T, F, U = True, False, None  # true, false, unknown (not documented)
Truth = bool | None

CLAUSES = (
    "BF-URGENT",
    "BF-CONSERVATIVE",
    "BF-PHYSICAL-THERAPY",
    "BF-INSTABILITY",
    "BF-NICOTINE",
    "BF-DIABETES",
)
URGENT_KINDS = frozenset({"cauda_equina_syndrome", "unstable_fracture", "tumour", "infection"})
CARE_DAYS = 84  # 12 weeks
PT_DAYS = 42  # 6 weeks
COTININE = 10  # ng/mL, at most
HBA1C = 8.0  # %, less than


@dataclass(frozen=True, slots=True)
class Facts:
    """What the six clauses read in one case; None is not documented."""

    case_id: str
    red_flags: tuple[str, ...]
    care_days: tuple[int, int] | None  # days from care start to the request, low and high
    pt_status: str | None
    pt_supervised: bool | None
    pt_days: int | None
    fused: tuple[str, ...]
    findings: tuple[tuple[str, bool], ...]  # (segment, spondylolisthesis) per named segment
    nicotine: str | None
    cotinine: float | None
    diabetic: bool | None
    hba1c: float | None


def _days_before(text: str) -> tuple[int, int]:
    parts = [int(p) for p in text.split("-")]
    if len(parts) == 3:  # noqa: PLR2004  (an exact day)
        days = (REQUEST - date(*parts)).days
        return days, days
    year, month = parts
    last = calendar.monthrange(year, month)[1]
    return (REQUEST - date(year, month, last)).days, (REQUEST - date(year, month, 1)).days


def _duration_days(value: Any) -> int:
    if isinstance(value, dict):
        return int(value.get("weeks", 0)) * 7 + int(value.get("days", 0))
    number, unit = str(value).split()
    if unit != "days":
        raise ValueError(f"unexpected duration {value!r}")
    return int(number)


def flatten(document: dict[str, Any]) -> Facts:
    """Return the facts the clauses read from a generated case document."""
    care = document.get("conservative_care", {})
    therapy = care.get("physical_therapy", {})
    nicotine = document.get("nicotine", {})
    diabetes = document.get("diabetes", {})
    fused = tuple(segments(document["request"]["lines"][0]["fusion"]))
    findings = tuple(
        (f["level"], bool(f.get("spondylolisthesis", False)))  # a named segment: absent is false
        for study in document.get("imaging", [])
        for f in study["findings"]
    )
    duration = therapy.get("duration")
    return Facts(
        case_id=document["case_id"],
        red_flags=tuple(flag["kind"] for flag in document.get("red_flags", [])),
        care_days=_days_before(care["start"]) if "start" in care else None,
        pt_status=therapy.get("status"),
        pt_supervised=therapy.get("supervised"),
        pt_days=None if duration is None else _duration_days(duration),
        fused=fused,
        findings=findings,
        nicotine=nicotine.get("status"),
        cotinine=nicotine.get("cotinine_ng_ml"),
        diabetic=diabetes.get("diabetic"),
        hba1c=diabetes.get("hba1c_pct"),
    )


def _all(*values: Truth) -> Truth:
    if F in values:
        return F
    return U if U in values else T


def _any(*values: Truth) -> Truth:
    if T in values:
        return T
    return U if U in values else F


def _test(value: Any, passes: bool) -> Truth:
    return U if value is None else passes


def _status(applies: Truth, requires: Truth) -> str:
    # applies_when false (or waived) is not applicable; unknown applies
    if applies is F:
        return "not_applicable"
    return {T: "met", F: "not_met", U: "not_documented"}[requires]


def evaluate(facts: Facts) -> dict[str, str]:
    """Return each clause's status (in CLAUSES order) and the `determination`."""
    urgent = any(kind in URGENT_KINDS for kind in facts.red_flags)
    waived = F if urgent else T
    care: Truth = U
    if facts.care_days is not None:
        low, high = facts.care_days
        care = T if low >= CARE_DAYS else F if high < CARE_DAYS else U
    therapy = _any(
        _test(facts.pt_status, facts.pt_status == "contraindicated"),
        _all(
            _test(facts.pt_supervised, facts.pt_supervised is True),
            _test(facts.pt_days, facts.pt_days is not None and facts.pt_days >= PT_DAYS),
        ),
    )
    per_segment = []
    for segment in facts.fused:
        found = [listhesis for named, listhesis in facts.findings if named == segment]
        per_segment.append(_any(*found) if found else U)
    instability = _all(*per_segment) if per_segment else U
    nicotine = _any(
        _test(facts.nicotine, facts.nicotine == "never"),
        _all(
            _test(facts.nicotine, facts.nicotine != "current"),
            _test(facts.cotinine, facts.cotinine is not None and facts.cotinine <= COTININE),
        ),
    )
    statuses = {
        "BF-URGENT": "met" if urgent else "not_applicable",
        "BF-CONSERVATIVE": _status(waived, care),
        "BF-PHYSICAL-THERAPY": _status(waived, therapy),
        "BF-INSTABILITY": _status(T, instability),
        "BF-NICOTINE": _status(T, nicotine),
        "BF-DIABETES": _status(
            _test(facts.diabetic, facts.diabetic is True),
            _test(facts.hba1c, facts.hba1c is not None and facts.hba1c < HBA1C),
        ),
    }
    values = statuses.values()
    statuses["determination"] = (
        "not_medically_necessary"
        if "not_met" in values
        else "insufficient_documentation"
        if "not_documented" in values
        else "medically_necessary"
    )
    return statuses
