"""Files at a git revision, read with `git show` / `git ls-tree` (no checkout, no work tree)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from evaluator.errors import Location, SourceError

PREFIX = "git:"


def is_git(text: str) -> bool:
    return text.startswith(PREFIX)


def _git(args: list[str], where: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, check=False, timeout=60)
    except OSError as error:
        raise SourceError.single(
            "git_failed", f"cannot run git: {error}", Location(where)
        ) from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SourceError.single(
            "git_failed", message[-1] if message else "git failed", Location(where)
        )
    return done.stdout


def split(text: str) -> tuple[str, str]:
    """Return (revision, path) of `git:REV:path`; raises SourceError when either is missing."""
    rev, _, path = text[len(PREFIX) :].partition(":")
    if not rev or not path:
        raise SourceError.single(
            "bad_git_source",
            "expected git:REV:path, e.g. git:HEAD~1:policies/x/1.yaml",
            Location(text),
        )
    return rev, path


def show(rev: str, path: str) -> bytes:
    """Return the bytes of `path` (relative to the working directory) at `rev`."""
    # `./` makes the path relative to the working directory, as the user typed it.
    return _git(["show", f"{rev}:./{path}"], f"{PREFIX}{rev}:{path}")


def export(rev: str, folder: str, dest: Path) -> Path:
    """Write every file under `folder` at `rev` into `dest` (same relative paths); return the
    copy of `folder`."""
    names = _git(["ls-tree", "-r", "--name-only", rev, "--", folder], f"{PREFIX}{rev}:{folder}")
    listed = [n for n in names.decode("utf-8").splitlines() if n]
    if not listed:
        raise SourceError.single(
            "git_failed", f"no files under `{folder}` at {rev}", Location(f"{PREFIX}{rev}")
        )
    for name in listed:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(show(rev, name))
    return dest / folder
