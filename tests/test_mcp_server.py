"""``orchestrator mcp`` over stdio, driven by the ``mcp`` SDK's own client against FakeUpstream."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.cli_helpers import command, run_cli
from tests.mcp_helpers import SECRET, data_of, mcp_session, text_of, write_config

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

SEED_004_KEYS = [
    "response",
    "model_used",
    "cost",
    "latency",
    "confidence",
    "input_tokens",
    "output_tokens",
    "strategy",
    "fallback_chain",
    "ensemble_models",
    "metadata",
    "timestamp",
]

SEED_003_ROUTE_KEYS = [
    "model",
    "complexity_score",
    "complexity_factors",
    "reason",
    "confidence",
    "estimated_cost",
]
ROUTE_ARGUMENTS = {
    "task": "Refactor the authentication system to use OAuth2 with refresh tokens",
    "context": {
        "files_count": 8,
        "requires_tests": True,
        "external_apis": ["OAuth2", "JWT"],
        "subsystems": ["auth", "api", "database"],
    },
    "router": "complexity",
}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def config(tmp_path: Path, upstream: FakeUpstream) -> Path:
    return write_config(tmp_path / "orchestrator.yaml", upstream)


async def test_lists_the_tools_with_schemas_a_model_can_choose_from(config: Path, tmp_path: Path) -> None:
    async with mcp_session(config, tmp_path) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        models = data_of(await session.call_tool("orchestrator_models", {}))
        route = await session.call_tool("orchestrator_route", ROUTE_ARGUMENTS)
    assert set(tools) >= {
        "orchestrator_route",
        "orchestrator_execute",
        "orchestrator_validate",
        "orchestrator_models",
        "orchestrator_costs",
    }
    for tool in tools.values():
        assert tool.description and len(tool.description) > 60, tool.name
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    execute = tools["orchestrator_execute"].input_schema
    assert execute["required"] == ["prompt"]
    strategies = next(s["enum"] for s in execute["properties"]["strategy"]["anyOf"] if "enum" in s)
    assert {"fallback", "cascade", "ensemble"} <= set(strategies)
    validate = tools["orchestrator_validate"].input_schema
    assert set(validate["required"]) == {"task", "output"}
    assert "escalate" in tools["orchestrator_validate"].description
    assert tools["orchestrator_models"].annotations is not None
    assert tools["orchestrator_models"].annotations.read_only_hint is True
    assert {m["name"] for m in models["models"]} >= {"fast", "strong", "broken"}
    assert all(m["usable"] for m in models["models"])
    assert models["default_judge"] == "strong"
    assert "fallback" in models["inline_strategies"]

    decision = data_of(route)
    assert list(decision)[:6] == SEED_003_ROUTE_KEYS
    assert decision["model"] == "strong" and decision["complexity_score"] > 5.5
    assert decision["complexity_factors"]["files"]["detail"] == "8 files"
    assert decision["complexity_factors"]["external_apis"]["detail"] == "OAuth2, JWT"
    assert decision["estimated_cost"]["usd"] > 0


async def test_execute_returns_the_seed_004_result_and_costs_report_the_spend(
    config: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.script(
        Reply("Paris.", usage=(1000, 500)), Fault.server_error(500), Reply("recovered", usage=(10, 4))
    )
    async with mcp_session(config, tmp_path) as session:
        single = await session.call_tool(
            "orchestrator_execute", {"prompt": "Capital of France?", "model": "fast", "max_tokens": 50}
        )
        fallback = await session.call_tool(
            "orchestrator_execute",
            {"prompt": "Say something", "strategy": "fallback", "members": ["broken", "fast"]},
        )
        costs = await session.call_tool("orchestrator_costs", {"period": "daily", "by": "model"})
    data = data_of(single)
    assert list(data) == [*SEED_004_KEYS, "success", "tokens"]  # seed 003's keys after seed 004's
    assert data["response"] == "Paris." and data["model_used"] == "fast"
    assert (data["input_tokens"], data["output_tokens"]) == (1000, 500)
    assert data["success"] is True and data["tokens"] == 1500
    assert data["cost"] == pytest.approx(1000 * 1.0 / 1e6 + 500 * 2.0 / 1e6)
    assert data["strategy"] == "single" and data["fallback_chain"] == ["fast"]
    sent = upstream.requests[0].json
    assert sent["messages"][-1]["content"] == "Capital of France?"
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 50

    data = data_of(fallback)
    assert data["response"] == "recovered" and data["model_used"] == "fast"
    assert data["strategy"] == "fallback" and data["fallback_chain"] == ["broken", "fast"]
    assert [r.json["model"] for r in upstream.requests[1:]] == ["fake-broken", "fake-mini"]
    assert data["cost"] == pytest.approx(10 * 1.0 / 1e6 + 4 * 2.0 / 1e6)

    report = data_of(costs)
    rows = {row["model"]: row for row in report["rows"]}
    assert (rows["fast"]["attempts"], rows["broken"]["attempts"], rows["broken"]["failed"]) == (2, 1, 1)
    assert report["total"]["cost"] == pytest.approx(1010 * 1.0 / 1e6 + 504 * 2.0 / 1e6)


async def test_validate_runs_validators_first_then_asks_the_strongest_model(
    config: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.script(Reply('{"pass": true, "issues": [], "confidence": 0.9}', usage=(200, 20)))
    async with mcp_session(config, tmp_path) as session:
        broken = await session.call_tool(
            "orchestrator_validate",
            {"task": "Write a function", "output": "def f(:\n    return 1\n", "validators": ["python"]},
        )
        asked_before_judge = len(upstream.requests)
        judged = await session.call_tool(
            "orchestrator_validate",
            {
                "task": "Add two numbers",
                "output": "def add(a, b):\n    return a + b\n",
                "validators": ["python"],
            },
        )
    data = data_of(broken)
    assert data["pass"] is False and data["escalate"] is True and data["confidence"] == 1.0
    assert len(data["issues"]) == 1 and "syntax error" in data["issues"][0]
    assert asked_before_judge == 0

    data = data_of(judged)
    assert {k: data[k] for k in ("pass", "issues", "confidence", "escalate")} == {
        "pass": True,
        "issues": [],
        "confidence": 0.9,
        "escalate": False,
    }
    assert data["checked_by"] == ["python_syntax", "judge:strong"]
    (request,) = upstream.requests
    assert request.json["model"] == "fake-big"
    assert "def add(a, b)" in request.json["messages"][-1]["content"]


async def test_bad_arguments_and_failures_are_tool_errors_and_the_server_lives_on(
    config: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.script(Fault.auth(), Reply("still here"))
    async with mcp_session(config, tmp_path) as session:
        missing = await session.call_tool("orchestrator_execute", {"model": "fast"})
        unknown = await session.call_tool("orchestrator_execute", {"prompt": "hi", "model": "fsat"})
        bad_enum = await session.call_tool("orchestrator_execute", {"prompt": "hi", "strategy": "bogus"})
        bad_validator = await session.call_tool(
            "orchestrator_validate", {"task": "t", "output": "o", "validators": ["yaml"]}
        )
        bad_date = await session.call_tool("orchestrator_costs", {"since": "yesterday"})
        bad_context = await session.call_tool("orchestrator_route", {"task": "x", "context": {"files": 3}})
        refused = await session.call_tool("orchestrator_execute", {"prompt": "hi", "model": "fast"})
        alive = await session.call_tool("orchestrator_execute", {"prompt": "hi", "model": "fast"})
    assert missing.is_error and "prompt" in text_of(missing) and "required" in text_of(missing).lower()
    assert unknown.is_error
    assert "ModelNotFoundError" in text_of(unknown) and "'fast'" in text_of(unknown)
    assert bad_enum.is_error and "strategy" in text_of(bad_enum)
    assert bad_validator.is_error and "validators" in text_of(bad_validator)
    assert bad_date.is_error and "ConfigError" in text_of(bad_date) and "ISO date" in text_of(bad_date)
    assert bad_context.is_error and "context.files" in text_of(bad_context)
    assert refused.is_error and "AuthenticationError" in text_of(refused)
    assert data_of(alive)["response"] == "still here"
    everything = "".join(text_of(r) for r in (missing, unknown, bad_enum, refused))
    assert SECRET not in everything
    assert SECRET not in (tmp_path / "server.err").read_text()


def test_a_broken_config_fails_before_serving_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - {name: x, provider: openai}\n")
    result = run_cli("--config", str(bad), "mcp", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "error:" in result.stderr and "model" in result.stderr


def test_stdout_carries_only_the_protocol(config: Path, tmp_path: Path, upstream: FakeUpstream) -> None:
    """Raw JSON-RPC lines in, every stdout line must be a JSON-RPC message (no banner, no logs)."""
    upstream.script(Reply("ok"))
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "orchestrator_execute", "arguments": {"prompt": "hi", "model": "fast"}},
        },
    ]
    # A client keeps stdin open until its requests are answered; closing it at once races the server's
    # shutdown against requests still in flight, which is not what this test is about.
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k} | {"TEST_MCP_KEY": SECRET}
    server = subprocess.Popen(
        [*command(), "--config", str(config), "-vv", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    server.stdin.flush()
    lines: list[str] = []
    while not {1, 2, 3} <= {json.loads(line).get("id") for line in lines}:
        line = server.stdout.readline()
        assert line, "the server closed stdout before answering every request"
        lines.append(line)
    out, err = server.communicate(timeout=60)
    lines += out.splitlines()
    assert server.returncode == 0, err
    replies = [json.loads(line) for line in lines]
    assert all(r["jsonrpc"] == "2.0" for r in replies)
    assert {r.get("id") for r in replies} >= {1, 2, 3}
    assert SECRET not in "".join(lines) + err
