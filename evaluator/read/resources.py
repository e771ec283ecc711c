"""Where the bundled `schemas/` and `policies/` folders are, installed or in a checkout, and
which version of the evaluator is installed."""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path

# This module lives in evaluator/read/; the package root is one folder up.
_PACKAGE = Path(__file__).resolve().parent.parent
# A wheel carries the folders inside the package (pyproject's hatch force-include); a checkout
# or an editable install has them at the top of the repo.
_PACKAGED = _PACKAGE / "_data"
_REPO = _PACKAGE.parent


def _find(name: str) -> Path:
    packaged = _PACKAGED / name
    return packaged if packaged.is_dir() else _REPO / name


def schemas_dir() -> Path:
    """Return the folder holding the JSON Schemas (`<name>.schema.json`)."""
    return _find("schemas")


def policies_dir() -> Path:
    """Return the folder holding the bundled policy files."""
    return _find("policies")


@functools.cache
def evaluator_version() -> str:
    """Return the installed evaluator's version ("unknown" in a checkout without install)."""
    try:
        return metadata.version("necessity")
    except metadata.PackageNotFoundError:  # pragma: no cover - a checkout without install
        return "unknown"
