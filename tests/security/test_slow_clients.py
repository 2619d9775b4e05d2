"""Issue 12.8: a connection with unfinished headers was held for more than 150 s without any key.

Raw sockets against the real gateway on 127.0.0.1, with short limits. Nothing here measures time: each
test waits (with a generous bound) for the gateway to act, and checks what it did.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from model_orchestrator.gateway import Limits
from model_orchestrator.testing import FakeUpstream
from tests.gateway_helpers import MASTER, USER, live_gateway
from tests.mcp_helpers import http_server, write_config

BOUND = 20.0  # seconds before a test fails instead of hanging; the limits under test are far shorter


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), BOUND)


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One response (headers and its content-length body), without waiting for the connection to end."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    return head + await asyncio.wait_for(reader.readexactly(length), BOUND)


async def test_unfinished_headers_are_dropped() -> None:
    limits = Limits(header_timeout=0.3)
    async with FakeUpstream() as up, live_gateway(up, limits=limits) as live:
        reader, writer = await _connect(live.url)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        closed = await _read_all(reader)  # EOF: the gateway hung up
        writer.close()
    assert closed == b""


async def test_an_idle_connection_is_dropped() -> None:
    async with FakeUpstream() as up, live_gateway(up, limits=Limits(header_timeout=0.3)) as live:
        reader, writer = await _connect(live.url)
        assert await _read_all(reader) == b""
        writer.close()


async def test_a_body_that_never_finishes_is_408() -> None:
    limits = Limits(body_timeout=0.3)
    async with FakeUpstream() as up, live_gateway(up, limits=limits) as live:
        reader, writer = await _connect(live.url)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + MASTER.encode() + b'\r\nContent-Length: 1000\r\n\r\n{"model":'
        )
        await writer.drain()
        answer = await _read_response(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive" in answer and up.requests == []


async def test_connections_waiting_to_authenticate_are_capped() -> None:
    limits = Limits(max_pending_connections=2)
    async with FakeUpstream() as up, live_gateway(up, limits=limits) as live:
        held = [await _connect(live.url) for _ in range(2)]
        await asyncio.sleep(0)  # let the gateway accept them
        reader, writer = await _connect(live.url)
        refused = await _read_all(reader)
        writer.close()
        for _, idle in held:
            idle.close()
            await idle.wait_closed()
        # With the idle ones gone, a real client gets in again.
        answer = await asyncio.wait_for(
            live.client().chat.completions.create(model="a", messages=USER), BOUND
        )
    assert refused.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in refused.lower()
    assert json.loads(refused.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "too_many_connections"
    assert answer.choices[0].message.content == "ok"


async def test_an_authenticated_connection_stops_counting() -> None:
    limits = Limits(max_pending_connections=1)
    async with FakeUpstream() as up, live_gateway(up, limits=limits) as live:
        client = live.client()
        for _ in range(3):  # the SDK keeps one connection alive; it counts no more once it has a key
            await client.models.list()
        assert live.gateway.connections.pending == 0


@pytest.mark.subprocess
async def test_the_mcp_server_drops_unfinished_headers_too(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        config = write_config(tmp_path / "orchestrator.yaml", up)
        async with http_server(config, tmp_path, "--header-timeout", "1", master=None) as url:
            reader, writer = await _connect(url.removesuffix("/mcp"))
            writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            await writer.drain()
            closed = await _read_all(reader)
            writer.close()
    assert closed == b""
