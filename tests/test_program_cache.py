"""Compiled programs kept on disk by content (compile/program_cache.py, api.program_for)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator import api
from evaluator.compile import compiler, program_cache, ruleset
from evaluator.compile.program import Program, Test
from evaluator.engine.durable import Engine
from evaluator.errors import PolicyError
from evaluator.language.policies import Library, load_policy
from evaluator.read import disk_cache
from tests.test_ruleset_cache import _evaluate_json

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "lumbar-decompression" / "2025.1.yaml"
FUSION = ROOT / "policies" / "lumbar-fusion" / "2025.1.yaml"
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"


def _entries(folder: Path) -> list[Path]:
    programs = folder / "programs"
    return sorted(programs.rglob("*.bin")) if programs.exists() else []


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """api.program_for as in a new process: nothing compiled in this one yet."""
    monkeypatch.setattr(api, "_PROGRAMS", {})


def _no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_options: object) -> Program:
        raise AssertionError("compiled although the cache holds this program")

    def render(_program: object, **_options: bool) -> None:
        raise AssertionError("rendered although the cache holds this ruleset")

    monkeypatch.setattr(compiler, "compile_policy", refuse)
    monkeypatch.setattr(ruleset, "_definition", render)
    monkeypatch.setitem(ruleset._RENDERER, "_definition", render)


@pytest.mark.usefixtures("fresh_process")
@pytest.mark.parametrize("path", [POLICY, FUSION], ids=["decompression", "fusion"])
def test_a_hit_gives_the_program_compiling_gives(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch, path: Path
) -> None:
    policy = load_policy(path)
    compiled = api.program_for(policy)  # compiles, registers and writes the entry
    text = ruleset.definition_text(compiled)
    assert len(_entries(cache_folder)) == 1
    monkeypatch.setattr(api, "_PROGRAMS", {})
    _no_compiling(monkeypatch)
    again = api.program_for(load_policy(path))
    assert again is not compiled
    assert again == compiled
    assert ruleset.definition_text(again) == text
    # the projection read back is the one the rules give (worked out again without the memo)
    key = program_cache.key(policy)
    assert key is not None
    loaded = program_cache.load(key)
    assert loaded is not None
    kept = vars(loaded)[ruleset._PROJECTION]
    assert kept == ruleset.projection(compiled)
    assert kept == ruleset.projection(dataclasses.replace(loaded))
    # shared objects stay shared (a pattern reused by several rules is one object)
    patterns = [p for r in compiled.rules for p in r.patterns]
    shared = len({id(p) for p in patterns})
    assert len({id(p) for r in again.rules for p in r.patterns}) == shared < len(patterns)


@pytest.mark.usefixtures("fresh_process")
def test_a_changed_policy_misses(cache_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lumbar-decompression" / "2025.1.yaml"
    copy.parent.mkdir()
    text = POLICY.read_text(encoding="utf-8")
    copy.write_text(text, encoding="utf-8")
    before = api.program_for(load_policy(copy))
    # one threshold changed: the rules, hence the key and the program, change
    changed = text.replace(
        "conservative_care_minimum:\n    value: 6\n", "conservative_care_minimum:\n    value: 7\n"
    )
    assert changed != text
    copy.write_text(changed, encoding="utf-8")
    after = api.program_for(load_policy(copy))
    assert after != before
    assert after == compiler.compile_policy(load_policy(copy))
    assert len(_entries(cache_folder)) == 2


def test_the_key_covers_code_version_and_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy(POLICY)
    keys = {program_cache.key(policy)}
    monkeypatch.setattr(ruleset, "_evaluator_fingerprint", lambda: "an edited compiler")
    keys.add(program_cache.key(policy))
    monkeypatch.setattr(program_cache, "_engine_version", lambda: "2.0.29")
    keys.add(program_cache.key(policy))
    monkeypatch.setattr(program_cache, "FORMAT", b"necessity-program-0")
    keys.add(program_cache.key(policy))
    assert None not in keys
    assert len(keys) == 4


def _body(entry: Path) -> bytes:
    return entry.read_bytes().partition(b"\n")[2]


def _rewritten(entry: Path, body: bytes) -> bytes:
    """The entry with `body` and a header that checks out, as only a forger could write."""
    key = entry.name.removesuffix(".bin")
    digest = hashlib.sha256(body).hexdigest()
    return program_cache.FORMAT + f" {key} {digest}\n".encode() + body


def _damages(entry: Path) -> dict[str, bytes]:
    good = entry.read_bytes()
    body = _body(entry)
    text, (names, scalars, table, root), projected = marshal.loads(body)
    unknown = ("builtins.object", *names[1:])
    return {
        "truncated": good[: len(good) // 2],
        "a-byte-flipped": good[:-100] + bytes([good[-100] ^ 0x01]) + good[-99:],
        "another-key": good.replace(entry.name[:8].encode(), b"00000000", 1),
        "empty": b"",
        "not-marshal-but-digested": _rewritten(entry, b"\x00not marshal"),
        "unknown-class-but-digested": _rewritten(
            entry, marshal.dumps((text, (unknown, scalars, table, root), projected))
        ),
        "not-a-program-but-digested": _rewritten(
            entry, marshal.dumps((text, (names, scalars, table, table[-1][1][2]), projected))
        ),
        "a-later-object-but-digested": _rewritten(
            entry,
            marshal.dumps((text, (names, scalars, ((-1, (root,)), *table), root + 1), projected)),
        ),
        "a-scalar-at-the-root-but-digested": _rewritten(
            entry, marshal.dumps((text, (names, scalars, table, 0), projected))
        ),
        "a-projection-of-numbers-but-digested": _rewritten(
            entry, marshal.dumps((text, (names, scalars, table, root), (None, (1, 2))))
        ),
        "no-projection-but-digested": _rewritten(
            entry, marshal.dumps((text, (names, scalars, table, root)))
        ),
    }


@pytest.mark.usefixtures("fresh_process")
def test_a_damaged_entry_is_ignored_and_rewritten(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = api.program_for(load_policy(POLICY))
    (entry,) = _entries(cache_folder)
    key = entry.name.removesuffix(".bin")
    for name, damaged in _damages(entry).items():
        entry.write_bytes(damaged)
        assert program_cache.load(key) is None, name
        monkeypatch.setattr(api, "_PROGRAMS", {})
        assert api.program_for(load_policy(POLICY)) == expected, name
        # written again, whole (marshal's bytes may differ from one run to the next)
        assert program_cache.load(key) == expected, name


@pytest.mark.usefixtures("fresh_process")
def test_a_program_that_cannot_be_stored_is_compiled_every_time(cache_folder: Path) -> None:
    program = api.program_for(load_policy(POLICY))
    key = "ab" * 32
    odd = dataclasses.replace(program, references=(object(),))  # type: ignore[arg-type]
    program_cache.store(key, odd)
    assert _entries(cache_folder) == [_entries(cache_folder)[0]]
    assert program_cache.load(key) is None


@pytest.mark.usefixtures("fresh_process")
def test_off_stores_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NECESSITY_CACHE_DIR", "off")
    key = program_cache.key(load_policy(POLICY))
    assert key is not None
    assert program_cache.load(key) is None
    assert api.program_for(load_policy(POLICY)) == compiler.compile_policy(load_policy(POLICY))


@pytest.mark.usefixtures("fresh_process")
def test_a_refused_policy_is_not_stored(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ruleset, "MAX_ALPHA_STACK", 16)
    for _ in range(2):
        with pytest.raises(PolicyError):
            api.program_for(load_policy(FUSION))
    assert _entries(cache_folder) == []


def test_the_oldest_entries_go_past_the_bound(tmp_path: Path) -> None:
    kind = tmp_path / "programs"
    for number in range(6):
        entry = kind / f"{number:02x}" / f"{number:02x}{'0' * 62}.bin"
        disk_cache.write_bytes(entry, b"x", keep=4)
        os.utime(entry, ns=(number * 10**9, number * 10**9))
    disk_cache.write_bytes(kind / "aa" / f"aa{'0' * 62}.bin", b"y", keep=4)
    kept = sorted(p.name[:2] for p in kind.rglob("*.bin"))
    assert kept == ["03", "04", "05", "aa"]
    # another kind's entries (a longer folder name) are not counted or removed
    other = tmp_path / "rulesets" / "00" / "keep.json"
    disk_cache.write_bytes(other, b"z", keep=1)
    disk_cache.prune(tmp_path, 0)  # the top folder: the parse cache's kind
    assert other.exists()
    assert sorted(p.name[:2] for p in kind.rglob("*.bin")) == kept


def test_a_tampered_entry_never_changes_a_decision(tmp_path: Path) -> None:
    """A process that reads a damaged entry decides as one that compiled, and so does one
    that reads the entry rewritten in its place."""
    folder = tmp_path / "cache"
    env = {**os.environ, "NECESSITY_CACHE_DIR": str(folder)}
    expected = _evaluate_json(env)  # compiles and writes every entry
    entries = _entries(folder)
    assert len(entries) == 3
    for entry in entries:
        body = _body(entry)
        # every "at least" of the rules the engine registers now reads "at most"
        entry.write_bytes(entry.read_bytes().replace(b'"$gte"', b'"$lte"'))
        assert _body(entry) != body
    assert _evaluate_json(env) == expected
    assert _evaluate_json(env) == expected


def test_concurrent_processes_share_one_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four processes start on an empty cache at once: each writes entries whole (a
    temporary file renamed), every one decides the same, and the entries are whole after."""
    folder = tmp_path / "cache"
    env = {**os.environ, "NECESSITY_CACHE_DIR": str(folder)}
    command = [sys.executable, "-m", "evaluator", "evaluate", str(FOUNDING), "--format", "json"]
    running = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = []
    for process in running:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode in (0, 1, 3), stderr
        output = json.loads(stdout)
        output.pop("evaluated_at", None)
        outputs.append(output)
    assert all(output == outputs[0] for output in outputs)
    entries = _entries(folder)
    assert len(entries) == 3
    assert not list(folder.rglob("*.tmp"))
    monkeypatch.setenv("NECESSITY_CACHE_DIR", str(folder))
    for entry in entries:
        assert isinstance(program_cache.load(entry.name.removesuffix(".bin")), Program)
    assert _evaluate_json(env) == outputs[0]


@pytest.mark.usefixtures("fresh_process")
def test_a_renderer_changed_at_run_time_reads_and_writes_nothing(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that mutates the renderer must run its own rendering, never a cached one."""
    policy = load_policy(POLICY)
    api.program_for(policy)
    key = program_cache.key(policy)
    assert key is not None
    assert program_cache.load(key) is not None
    original = ruleset.render_test

    def render_test(test: Test) -> dict[str, object]:
        return original(test)

    monkeypatch.setattr(ruleset, "render_test", render_test)
    assert program_cache.load(key) is None
    (entry,) = _entries(cache_folder)
    entry.unlink()
    monkeypatch.setattr(api, "_PROGRAMS", {})
    api.program_for(policy)
    assert _entries(cache_folder) == []


@pytest.mark.usefixtures("fresh_process")
@pytest.mark.parametrize("policy", [p.ref for p in Library().all()])
def test_every_shipped_policy_is_stored(cache_folder: Path, policy: str) -> None:
    """A class the cache does not rebuild (one a Program gains in another module) would make
    every process compile again: each shipped policy's program must go in and come back."""
    program = api.program_for(Library().get(policy))
    key = program_cache.key(Library().get(policy))
    assert key is not None
    assert program_cache.load(key) == program
    assert len(_entries(cache_folder)) == 1


@pytest.mark.usefixtures("fresh_process", "cache_folder")
def test_a_stored_program_the_engine_refuses_is_compiled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = api.program_for(load_policy(POLICY))
    monkeypatch.setattr(api, "_PROGRAMS", {})
    real = Engine.prepare
    refused: list[Program] = []

    def prepare(engine: Engine, program: Program) -> None:
        if not refused:
            refused.append(program)
            raise PolicyError.single("engine_limit", "refused once")
        real(engine, program)

    monkeypatch.setattr(Engine, "prepare", prepare)
    again = api.program_for(load_policy(POLICY))
    assert refused == [expected]  # the stored program, read back
    assert again == expected
    assert again is not refused[0]  # compiled anew
