"""`necessity serve`: the HTTP service (an ASGI app on uvicorn) over the same library."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click

from evaluator import api
from evaluator.cli.commands import ExitCode, policies_dir_option
from evaluator.language.policies import Library


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes; each loads and compiles the policies once and evaluates one "
    "request at a time (the engine is process-global).",
)
@click.option(
    "--max-body",
    "max_body",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(1),
    metavar="BYTES",
    help="Largest request body accepted (larger: 413).",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Longest an evaluation may take before the client gets 503 and no decision.",
)
@policies_dir_option()
def command(
    host: str,
    port: int,
    workers: int,
    max_body: int,
    timeout: float,
    policies_dir: Path | None,
) -> None:
    """Serve the API over HTTP: POST /evaluate, POST /fhir/Claim/$submit, GET /policies,
    GET /policies/ID/VERSION, GET /health and GET /openapi.json.

    Needs the service extra: pip install 'necessity[service]' (or .[service] in a checkout).
    Run it behind a reverse proxy for TLS; see docs/service.md.

    Exit code: 0 when stopped (Ctrl-C), 2 for a policy that does not load or compile or an
    address that cannot be listened on, 4 when the server itself fails.

    \b
    Examples:
      necessity serve
      necessity serve --port 9000 --workers 2
      necessity serve --policies-dir ./my-policies
    """
    try:
        import uvicorn  # noqa: PLC0415

        from evaluator.service.app import Settings  # noqa: PLC0415
    except ImportError as error:
        raise click.UsageError(
            f"the service needs the 'service' extra ({error.name} is not installed): "
            "pip install 'necessity[service]'"
        ) from None
    # Found here, before any worker starts, a policy that does not load or compile is reported
    # with its location and exit code 2, as every other command reports it.
    library = Library(policies_dir) if policies_dir is not None else Library()
    for policy in library.all():
        api.program_for(policy)
    _check_address(host, port)
    settings = Settings(policies_dir, max_body, timeout)
    # Worker processes build the app from the environment, so every one gets these settings.
    os.environ.update(settings.to_env())
    try:
        uvicorn.run(
            "evaluator.service.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            # Proxies in front set X-Forwarded-*; uvicorn trusts them only from loopback.
            proxy_headers=True,
        )
    except SystemExit as stop:
        # uvicorn exits 1 or 3 when it cannot start; here those codes mean determinations.
        if stop.code not in (None, 0):
            click.echo("error: the service stopped: see the messages above", err=True)
            raise click.exceptions.Exit(ExitCode.ENGINE_ERROR) from None


def _check_address(host: str, port: int) -> None:
    """Fail with a usage error (exit 2) when the address cannot be listened on."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise click.BadParameter(
            f"cannot listen on {host}:{port}: {reason}", param_hint="'--host' / '--port'"
        ) from None
