"""The service serves a policy as it is on disk, without a restart (stop 19).

A worker read each policy file once and kept it for its whole life, and `Library.shared` (where
referenced policies are looked up) never re-read anything: an edited policy was served stale
until the service restarted. Before a request a worker now compares the files under its folders
(size and modification time of each YAML file, at most once a second) and reads the library
afresh when they changed. In-process through httpx's ASGI transport; the once-a-second limit is
set to 0 (look before every request) or an hour (never look) rather than timed.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from evaluator.language import policies
from evaluator.language.policies import Library, folder_state
from evaluator.service import Settings, create_app
from evaluator.service import app as service

ROOT = Path(__file__).resolve().parent.parent
APPROVABLE = ROOT / "examples" / "cases" / "l4-l5-approvable.json"
NEVER = "{fact: nicotine, field: status, equals: never}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("lumbar-fusion", "_shared"):
        shutil.copytree(ROOT / "policies" / name, tmp_path / name)
    return tmp_path


def _session(folder: Path, steps: list[Callable[[], Any]]) -> list[httpx.Response]:
    """Run one worker (one lifespan) and, for each step, first call it (an edit on disk) and
    then GET or POST what it returns; return the answers in order."""
    app = create_app(Settings(policies_dir=folder))

    async def run() -> list[httpx.Response]:
        answers = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                for step in steps:
                    method, path, body = step()
                    answers.append(await client.request(method, path, content=body))
        return answers

    return asyncio.run(run())


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    # a different length, so the change shows in the size even within one mtime tick
    assert len(new) != len(old)
    path.write_text(text.replace(old, new))


def _listed() -> tuple[str, str, None]:
    return ("GET", "/policies", None)


def _titles(answer: httpx.Response) -> dict[str, str]:
    return {p["version"]: p["title"] for p in answer.json()["policies"]}


def _determination(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    (line,) = answer.json()["lines"]
    return str(line["determination"])


def _evaluate() -> tuple[str, str, bytes]:
    return ("POST", "/evaluate", APPROVABLE.read_bytes())


def test_an_edited_policy_and_an_added_version_are_served_without_a_restart(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RECHECK_SECONDS", 0.0)
    policy = folder / "lumbar-fusion" / "2026.1.yaml"
    title = "title: Lumbar spinal fusion, with or without decompression"

    def retitle() -> tuple[str, str, None]:
        _edit(policy, title, "title: Lumbar fusion (edited)")
        return _listed()

    def add_draft() -> tuple[str, str, None]:
        draft = policy.read_text().replace('version: "2026.1"', 'version: "2027.1"')
        draft = draft.replace("status: active", "status: draft", 1)
        (folder / "lumbar-fusion" / "2027.1.yaml").write_text(draft)
        return _listed()

    before, edited, added = _session(folder, [_listed, retitle, add_draft])
    assert _titles(before)["2026.1"] == "Lumbar spinal fusion, with or without decompression"
    assert _titles(edited)["2026.1"] == "Lumbar fusion (edited)"
    assert "2027.1" not in _titles(edited)
    assert _titles(added)["2027.1"] == "Lumbar fusion (edited)"


def test_an_edited_shared_module_changes_the_decisions_served(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RECHECK_SECONDS", 0.0)
    module = folder / "_shared" / "nicotine" / "2025.1.yaml"

    def stricter() -> tuple[str, str, bytes]:
        # a never-user no longer meets the clause by that alone: the approvable case pends
        _edit(module, NEVER, "{fact: nicotine, field: status, equals: former}")
        return _evaluate()

    before, after = _session(folder, [_evaluate, stricter])
    assert _determination(before) == "medically_necessary"
    assert _determination(after) == "insufficient_documentation"


def test_the_folders_are_looked_at_at_most_once_a_second(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked: list[Path] = []

    def counted(root: Path) -> policies.FolderState:
        looked.append(root)
        return folder_state(root)

    monkeypatch.setattr(service, "folder_state", counted)
    monkeypatch.setattr(service, "RECHECK_SECONDS", 3600.0)  # within the second, always
    module = folder / "_shared" / "nicotine" / "2025.1.yaml"

    def stricter() -> tuple[str, str, bytes]:
        _edit(module, NEVER, "{fact: nicotine, field: status, equals: former}")
        return _evaluate()

    before, after = _session(folder, [_evaluate, stricter])
    # the state taken at startup (the worker's folder and the bundled one), and no more
    assert len(looked) == 2
    assert _determination(before) == _determination(after) == "medically_necessary"


def test_a_change_makes_the_shared_libraries_read_afresh(folder: Path) -> None:
    worker = service.Worker(Settings(policies_dir=folder))
    shared = Library.shared(folder)
    worker.checked = float("-inf")  # as if a second had passed
    assert worker.refresh() is False  # nothing changed: the same libraries
    assert Library.shared(folder) is shared
    worker.checked = float("-inf")
    (folder / "lumbar-fusion" / "2026.1.yaml").write_text(
        (folder / "lumbar-fusion" / "2026.1.yaml").read_text() + "# edited\n"
    )
    assert worker.refresh() is True
    assert Library.shared(folder) is not shared
    assert worker.policy_count == len(list(worker.library.paths())) == 3
    worker.executor.shutdown()


def test_a_folder_state_sees_edits_additions_and_removals(folder: Path) -> None:
    first = folder_state(folder)
    assert len(first) > 3
    assert folder_state(folder) == first
    module = folder / "_shared" / "nicotine" / "2025.1.yaml"
    _edit(module, NEVER, "{fact: nicotine, field: status, equals: former}")
    edited = folder_state(folder)
    assert edited != first
    (folder / "lumbar-fusion" / "2099.1.yaml").write_text("id: x\n")
    added = folder_state(folder)
    assert len(added) == len(edited) + 1
    (folder / "lumbar-fusion" / "2099.1.yaml").unlink()
    assert folder_state(folder) == edited
    assert folder_state(folder / "missing") == ()


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("sections:", "sections: [\n", "malformed_yaml"),  # no longer YAML
        ("title: Lumbar spinal fusion", "titles: Lumbar spinal fusion", "schema_required"),
    ],
)
def test_a_policy_broken_while_serving_is_the_servers_fault_not_the_requests(
    folder: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, code: str
) -> None:
    # A broken policy used to stop the worker at startup; edited while the service runs, its
    # located error reached the client as 400 "Malformed request" (a YAML error) or 422
    # "Invalid case" (a schema error): the client's fault, for a file on the server.
    monkeypatch.setattr(service, "RECHECK_SECONDS", 0.0)
    policy = folder / "lumbar-fusion" / "2025.1.yaml"
    text = policy.read_text()

    def breaks() -> tuple[str, str, bytes]:
        _edit(policy, old, new)
        return _evaluate()

    def mends() -> tuple[str, str, bytes]:
        policy.write_text(text)
        return _evaluate()

    bad_case = ("POST", "/evaluate", b'{"case_id": ')
    answers = _session(folder, [_evaluate, breaks, _listed, lambda: bad_case, mends])
    ok, broken, listed, malformed, mended = answers
    assert _determination(ok) == "medically_necessary"
    for answer in (broken, listed):
        assert answer.status_code == 500, answer.text
        body = answer.json()
        assert (body["title"], body["code"]) == ("Policy error", code)
        assert f"{policy}:" in body["detail"]  # located in the policy file
        assert "Traceback" not in answer.text
    # The service keeps serving: a bad request is still the client's, and the mended policy
    # decides again.
    assert (malformed.status_code, malformed.json()["title"]) == (400, "Malformed request")
    assert _determination(mended) == "medically_necessary"


def test_a_removed_policy_version_is_not_found_not_a_policy_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RECHECK_SECONDS", 0.0)

    def removes() -> tuple[str, str, None]:
        (folder / "lumbar-fusion" / "2025.1.yaml").unlink()
        return ("GET", "/policies/lumbar-fusion/2025.1", None)

    pinned = ("POST", "/evaluate?policy=lumbar-fusion@2025.1", APPROVABLE.read_bytes())
    got, gone, evaluated, unpinned = _session(
        folder,
        [
            lambda: ("GET", "/policies/lumbar-fusion/2025.1", None),
            removes,
            lambda: pinned,
            _evaluate,
        ],
    )
    assert got.status_code == 200, got.text
    assert (gone.status_code, gone.json()["code"]) == (404, "unknown_version")
    assert (evaluated.status_code, evaluated.json()["code"]) == (400, "unknown_version")
    # no version in force on the request date any more: pended for manual review, never approved
    assert _determination(unpinned) == "no_policy"
