"""The yaml-language-server, as an editor runs it, completes and checks the policy language.

docs/authoring.md promises that an editor with yaml-language-server (VS Code's YAML extension,
Neovim, Helix, ...) completes keys with their descriptions, shows them on hover and underlines
what the schema rejects, from the modeline each policy, module, plan, value-set and test-suite
file carries. These tests run the real server (the version pinned in tests/editor/, installed
into .venv/node by `make yls`, which `make test` runs) over stdio, as an editor does, on
documents placed beside the shipped files, so the modelines resolve as they do for an author.

Without the server the tests skip, except under `make test` (NECESSITY_REQUIRE_YLS=1), where a
missing server fails them rather than passing silently.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "yaml-language-server"
SCHEMAS = ROOT / "schemas"
CURSOR = "@@"
TIMEOUT = 60.0


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return loaded


POLICY = schema("policy.schema.json")
DEFS = POLICY["$defs"]
CASE = schema("case.schema.json")["$defs"]
PLAN = schema("plan.schema.json")
MODULE = schema("module.schema.json")


def described(properties: dict[str, Any], *keys: str) -> dict[str, str]:
    """The schema's description of each key: what completion must offer with it."""
    return {key: properties[key]["description"] for key in keys}


def modeline(shipped: str) -> str:
    """The modeline of a shipped file: a document beside it resolves its schema the same way."""
    first = (ROOT / shipped).read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema="), shipped
    return first


class Server:
    """A yaml-language-server process spoken to with LSP's JSON-RPC over stdio."""

    def __init__(self, executable: Path) -> None:
        self.process = subprocess.Popen(
            [str(executable), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self.last_id = 0
        self.versions: dict[str, int] = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while line := stream.readline():
                header = line.decode("ascii").strip()
                if not header:
                    break
                name, _, value = header.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length is None:
                self.inbox.put(None)
                return
            self.inbox.put(json.loads(stream.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        stdin.flush()

    def _next(self) -> dict[str, Any]:
        message = self.inbox.get(timeout=TIMEOUT)
        if message is None:
            raise AssertionError("yaml-language-server closed its output")
        if message.get("method") == "textDocument/publishDiagnostics":
            params = message["params"]
            self.diagnostics[params["uri"]] = params["diagnostics"]
        elif "method" in message and "id" in message:
            # the server asks for the client's settings (workspace/configuration) and to
            # register capabilities: answer as an editor with schema support on would
            items = message.get("params", {}).get("items", [])
            result = [self.settings()["yaml"] for _ in items] if items else None
            self._send({"id": message["id"], "result": result})
        return message

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.last_id += 1
        self._send({"id": self.last_id, "method": method, "params": params})
        while True:
            message = self._next()
            if message.get("id") == self.last_id and "method" not in message:
                assert "error" not in message, message
                return message["result"]

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    @staticmethod
    def settings() -> dict[str, Any]:
        # no schema association: each document names its schema by its modeline, as shipped
        return {
            "yaml": {
                "validate": True,
                "completion": True,
                "hover": True,
                "schemaStore": {"enable": False},
            }
        }

    def start(self) -> None:
        capabilities = {
            "textDocument": {
                "completion": {"completionItem": {"documentationFormat": ["plaintext"]}},
                "hover": {"contentFormat": ["plaintext"]},
                "publishDiagnostics": {},
            },
            "workspace": {"configuration": True},
        }
        self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": ROOT.as_uri(),
                "workspaceFolders": [{"uri": ROOT.as_uri(), "name": "necessity"}],
                "capabilities": capabilities,
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings()})

    def open(self, path: Path, text: str) -> str:
        """Show the server `text` as the editor's buffer for `path` (which need not exist)."""
        uri = path.as_uri()
        version = self.versions.get(uri, 0) + 1
        self.versions[uri] = version
        self.diagnostics.pop(uri, None)
        if version == 1:
            document = {"uri": uri, "languageId": "yaml", "version": version, "text": text}
            self.notify("textDocument/didOpen", {"textDocument": document})
        else:
            self.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"text": text}],
                },
            )
        return uri

    def published(self, uri: str) -> list[dict[str, Any]]:
        """The diagnostics the server publishes for the buffer last opened at `uri`."""
        while uri not in self.diagnostics:
            self._next()
        return self.diagnostics[uri]

    def stop(self) -> None:
        try:
            self.request("shutdown", {})
            self.notify("exit", {})
            self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.reader.join(timeout=TIMEOUT)  # it reads to the end of the output, then stops
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    if not SERVER.exists():
        why = f"{SERVER.relative_to(ROOT)} is not installed: run `make yls`"
        if os.environ.get("NECESSITY_REQUIRE_YLS"):
            pytest.fail(why)
        pytest.skip(why)
    running = Server(SERVER)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def cursor(text: str) -> tuple[str, dict[str, int]]:
    """The text without its one cursor mark, and the mark's LSP position."""
    assert text.count(CURSOR) == 1, text
    before = text[: text.index(CURSOR)]
    line = before.count("\n")
    return text.replace(CURSOR, ""), {
        "line": line,
        "character": len(before) - 1 - before.rfind("\n"),
    }


def documentation(item: dict[str, Any]) -> str:
    shown = item.get("documentation", "")
    return str(shown["value"] if isinstance(shown, dict) else shown)


def complete(server: Server, path: str, text: str) -> dict[str, str]:
    """Completion at the cursor of `text` as the buffer of `path`: label -> documentation."""
    plain, position = cursor(text)
    uri = server.open(ROOT / path, plain)
    result = server.request(
        "textDocument/completion", {"textDocument": {"uri": uri}, "position": position}
    )
    items = result["items"] if isinstance(result, dict) else result
    return {item["label"]: documentation(item) for item in items}


def offers(server: Server, path: str, text: str, expected: dict[str, str]) -> None:
    got = complete(server, path, text)
    missing = sorted(set(expected) - set(got))
    assert not missing, f"not offered: {missing}; offered: {sorted(got)}"
    for key, description in expected.items():
        assert got[key] == description, key


# ---- policies -------------------------------------------------------------------------------

POLICY_PATH = "policies/lumbar-fusion/2099.1.yaml"

POLICY_HEAD = f"""\
{modeline("policies/lumbar-fusion/2026.1.yaml")}
id: lumbar-fusion
version: "2099.1"
title: A policy being written
status: draft
effective: {{from: "2099-01-01"}}
procedures: [{{procedure: lumbar_fusion}}]
references: [{{id: 1, citation: A citation.}}]
"""


def in_clause(body: str) -> str:
    """A policy whose one clause ends with `body` (indented as a clause's keys)."""
    lines = "\n".join(f"        {line}" if line else "" for line in body.splitlines())
    return (
        POLICY_HEAD
        + "sections:\n  - id: s\n    title: S\n    clauses:\n"
        + "      - id: LF-NEW\n        title: T\n        cites: [1]\n"
        + "        recommendation: R\n"
        + lines
        + "\n"
    )


def test_time_between_facts_and_sides_are_completed_with_their_descriptions(
    server: Server,
) -> None:
    text = in_clause("requires:\n  fact: diabetes\n  field: hba1c_date\n  @@")
    offers(
        server,
        POLICY_PATH,
        text,
        described(DEFS["compare"]["properties"], "within", "before", "after", "apart", "of"),
    )
    text = in_clause("requires:\n  fact: pain\n  field: side\n  @@")
    offers(server, POLICY_PATH, text, described(DEFS["compare"]["properties"], "same_side_as"))


def test_distinct_and_another_policy_s_determination_are_completed(server: Server) -> None:
    # an empty condition offers every operator's key, the new ones among them
    text = in_clause("requires:\n  @@")
    got = complete(server, POLICY_PATH, text)
    assert {"distinct", "policy", "clause", "every", "some", "count"} <= set(got), sorted(got)
    offers(server, POLICY_PATH, text, described(DEFS["cond_distinct"]["properties"], "distinct"))
    offers(server, POLICY_PATH, text, described(DEFS["cond_policy"]["properties"], "policy"))
    # the determination a clause may require is one of three, each completed
    text = in_clause("requires:\n  policy: si-joint-fusion\n  is: @@")
    got = complete(server, POLICY_PATH, text)
    assert set(DEFS["cond_policy"]["properties"]["is"]["enum"]) <= set(got), sorted(got)


def test_imports_value_sets_and_shared_clauses_are_completed(server: Server) -> None:
    top = POLICY["properties"]
    offers(server, POLICY_PATH, POLICY_HEAD + "@@", described(top, "imports", "value_sets"))
    offers(
        server,
        POLICY_PATH,
        POLICY_HEAD + "imports:\n  - @@",
        described(DEFS["import"]["properties"], "module", "version"),
    )
    offers(
        server,
        POLICY_PATH,
        POLICY_HEAD + "value_sets:\n  bmi:\n    @@",
        described(DEFS["value_set"]["properties"], "purpose", "codes", "unit", "oid"),
    )
    offers(
        server,
        POLICY_PATH,
        POLICY_HEAD + "sections:\n  - id: s\n    title: S\n    clauses:\n      - id: LF-N\n"
        "        cites: [1]\n        @@",
        described(DEFS["clause"]["properties"], "use"),
    )
    # a coded fact is selected by value set
    text = in_clause(
        "requires:\n  exists:\n    fact: observation\n    where:\n      code:\n        @@"
    )
    got = complete(server, POLICY_PATH, text)
    assert "in_value_set" in got, sorted(got)


def test_hover_shows_a_new_key_s_description(server: Server) -> None:
    text, position = cursor(
        in_clause(
            "requires:\n  fact: diabetes\n  field: hba1c_date\n"
            "  wi@@thin: {value: 90, unit: days}\n  of: request"
        )
    )
    uri = server.open(ROOT / POLICY_PATH, text)
    hover = server.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": position}
    )
    contents = hover["contents"]
    shown = contents["value"] if isinstance(contents, dict) else str(contents)
    # the hover is Markdown (the server asks for it whatever the client says): unescape it
    shown = re.sub(r"\\([\\`*_{}\[\]()#+.!<>|-])", r"\1", shown)
    assert DEFS["compare"]["properties"]["within"]["description"] in shown


def test_a_misspelt_time_key_is_underlined_at_its_line(server: Server) -> None:
    text = in_clause(
        "requires:\n  fact: diabetes\n  field: hba1c_date\n"
        "  withn: {value: 90, unit: days}\n  of: request"
    )
    uri = server.open(ROOT / POLICY_PATH, text)
    line = text.splitlines().index("          withn: {value: 90, unit: days}")
    problems = [(d["range"]["start"]["line"], d["message"]) for d in server.published(uri)]
    assert (line, "Property withn is not allowed.") in problems, problems
    # and the same clause spelt right is clean: the diagnostic is the misspelling's, no other
    uri = server.open(ROOT / POLICY_PATH, text.replace("withn", "within"))
    assert server.published(uri) == []


# ---- modules, plans, value sets --------------------------------------------------------------


def test_a_shared_module_s_keys_are_completed(server: Server) -> None:
    head = modeline("policies/_shared/nicotine/2025.1.yaml") + "\n"
    offers(
        server,
        "policies/_shared/nicotine/2099.1.yaml",
        head + "module: nicotine\n@@",
        described(MODULE["properties"], "version", "imports", "clauses", "rules", "value_sets"),
    )


PLAN_PATH = "policies/lumbar-fusion/plans/new-plan.yaml"
PLAN_HEAD = modeline("policies/lumbar-decompression/plans/medicare-advantage.yaml") + "\n"


def test_plan_overlay_keys_are_completed(server: Server) -> None:
    top = PLAN["properties"]
    offers(
        server,
        PLAN_PATH,
        PLAN_HEAD + "plan: new-plan\n@@",
        described(top, "base", "settings", "clauses", "line_of_business", "title"),
    )
    got = complete(server, PLAN_PATH, PLAN_HEAD + "plan: new-plan\nline_of_business: @@")
    assert set(top["line_of_business"]["enum"]) <= set(got), sorted(got)
    offers(
        server,
        PLAN_PATH,
        PLAN_HEAD + "base:\n  @@",
        described(top["base"]["properties"], "policy", "version"),
    )
    offers(
        server,
        PLAN_PATH,
        PLAN_HEAD + "settings:\n  conservative_care_minimum:\n    @@",
        described(top["settings"]["additionalProperties"]["properties"], "value", "unit", "reason"),
    )
    offers(
        server,
        PLAN_PATH,
        PLAN_HEAD + "clauses:\n  LF-CONSERVATIVE-DURATION:\n    @@",
        described(top["clauses"]["additionalProperties"]["properties"], "waived_by"),
    )


def test_a_plan_with_a_line_of_business_the_schema_lacks_is_underlined(server: Server) -> None:
    text = (
        PLAN_HEAD + "plan: new-plan\ntitle: A plan\nline_of_business: hmo\n"
        "base: {policy: lumbar-fusion, version: in force}\n"
    )
    uri = server.open(ROOT / PLAN_PATH, text)
    problems = [(d["range"]["start"]["line"], d["message"]) for d in server.published(uri)]
    valid = ", ".join(f'"{value}"' for value in PLAN["properties"]["line_of_business"]["enum"])
    assert problems == [(3, f"Value is not accepted. Valid values: {valid}.")]


def test_a_shared_value_set_s_keys_are_completed(server: Server) -> None:
    head = "# yaml-language-server: $schema=../../../schemas/valueset.schema.json\n"
    offers(
        server,
        "policies/_shared/valuesets/bmi.yaml",
        head + "name: bmi\n@@",
        described(DEFS["value_set"]["properties"], "purpose", "codes", "unit", "oid"),
    )


# ---- cases (in a test suite) -----------------------------------------------------------------

SUITE_PATH = "policies/lumbar-fusion/tests/new-suite.yaml"
SUITE_HEAD = modeline("policies/lumbar-fusion/tests/edges.yaml") + (
    "\npolicy: {id: lumbar-fusion}\ntests:\n  - name: t\n"
    "    expect: {determination: medically_necessary}\n    facts:\n"
)


@pytest.mark.parametrize(
    ("section", "keys"),
    [
        ("observations", ("code", "value_quantity", "value_code", "effective", "side", "level")),
        ("conditions", ("code", "clinical_status", "verification_status", "onset")),
        ("past_procedures", ("code", "date", "levels")),
        ("medications", ("code", "status", "period")),
    ],
)
def test_a_case_s_coded_sections_are_completed(
    server: Server, section: str, keys: tuple[str, ...]
) -> None:
    kind = {
        "observations": "observation",
        "conditions": "condition",
        "past_procedures": "past_procedure",
        "medications": "medication",
    }[section]
    offers(
        server,
        SUITE_PATH,
        SUITE_HEAD + f"      {section}:\n        - @@",
        described(CASE[kind]["properties"], *keys),
    )


def test_a_case_names_its_plan(server: Server) -> None:
    offers(
        server,
        SUITE_PATH,
        SUITE_HEAD + "      request:\n        date: '2025-06-20'\n        @@",
        described(CASE["request"]["properties"], "plan", "service_date"),
    )


# ---- every shipped file is clean in the editor ----------------------------------------------


def shipped() -> list[Path]:
    files = [
        *ROOT.glob("policies/*/*.yaml"),
        *ROOT.glob("policies/*/plans/*.yaml"),
        *ROOT.glob("policies/*/tests/*.yaml"),
        *ROOT.glob("policies/_shared/*/*.yaml"),
    ]
    return sorted(files)


@pytest.mark.parametrize("path", shipped(), ids=lambda p: str(p.relative_to(ROOT / "policies")))
def test_a_shipped_file_has_no_error_or_warning(server: Server, path: Path) -> None:
    uri = server.open(path, path.read_text(encoding="utf-8"))
    # severity 1 is an error, 2 a warning; 3 and 4 are hints (an anchor a suite leaves unused)
    problems = [d for d in server.published(uri) if d.get("severity", 1) <= 2]
    assert problems == []
