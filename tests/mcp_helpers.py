"""Driving ``orchestrator mcp`` in a subprocess with the ``mcp`` SDK's own client (shared by MCP tests)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from model_orchestrator.testing import FakeUpstream
from tests.cli_helpers import command

SECRET = "sk-test-DO-NOT-LEAK-7d1e9b3a55"
ANNOUNCEMENT = "streamable HTTP at "
# Seconds a call may take before the test fails instead of hanging.
CALL_TIMEOUT = 30.0


def write_config(path: Path, upstream: FakeUpstream, extra: str = "") -> Path:
    """Three models on ``upstream``: fast (tier 1), strong (tier 3) and broken (no retries), all priced."""
    common = {"provider": "openai", "api_base": upstream.openai_base, "api_key_env": "TEST_MCP_KEY"}
    models = [
        {"name": "fast", "model": "fake-mini", "price": {"input": 1.0, "output": 2.0}, "tier": 1},
        {"name": "strong", "model": "fake-big", "price": {"input": 3.0, "output": 15.0}, "tier": 3},
        {
            "name": "broken",
            "model": "fake-broken",
            "price": {"input": 1.0, "output": 2.0},
            "tier": 1,
            "retry": {"max_attempts": 1},
        },
    ]
    # JSON is YAML, so each model is one flow-style line.
    lines = [f"  - {json.dumps({**common, **model})}" for model in models]
    path.write_text("models:\n" + "\n".join(lines) + "\n" + extra)
    return path


@asynccontextmanager
async def mcp_session(config: Path, workdir: Path, *args: str) -> AsyncIterator[ClientSession]:
    """An initialised client session with ``orchestrator --config CONFIG mcp ARGS`` over stdio.

    The server's stderr goes to ``workdir/server.err``.
    """
    executable, *prefix = command()
    params = StdioServerParameters(
        command=executable,
        args=[*prefix, "--config", str(config), "mcp", *args],
        env={"TEST_MCP_KEY": SECRET, "ORCHESTRATOR_HOME": str(workdir / "home")},
        cwd=workdir,
    )
    with (workdir / "server.err").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session,
        ):
            await session.initialize()
            yield session


def text_of(result: CallToolResult) -> str:
    """The text content of a tool result."""
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def data_of(result: CallToolResult) -> dict[str, Any]:
    """A successful tool result's JSON, checking the text and structured forms agree."""
    assert not result.is_error, text_of(result)
    data = json.loads(text_of(result))
    assert isinstance(data, dict)
    assert result.structured_content == data
    return data


def server_env(workdir: Path, master: str | None) -> dict[str, str]:
    """The environment of a server under test: no real keys, its own home, ``master`` as the master key."""
    env = {k: v for k, v in os.environ.items() if "ORCHESTRATOR_" not in k and "API_KEY" not in k}
    env.update({"TEST_MCP_KEY": SECRET, "ORCHESTRATOR_HOME": str(workdir / "home")})
    if master is not None:
        env["ORCHESTRATOR_MASTER_KEY"] = master
    return env


@asynccontextmanager
async def http_server(config: Path, workdir: Path, *args: str, master: str | None) -> AsyncIterator[str]:
    """``orchestrator mcp --http ARGS`` on a free port; yields its URL and stops it with SIGINT, checking
    that it stopped cleanly and printed neither the provider key nor the master key."""
    server = subprocess.Popen(
        [*command(), "--config", str(config), "mcp", "--http", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env(workdir, master),
        cwd=workdir,
    )
    assert server.stderr is not None
    try:
        while True:
            line = await asyncio.wait_for(asyncio.to_thread(server.stderr.readline), CALL_TIMEOUT)
            assert line, f"the server exited ({server.poll()}) before announcing its URL"
            if ANNOUNCEMENT in line:
                break
        yield line.split(ANNOUNCEMENT, 1)[1].strip()
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=CALL_TIMEOUT)
    assert SECRET not in out + err and (master is None or master not in out + err)
    assert "Traceback" not in err, err
