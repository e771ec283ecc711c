"""The on-disk cache of parsed policy files (evaluator/read/parse_cache.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evaluator.errors import SourceError
from evaluator.language.policies import load_policy
from evaluator.read import parse_cache, source

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "lumbar-decompression" / "2025.1.yaml"


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.json")) if folder.exists() else []


def test_a_hit_gives_what_parsing_gives(cache_folder: Path) -> None:
    parsed = source.load(POLICY)
    first = parse_cache.load(POLICY)
    assert len(_entries(cache_folder)) == 1
    second = parse_cache.load(POLICY)
    for document in (first, second):
        assert document.data == parsed.data
        assert dict(document.positions) == dict(parsed.positions)
        assert document.path == str(POLICY)
    assert load_policy(POLICY) == load_policy(POLICY)


def test_an_edited_file_misses(cache_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    assert parse_cache.load(path).data == {"a": 1}
    path.write_text("a: 2\nb: [x]\n", encoding="utf-8")
    document = parse_cache.load(path)
    assert document.data == {"a": 2, "b": ["x"]}
    assert document.positions["/b/0"] == (2, 5)
    assert len(_entries(cache_folder)) == 2


def test_a_damaged_entry_is_parsed_again(cache_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    parse_cache.load(path)
    for damage in ("{not json", '{"key": "another", "data": {"a": 9}, "positions": []}', "[]"):
        (entry,) = _entries(cache_folder)
        entry.write_text(damage, encoding="utf-8")
        assert parse_cache.load(path).data == {"a": 1}


def test_a_file_that_does_not_parse_is_not_cached(cache_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(SourceError):
            parse_cache.load(path)
    assert _entries(cache_folder) == []
    with pytest.raises(SourceError, match="no such file"):
        parse_cache.load(tmp_path / "missing.yaml")


def test_off_turns_it_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NECESSITY_CACHE_DIR", "off")
    assert parse_cache.cache_dir() is None
    assert parse_cache.load(POLICY).data == source.load(POLICY).data
    monkeypatch.delenv("NECESSITY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert parse_cache.cache_dir() == tmp_path / "necessity"


def test_an_unwritable_cache_is_no_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("NECESSITY_CACHE_DIR", str(blocker / "below"))
    assert parse_cache.load(POLICY).data == source.load(POLICY).data


def test_a_fifo_is_never_opened(cache_folder: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="FIFO"):
        parse_cache.load(fifo)
    assert _entries(cache_folder) == []
