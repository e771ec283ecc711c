"""Where the bundled `schemas/` and `policies/` folders are, installed or in a checkout, and
which version of the evaluator is installed."""

from __future__ import annotations

import functools
import os
import re
import sys
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
    found = _recorded_version()
    if found is not None:
        return found
    # with zipfile, csv and email parsing, about 10 ms of a cold `evaluate`: only when the
    # plain case below does not hold
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version("necessity")
    except metadata.PackageNotFoundError:  # pragma: no cover - a checkout without install
        return "unknown"


_DISTRIBUTION = "necessity"


def _normalized(name: str) -> str:
    # as importlib.metadata compares distribution names (PEP 503, `-` as `_`)
    return re.sub(r"[-_.]+", "_", name).lower()


def _recorded_version() -> str | None:
    """The `Version:` in the METADATA of the `necessity-*.dist-info` folder importlib.metadata
    finds first (the first folder on sys.path holding one), read directly; None, leaving it to
    importlib.metadata, for anything but that plain case (an egg, two candidates in a folder,
    an unreadable file)."""
    for entry in sys.path:
        folder = entry or "."
        try:
            children = [c for c in os.listdir(folder) if c.lower().startswith(_DISTRIBUTION)]
        except OSError:
            continue  # not a folder (a zip archive of the standard library)
        found = []
        for child in children:
            low = child.lower()
            if low.endswith((".egg-info", ".egg", ".egg-link")):
                return None
            if low.endswith(".dist-info") and (
                _normalized(low.rpartition(".")[0].partition("-")[0]) == _DISTRIBUTION
            ):
                found.append(child)
        if not found:
            continue
        if len(found) > 1:
            return None
        try:
            with open(os.path.join(folder, found[0], "METADATA"), encoding="utf-8") as file:
                for line in file:
                    if not line.strip():
                        break  # the end of the headers
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip() or None
        except (OSError, ValueError):
            pass
        return None
    return None
