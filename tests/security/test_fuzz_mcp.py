"""Issue 12.10: the MCP server's JSON-RPC input, fuzzed with hypothesis over streamable HTTP.

One real server (the installed CLI in a subprocess, on 127.0.0.1, over FakeUpstream) takes arbitrary
JSON, arbitrary JSON-RPC messages and tool calls with arbitrary arguments inside an initialised session:
never a 5xx, never a hang (every request has a deadline), and the server still serves a real client at
the end. Example counts are small so the file runs in well under a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_orchestrator.testing import FakeUpstream
from tests.cli_helpers import command
from tests.mcp_helpers import CALL_TIMEOUT, SECRET, write_config

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

ANNOUNCEMENT = "streamable HTTP at "
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
TOOLS = [
    "orchestrator_route",
    "orchestrator_execute",
    "orchestrator_validate",
    "orchestrator_costs",
    "orchestrator_models",
    "no_such_tool",
]
METHODS = ["initialize", "ping", "tools/list", "tools/call", "resources/list", "prompts/get", "x/unknown"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Values of the tools' real parameters, so the fuzzing reaches past argument validation.
ARGUMENTS = st.dictionaries(
    st.sampled_from(["prompt", "task", "model", "strategy", "members", "max_tokens", "max_cost", "output"]),
    JSON | st.sampled_from(["fast", "strong", "fallback", "openai:fast", "", "x" * 300]),
    max_size=5,
)


class Server:
    """The running server and an initialised session's headers."""

    def __init__(self, url: str, session_headers: dict[str, str]) -> None:
        self.url = url
        self.session_headers = session_headers
        self.http = httpx2.Client(timeout=CALL_TIMEOUT)

    def post(self, body: bytes, headers: dict[str, str]) -> httpx2.Response:
        return self.http.post(self.url, content=body, headers=headers)


def _initialize(http: httpx2.Client, url: str) -> dict[str, str]:
    message = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "f", "version": "1"},
        },
    }
    answer = http.post(url, json=message, headers=HEADERS)
    assert answer.status_code == 200, answer.text
    session = {**HEADERS, "mcp-session-id": answer.headers["mcp-session-id"]}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert http.post(url, json=initialized, headers=session).status_code < 300
    return session


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("fuzz-mcp")
    with FakeUpstream() as upstream:
        config = write_config(workdir / "orchestrator.yaml", upstream)
        env = {k: v for k, v in os.environ.items() if "ORCHESTRATOR_" not in k and "API_KEY" not in k}
        env.update({"TEST_MCP_KEY": SECRET, "ORCHESTRATOR_HOME": str(workdir / "home")})
        process = subprocess.Popen(
            [*command(), "--config", str(config), "mcp", "--http", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=workdir,
        )
        assert process.stderr is not None
        try:
            url = ""
            while not url:
                line = process.stderr.readline()
                assert line, f"the server exited ({process.poll()}) before announcing its URL"
                url = line.split(ANNOUNCEMENT, 1)[1].strip() if ANNOUNCEMENT in line else ""
            with httpx2.Client(timeout=CALL_TIMEOUT) as http:
                running = Server(url, _initialize(http, url))
            yield running
            running.http.close()
        finally:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=CALL_TIMEOUT)
        assert process.returncode == 0, err
        assert "Traceback" not in err and SECRET not in err


FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)


@FUZZ
@given(body=JSON)
def test_any_json_body_is_answered_without_a_server_error(server: Server, body: object) -> None:
    answer = server.post(json.dumps(body).encode(), server.session_headers)
    assert answer.status_code < 500, answer.text


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_answered_without_a_server_error(server: Server, raw: bytes) -> None:
    assert server.post(raw, server.session_headers).status_code < 500


@FUZZ
@given(
    method=st.sampled_from(METHODS) | st.text(max_size=20),
    params=JSON,
    request_id=st.integers() | st.text(max_size=8) | st.none(),
)
def test_any_json_rpc_message_is_answered_without_a_server_error(
    server: Server, method: str, params: object, request_id: object
) -> None:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    answer = server.post(json.dumps(message).encode(), server.session_headers)
    assert answer.status_code < 500, answer.text


@FUZZ
@given(name=st.sampled_from(TOOLS), arguments=ARGUMENTS)
def test_any_tool_call_is_answered_without_a_server_error(
    server: Server, name: str, arguments: dict[str, object]
) -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    answer = server.post(json.dumps(message).encode(), server.session_headers)
    assert answer.status_code < 500, answer.text
    assert "Traceback" not in answer.text


def test_the_server_survives_the_fuzzing(server: Server) -> None:
    # Runs last in this file: a fresh client still gets a session and a tool list.
    fresh = _initialize(server.http, server.url)
    listed = server.post(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode(), fresh)
    assert listed.status_code == 200 and "orchestrator_execute" in listed.text
