"""The HTTP service: a thin ASGI layer over `evaluator.api`, as the CLI is a thin Click layer.

Each worker process loads and compiles the policy library at startup, and reads it afresh when
a policy file under its folders is edited, added or removed (checked before a request at most
once a second, so an edited policy is served without a restart). durable_rules keeps
process-global state and is not thread-safe, so every call into the library runs on one
dedicated thread per worker: evaluations are serialised, and the event loop stays free to read
requests, enforce the time limit and answer /health meanwhile.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evaluator import api
from evaluator.authoring import show
from evaluator.case.cases import case_from_document
from evaluator.errors import Location, NecessityError, PolicyNotFoundError, SourceError
from evaluator.language.model import Policy
from evaluator.language.policies import FolderState, Library, PolicyRef, folder_state
from evaluator.read import resources, source
from evaluator.render import decision as render
from evaluator.render import notice
from evaluator.render import review as render_review
from evaluator.service import openapi
from evaluator.service.problems import from_error, problem

LOG = logging.getLogger("necessity.service")
T = TypeVar("T")

JSON = "application/json"
MARKDOWN = "text/markdown"
HTML = "text/html"
TEXT = "text/plain"
FHIR_JSON = "application/fhir+json"

# The name a request body goes by in error locations (its suffix selects JSON wording).
BODY_NAME = "request.json"


@dataclass(frozen=True)
class Settings:
    """What a worker needs; read from the environment so that every uvicorn worker process
    (started by import string) gets the same as the `necessity serve` that spawned it."""

    policies_dir: Path | None = None
    max_body_bytes: int = 1_000_000
    timeout_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        folder = os.environ.get("NECESSITY_POLICIES_DIR")
        return cls(
            Path(folder) if folder else None,
            int(os.environ.get("NECESSITY_MAX_BODY_BYTES", cls.max_body_bytes)),
            float(os.environ.get("NECESSITY_TIMEOUT_SECONDS", cls.timeout_seconds)),
        )

    def to_env(self) -> dict[str, str]:
        env = {
            "NECESSITY_MAX_BODY_BYTES": str(self.max_body_bytes),
            "NECESSITY_TIMEOUT_SECONDS": str(self.timeout_seconds),
        }
        if self.policies_dir is not None:
            env["NECESSITY_POLICIES_DIR"] = str(self.policies_dir.resolve())
        return env


class _TooLargeError(Exception):
    pass


class _TimeoutError(Exception):
    pass


# How often, at most, a worker looks for edited policy files (seconds): a stat of each file,
# so a busy worker pays it once a second, not once a request.
RECHECK_SECONDS = 1.0


class Worker:
    """One worker process's library and the single thread every engine call runs on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.library = self._library()
        # The folders whose files decide what is served: the worker's own and the bundled one
        # (a referenced policy is looked up in both, through `Library.shared`).
        self.roots = tuple(dict.fromkeys((self.library.root.resolve(), resources.policies_dir())))
        # taken before anything is read, so an edit made while the worker starts is seen
        self.seen = self._state()
        self.checked = time.monotonic()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="necessity-engine")
        self.policy_count = 0

    def _library(self) -> Library:
        folder = self.settings.policies_dir
        return Library(folder) if folder is not None else Library()

    def _state(self) -> tuple[FolderState, ...]:
        return tuple(folder_state(root) for root in self.roots)

    def refresh(self) -> bool:
        """Start reading the policy files afresh when any under the worker's folders changed
        since they were last looked at (at most once a second); True when they had. Runs on
        the engine thread, between requests, so no request sees half of an old library."""
        now = time.monotonic()
        if now - self.checked < RECHECK_SECONDS:
            return False
        self.checked = now
        state = self._state()
        if state == self.seen:
            return False
        self.seen = state
        self.library = self._library()
        Library.forget_shared()
        # Programs are kept by content hash: an edited policy compiles anew when first used,
        # an unchanged one is not compiled again. A policy now broken fails the requests that
        # need it, with its located error, not the others.
        self.policy_count = sum(1 for _ in self.library.paths())
        LOG.info("policy files changed: %d policy versions", self.policy_count)
        return True

    def serves(self, error: NecessityError) -> bool:
        """True when `error` is what is wrong with a file under the worker's policy folders
        (not a policy or version that is not there: that is the request's)."""
        if isinstance(error, PolicyNotFoundError):
            return False
        for found in error.problems:
            if found.location.file is not None:
                path = Path(found.location.file).resolve()
                return any(path.is_relative_to(root) for root in self.roots)
        return False

    def compile_all(self) -> None:
        # A policy that fails to load or compile stops the worker at startup, not a request.
        policies = self.library.all()
        for policy in policies:
            api.program_for(policy)
        self.policy_count = len(policies)

    async def run(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()

        def fresh() -> T:
            self.refresh()
            return work()

        future = loop.run_in_executor(self.executor, fresh)
        try:
            return await asyncio.wait_for(future, self.settings.timeout_seconds)
        except TimeoutError:
            # The engine cannot be interrupted; the work finishes on its thread and later
            # requests queue behind it. The client gets no decision.
            raise _TimeoutError from None


def _worker(request: Request) -> Worker:
    worker: Worker = request.app.state.worker
    return worker


def version() -> str:
    try:
        return metadata.version("necessity")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---- content negotiation ----------------------------------------------------------------------


def negotiate(accept: str | None, offered: tuple[str, ...]) -> str | None:
    """Return the first of `offered` that `accept` prefers (highest q), or None if none is
    acceptable; no Accept header means the first offered."""
    if not accept:
        return offered[0]
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranked.append((-q, index, media.lower()))
    for negative_q, _, media in sorted(ranked):
        if negative_q == 0:
            break
        if media in offered:
            return media
        if media in ("*/*", ""):
            return offered[0]
        if media.endswith("/*"):
            for candidate in offered:
                if candidate.startswith(media[:-1]):
                    return candidate
    return None


def _not_acceptable(offered: tuple[str, ...]) -> Response:
    return problem(
        406,
        "Not acceptable",
        "not_acceptable",
        f"this resource is available as {', '.join(offered)}",
    )


def html_page(title: str, markdown: str) -> str:
    """Return Markdown as a self-contained HTML page, preformatted (for the criteria document,
    which has no HTML rendering of its own)."""
    return (
        '<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n<pre>{html.escape(markdown)}</pre>\n"
        "</body>\n</html>\n"
    )


def _json_response(data: Any, media_type: str = JSON) -> Response:
    # The same serialisation as `necessity evaluate --format json`.
    return Response(json.dumps(data, indent=2, ensure_ascii=False) + "\n", media_type=media_type)


# ---- request bodies ---------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """Return the body, refusing (before reading it all) one larger than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLargeError
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_body(raw: bytes) -> source.Document:
    """Return the body as a Document; raises SourceError as a malformed file would."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError.single(
            "unreadable_file",
            f"not utf-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            Location(BODY_NAME),
        ) from None
    if not text.strip():
        raise SourceError.single("empty_document", "the request body is empty", Location(BODY_NAME))
    return source.loads_json(text, BODY_NAME)


# ---- endpoints --------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    worker = _worker(request)
    return JSONResponse(
        {"status": "ok", "version": version(), "policies": worker.policy_count, "pid": os.getpid()}
    )


async def openapi_json(request: Request) -> Response:
    return _json_response(request.app.state.openapi)


async def list_policies(request: Request) -> Response:
    worker = _worker(request)

    def listed() -> list[Policy]:
        # `worker.library` as it is when the work runs (refreshed first), not as it was here
        return worker.library.all()

    found = await worker.run(listed)
    return _json_response(render.policies_json(found))


async def get_policy(request: Request) -> Response:
    worker = _worker(request)
    offered = (MARKDOWN, TEXT, HTML)
    media = negotiate(request.headers.get("accept"), offered)
    if media is None:
        return _not_acceptable(offered)
    ref = PolicyRef(request.path_params["policy_id"], request.path_params["version"])
    policy = await worker.run(lambda: worker.library.get(ref))
    if media == TEXT:
        return Response(show.policy_text(policy), media_type=TEXT)
    markdown = show.policy_markdown(policy)
    if media == HTML:
        return Response(html_page(f"{policy.id} {policy.version}", markdown), media_type=HTML)
    return Response(markdown, media_type=MARKDOWN)


EVALUATE_MEDIA = (JSON, MARKDOWN, HTML)


async def evaluate(request: Request) -> Response:
    worker = _worker(request)
    media = negotiate(request.headers.get("accept"), EVALUATE_MEDIA)
    if media is None:
        return _not_acceptable(EVALUATE_MEDIA)
    policy_ref = request.query_params.get("policy")
    raw = await read_body(request, worker.settings.max_body_bytes)
    evaluated_at = datetime.now(UTC).isoformat(timespec="seconds")

    def work() -> Any:
        case = case_from_document(parse_json_body(raw))
        if policy_ref is None:
            review = api.review_case(case, worker.library)
            if media == JSON:
                return render_review.review_json(review, evaluated_at)
            return _notice(media, notice.review_notice(review))
        try:
            chosen = api.select_policy(case, policy_ref, worker.library)
        except PolicyNotFoundError as error:
            # The request named it: a bad request, not a missing resource.
            raise _BadPolicyRefError(error) from None
        decision = api.evaluate(case, chosen)
        if media == JSON:
            return render.decision_json(decision, evaluated_at)
        return _notice(media, notice.decision_notice(decision, case.request_date.text))

    result = await worker.run(work)
    if media == JSON:
        return _json_response(result)
    return Response(result, media_type=media)


def _notice(media: str, blocks: list[notice.Block]) -> str:
    # The notice `necessity evaluate --format markdown|html` writes, from the same renderer.
    return notice.to_html(blocks) if media == HTML else notice.to_markdown(blocks)


class _BadPolicyRefError(Exception):
    def __init__(self, error: PolicyNotFoundError) -> None:
        super().__init__(str(error))
        self.error = error


async def fhir_submit(request: Request) -> Response:
    # Imported here so that the plain API does not pay for the FHIR models at import time.
    from evaluator.fhir import submit  # noqa: PLC0415

    worker = _worker(request)
    raw = await read_body(request, worker.settings.max_body_bytes)
    bundle = await worker.run(lambda: submit.submit(parse_json_body(raw), worker.library))
    return _json_response(bundle, FHIR_JSON)


# ---- errors -----------------------------------------------------------------------------------


async def _on_product_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NecessityError)
    if _worker(request).serves(exc):
        # A policy file edited while the service runs and now broken (not YAML, or against
        # the policy schema) is the server's fault, not the request's: it would otherwise be
        # answered as the request's (400 malformed, 422 invalid case).
        return from_error(exc, 500, "Policy error")
    return from_error(exc)


async def _on_bad_policy_ref(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _BadPolicyRefError)
    return from_error(exc.error, 400)


async def _on_too_large(request: Request, _exc: Exception) -> Response:
    limit = _worker(request).settings.max_body_bytes
    return problem(413, "Request too large", "request_too_large", f"the body exceeds {limit} bytes")


async def _on_timeout(request: Request, _exc: Exception) -> Response:
    seconds = _worker(request).settings.timeout_seconds
    return problem(
        503,
        "Evaluation timed out",
        "evaluation_timeout",
        f"no determination within {seconds:g} seconds; no decision was made",
        headers={"Retry-After": "1"},
    )


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem(exc.status_code, str(exc.detail), code, f"{request.method} {request.url.path}")


async def _on_bug(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server's log, never to the client.
    LOG.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        500,
        "Internal error",
        "internal_error",
        "this is a bug in necessity; no determination was made",
    )


# ---- the app ----------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> Starlette:
    """Return the ASGI app; the policy library is loaded and compiled when it starts."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker = Worker(settings)
        await asyncio.get_running_loop().run_in_executor(worker.executor, worker.compile_all)
        app.state.worker = worker
        app.state.openapi = openapi.document(version())
        try:
            yield
        finally:
            worker.executor.shutdown(wait=False, cancel_futures=True)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/policies", list_policies, methods=["GET"]),
        Route("/policies/{policy_id}/{version}", get_policy, methods=["GET"]),
        Route("/evaluate", evaluate, methods=["POST"]),
        Route("/fhir/Claim/$submit", fhir_submit, methods=["POST"]),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        NecessityError: _on_product_error,
        _BadPolicyRefError: _on_bad_policy_ref,
        _TooLargeError: _on_too_large,
        _TimeoutError: _on_timeout,
        HTTPException: _on_http,
        Exception: _on_bug,
    }
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)


def app_from_env() -> Starlette:
    """The factory uvicorn's worker processes call (`necessity serve` sets the environment)."""
    return create_app(Settings.from_env())
