"""How the gateway writes what it serves: streamed events together when they are ready, but never held while
the upstream is slow; the browser guard's cached decisions; the HTTP metrics' cached series."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from model_orchestrator.gateway.sse_writer import EventWriter
from model_orchestrator.testing import FakeUpstream, Reply
from tests.gateway_helpers import MASTER, live_gateway

USER = [{"role": "user", "content": "hi"}]


async def _writer_server(items: AsyncIterator[bytes], writes: list[int]) -> TestServer:
    async def handler(request: web.Request) -> web.StreamResponse:
        writer = EventWriter(request, {"x-test": "yes"})
        writer.add(b"<")
        await writer.relay(items, writer.add)
        await writer.end(b">")
        writes.append(writer.writes)
        return writer.response

    app = web.Application()
    app.router.add_get("/", handler)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_ready_events_share_a_write_and_a_wait_flushes_what_came_before() -> None:
    gate = asyncio.Event()

    async def items() -> AsyncIterator[bytes]:
        yield b"1"
        yield b"2"
        await gate.wait()  # the upstream is slow: what came before must reach the client now
        yield b"3"
        yield b"4"

    writes: list[int] = []
    server = await _writer_server(items(), writes)
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/")) as response:
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["x-test"] == "yes"
            async with asyncio.timeout(10):  # a guard against hanging, not a measurement
                assert await response.content.readexactly(3) == b"<12"  # before the gate opens
            gate.set()
            assert await response.read() == b"34>"
    finally:
        await server.close()
    assert writes == [2]  # "<12" with the headers, then "34>" with the end of the body


async def test_a_stream_that_never_waits_is_one_write() -> None:
    async def items() -> AsyncIterator[bytes]:
        for piece in (b"a", b"b", b"c"):
            yield piece

    writes: list[int] = []
    server = await _writer_server(items(), writes)
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/")) as response:
            assert await response.read() == b"<abc>"
    finally:
        await server.close()
    assert writes == [1]


async def test_a_stream_failing_after_a_wait_fails_the_relay_with_what_came_before_written() -> None:
    gate = asyncio.Event()
    failures: list[str] = []

    async def items() -> AsyncIterator[bytes]:
        yield b"1"
        await gate.wait()
        raise RuntimeError("upstream broke")

    async def handler(request: web.Request) -> web.StreamResponse:
        writer = EventWriter(request, {})
        try:
            await writer.relay(items(), writer.add)
        except RuntimeError as exc:
            failures.append(str(exc))
            await writer.end(b"!")
        return writer.response

    app = web.Application()
    app.router.add_get("/", handler)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/")) as response:
            async with asyncio.timeout(10):  # a guard against hanging, not a measurement
                assert await response.content.readexactly(1) == b"1"  # written before the wait
            gate.set()
            assert await response.read() == b"!"
    finally:
        await server.close()
    assert failures == ["upstream broke"]


async def test_a_failed_write_cancels_the_stream_where_it_waits() -> None:
    ended: list[str] = []
    failures: list[str] = []

    async def items(request: web.Request) -> AsyncIterator[bytes]:
        try:
            yield b"1"
            assert request.transport is not None
            request.transport.close()  # the connection goes before "1" is written
            await asyncio.Event().wait()  # writing "1" before this wait fails
            yield b"2"
        except BaseException as exc:
            ended.append(type(exc).__name__)
            raise

    async def handler(request: web.Request) -> web.StreamResponse:
        writer = EventWriter(request, {})
        try:
            await writer.relay(items(request), writer.add)
        except ConnectionResetError as exc:
            failures.append(type(exc).__name__)
            raise
        return writer.response

    app = web.Application()
    app.router.add_post("/", handler)  # a POST: the client does not retry it on another connection
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.post(server.make_url("/")) as response:
                    await response.read()
            except aiohttp.ClientError:
                pass  # the server closed the connection: what this test is about
    finally:
        await server.close()
    assert failures == ["ClientConnectionResetError"]  # the route learns the write failed
    assert ended == ["CancelledError"]  # and the stream unwound at its own await, not left suspended


async def test_a_slow_upstreams_first_delta_reaches_the_client_before_the_upstream_ends() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        up.script(Reply("aaaabbbbcccc", chunk_size=4, chunk_delay=0.3))
        body = {"model": "a", "messages": USER, "stream": True}
        headers = {"authorization": f"Bearer {MASTER}"}
        async with http.post(f"{live.url}/v1/chat/completions", json=body, headers=headers) as response:
            texts: list[str] = []
            while not texts:
                line = (await response.content.readline()).decode().strip()
                if line.startswith("data: {"):
                    delta = json.loads(line.removeprefix("data: "))["choices"][0]["delta"]
                    texts += [delta["content"]] if delta.get("content") else []
            assert texts == ["aaaa"]
            assert up.requests[0].finished is None  # the upstream is still sending the rest
            rest = await response.text()
        assert "bbbb" in rest and "cccc" in rest and rest.rstrip().endswith("data: [DONE]")


async def test_the_browser_guard_refuses_a_host_every_time_and_still_serves_good_ones() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        headers = {"authorization": f"Bearer {MASTER}"}
        for _ in range(2):  # the second answer comes from the guard's cached decision
            async with http.get(f"{live.url}/v1/models", headers={**headers, "host": "evil.example"}) as bad:
                assert bad.status == 403
                assert (await bad.json())["error"]["code"] == "host_not_allowed"
        async with http.get(f"{live.url}/v1/models", headers=headers) as good:
            assert good.status == 200


async def test_http_metrics_count_every_response_of_a_label_set() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        headers = {"authorization": f"Bearer {MASTER}"}
        for _ in range(3):
            async with http.get(f"{live.url}/v1/models", headers=headers) as response:
                assert response.status == 200
        async with http.get(f"{live.url}/metrics", headers=headers) as response:
            text = await response.text()
    series = 'orchestrator_gateway_http_requests_total{method="GET",route="/v1/models",status="200"}'
    assert f"{series} 3.0" in text


async def test_a_client_leaving_mid_stream_closes_the_upstream_call() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("aaaabbbbccccdddd", chunk_size=4, chunk_delay=0.2))
        body = {"model": "a", "messages": USER, "stream": True}
        headers = {"authorization": f"Bearer {MASTER}"}
        async with aiohttp.ClientSession() as http:
            response = await http.post(f"{live.url}/v1/chat/completions", json=body, headers=headers)
            while b"aaaa" not in await response.content.readline():
                pass
            response.close()  # the client goes away with the upstream still sending
        [record] = await up.await_finished(1)
        assert record.disconnected
