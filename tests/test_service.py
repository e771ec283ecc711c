"""The HTTP service tested as a client would: `necessity serve` started on a free loopback port
in a subprocess, called with httpx; every answer compared with what the CLI says."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
FOUNDING = ROOT / "examples" / "cases" / "t12-s2-fusion.json"
BUNDLE = ROOT / "examples" / "fhir" / "t12-s2-fusion-bundle.json"
NECESSITY = Path(sys.executable).with_name("necessity")
MAX_BODY = 200_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server() -> Iterator[httpx.Client]:
    port = _free_port()
    process = subprocess.Popen(
        [
            str(NECESSITY),
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--max-body",
            str(MAX_BODY),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read() if process.stderr else b""
                raise RuntimeError(f"server did not start: {error!r}")
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NECESSITY), *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def _without_time(data: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data.pop("evaluated_at", None)
    return data


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "code", "errors"} <= body.keys()
    assert "Traceback" not in response.text
    return body


# ---- endpoints ---------------------------------------------------------------------------


def test_health(server):
    response = server.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["policies"] >= 1


def test_openapi_describes_every_endpoint_with_the_project_schemas(server):
    doc = server.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/health",
        "/policies",
        "/policies/{policy_id}/{version}",
        "/evaluate",
        "/fhir/Claim/$submit",
    }
    case_schema = json.loads((ROOT / "schemas" / "case.schema.json").read_text())
    assert doc["components"]["schemas"]["Case"] == case_schema


def test_policies_as_the_cli_lists_them(server):
    cli = json.loads(_cli("policies", "--format", "json").stdout)
    assert server.get("/policies").json() == cli


def test_policy_rendered_as_show(server):
    listed = server.get("/policies").json()["policies"][0]
    ref = f"{listed['id']}@{listed['version']}"
    response = server.get(f"/policies/{listed['id']}/{listed['version']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/markdown")
    assert response.text == _cli("show", ref).stdout
    text = server.get(
        f"/policies/{listed['id']}/{listed['version']}", headers={"Accept": "text/plain"}
    )
    assert text.text == _cli("show", ref, "--format", "text").stdout


def test_unknown_policy_version_is_404(server):
    body = _problem(server.get("/policies/lumbar-fusion/1999.1"), 404)
    assert body["code"] == "unknown_version"


def test_unknown_path_is_a_problem(server):
    _problem(server.get("/nowhere"), 404)


def test_evaluate_gives_the_cli_json(server):
    cli = json.loads(_cli("evaluate", str(FOUNDING), "--format", "json").stdout)
    response = server.post("/evaluate", content=FOUNDING.read_bytes())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert _without_time(response.json()) == _without_time(cli)
    # The founding decompression line is pended (symptom correlation not documented).
    assert response.json()["overall"]["x12_action"] == "A4"


def test_evaluate_with_a_named_policy(server):
    ref = "lumbar-fusion@2025.1"
    cli = json.loads(_cli("evaluate", str(FOUNDING), "--policy", ref, "--format", "json").stdout)
    response = server.post("/evaluate", params={"policy": ref}, content=FOUNDING.read_bytes())
    assert response.status_code == 200
    assert _without_time(response.json()) == _without_time(cli)
    assert response.json()["determination"] == "not_medically_necessary"


def test_evaluate_unknown_policy_is_a_bad_request(server):
    response = server.post(
        "/evaluate", params={"policy": "no-such-policy"}, content=FOUNDING.read_bytes()
    )
    assert _problem(response, 400)["code"] == "unknown_policy"


def test_evaluate_notice_as_markdown_and_html(server):
    cli = _cli("evaluate", str(FOUNDING), "--format", "markdown").stdout
    markdown = server.post(
        "/evaluate", content=FOUNDING.read_bytes(), headers={"Accept": "text/markdown"}
    )
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text == cli
    page = server.post("/evaluate", content=FOUNDING.read_bytes(), headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == _cli("evaluate", str(FOUNDING), "--format", "html").stdout
    ref = "si-joint-fusion@2025.1"
    one = server.post(
        "/evaluate",
        params={"policy": ref},
        content=FOUNDING.read_bytes(),
        headers={"Accept": "text/markdown"},
    )
    assert (
        one.text == _cli("evaluate", str(FOUNDING), "--policy", ref, "--format", "markdown").stdout
    )


def test_unacceptable_media_type(server):
    response = server.post(
        "/evaluate", content=FOUNDING.read_bytes(), headers={"Accept": "image/png"}
    )
    assert _problem(response, 406)["code"] == "not_acceptable"


def test_bad_json_is_400_with_the_cli_message(server, tmp_path):
    body = b'{"case_id": "x",\n  "request": [}'
    response = server.post("/evaluate", content=body)
    problem = _problem(response, 400)
    (tmp_path / "request.json").write_bytes(body)
    cli = _cli("evaluate", "request.json", cwd=tmp_path)
    assert cli.returncode == 2
    assert problem["detail"].splitlines() == cli.stderr.splitlines()
    assert problem["errors"][0]["line"] == 2


def test_schema_invalid_case_is_422_with_the_cli_messages(server, tmp_path):
    case = json.loads(FOUNDING.read_text())
    case["request"]["urgency"] = "whenever"
    del case["request"]["date"]
    body = json.dumps(case, indent=2).encode()
    problem = _problem(server.post("/evaluate", content=body), 422)
    (tmp_path / "request.json").write_bytes(body)
    cli = _cli("evaluate", "request.json", cwd=tmp_path)
    assert cli.returncode == 2
    assert problem["detail"].splitlines() == cli.stderr.splitlines()
    pointers = {e["pointer"] for e in problem["errors"]}
    assert {"/request", "/request/urgency"} <= pointers
    assert "determination" not in problem


def test_oversized_body_is_413(server):
    body = b" " * (MAX_BODY + 1)
    assert _problem(server.post("/evaluate", content=body), 413)["code"] == "request_too_large"


def test_concurrent_requests_equal_the_cli(server):
    cases = sorted((ROOT / "examples" / "cases").glob("*.json"))[:8]
    expected = {
        c.name: _without_time(json.loads(_cli("evaluate", str(c), "--format", "json").stdout))
        for c in cases
    }

    def call(path: Path) -> tuple[str, dict[str, Any]]:
        response = server.post("/evaluate", content=path.read_bytes())
        assert response.status_code == 200
        return path.name, _without_time(response.json())

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, cases * 4))
    assert len(results) == len(cases) * 4
    for name, got in results:
        assert got == expected[name], name


# ---- FHIR -------------------------------------------------------------------------------


def _entries(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_fhir_submit_gives_the_cli_review_per_item(server):
    cli = json.loads(_cli("evaluate", str(FOUNDING), "--format", "json").stdout)
    response = server.post(
        "/fhir/Claim/$submit",
        content=BUNDLE.read_bytes(),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    (claim_response,) = _entries(bundle, "ClaimResponse")
    assert _entries(bundle, "OperationOutcome") == []
    actions = [
        item["adjudication"][0]["extension"][0]["extension"][0]["valueCodeableConcept"]["coding"][
            0
        ]["code"]
        for item in claim_response["item"]
    ]
    assert actions == [line["x12_action"] for line in cli["lines"]]
    for item, line in zip(claim_response["item"], cli["lines"], strict=True):
        reason = {e["url"]: e for e in item["extension"][0]["extension"]}
        assert reason["determination"]["valueCode"] == line["determination"]
        assert reason["policy"]["valueString"] == (
            f"{line['policy']['id']}@{line['policy']['version']}"
        )
        clauses = [
            e["valueString"] for e in item["extension"][0]["extension"] if e["url"] == "clause"
        ]
        assert clauses == [
            c["id"] for c in line["clauses"] if c["status"] in ("not_met", "not_documented")
        ]
    requested = {
        c["id"]: [p["contentString"] for p in c["payload"]]
        for c in _entries(bundle, "CommunicationRequest")
    }
    for sequence, line in enumerate(cli["lines"], 1):
        documents = [d["document"] for d in line["documentation_requests"]]
        assert requested.get(f"t12-s2-fusion-documents-{sequence}", []) == documents


def test_fhir_unknown_code_is_reported_not_dropped(server):
    bundle = json.loads(BUNDLE.read_text())
    index, condition = next(
        (i, e["resource"])
        for i, e in enumerate(bundle["entry"])
        if e["resource"]["resourceType"] == "Condition"
    )
    # A code in no system the case format knows: even the coded sections cannot hold it (an
    # ICD-10-CM code no rule names is kept as a coded condition).
    condition["code"]["coding"][0] = {"system": "http://example.org/local", "code": "Z99.89"}
    response = server.post("/fhir/Claim/$submit", content=json.dumps(bundle).encode())
    assert response.status_code == 200, response.text
    (outcome,) = _entries(response.json(), "OperationOutcome")
    (issue,) = outcome["issue"]
    assert issue["expression"] == [f"Bundle.entry[{index}].resource"]
    assert "Z99.89" in issue["diagnostics"]


def test_fhir_invalid_resource_is_422(server):
    bundle = json.loads(BUNDLE.read_text())
    bundle["entry"][0]["resource"]["status"] = 42
    body = _problem(server.post("/fhir/Claim/$submit", content=json.dumps(bundle).encode()), 422)
    assert body["code"] == "fhir_invalid"
    assert body["errors"][0]["pointer"].startswith("/entry/0/resource")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[" * 50_000, "nesting_too_deep"),
        (b'{"case_id": "\xff"}', "unreadable_file"),
        (b"   ", "empty_document"),
        (b'{"case_id": NaN}', "bad_number"),
    ],
)
def test_hostile_bodies_are_400(server, body, code):
    assert _problem(server.post("/evaluate", content=body), 400)["code"] == code
