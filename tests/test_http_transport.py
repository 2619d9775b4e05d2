"""``HttpTransport`` against a real local server, and the status -> error table of ``error_mapping``."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from model_orchestrator.core.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    DeadlineExceededError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    UpstreamConnectionError,
)
from model_orchestrator.providers.error_mapping import error_for_status, redact
from model_orchestrator.providers.http import HttpTransport, Timeouts
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
STREAM_BODY = b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
JSON = {"content-type": "application/json"}


class RawFormat:
    """A wire format that streams fixed byte frames, to test line framing at chunk boundaries."""

    name = "raw"

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    def matches(self, method: str, path: str) -> bool:
        return path == "/raw"

    def is_stream(self, path: str, query: Mapping[str, str], body: Mapping[str, Any]) -> bool:
        return True

    def model_of(self, path: str, body: Mapping[str, Any]) -> str:
        return "raw"

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        return 0

    def reply_body(self, reply: Reply, model: str, prompt_tokens: int) -> dict[str, Any]:
        return {}

    def stream_frames(self, reply: Reply, model: str, prompt_tokens: int) -> list[bytes]:
        return self.frames

    def error_response(self, kind: str, status: int, message: str) -> dict[str, Any]:
        return {"kind": kind}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    transport = HttpTransport()
    yield transport
    await transport.aclose()


def _url(up: FakeUpstream) -> str:
    return up.openai_base + "/chat/completions"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_post_returns_status_lowercase_headers_and_body(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Reply("hello", headers={"X-Request-Id": "req-1"}))
    response = await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts())
    assert response.status == 200
    assert response.headers["x-request-id"] == "req-1"
    assert b'"hello"' in response.body
    assert upstream.requests[0].headers["content-type"] == "application/json"


async def test_stream_lines_split_crlf_and_lone_cr_across_chunks(transport: HttpTransport) -> None:
    frames = [b"data: a\r", b"\ndata: b\r\n", b"\r\n", b"data: c\rdata: d\r\r", b"tail"]
    async with FakeUpstream(formats=[RawFormat(frames)]) as up:
        up.script(Reply("", chunk_delay=0.01))
        async with transport.stream_post(
            up.url + "/raw", headers=JSON, body=b"{}", timeout=Timeouts()
        ) as resp:
            assert resp.status == 200
            lines = [line async for line in resp.lines()]
    assert lines == [b"data: a", b"data: b", b"", b"data: c", b"data: d", b"", b"tail"]


async def test_error_status_is_returned_not_raised(upstream: FakeUpstream, transport: HttpTransport) -> None:
    upstream.script(Fault.server_error(503))
    async with transport.stream_post(
        _url(upstream), headers=JSON, body=STREAM_BODY, timeout=Timeouts()
    ) as resp:
        assert resp.status == 503
        assert b"server_error" in await resp.read()


async def test_reset_is_a_connection_error(upstream: FakeUpstream, transport: HttpTransport) -> None:
    upstream.script(Fault.reset())
    with pytest.raises(UpstreamConnectionError) as caught:
        await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts())
    assert caught.value.retryable
    assert caught.value.__cause__ is not None


async def test_refused_connection_is_a_connection_error_without_the_query(transport: HttpTransport) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1/chat/completions?key=SECRET-KEY"
    with pytest.raises(UpstreamConnectionError) as caught:
        await transport.post(url, headers=JSON, body=BODY, timeout=Timeouts(connect=2))
    assert "SECRET-KEY" not in str(caught.value)
    assert "SECRET-KEY" not in repr(caught.value)


async def test_hang_with_short_read_timeout_times_out(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Fault.hang(5))
    with pytest.raises(RequestTimeoutError):
        await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts(read=0.2))
    # The client hung up: the fake saw the disconnect instead of finishing its 5 s hang.
    assert (await upstream.await_finished(1))[0].disconnected


def test_default_timeouts_are_ones_a_user_can_live_with() -> None:
    # Documented in docs/configuration.md: seconds to connect, a minute of silence, five minutes in all.
    assert Timeouts() == Timeouts(connect=5.0, stall=60.0, read=300.0)


async def test_a_stream_that_goes_silent_is_cut_by_the_stall_timeout(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Reply("first, then silence", chunk_size=6, chunk_delay=2.0))
    with pytest.raises(RequestTimeoutError):
        async with transport.stream_post(
            _url(upstream), headers=JSON, body=STREAM_BODY, timeout=Timeouts(stall=0.1)
        ) as resp:
            [line async for line in resp.lines()]
    assert (await upstream.await_finished(1))[0].disconnected


async def test_a_stream_that_keeps_producing_is_not_cut_by_the_read_budget(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    # Ten chunks 0.05 s apart: longer in all than the 0.2 s read budget, never silent for 5 s.
    upstream.script(Reply("x" * 10, chunk_size=1, chunk_delay=0.05))
    async with transport.stream_post(
        _url(upstream), headers=JSON, body=STREAM_BODY, timeout=Timeouts(read=0.2, stall=5.0)
    ) as resp:
        lines = [line async for line in resp.lines()]
    assert b"data: [DONE]" in lines


async def test_the_deadline_is_read_on_the_transports_clock(upstream: FakeUpstream) -> None:
    # On the injected clock the deadline has passed (whatever the machine's monotonic clock says).
    clock = FakeClock(start=1e12)
    transport = HttpTransport(clock=clock)
    try:
        with pytest.raises(DeadlineExceededError):
            await transport.post(
                _url(upstream), headers=JSON, body=BODY, timeout=Timeouts(), deadline=clock.monotonic() - 1
            )
        response = await transport.post(
            _url(upstream), headers=JSON, body=BODY, timeout=Timeouts(), deadline=clock.monotonic() + 30
        )
    finally:
        await transport.aclose()
    assert response.status == 200 and len(upstream.requests) == 1


async def test_deadline_sooner_than_read_timeout_wins(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Fault.hang(5))
    deadline = time.monotonic() + 0.2
    with pytest.raises(RequestTimeoutError):
        await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts(), deadline=deadline)


async def test_passed_deadline_sends_nothing(upstream: FakeUpstream, transport: HttpTransport) -> None:
    past = time.monotonic() - 1
    with pytest.raises(RequestTimeoutError):
        await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts(), deadline=past)
    with pytest.raises(RequestTimeoutError):
        transport.stream_post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts(), deadline=past)
    assert upstream.requests == []


async def test_truncated_stream_raises_connection_error_from_lines(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Fault.truncated_stream(after_chunks=2))
    seen: list[bytes] = []
    with pytest.raises(UpstreamConnectionError):
        async with transport.stream_post(
            _url(upstream), headers=JSON, body=STREAM_BODY, timeout=Timeouts()
        ) as resp:
            seen.extend([line async for line in resp.lines()])
    assert seen == []  # the error surfaces from the iteration itself


async def test_truncated_body_raises_connection_error(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Fault.truncated_stream())
    with pytest.raises(UpstreamConnectionError, match="cut off"):
        await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts())


async def test_cancelling_a_hanging_post_closes_the_connection(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Fault.hang(30))
    task = asyncio.create_task(transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts()))
    await upstream.await_started(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [record] = await upstream.await_finished(1)
    assert record.disconnected


async def test_leaving_a_stream_early_closes_the_connection(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Reply("x" * 400, chunk_size=1, chunk_delay=0.01))
    with pytest.raises(RuntimeError, match="stop reading"):
        async with transport.stream_post(
            _url(upstream), headers=JSON, body=STREAM_BODY, timeout=Timeouts()
        ) as resp:
            async for _ in resp.lines():
                raise RuntimeError("stop reading")
    [record] = await upstream.await_finished(1)
    assert record.disconnected


async def test_transport_is_usable_again_after_aclose(upstream: FakeUpstream) -> None:
    transport = HttpTransport(limit=4)
    await transport.aclose()
    first = await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts())
    await transport.aclose()
    await transport.aclose()
    second = await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts())
    await transport.aclose()
    assert first.status == second.status == 200
    assert "limit=4" in repr(transport)


def test_transport_refuses_a_second_event_loop(upstream: FakeUpstream) -> None:
    transport = HttpTransport()

    async def call() -> int:
        return (await transport.post(_url(upstream), headers=JSON, body=BODY, timeout=Timeouts())).status

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(call()) == 200
        with pytest.raises(RuntimeError, match="another event loop"):
            asyncio.run(call())
    finally:
        loop.run_until_complete(transport.aclose())
        loop.close()


@pytest.mark.parametrize(
    ("status", "flags", "expected", "retryable"),
    [
        (429, {}, RateLimitedError, True),
        (408, {}, RequestTimeoutError, True),
        (500, {}, ServerError, True),
        (503, {}, ServerError, True),
        (529, {}, ServerError, True),
        (401, {}, AuthenticationError, False),
        (403, {}, AuthenticationError, False),
        (400, {}, BadRequestError, False),
        (404, {}, BadRequestError, False),
        (422, {}, BadRequestError, False),
        (413, {}, ContextWindowExceededError, False),
        (400, {"context_exceeded": True}, ContextWindowExceededError, False),
        (400, {"content_filtered": True}, ContentFilteredError, False),
        (200, {"content_filtered": True}, ContentFilteredError, False),
        (500, {"context_exceeded": True}, ServerError, True),
        (429, {"context_exceeded": True}, RateLimitedError, True),
        (302, {}, ServerError, True),
    ],
)
def test_error_for_status(status: int, flags: dict[str, bool], expected: type, retryable: bool) -> None:
    error = error_for_status(status, "boom", provider="p", deployment="d", retry_after=3.0, **flags)
    assert type(error) is expected
    assert (error.status_code, error.retryable, error.retry_after) == (status, retryable, 3.0)
    assert (error.provider, error.deployment) == ("p", "d")


def test_redact_replaces_every_secret_and_skips_empty_ones() -> None:
    text = "key sk-123 and sk-123 again, other tok-9"
    assert (
        redact(text, ["sk-123", None, "", "tok-9"]) == "key [REDACTED] and [REDACTED] again, other [REDACTED]"
    )
