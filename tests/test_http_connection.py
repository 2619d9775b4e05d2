"""The HTTP/1.1 client under ``HttpTransport`` against raw servers on 127.0.0.1 that answer with exact bytes.

FakeUpstream (aiohttp) always frames its answers well; these servers send what real upstreams and proxies
sometimes do: chunked and gzip bodies, bodies ended by a close, ``Connection: close``, idle connections
dropped by the server, broken responses, TLS.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Callable

import pytest
import trustme
import uvloop

from model_orchestrator.core.errors import ConfigError, RequestTimeoutError, UpstreamConnectionError
from model_orchestrator.providers.http import HttpTransport, Timeouts
from model_orchestrator.testing import FakeClock, FakeUpstream, Reply

BODY = b'{"model": "m"}'
JSON = {"content-type": "application/json"}
Answer = Callable[[bytes], bytes | None]


class RawServer:
    """Answers each request with ``answer(request bytes)``; None hangs up without answering. Counts
    connections and keeps every request it read."""

    def __init__(self, answer: Answer, *, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def drop_idle(self) -> None:
        """Close every connection from the server's side, as a server does with idle keep-alives."""
        for writer in self._writers:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _ok(body: bytes, *extra: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(h + b"\r\n" for h in extra)
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


async def _start(server: RawServer, tls: ssl.SSLContext | None = None) -> tuple[asyncio.Server, str]:
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    return listener, f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1/chat/completions"


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    transport = HttpTransport()
    yield transport
    await transport.aclose()


async def test_one_connection_carries_many_requests(transport: HttpTransport) -> None:
    server = RawServer(lambda _: _ok(b'{"n": 1}'))
    listener, url = await _start(server)
    async with listener:
        bodies = [
            (await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())).body for _ in range(20)
        ]
    assert bodies == [b'{"n": 1}'] * 20
    assert server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"post /v1/chat/completions http/1.1\r\n")
    assert (
        b"host: 127.0.0.1:" in head
        and b"content-length: 14" in head
        and b"content-type: application/json" in head
    )


async def test_chunked_and_gzip_bodies_are_decoded(transport: HttpTransport) -> None:
    packed = gzip.compress(b'{"answer": "Paris"}')
    chunked = (
        b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (packed[:7], packed[7:])) + b"0\r\n\r\n"
    )
    replies = iter(
        [
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n" + chunked,
            _ok(zlib.compress(b"deflated"), b"content-encoding: deflate"),
        ]
    )
    listener, url = await _start(RawServer(lambda _: next(replies)))
    async with listener:
        first = await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
        second = await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
    assert first.body == b'{"answer": "Paris"}' and first.headers["content-encoding"] == "gzip"
    assert second.body == b"deflated"


async def test_an_interim_response_is_skipped(transport: HttpTransport) -> None:
    interim = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\n"
    listener, url = await _start(RawServer(lambda _: interim + _ok(b"final", b"x-final: yes")))
    async with listener:
        response = await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
    assert (response.status, response.body, response.headers["x-final"]) == (200, b"final", "yes")
    assert "link" not in response.headers


async def test_a_body_without_length_ends_with_the_close_and_the_connection_is_not_reused(
    transport: HttpTransport,
) -> None:
    server = RawServer(
        lambda _: b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end", close_after=True
    )
    listener, url = await _start(server)
    async with listener:
        for _ in range(2):
            assert (
                await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
            ).body == b"until the end"
    assert server.connections == 2


async def test_connection_close_and_idle_drops_open_a_new_connection(transport: HttpTransport) -> None:
    replies = iter([_ok(b"a", b"connection: close"), _ok(b"b"), _ok(b"c"), _ok(b"d")])
    server = RawServer(lambda _: next(replies))
    listener, url = await _start(server)
    async with listener:
        seen = [
            (await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())).body for _ in range(2)
        ]
        server.drop_idle()
        await asyncio.sleep(0.05)  # the client sees the close of its idle connection
        seen += [
            (await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())).body for _ in range(2)
        ]
    assert seen == [b"a", b"b", b"c", b"d"]
    assert server.connections == 3


async def test_an_idle_connection_older_than_the_keepalive_is_not_reused() -> None:
    clock = FakeClock()
    transport = HttpTransport(keepalive_timeout=30.0, clock=clock)
    server = RawServer(lambda _: _ok(b"x"))
    listener, url = await _start(server)
    async with listener:
        await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
        clock.advance(29.0)
        await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
        clock.advance(31.0)
        await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
        await transport.aclose()
    assert server.connections == 2


async def test_no_more_than_limit_connections_are_in_use() -> None:
    transport = HttpTransport(limit=2)
    server = RawServer(lambda _: _ok(b"x"))
    listener, url = await _start(server)
    async with listener:
        replies = await asyncio.gather(
            *(transport.post(url, headers=JSON, body=BODY, timeout=Timeouts()) for _ in range(10))
        )
        await transport.aclose()
    assert [r.status for r in replies] == [200] * 10
    assert server.connections == 2


async def test_a_broken_response_is_a_connection_error(transport: HttpTransport) -> None:
    listener, url = await _start(RawServer(lambda _: b"HTTP/1.1 abc nonsense\r\n\r\n"))
    async with listener:
        with pytest.raises(UpstreamConnectionError, match="not readable"):
            await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())


async def test_an_unknown_content_encoding_is_a_connection_error(transport: HttpTransport) -> None:
    listener, url = await _start(RawServer(lambda _: _ok(b"??", b"content-encoding: zstd")))
    async with listener:
        with pytest.raises(UpstreamConnectionError, match="unsupported encoding 'zstd'"):
            await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())


async def test_a_server_that_hangs_up_before_answering_is_a_retryable_connection_error(
    transport: HttpTransport,
) -> None:
    listener, url = await _start(RawServer(lambda _: None))
    async with listener:
        with pytest.raises(UpstreamConnectionError, match="closed before answering") as caught:
            await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
    assert caught.value.retryable


async def test_a_header_that_would_split_the_request_is_refused_without_its_value(
    transport: HttpTransport,
) -> None:
    server = RawServer(lambda _: _ok(b"x"))
    listener, url = await _start(server)
    async with listener:
        with pytest.raises(ConfigError, match="'authorization'") as caught:
            await transport.post(
                url, headers={"authorization": "Bearer sk-SECRET\r\nx-evil: 1"}, body=BODY, timeout=Timeouts()
            )
        with pytest.raises(ConfigError, match="not a valid HTTP token"):
            await transport.post(url, headers={"bad name": "v"}, body=BODY, timeout=Timeouts())
    assert "sk-SECRET" not in str(caught.value)
    assert server.requests == []


async def test_url_credentials_become_basic_auth_and_never_reach_errors(transport: HttpTransport) -> None:
    server = RawServer(lambda _: _ok(b"x"))
    listener, url = await _start(server)
    async with listener:
        with_user = url.replace("http://", "http://user:p%40ss@")
        await transport.post(with_user + "?key=SECRET", headers=JSON, body=BODY, timeout=Timeouts())
    head = server.requests[0].lower()
    assert b"authorization: basic dxnlcjpwqhnz" in head  # base64("user:p@ss")
    assert b"?key=secret http/1.1" in head


async def test_an_unsupported_scheme_is_a_config_error(transport: HttpTransport) -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        await transport.post("ftp://example.com/x", headers=JSON, body=BODY, timeout=Timeouts())


async def test_https_verifies_the_server_against_the_given_context() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    listener, url = await _start(RawServer(lambda _: _ok(b"secure")), tls=server_context)
    async with listener:
        trusted = HttpTransport(tls=trusting)
        assert (await trusted.post(url, headers=JSON, body=BODY, timeout=Timeouts())).body == b"secure"
        await trusted.aclose()
        default = HttpTransport()
        with pytest.raises(UpstreamConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await default.post(url, headers=JSON, body=BODY, timeout=Timeouts())
        await default.aclose()


async def test_a_slow_reader_gets_a_large_stream_whole() -> None:
    line = b"data: " + b"x" * 1000 + b"\n\n"
    body = line * 3000  # 3 MB: past the point where the socket is paused
    reply = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    )
    transport = HttpTransport()
    listener, url = await _start(RawServer(lambda _: reply))
    async with listener:
        count = 0
        async with transport.stream_post(url, headers=JSON, body=BODY, timeout=Timeouts()) as response:
            async for text in response.lines():
                if text:
                    count += 1
                    if count % 500 == 0:
                        await asyncio.sleep(0.01)
        again = await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
        await transport.aclose()
    assert count == 3000
    assert again.status == 200


async def test_a_whole_answer_that_never_comes_times_out_and_frees_its_slot() -> None:
    transport = HttpTransport(limit=1)
    replies = iter([None, _ok(b"late")])

    def answer(request: bytes) -> bytes | None:
        reply = next(replies)
        return reply if reply is not None else b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf"

    listener, url = await _start(RawServer(answer))
    async with listener:
        with pytest.raises(RequestTimeoutError):
            await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts(read=0.1))
        assert (await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())).body == b"late"
        await transport.aclose()


async def test_a_kept_alive_connection_times_out_each_request_on_its_own_limit() -> None:
    # The first request arms a long timer that the connection keeps; the second, on the same socket with
    # a shorter limit, must still time out on its own limit, and a third after it must still be answered.
    transport = HttpTransport(limit=1)
    replies = iter([_ok(b"first"), None, _ok(b"third")])

    def answer(request: bytes) -> bytes | None:
        reply = next(replies)
        return reply if reply is not None else b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf"

    server = RawServer(answer)
    listener, url = await _start(server)
    async with listener:
        first = await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts(read=30.0))
        with pytest.raises(RequestTimeoutError):
            await asyncio.wait_for(
                transport.post(url, headers=JSON, body=BODY, timeout=Timeouts(read=0.1)), timeout=5
            )
        third = await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts(read=30.0))
        await transport.aclose()
    assert (first.body, third.body) == (b"first", b"third")
    assert server.connections == 2  # the timed-out exchange closed its socket


def test_the_transport_works_on_uvloop() -> None:
    async def calls() -> tuple[int, list[bytes]]:
        transport = HttpTransport()
        async with FakeUpstream() as upstream:
            upstream.script(Reply("hello"), Reply("streamed", chunk_size=3))
            url = upstream.openai_base + "/chat/completions"
            whole = await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts())
            stream_body = b'{"model": "m", "stream": true}'
            async with transport.stream_post(
                url, headers=JSON, body=stream_body, timeout=Timeouts()
            ) as response:
                lines = [line async for line in response.lines() if line]
        await transport.aclose()
        return whole.status, lines

    status, lines = uvloop.run(calls())
    assert status == 200
    assert lines[-1] == b"data: [DONE]" and len(lines) >= 4
