"""The bench policy's cases: a seeded, deterministic generator of case documents.

Every case requests one lumbar fusion on 2025-06-20 and varies what the six clauses of
benchmarks/policies/bench-fusion read (red flags, conservative care, physical therapy, imaging,
nicotine, diabetes) so that every clause ends in each status it can reach. Dates are exact days or
whole months, never after the request date.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

SEED = 20250620
REQUEST = date(2025, 6, 20)
LEVELS = ("L1", "L2", "L3", "L4", "L5", "S1")
# A fusion names its top and bottom level; each motion segment between them is fused.
FUSIONS = ("L4-L5", "L5-S1", "L3-L4", "L4-S1", "L3-L5")
RED_FLAGS = (
    "cauda_equina_syndrome",
    "unstable_fracture",
    "tumour",
    "infection",
    "progressive_motor_deficit",  # not a red flag for this policy
)
PT_STATUSES = ("completed", "ongoing", "contraindicated", "not_done", "mentioned_only")
HBA1C = (6.5, 7.0, 7.9, 8.0, 8.1, 9.2)

Document = dict[str, Any]


def segments(fusion: str) -> list[str]:
    """Return the motion segments of a level range such as L4-S1 (L4-L5, L5-S1)."""
    top, bottom = fusion.split("-")
    first, last = LEVELS.index(top), LEVELS.index(bottom)
    return [f"{LEVELS[i]}-{LEVELS[i + 1]}" for i in range(first, last)]


def generate(n: int, seed: int = SEED) -> list[Document]:
    """Return `n` case documents; the same `n` and `seed` give the same documents."""
    rng = random.Random(seed)
    return [_case(rng, f"bench-{seed}-{i:06d}") for i in range(n)]


def write_files(documents: list[Document], folder: Path) -> list[Path]:
    """Write each document to `folder/<case_id>.json`; return the paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for document in documents:
        path = folder / f"{document['case_id']}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        paths.append(path)
    return paths


def write_lines(documents: list[Document], path: Path) -> Path:
    """Write the documents as JSON Lines (one case per line) to `path`; return it."""
    path.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    return path


def _chance(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def _date(rng: random.Random, low: int, high: int) -> str:
    """A date `low`..`high` days before the request: an exact day, or now and then its month
    (only for a month that ends before the request, so that no end lies after it)."""
    day = REQUEST - timedelta(days=rng.randint(low, high))
    if (day.year, day.month) < (REQUEST.year, REQUEST.month) and _chance(rng, 0.25):
        return f"{day.year:04d}-{day.month:02d}"
    return day.isoformat()


def _case(rng: random.Random, case_id: str) -> Document:
    fusion = rng.choice(FUSIONS)
    document: Document = {
        "case_id": case_id,
        "request": {
            "date": REQUEST.isoformat(),
            "lines": [
                {"id": "fusion", "procedure": "lumbar_fusion", "cpt": ["22633"], "fusion": fusion}
            ],
        },
    }
    if _chance(rng, 0.12):
        document["red_flags"] = [{"kind": rng.choice(RED_FLAGS)}]
    care = _care(rng)
    if care is not None:
        document["conservative_care"] = care
    imaging = _imaging(rng, segments(fusion))
    if imaging:
        document["imaging"] = imaging
    if _chance(rng, 0.9) and (nicotine := _nicotine(rng)):
        document["nicotine"] = nicotine
    if _chance(rng, 0.9) and (diabetes := _diabetes(rng)):
        document["diabetes"] = diabetes
    return document


def _care(rng: random.Random) -> Document | None:
    if _chance(rng, 0.08):
        return None
    care: Document = {}
    if _chance(rng, 0.92):
        care["start"] = _date(rng, 40, 200)
    if _chance(rng, 0.85):
        status = rng.choice(PT_STATUSES)
        therapy: Document = {"status": status}
        if status in ("completed", "ongoing"):
            if _chance(rng, 0.85):
                therapy["supervised"] = _chance(rng, 0.75)
            if _chance(rng, 0.85):
                weeks, days = rng.randint(3, 10), rng.randint(0, 6)
                therapy["duration"] = (
                    {"weeks": weeks, "days": days}
                    if _chance(rng, 0.5)
                    else f"{weeks * 7 + days} days"
                )
        care["physical_therapy"] = therapy
    return care or None


def _imaging(rng: random.Random, fused: list[str]) -> list[Document]:
    if _chance(rng, 0.08):
        return []
    studies = []
    for modality in ("mri", "ct") if _chance(rng, 0.2) else ("mri",):
        # Mostly the fused segments and a neighbour; now and then one of them is not named.
        named = [s for s in fused if _chance(rng, 0.93)]
        findings = []
        for segment in named:
            finding: Document = {"level": segment}
            # reported (70 %), reported absent (15 %), or not mentioned: absent at a named level
            listhesis = rng.choices((True, False, None), weights=(70, 15, 15))[0]
            if listhesis is not None:
                finding["spondylolisthesis"] = listhesis
            findings.append(finding)
        if findings:
            studies.append({"id": f"{modality}-1", "modality": modality, "findings": findings})
    return studies


def _nicotine(rng: random.Random) -> Document:
    nicotine: Document = {}
    if _chance(rng, 0.9):
        nicotine["status"] = rng.choice(("never", "former", "current"))
    if _chance(rng, 0.6):
        nicotine["cotinine_ng_ml"] = rng.randint(0, 25)
    return nicotine


def _diabetes(rng: random.Random) -> Document:
    diabetes: Document = {}
    if _chance(rng, 0.9):
        diabetes["diabetic"] = _chance(rng, 0.45)
    if _chance(rng, 0.75):
        diabetes["hba1c_pct"] = rng.choice(HBA1C)
    return diabetes
