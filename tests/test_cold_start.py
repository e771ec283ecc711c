"""What a cold `necessity evaluate` of a valid case imports (its speed is in benchmarks/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"

# Imported only to explain an invalid document, to parse or rewrite YAML (the policies' is
# cached), or for another output format.
_DEFERRED = (
    "jsonschema",
    "referencing",
    "ruamel",
    "evaluator.render.notice",
    "evaluator.authoring.fmt",
)

_SCRIPT = """
import json, sys
from evaluator.cli.main import main
try:
    main(["evaluate", sys.argv[1]], prog_name="necessity")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(cache: Path, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NECESSITY_CACHE_DIR": str(cache)},
        check=False,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_a_valid_case_imports_no_explaining_validator_or_notice(tmp_path: Path) -> None:
    first = _modules_after(tmp_path, str(FOUNDING))  # parses the policies, fills the cache
    assert "ruamel.yaml" in first
    modules = _modules_after(tmp_path, str(FOUNDING))
    assert "evaluator.api" in modules  # it did evaluate
    assert {m for m in modules if m.split(".")[0] in _DEFERRED or m in _DEFERRED} == set()


def test_an_invalid_case_still_gets_located_messages(tmp_path: Path) -> None:
    case = json.loads(FOUNDING.read_text(encoding="utf-8"))
    case["request"]["date"] = "2025-13-40"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(case, indent=2), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "evaluator", "evaluate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert f"{path}:" in done.stderr
    assert "/request/date" in done.stderr
    assert "Traceback" not in done.stderr
