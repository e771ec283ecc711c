"""The one exception tree: every error the product raises, each with a location and a stable code.

Tree::

    NecessityError                  base; never raised directly
    ├── InputError                  a bad file or argument (exit code 2)
    │   ├── SourceError             unreadable or malformed YAML/JSON
    │   ├── SchemaError             a JSON Schema violation
    │   ├── CaseError               a case file that validates but cannot be normalised
    │   │                            (unknown spinal level, impossible date)
    │   ├── PolicyError             a policy that cannot be loaded or compiled
    │   └── PolicyNotFoundError     an unknown policy id or version
    └── EngineError                 durable_rules failed; never reported as a determination

Validation and compilation collect every problem (capped at ``MAX_PROBLEMS``) and raise one
``InputError`` whose ``problems`` hold them all; a single problem is a one-element tuple.
An unmet clause or a missing fact is an outcome, not an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class Location:
    """Where a problem is: file, 1-based line and column where known, and a JSON pointer."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    pointer: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            parts.append(where)
        if self.pointer is not None:
            parts.append(f"({self.pointer or '/'})")
        return " ".join(parts)

    def with_file(self, file: str | Path) -> Location:
        return Location(str(file), self.line, self.column, self.pointer)


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: a stable snake_case code, a one-line lowercase message, a location, a hint."""

    code: str
    message: str
    location: Location = field(default_factory=Location)
    hint: str | None = None

    def __str__(self) -> str:
        where = str(self.location)
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def as_dict(self) -> dict[str, object]:
        loc = self.location
        return {
            "code": self.code,
            "message": self.message,
            "file": loc.file,
            "line": loc.line,
            "column": loc.column,
            "pointer": loc.pointer,
            "hint": self.hint,
        }


class NecessityError(Exception):
    """Base of every error the product raises on purpose."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("an error needs at least one problem")
        super().__init__(str(self))

    @classmethod
    def single(
        cls,
        code: str,
        message: str,
        location: Location | None = None,
        hint: str | None = None,
    ) -> NecessityError:
        return cls([Problem(code, message, location or Location(), hint)])

    @property
    def code(self) -> str:
        return self.problems[0].code

    @property
    def location(self) -> Location:
        return self.problems[0].location

    def __str__(self) -> str:
        lines = [str(p) for p in self.problems[:MAX_PROBLEMS]]
        if len(self.problems) > MAX_PROBLEMS:
            lines.append(f"... and {len(self.problems) - MAX_PROBLEMS} more problems")
        return "\n".join(lines)


class InputError(NecessityError):
    """A bad file, argument or policy: the user can fix it (exit code 2)."""


class SourceError(InputError):
    """A file that cannot be read, or is not well-formed YAML/JSON."""


class SchemaError(InputError):
    """A document that violates its JSON Schema."""


class CaseError(InputError):
    """A case that validates but cannot be normalised into facts."""


class PolicyError(InputError):
    """A policy that cannot be loaded or compiled."""


class PolicyNotFoundError(InputError):
    """An unknown policy id or version, or no version in force on a date."""


class EngineError(NecessityError):
    """durable_rules failed or misbehaved; the evaluation has no determination."""


class Collector:
    """Gathers problems so that validation and compilation report them all at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(
        self,
        code: str,
        message: str,
        location: Location | None = None,
        hint: str | None = None,
    ) -> None:
        self.problems.append(Problem(code, message, location or Location(), hint))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self, error_type: type[NecessityError]) -> None:
        if self.problems:
            raise error_type(self.problems)
