"""Load test of the HTTP service on 127.0.0.1 (not part of `make test`).

Starts `necessity serve --workers W` on a free loopback port, warms it up, then sends N requests
(the founding case to POST /evaluate by default, or its FHIR Bundle to /fhir/Claim/$submit with
--fhir) from C client threads, each with its own keep-alive connection. Reports latency p50, p95,
p99 and max, and requests per second, beside the same work timed in-process first (the baseline
that shows the service's own cost on a busy machine); exits 1 if p95 misses the target (50 ms)
or any request fails.

    .venv/bin/python benchmarks/service.py                     # 3000 requests, 2 workers, C=2
    .venv/bin/python benchmarks/service.py --requests 5000 --concurrency 4 --json
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
BUNDLE = ROOT / "examples" / "fhir" / "t12-s2-fusion-bundle.json"
TARGET_P95_MS = 50.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/health").status_code == httpx.codes.OK:
                return
        except httpx.TransportError:
            time.sleep(0.2)
        if time.monotonic() > deadline:
            raise SystemExit("server did not start")


def _in_process(body: bytes, fhir: bool, count: int = 200) -> list[float]:
    """Latencies of the same work done in this process (parse, validate, review, render): the
    baseline that shows the service's own overhead on a machine however busy it is."""
    from datetime import UTC, datetime  # noqa: PLC0415

    from evaluator import api  # noqa: PLC0415
    from evaluator.fhir.submit import submit  # noqa: PLC0415
    from evaluator.language.policies import Library  # noqa: PLC0415
    from evaluator.read import source  # noqa: PLC0415
    from evaluator.render import review as render_review  # noqa: PLC0415

    library = Library()
    for policy in library.all():
        api.program_for(policy)
    text = body.decode()

    def work() -> object:
        document = source.loads_json(text, "request.json")
        if fhir:
            return submit(document, library)
        review = api.review_case(api.request_from_document(document).case, library)
        return json.dumps(render_review.review_json(review, datetime.now(UTC).isoformat()))

    work()
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        work()
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def _report(result: dict[str, Any], as_json: bool, missed: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:20} {value}")
    print("target missed" if missed else "target met")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fhir", action="store_true", help="POST the Bundle to Claim/$submit")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    baseline = _in_process(BUNDLE.read_bytes() if args.fhir else FOUNDING.read_bytes(), args.fhir)
    port = _free_port()
    necessity = Path(sys.executable).with_name("necessity")
    server = subprocess.Popen(
        [str(necessity), "serve", "--port", str(port), "--workers", str(args.workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    path, body = (
        ("/fhir/Claim/$submit", BUNDLE.read_bytes())
        if args.fhir
        else ("/evaluate", FOUNDING.read_bytes())
    )
    try:
        _wait_until_up(base)
        latencies: list[float] = []
        failures: list[int] = []
        lock = threading.Lock()
        per_thread = args.requests // args.concurrency

        def client(count: int, record: bool) -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                for _ in range(count):
                    start = time.perf_counter()
                    response = http.post(path, content=body)
                    elapsed = (time.perf_counter() - start) * 1000
                    with lock:
                        if response.status_code != httpx.codes.OK:
                            failures.append(response.status_code)
                        elif record:
                            latencies.append(elapsed)

        def run(count: int, record: bool) -> float:
            threads = [
                threading.Thread(target=client, args=(count, record))
                for _ in range(args.concurrency)
            ]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.perf_counter() - start

        run(max(20, per_thread // 20), record=False)  # warm-up: every worker, every policy
        wall = run(per_thread, record=True)
    finally:
        server.terminate()
        server.wait(timeout=30)

    total = per_thread * args.concurrency
    result: dict[str, Any] = {
        "endpoint": path,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "requests": total,
        "failures": len(failures),
        "requests_per_second": round(total / wall, 1),
        "p50_ms": round(_percentile(latencies, 50), 1),
        "p95_ms": round(_percentile(latencies, 95), 1),
        "p99_ms": round(_percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "target_p95_ms": TARGET_P95_MS,
        "in_process_p50_ms": round(_percentile(baseline, 50), 1),
        "in_process_p95_ms": round(_percentile(baseline, 95), 1),
    }
    missed = result["p95_ms"] > TARGET_P95_MS or failures
    _report(result, args.json, bool(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
