"""``MockTransport``: the HTTP seam answered in memory, framed like the aiohttp transport."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from model_orchestrator.core.errors import (
    DeadlineExceededError,
    RateLimitedError,
    UpstreamConnectionError,
)
from model_orchestrator.core.messages import Message
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.transport import LineBuffer
from model_orchestrator.providers.http import HttpTransport, Timeouts, Transport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.testing import (
    FakeClock,
    Fault,
    MockRequest,
    MockResponse,
    MockTransport,
    Reply,
    wire_handler,
)

LIMITS = Timeouts()


def test_both_transports_satisfy_the_protocol() -> None:
    transports: list[Transport] = [HttpTransport(), MockTransport(lambda r: MockResponse())]
    assert all(callable(t.stream_post) for t in transports)


async def test_a_post_reaches_the_handler_and_its_answer_comes_back_with_lower_case_headers() -> None:
    def handler(request: MockRequest) -> MockResponse:
        return MockResponse.json({"echo": request.json(), "path": request.path}, headers={"X-Id": "7"})

    transport = MockTransport(handler)
    response = await transport.post("http://h/v1/x?a=1", headers={"A": "b"}, body=b'{"n": 1}', timeout=LIMITS)
    assert response.status == 200
    assert response.headers["x-id"] == "7"
    assert response.body == b'{"echo": {"n": 1}, "path": "/v1/x"}'
    (seen,) = transport.requests
    assert (seen.method, seen.headers, seen.query, seen.stream) == ("POST", {"a": "b"}, {"a": "1"}, False)


async def test_an_async_handler_and_a_get() -> None:
    async def handler(request: MockRequest) -> MockResponse:
        return MockResponse(204, body=[b"a", b"b"])

    response = await MockTransport(handler).get("http://h/models", headers={}, timeout=LIMITS)
    assert (response.status, response.body) == (204, b"ab")


async def test_streamed_lines_are_framed_across_chunks_like_the_real_transport() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"data: one\r", b"\ndata: t", b"wo\n\ndata: three\rlast"):
            yield chunk

    transport = MockTransport(lambda request: MockResponse(body=chunks()))
    async with transport.stream_post("http://h/s", headers={}, body=b"", timeout=LIMITS) as response:
        lines = [line async for line in response.lines()]
    assert lines == [b"data: one", b"data: two", b"", b"data: three", b"last"]
    assert transport.requests[0].stream


@pytest.mark.parametrize(
    "body", [b"a\r\nb\rc\n\r\n\rd", b"\r\r\n\n", b"data: x\r", b"last\r\n", b"x\x0by\x0c\x1cz\n", b""]
)
def test_every_way_of_cutting_a_body_into_two_or_three_chunks_gives_the_same_lines(body: bytes) -> None:
    expected = re.split(rb"\r\n|\r|\n", body)  # WHATWG line endings; the last piece is the unended tail
    if not expected[-1]:
        expected.pop()  # the body ended with a line ending
    for first in range(len(body) + 1):
        for second in range(first, len(body) + 1):
            buffer = LineBuffer()
            lines = [line for chunk in _cut(body, first, second) for line in buffer.feed(chunk)]
            rest = buffer.rest()
            assert [*lines, *([] if rest is None else [rest])] == expected, (first, second)


def _cut(body: bytes, first: int, second: int) -> list[bytes]:
    return [body[:first], body[first:second], body[second:]]


async def test_a_passed_deadline_fails_before_the_handler_runs() -> None:
    clock = FakeClock(start=10.0)
    transport = MockTransport(lambda request: MockResponse(), clock=clock)
    with pytest.raises(DeadlineExceededError):
        await transport.post("http://h/x", headers={}, body=b"", timeout=LIMITS, deadline=9.0)
    assert transport.requests == []


async def test_aclose_is_counted_and_idempotent() -> None:
    transport = MockTransport(lambda request: MockResponse())
    await transport.aclose()
    await transport.aclose()
    assert transport.closed == 2


def _model(transport: MockTransport) -> OpenAICompatibleModel:
    return OpenAICompatibleModel(
        name="m", model_id="test-model", api_base="http://h/v1", api_key="sk-x", transport=transport
    )


REQUEST = ChatRequest(messages=(Message.user("hi"),))


async def test_the_wire_handler_speaks_the_fake_upstreams_script_without_a_server() -> None:
    transport = MockTransport(wire_handler(Fault.rate_limited(retry_after=3.0), Reply("hello there")))
    model = _model(transport)
    with pytest.raises(RateLimitedError) as caught:
        await model.complete(REQUEST)
    assert caught.value.retry_after == 3.0
    deltas = [d async for d in model.stream(REQUEST)]
    assert "".join(d.text for d in deltas) == "hello there"
    assert transport.requests[1].json()["stream"] is True


async def test_a_truncated_stream_is_a_connection_error_for_the_adapter() -> None:
    model = _model(MockTransport(wire_handler(Fault.truncated_stream(after_chunks=1))))
    with pytest.raises(UpstreamConnectionError, match="cut off"):
        _ = [d async for d in model.stream(REQUEST)]


async def test_health_probes_get_the_formats_model_list_in_memory() -> None:
    transport = MockTransport(wire_handler())
    await _model(transport).probe()
    (seen,) = transport.requests
    assert (seen.method, seen.path) == ("GET", "/v1/models")
