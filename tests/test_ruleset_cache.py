"""The rendered ruleset text, kept per program and on disk (ruleset.definition_text)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from evaluator.compile import ruleset
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import CASE, VAL, EmitValue, Eq, Pattern, Program, Rule
from evaluator.errors import PolicyError
from evaluator.language.conditions import Truth
from evaluator.language.policies import build_policy, load_policy
from evaluator.read import resources
from evaluator.read.source import Document

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "lumbar-decompression" / "2025.1.yaml"
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"


def _entries(folder: Path) -> list[Path]:
    # the `cache_folder` fixture (conftest.py) is this test's own cache folder
    rulesets = folder / "rulesets"
    return sorted(rulesets.rglob("*.json")) if rulesets.exists() else []


def _no_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    def render(_program: object, **_options: bool) -> None:
        raise AssertionError("rendered although the cache holds these rules")

    monkeypatch.setattr(ruleset, "_definition", render)
    # counted as the renderer as imported, so that the cache is still used (see the next test)
    monkeypatch.setitem(ruleset._RENDERER, "_definition", render)


def test_a_hit_gives_what_rendering_gives(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = load_policy(POLICY)
    first = compile_policy(policy)  # renders and writes the entry
    rendered = ruleset.engine_json(ruleset.render(first))
    assert ruleset.definition_text(first) == rendered
    assert len(_entries(cache_folder)) == 1
    _no_rendering(monkeypatch)
    again = compile_policy(policy)  # a new Program: read from disk
    assert again is not first
    assert ruleset.definition_text(again) == rendered
    assert len(_entries(cache_folder)) == 1


def test_rendered_once_per_program(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NECESSITY_CACHE_DIR", "off")
    program = compile_policy(load_policy(POLICY))
    _no_rendering(monkeypatch)  # compile_policy rendered it; the engine reuses that text
    assert ruleset.definition_text(program) == ruleset.definition_text(program)


def test_a_changed_policy_misses(cache_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lumbar-decompression" / "2025.1.yaml"
    copy.parent.mkdir()
    text = POLICY.read_text(encoding="utf-8")
    copy.write_text(text, encoding="utf-8")
    before = ruleset.definition_text(compile_policy(load_policy(copy)))
    # one threshold changed: the rules, hence the key and the text, change
    changed = text.replace(
        "conservative_care_minimum:\n    value: 6\n", "conservative_care_minimum:\n    value: 7\n"
    )
    assert changed != text
    copy.write_text(changed, encoding="utf-8")
    after = ruleset.definition_text(compile_policy(load_policy(copy)))
    assert after != before
    assert after == ruleset.engine_json(ruleset.render(compile_policy(load_policy(copy))))
    assert len(_entries(cache_folder)) == 2


def test_another_evaluator_version_or_renderer_misses(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = load_policy(POLICY)
    expected = ruleset.definition_text(compile_policy(policy))
    monkeypatch.setattr(resources, "evaluator_version", lambda: "999.0")
    assert ruleset.definition_text(compile_policy(policy)) == expected
    monkeypatch.setattr(ruleset, "_evaluator_fingerprint", lambda: "an edited compiler")
    assert ruleset.definition_text(compile_policy(policy)) == expected
    assert len(_entries(cache_folder)) == 3


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text[: len(text) // 2], id="truncated"),
        pytest.param(lambda text: text.replace('"$lt"', '"$gt"', 1), id="altered"),
        pytest.param(lambda _text: "{}", id="foreign"),
        pytest.param(lambda _text: "", id="empty"),
        pytest.param(lambda _text: "\udcff", id="not-utf8"),
    ],
)
def test_a_damaged_entry_is_ignored_and_rewritten(cache_folder: Path, damage: object) -> None:
    policy = load_policy(POLICY)
    expected = ruleset.definition_text(compile_policy(policy))
    (entry,) = _entries(cache_folder)
    good = entry.read_bytes()
    assert callable(damage)
    entry.write_bytes(damage(good.decode()).encode("utf-8", "surrogateescape"))
    assert ruleset.definition_text(compile_policy(policy)) == expected
    assert entry.read_bytes() == good


def test_an_unwritable_cache_is_no_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("NECESSITY_CACHE_DIR", str(blocker / "below"))
    policy = load_policy(POLICY)
    assert ruleset.definition_text(compile_policy(policy)) == ruleset.engine_json(
        ruleset.render(compile_policy(policy))
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a read-only folder")
def test_a_read_only_cache_is_read(cache_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy(POLICY)
    expected = ruleset.definition_text(compile_policy(policy))
    for folder in [cache_folder, *cache_folder.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o555)
    try:
        _no_rendering(monkeypatch)
        assert ruleset.definition_text(compile_policy(policy)) == expected
    finally:
        for folder in [cache_folder, *cache_folder.rglob("*")]:
            if folder.is_dir():
                folder.chmod(0o755)


def test_a_program_over_the_engine_limits_is_refused_and_not_cached(cache_folder: Path) -> None:
    case = Pattern("case", Eq("t", CASE))
    patterns = tuple(Pattern(f"p{i}", Eq("t", CASE)) for i in range(ruleset.MAX_PATTERNS + 1))
    rule = Rule("r0", 1, (case, *patterns), EmitValue(VAL, "n0", Truth.TRUE, ()), "X:requires")
    program = Program(f"over-limits-{uuid.uuid4().hex[:8]}", 1, (rule,), {}, {}, None)
    for _ in range(2):
        with pytest.raises(PolicyError, match="joins 18 facts"):
            ruleset.definition_text(program, "0" * 64)
    assert _entries(cache_folder) == []


def test_a_renderer_changed_at_run_time_renders(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = load_policy(POLICY)
    cached = ruleset.definition_text(compile_policy(policy))
    original = ruleset._definition

    def definition(program: Program, **options: bool) -> dict[str, object]:
        return {**original(program, **options), "another_rule": {"all": []}}

    monkeypatch.setattr(ruleset, "_definition", definition)
    changed = ruleset.definition_text(compile_policy(policy))
    assert changed != cached
    assert '"another_rule"' in changed
    assert len(_entries(cache_folder)) == 1


def test_a_program_changed_by_hand_is_rendered(
    cache_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only compile_policy gives a key: a Program built or altered otherwise (a test mutating
    # the rules, a scratch copy) is never matched with a cached text.
    compiled = compile_policy(load_policy(POLICY))
    assert len(_entries(cache_folder)) == 1
    _no_rendering(monkeypatch)
    with pytest.raises(AssertionError, match="rendered"):
        ruleset.definition_text(dataclasses.replace(compiled, name="changed-by-hand"))


def test_the_key_covers_the_order_of_the_policy_data() -> None:
    # The content hash ignores key order, but key order orders the rules: the key must not.
    policy = load_policy(POLICY)
    assert policy.document is not None
    data = policy.document.data
    reordered = dict(reversed(list(data.items())))
    again = build_policy(Document(reordered, policy.document.path, policy.document.positions))
    assert again.content_sha256 == policy.content_sha256
    assert ruleset.cache_key(again, folded=True) != ruleset.cache_key(policy, folded=True)
    same = build_policy(Document(dict(data), policy.document.path, policy.document.positions))
    assert ruleset.cache_key(same, folded=True) == ruleset.cache_key(policy, folded=True)
    # the per-node lowering of the same policy is another program
    assert ruleset.cache_key(policy, folded=False) != ruleset.cache_key(policy, folded=True)


def _evaluate_json(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "evaluate", str(FOUNDING), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode in (0, 1, 3), done.stderr
    output: dict[str, object] = json.loads(done.stdout)
    output.pop("evaluated_at", None)
    return output


@pytest.mark.parametrize("where", ["fresh", "unwritable"])
def test_a_process_reading_the_cache_decides_as_one_writing_it(tmp_path: Path, where: str) -> None:
    folder = tmp_path / "cache"
    env = {**os.environ, "NECESSITY_CACHE_DIR": str(folder)}
    written = _evaluate_json(env)  # parses, renders and writes every entry
    assert any((folder / "rulesets").rglob("*.json"))
    if where == "unwritable":
        shutil.move(folder, tmp_path / "kept")
        folder.write_text("", encoding="utf-8")  # nothing can be written below a file now
        env["NECESSITY_CACHE_DIR"] = str(folder / "below")
    assert _evaluate_json(env) == written
