"""``MockTransport``: the HTTP seam (``core.transport.Transport``) answered in memory by a handler function.

Owns turning a handler's ``MockResponse`` into what adapters read (a whole body, or lines of a body given
in chunks), recording requests, and ``wire_handler``: ``FakeUpstream``'s script (``Reply``/``Fault``)
rendered through the same wire formats without a server, so adapter unit tests need no socket. Modelled
on httpx's ``MockTransport``; network failures are simulated by the handler raising the core error the
real transport would raise (``RequestTimeoutError``, ``UpstreamConnectionError``).
"""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import DeadlineExceededError, RequestTimeoutError, UpstreamConnectionError
from model_orchestrator.core.transport import HttpResponse, HttpStream, LineBuffer, Timeouts
from model_orchestrator.testing.fake_upstream.script import Fault, Reply, ScriptItem
from model_orchestrator.testing.fake_upstream.server import WireFormat, available_formats
from model_orchestrator.testing.fake_upstream.turn import kind_for_status

_MALFORMED_BODY = b'{"id": "broken", "choices": [{"index": 0, "message": {"content": "'

Body = bytes | Iterable[bytes] | AsyncIterable[bytes]


@dataclass(frozen=True, slots=True)
class MockRequest:
    """What the adapter sent. ``headers`` keys are lower-case; ``stream`` is True for ``stream_post``."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    stream: bool

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query))

    def json(self) -> Any:
        """The body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True, slots=True)
class MockResponse:
    """A handler's answer: ``body`` as bytes, or as chunks (sync or async) a stream reads as they come."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body = b""

    @classmethod
    def json(
        cls, payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> MockResponse:
        """A JSON body."""
        return cls(
            status, {"content-type": "application/json", **(headers or {})}, json.dumps(payload).encode()
        )


Handler = Callable[[MockRequest], MockResponse | Awaitable[MockResponse]]


class MockTransport:
    """A ``Transport`` whose every request is answered by ``handler(request)`` (sync or async).

    ``requests`` lists what was sent; ``closed`` counts ``aclose`` calls. A ``deadline`` that has passed
    on ``clock`` raises ``DeadlineExceededError`` before the handler runs, as the real transport does.
    """

    def __init__(self, handler: Handler, *, clock: Clock | None = None) -> None:
        self._handler = handler
        self._clock = clock or SystemClock()
        self.requests: list[MockRequest] = []
        self.closed = 0

    @property
    def clock(self) -> Clock:
        """The clock deadlines are compared with (and adapters time their calls on); a handler may
        advance a ``FakeClock`` to stand for time spent upstream."""
        return self._clock

    async def post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> HttpResponse:
        """Answer a POST with the handler's whole response."""
        return await _whole(await self._answer("POST", url, headers, body, deadline, stream=False))

    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> HttpResponse:
        """Answer a GET with the handler's whole response."""
        return await _whole(await self._answer("GET", url, headers, b"", deadline, stream=False))

    def stream_post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> AbstractAsyncContextManager[HttpStream]:
        """Answer a POST with a response whose body is read chunk by chunk."""
        return self._stream(url, headers, body, deadline)

    async def aclose(self) -> None:
        self.closed += 1

    @asynccontextmanager
    async def _stream(
        self, url: str, headers: Mapping[str, str], body: bytes, deadline: float | None
    ) -> AsyncIterator[HttpStream]:
        response = await self._answer("POST", url, headers, body, deadline, stream=True)
        stream = _MockStream(response)
        try:
            yield stream
        finally:
            await stream.close()

    async def _answer(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        deadline: float | None,
        *,
        stream: bool,
    ) -> MockResponse:
        if deadline is not None and deadline - self._clock.monotonic() <= 0:
            raise DeadlineExceededError("the request deadline passed before it was sent")
        request = MockRequest(method, url, {k.lower(): v for k, v in headers.items()}, body, stream)
        self.requests.append(request)
        answer = self._handler(request)
        return await answer if inspect.isawaitable(answer) else answer


class _MockStream:
    """``HttpStream`` over a ``MockResponse``: the same line framing as the aiohttp transport's."""

    def __init__(self, response: MockResponse) -> None:
        self.status = response.status
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in response.headers.items()}
        self._chunks = _chunks(response.body)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self._chunks])

    async def lines(self) -> AsyncIterator[bytes]:
        buffer = LineBuffer()
        async for chunk in self._chunks:
            for line in buffer.feed(chunk):
                yield line
        rest = buffer.rest()
        if rest is not None:
            yield rest

    async def close(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            await close()


async def _chunks(body: Body) -> AsyncIterator[bytes]:
    if isinstance(body, bytes):
        yield body
    elif isinstance(body, AsyncIterable):
        async for chunk in body:
            yield chunk
    else:
        for chunk in body:
            yield chunk


async def _whole(response: MockResponse) -> HttpResponse:
    stream = _MockStream(response)
    try:
        return HttpResponse(stream.status, stream.headers, await stream.read())
    finally:
        await stream.close()


def wire_handler(
    *script: ScriptItem, default: Reply | None = None, formats: Iterable[WireFormat] | None = None
) -> Handler:
    """A handler that answers like ``FakeUpstream`` scripted with ``script`` (then ``default``), in memory.

    Faults that are about the connection become the errors the real transport raises: ``hang`` a
    ``RequestTimeoutError``, ``reset`` an ``UpstreamConnectionError``, ``truncated_stream`` the first
    frames then an ``UpstreamConnectionError``. Model-list GETs get the format's list.
    """
    queue: deque[ScriptItem] = deque(script)
    fallback = default or Reply("ok")
    wires = list(formats) if formats is not None else available_formats()

    def handle(request: MockRequest) -> MockResponse:
        for wire in wires:
            hook = getattr(wire, "model_list", None)
            listed = hook(request.method, request.path, request.headers) if hook is not None else None
            if listed is not None:
                return MockResponse.json(listed)
        serving = next((w for w in wires if w.matches(request.method, request.path)), None)
        if serving is None:
            return MockResponse.json({"error": f"no wire format serves {request.path}"}, status=404)
        wire, body = serving, request.json()
        item = queue.popleft() if queue else fallback
        if isinstance(item, Fault):
            return _fault(wire, request, body, item, fallback)
        adapt = getattr(wire, "reply_for", None)
        reply = adapt(item, body) if adapt is not None else item
        model = reply.model or wire.model_of(request.path, body)
        tokens = wire.prompt_tokens(body)
        if not wire.is_stream(request.path, request.query, body):
            return MockResponse.json(wire.reply_body(reply, model, tokens), headers=reply.headers)
        frames = wire.stream_frames(reply, model, tokens)
        return MockResponse(200, {"content-type": "text/event-stream", **reply.headers}, frames)

    return handle


def _fault(wire: WireFormat, request: MockRequest, body: Any, fault: Fault, fallback: Reply) -> MockResponse:
    if fault.kind == "hang":
        raise RequestTimeoutError(f"request to {request.path} timed out (scripted hang)")
    if fault.kind == "reset":
        raise UpstreamConnectionError(f"connection to {request.path} failed: scripted reset")
    if fault.kind == "malformed_json":
        return MockResponse(200, {"content-type": "application/json"}, _MALFORMED_BODY)
    if fault.kind == "truncated_stream":
        frames = wire.stream_frames(fallback, wire.model_of(request.path, body), wire.prompt_tokens(body))
        return MockResponse(200, {"content-type": "text/event-stream"}, _cut(frames[: fault.after_chunks]))
    status, kind = fault.code, fault.kind
    headers: dict[str, str] = {}
    if kind == "overloaded":
        status = int(getattr(wire, "overloaded_status", 503))
    elif kind == "status":
        kind = kind_for_status(status)
    if kind == "rate_limit":
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        hook = getattr(wire, "rate_limit_headers", None)
        headers.update(hook(fault.retry_after) if hook is not None else {})
    headers.update(fault.headers)
    return MockResponse.json(wire.error_response(kind, status, fault.message), status=status, headers=headers)


async def _cut(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame
    raise UpstreamConnectionError("response was cut off: scripted truncation")
