"""The folders a policy's references are looked up in (api._libraries): worked out once per
policy file, not for every referenced evaluation, and never stale when the working folder moves."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from evaluator import api
from evaluator.language.policies import Library
from evaluator.read import resources


def test_a_policy_file_is_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    api._library_roots.cache_clear()
    policy = Library.shared().get("lumbar-fusion", date(2025, 6, 1))
    first = api._libraries(policy)
    resolved: list[Path] = []
    real = Path.resolve

    def counted(self: Path, strict: bool = False) -> Path:
        resolved.append(self)
        return real(self, strict=strict)

    monkeypatch.setattr(Path, "resolve", counted)
    assert api._libraries(policy) == first
    assert Path(policy.path) not in resolved
    assert first[0] is Library.shared(Path(policy.path).parent.parent)
    assert Library.shared() in first


def test_a_relative_path_follows_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api._library_roots.cache_clear()
    shipped = Library.shared().get("lumbar-fusion", date(2025, 6, 1))
    relative = Path(shipped.path).relative_to(resources.policies_dir().parent)
    policy = dataclasses.replace(shipped, path=str(relative))
    monkeypatch.chdir(resources.policies_dir().parent)
    here = api._libraries(policy)[0].root
    monkeypatch.chdir(tmp_path)
    there = api._libraries(policy)[0].root
    assert here == resources.policies_dir().resolve()
    assert there == (tmp_path / relative).resolve().parent.parent
