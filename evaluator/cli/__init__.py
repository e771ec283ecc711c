"""The `necessity` command: a thin Click layer over the library."""

from __future__ import annotations

from evaluator.cli import dataclass_code

# Before any of the classes the command creates (evaluator/cli/dataclass_code.py).
dataclass_code.install()
