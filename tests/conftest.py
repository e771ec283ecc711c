"""Shared pytest configuration."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from evaluator.case.cases import load_case
from evaluator.language.policies import Library
from tests.engine_runs import Run, runs

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "cases").glob("*.json"))
# Parsed policies and rendered rulesets are cached on disk (evaluator/read/disk_cache.py): the tests
# use a folder of their own, never the user's cache, and start from an empty one.
os.environ["NECESSITY_CACHE_DIR"] = tempfile.mkdtemp(prefix="necessity-test-cache-")
# A shell without job control starts a background job (`make test &`, nohup) with SIGINT
# ignored, and every command a test starts inherits that: Python then never raises
# KeyboardInterrupt, and the tests that press Ctrl-C on a command see it run to its end. The
# suite runs as at a terminal: a handled signal is back to its default in a started command.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.json from the current output instead of comparing with it",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite the golden files."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder of the test's own (NECESSITY_CACHE_DIR), returned."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NECESSITY_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def library() -> Library:
    """The shipped policy library (policies/), one for each test module that asks."""
    return Library()


@pytest.fixture(scope="session")
def example_runs() -> list[Run]:
    """Every example case's engine runs (tests/engine_runs.py), made once for the session by
    the first test that asks, and shared: a test changes a trace only through a copy."""
    library = Library()
    return list(runs((load_case(path), library) for path in EXAMPLES))
