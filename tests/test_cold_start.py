"""What a cold `necessity evaluate` of a valid case imports (its speed is in benchmarks/)."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.case.cases import load_case
from evaluator.cli.main import main
from evaluator.compile.compiler import compile_policy
from evaluator.compile.program import EmitStatus
from evaluator.engine.durable import Engine
from evaluator.errors import EngineError
from evaluator.language.policies import Library
from evaluator.read import resources

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
    # the evaluator's version is read from its dist-info directly (read/resources.py)
    "importlib.metadata",
    # only a process that writes a cache entry
    "tempfile",
    # only to suggest a name for an unknown one
    "difflib",
    # only for a decision log (--log)
    "hmac",
    "secrets",
    "fcntl",
    # only for a bug's message
    "traceback",
    # nothing `evaluate` does needs them (each a few ms to import)
    "rich",
    "logging",
    "subprocess",
    "shutil",
    "zipfile",
    "csv",
    "pickle",
    "argparse",
    "asyncio",
    "concurrent",
    "multiprocessing",
    "http",
    "ssl",
    "xml",
    "yaml",
    "dask",
)

# The evaluator's own modules a cold `evaluate` of a valid case with the caches filled must not
# import: other commands' (authoring, audit, batch, the service, FHIR), the other formats'
# renderers, the compiler (its programs come from the cache: compile/program_cache.py) and
# the explainer.
_NOT_ON_THE_EVALUATE_PATH = (
    "evaluator.authoring",
    "evaluator.audit",
    "evaluator.batch",
    "evaluator.fhir",
    "evaluator.service",
    "evaluator.render.notice",
    "evaluator.compile.compiler",
    "evaluator.compile.lowering",
    "evaluator.compile.folding",
    "evaluator.compile.comparisons",
    "evaluator.compile.joins",
    # only with --explain
    "evaluator.decide.explain",
    # only for a case (or a command) with a plan overlay
    "evaluator.language.plans",
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
    loaded = {m for m in modules if m.startswith(_NOT_ON_THE_EVALUATE_PATH)}
    assert loaded == set()
    # and only the command that runs is imported
    assert {m for m in modules if m.startswith("evaluator.cli.commands.")} == {
        "evaluator.cli.commands.evaluate"
    }


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


_AS_PROGRAM = """
import atexit, gc, sys
from pathlib import Path
from evaluator.cli.main import main
marker = Path(sys.argv[1])


def record():
    engine = sys.modules.get("evaluator.engine.durable")
    joined = None if engine is None else [k for k in engine.Engine.get()._handles if "~" in k]
    marker.write_text(f"{gc.get_threshold()[0]} {joined}", encoding="utf-8")


atexit.register(record)
sys.argv = ["necessity", *sys.argv[2:]]
main()
print("never reached")
"""


@pytest.mark.parametrize("command", ["evaluate", "validate"])
def test_a_program_exits_with_its_output_whole_and_its_exit_handlers_run(
    tmp_path: Path, command: str
) -> None:
    """`evaluate` run as a program ends without freeing every object (cli/main.py
    `_exit_now`): its output is whole, its exit code kept and the exit handlers run; another
    command, or the group called with arguments from a program, ends as before."""
    marker = tmp_path / "atexit-ran"
    args = [command, str(FOUNDING)] + (["--format", "json"] if command == "evaluate" else [])
    done = subprocess.run(
        [sys.executable, "-c", _AS_PROGRAM, str(marker), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    expected = CliRunner().invoke(main, args)
    assert done.returncode == expected.exit_code
    assert done.stderr == ""
    if command == "evaluate":
        first = json.loads(done.stdout)
        second = json.loads(expected.stdout)
        first.pop("evaluated_at", None)
        second.pop("evaluated_at", None)
        assert first == second
    else:
        assert done.stdout == expected.stdout
    assert "never reached" not in done.stdout
    # the collector's threshold is raised for the short command only; the engine reuses a
    # program's session without a ruleset of its own for that (it registers no joined one)
    threshold, joined = marker.read_text(encoding="utf-8").split(" ", 1)
    default = str(gc.get_threshold()[0])  # this process's is the interpreter's default
    assert threshold == ("100000" if command == "evaluate" else default)
    if command == "evaluate":
        assert joined == "[]"


EXAMPLES = sorted((ROOT / "examples" / "cases").glob("*.json"))


def _outputs(args: list[str]) -> list[tuple[int, str]]:
    """Every example's exit code and output."""
    runner = CliRunner()
    found = []
    for case in EXAMPLES:
        result = runner.invoke(main, ["evaluate", str(case), *args])
        output = result.stdout
        if "--format" in args:
            data = json.loads(output)
            data.pop("evaluated_at", None)
            output = json.dumps(data)
        found.append((result.exit_code, output))
    return found


@pytest.mark.parametrize("args", [[], ["--format", "json"]], ids=["text", "json"])
def test_every_example_gets_the_same_output_on_a_second_run(
    args: list[str],
) -> None:
    """Every example gets the output it got on the first run, after every other example ran
    in the same process."""
    shared = _outputs(args)
    alone = _outputs(args)
    assert [code for code, _ in alone] == [code for code, _ in shared]
    assert alone == shared
    assert all(code in (0, 1, 3) for code, _ in alone)


def test_a_case_run_alone_still_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clause the engine leaves without a status is an engine error on every run of the
    program, never a decision (an engine error gives up the session it ran in)."""
    monkeypatch.setenv("NECESSITY_CACHE_DIR", "off")
    case = load_case(FOUNDING)
    policy = Library().get("lumbar-decompression", case.in_force_date)
    program = compile_policy(policy)
    clause = next(r.action.clause for r in program.rules if isinstance(r.action, EmitStatus))
    # every rule that gives that clause a status is gone: the engine derives none for it
    rules = tuple(
        r
        for r in program.rules
        if not (isinstance(r.action, EmitStatus) and r.action.clause == clause)
    )
    broken = dataclasses.replace(program, name=f"{program.name}~no-status", rules=rules)
    monkeypatch.setattr(api, "program_for", lambda _policy: broken)
    for _ in range(3):
        with pytest.raises(EngineError) as raised:
            api.evaluate(case, policy)
        assert raised.value.code == "engine_incomplete"
        assert clause in str(raised.value)
    assert not [k for k in Engine.get()._handles if k.startswith(broken.name + "~")]


# --- the evaluator's version without importlib.metadata ---------------------------------------


def test_the_version_read_directly_is_the_one_importlib_metadata_reads() -> None:
    from importlib import metadata  # noqa: PLC0415

    resources.evaluator_version.cache_clear()
    try:
        assert resources.evaluator_version() == metadata.version("necessity")
        assert resources._recorded_version() == metadata.version("necessity")
    finally:
        resources.evaluator_version.cache_clear()


def _dist_info(folder: Path, name: str, version: str | None) -> None:
    (folder / name).mkdir(parents=True)
    headers = "Metadata-Version: 2.1\nName: necessity\n"
    headers += f"Version: {version}\n" if version else ""
    (folder / name / "METADATA").write_text(headers + "\nthe description\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        pytest.param([("necessity-9.1.dist-info", "9.1")], "9.1", id="one"),
        pytest.param([("Necessity-9.2.dist-info", "9.2")], "9.2", id="any-case"),
        pytest.param([("necessity-9.1.dist-info", None)], None, id="no-version"),
        pytest.param(
            [("necessity-9.1.dist-info", "9.1"), ("necessity-9.2.dist-info", "9.2")],
            None,
            id="two",
        ),
        pytest.param([("necessity-9.1.egg-info", "9.1")], None, id="egg"),
        pytest.param([("necessity_tools-1.0.dist-info", "1.0")], "0.0.1", id="another-project"),
    ],
)
def test_anything_but_one_plain_dist_info_is_left_to_importlib_metadata(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    names: list[tuple[str, str | None]],
    expected: str | None,
) -> None:
    # the first folder on the path that holds a candidate decides, as in importlib.metadata
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    for name, version in names:
        _dist_info(first, name, version)
    _dist_info(second, "necessity-0.0.1.dist-info", "0.0.1")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(first), str(second)])
    assert resources._recorded_version() == expected
