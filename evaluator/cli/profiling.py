"""Time per phase of one evaluation, for `necessity evaluate --profile`.

The phases are the product's own functions, timed where they are entered: reading a file,
schema validation, turning the case into facts, loading and compiling policies, the engine's
run, assembling the decision and rendering it. A phase's time excludes the phases it calls
(validation inside reading a case counts as validation), so the times add up to the total.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["PHASES", "Profile", "profiled"]

PHASES = ("read", "validate", "facts", "policies", "engine", "assemble", "render")


class Profile:
    """Exclusive seconds spent in each phase, and calls of each."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.calls = dict.fromkeys(PHASES, 0)
        self._children: list[float] = []
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the time spent in the block, less its inner phases, as `name`."""
        self._children.append(0.0)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = self._children.pop()
            self.seconds[name] += elapsed - inner
            self.calls[name] += 1
            if self._children:
                self._children[-1] += elapsed

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """Return `function` timed as phase `name`."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return function(*args, **kwargs)

        return timed

    def lines(self) -> list[str]:
        """Return the report: one line per phase, then the other work and the total."""
        total = time.perf_counter() - self.started
        shown = [
            f"{name:<10}{seconds * 1000:9.1f} ms  ({self.calls[name]} call"
            f"{'' if self.calls[name] == 1 else 's'})"
            for name, seconds in self.seconds.items()
        ]
        other = total - sum(self.seconds.values())
        return [
            "profile (exclusive wall time per phase):",
            *("  " + line for line in shown),
            f"  {'other':<10}{other * 1000:9.1f} ms",
            f"  {'total':<10}{total * 1000:9.1f} ms  (since the command started; imports excluded)",
        ]


# (module, attribute, phase): the functions that begin each phase. Methods are patched on their
# class. tests/test_profiling.py checks every one exists, so a rename cannot silently drop one.
_HOOKS = (
    ("evaluator.read.source", "load", "read"),
    ("evaluator.read.parse_cache", "load", "read"),
    ("evaluator.read.schemas", "SchemaSet.validate", "validate"),
    ("evaluator.case.cases", "case_from_document", "facts"),
    ("evaluator.api", "request_from_document", "facts"),
    ("evaluator.language.policies", "load_policy", "policies"),
    ("evaluator.api", "program_for", "policies"),
    ("evaluator.engine.durable", "Engine.run", "engine"),
    ("evaluator.api", "_evaluate", "assemble"),
    ("evaluator.api", "assemble", "assemble"),
    ("evaluator.api", "review_case", "assemble"),
)


def _target(module_name: str, attribute: str) -> tuple[Any, str]:
    import importlib  # noqa: PLC0415

    owner: Any = importlib.import_module(module_name)
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, name


@contextlib.contextmanager
def profiled() -> Iterator[Profile]:
    """Time the phases of whatever runs in the block; restores every function on exit."""
    profile = Profile()
    saved: list[tuple[Any, str, Any]] = []
    try:
        for module_name, attribute, phase in _HOOKS:
            owner, name = _target(module_name, attribute)
            original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
            saved.append((owner, name, original))
            setattr(owner, name, profile.wrap(phase, original))
        yield profile
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)
