"""Failures inside the service (in-process through httpx's ASGI transport): an engine error or a
bug is a 500 problem with no decision and no stack trace; a slow evaluation hits the time limit."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from evaluator import api
from evaluator.cli.main import ExitCode, main
from evaluator.errors import EngineError
from evaluator.service import Settings, create_app
from evaluator.service.app import EVALUATE_MEDIA, negotiate

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
POLICIES = ROOT / "policies"


def _call(settings: Settings | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
    app = create_app(settings)

    async def call() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, **kwargs)

    return asyncio.run(call())


def _post(settings: Settings | None = None) -> httpx.Response:
    return _call(settings, "POST", "/evaluate", content=FOUNDING.read_bytes())


def test_policies_dir_is_the_library_served(tmp_path, monkeypatch):
    shutil.copytree(POLICIES / "lumbar-fusion", tmp_path / "lumbar-fusion")
    settings = Settings(policies_dir=tmp_path, max_body_bytes=5000, timeout_seconds=2.5)
    # `necessity serve` hands its settings to uvicorn's worker processes through the environment.
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings.from_env() == Settings(tmp_path.resolve(), 5000, 2.5)
    response = _call(Settings.from_env(), "GET", "/policies")
    assert {p["id"] for p in response.json()["policies"]} == {"lumbar-fusion"}


def test_engine_error_is_500_without_a_decision(monkeypatch):
    def fail(*_args, **_kwargs):
        raise EngineError.single("engine_failed", "the engine derived no verdict")

    monkeypatch.setattr(api, "review_case", fail)
    response = _post()
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "engine_failed"
    assert body["detail"] == "engine error: the engine derived no verdict"
    assert "overall" not in response.json()


def test_a_bug_is_500_without_a_stack_trace(monkeypatch):
    def bug(*_args, **_kwargs):
        raise KeyError("secret internals")

    monkeypatch.setattr(api, "review_case", bug)
    response = _post()
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "internal_error"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


def test_slow_evaluation_hits_the_time_limit(monkeypatch):
    real = api.review_case

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "review_case", slow)
    response = _post(Settings(timeout_seconds=0.2))
    assert response.status_code == 503
    assert response.json()["code"] == "evaluation_timeout"
    assert "overall" not in response.json()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("text/html;q=0.5, text/markdown", "text/markdown"),
        ("text/*", "text/markdown"),
        ("image/png", None),
        ("text/markdown;q=0", None),
    ],
)
def test_negotiate(accept, expected):
    assert negotiate(accept, EVALUATE_MEDIA) == expected


def test_serve_reports_a_port_in_use():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serve_reports_a_broken_policy_before_starting(tmp_path):
    folder = tmp_path / "lumbar-fusion"
    shutil.copytree(POLICIES / "lumbar-fusion", folder)
    policy = folder / "2025.1.yaml"
    policy.write_text(policy.read_text().replace("sections:", "sectionz:", 1))
    result = CliRunner().invoke(main, ["serve", "--policies-dir", str(tmp_path)])
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert f"error: {policy}" in result.stderr
