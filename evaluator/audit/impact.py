"""`necessity impact`: evaluate past cases under two policy versions and report what moves.

Cases go through `batch.records` (the same worker pool as `batch --jobs`) once per version,
each version from a one-policy library of its own, so A and B may be any two files, also two
copies of one version.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator import api
from evaluator.batch import runner as batch
from evaluator.case import cases
from evaluator.errors import InputError, Location, SourceError
from evaluator.language.model import Policy
from evaluator.language.policies import Library


@dataclass(frozen=True)
class ClauseMove:
    clause: str
    old: str
    new: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class CaseImpact:
    case: str
    case_id: str | None
    old: str | None  # determination, or None when the case could not be evaluated
    new: str | None
    clauses: tuple[ClauseMove, ...] = ()
    error: str | None = None

    @property
    def flipped(self) -> bool:
        return self.old != self.new

    @property
    def changed(self) -> bool:
        return self.flipped or bool(self.clauses)


@dataclass
class Report:
    old: Policy
    new: Policy
    cases: list[CaseImpact] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # no line governed by either version

    @property
    def changed(self) -> list[CaseImpact]:
        return [c for c in self.cases if c.changed and c.error is None]

    @property
    def errors(self) -> list[CaseImpact]:
        return [c for c in self.cases if c.error is not None]

    def flips(self) -> Counter[tuple[str, str]]:
        return Counter((str(c.old), str(c.new)) for c in self.cases if c.flipped and not c.error)

    def by_clause(self) -> Counter[tuple[str, str, str]]:
        return Counter((m.clause, m.old, m.new) for c in self.changed for m in c.clauses)


def case_paths(paths: Iterable[str | Path], scratch: Path) -> list[Path]:
    """Return the case files named (folders searched); each JSON Lines file is split into one
    file per line in `scratch`, named after the line."""
    found: list[Path] = []
    for named in paths:
        path = Path(named)
        if path.suffix == ".jsonl":
            found.extend(_split_lines(path, scratch))
        else:
            found.extend(batch.case_files([path]))
    return found


def _split_lines(path: Path, scratch: Path) -> Iterator[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SourceError.single(
            "unreadable_file", f"cannot read: {error.strerror}", Location(str(path))
        ) from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            target = scratch / "lines" / f"{path.stem}-line{number}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(line, encoding="utf-8")
            yield target


def _library_of(policy: Policy, scratch: Path) -> Library:
    root = scratch / "policies"
    folder = root / policy.id
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(policy.path, folder / f"{policy.version}.yaml")
    return Library(root)


def _evidence(clause: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(f"{e['condition']} ({e['value']})" for e in clause.get("evidence", ()))


def _moves(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[ClauseMove, ...]:
    before = {c["id"]: c for c in old["clauses"]}
    after = {c["id"]: c for c in new["clauses"]}
    moves = []
    for key in [*before, *(k for k in after if k not in before)]:
        a = before.get(key, {}).get("status", "absent")
        b = after.get(key, {}).get("status", "absent")
        # A clause only one version has matters where it fails (as for diff's witnesses).
        if a != b and not ({a, b} & {"absent"} and {a, b} & {"met", "not_applicable"}):
            moves.append(ClauseMove(key, a, b, _evidence(after.get(key) or before[key])))
    return tuple(moves)


def _error(record: Mapping[str, Any]) -> str:
    problems = record.get("problems") or [{}]
    return f"{record['error']}: {problems[0].get('message', '')}"


def _governed(path: Path, old: Policy, new: Policy, report: Report) -> bool:
    # A case none of whose lines either version governs is not one of its decisions.
    try:
        lines = cases.load_case(path).lines
    except InputError:
        return True  # evaluated anyway, so the report shows the error
    if any(api.governs(p, line) for p in (old, new) for line in lines):
        return True
    report.skipped.append(str(path))
    return False


def impact(
    old: Policy,
    new: Policy,
    paths: Iterable[str | Path],
    jobs: int = 1,
    advance: Callable[[int], None] = lambda _: None,
    total: Callable[[int], None] = lambda _: None,
) -> Report:
    """Evaluate every case under both versions; return what changed, case by case.

    `total(n)` is called once the number of evaluations is known (2 per case) and `advance(n)`
    as they finish, for a progress bar.
    Cases with no line either version governs are listed in `skipped`, not evaluated.
    """
    report = Report(old, new)
    with tempfile.TemporaryDirectory(prefix="necessity-impact-") as tmp:
        scratch = Path(tmp)
        files = [p for p in case_paths(paths, scratch) if _governed(p, old, new, report)]
        total(2 * len(files))
        results = []
        for policy, side in ((old, "a"), (new, "b")):
            library = _library_of(policy, scratch / side)
            got = []
            for record in batch.records(batch.items(files), policy.ref, library, jobs):
                got.append(record)
                advance(1)
            results.append(got)
        for path, a, b in zip(files, results[0], results[1], strict=True):
            shown = str(path)
            if "error" in a or "error" in b:
                failed = a if "error" in a else b
                report.cases.append(CaseImpact(shown, None, None, None, error=_error(failed)))
                continue
            ra, rb = a["result"], b["result"]
            report.cases.append(
                CaseImpact(
                    shown, ra["case_id"], ra["determination"], rb["determination"], _moves(ra, rb)
                )
            )
    return report


__all__ = ["CaseImpact", "ClauseMove", "Report", "case_paths", "impact"]
