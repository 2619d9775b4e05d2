"""``orchestrator mcp --http``: streamable HTTP, driven by the ``mcp`` SDK's own HTTP client."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import command
from tests.mcp_helpers import CALL_TIMEOUT, SECRET, data_of, write_config

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

ANNOUNCEMENT = "streamable HTTP at "


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


async def _announced_url(server: subprocess.Popen[str]) -> str:
    """Reads the server's stderr until it names its URL (port 0: the OS chose the port)."""
    assert server.stderr is not None
    while True:
        line = await asyncio.wait_for(asyncio.to_thread(server.stderr.readline), CALL_TIMEOUT)
        assert line, f"the server exited (status {server.poll()}) before announcing its URL"
        if ANNOUNCEMENT in line:
            return line.split(ANNOUNCEMENT, 1)[1].strip()


async def test_one_call_over_streamable_http(tmp_path: Path, upstream: FakeUpstream) -> None:
    config = write_config(tmp_path / "orchestrator.yaml", upstream)
    upstream.script(Reply("over http", usage=(7, 3)))
    env = {**os.environ, "TEST_MCP_KEY": SECRET}
    server = subprocess.Popen(
        [*command(), "--config", str(config), "mcp", "--http", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        url = await _announced_url(server)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session,
        ):
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            result = await session.call_tool("orchestrator_execute", {"prompt": "hello", "model": "fast"})
        assert "orchestrator_execute" in names
        data = data_of(result)
        assert data["response"] == "over http" and data["model_used"] == "fast"
        assert data["cost"] == pytest.approx(7 * 1.0 / 1e6 + 3 * 2.0 / 1e6)
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=CALL_TIMEOUT)
    assert server.returncode == 0, err
    assert SECRET not in out + err
