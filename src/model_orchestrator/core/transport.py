"""The HTTP seam's shapes: what an HTTP adapter sends through (``Transport``) and gets back.

Owns the protocol and its plain data (limits, a read response, a streamed response) so that the real
transport (``providers.http.HttpTransport``, HTTP/1.1 on httptools) and the in-memory one for tests
(``testing.MockTransport``) are interchangeable behind ``Client(transport=...)``-style injection, as in
httpx. It does not send anything, know a wire format or look at status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from model_orchestrator.core.clock import Clock


@dataclass(frozen=True, slots=True)
class Timeouts:
    """One attempt's limits, in seconds; the request's deadline shortens each of them when sooner.

    ``connect``: opening the connection. ``stall``: the longest silence while reading a streamed
    response (its headers included), so a stream that stops sending is cut however long it has run,
    while one that keeps producing is never cut by a total. ``read``: the whole exchange of a call that
    is not streamed. A timed-out attempt with another deployment to go to moves on at once (retry layer).
    """

    connect: float = 5.0
    stall: float = 60.0
    read: float = 300.0


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A fully read response. ``headers`` keys are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class LineBuffer:
    """Splits a body that arrives in chunks into lines, for ``HttpStream.lines``.

    WHATWG SSE ends lines with CRLF, LF or a lone CR; ``bytes.splitlines`` breaks at exactly those (it is
    about three times faster than a regular expression over the same chunks). A chunk ending in CR is
    held back, as it may be the first half of a CRLF split across chunks.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines that ``chunk`` completes, without their endings."""
        buffer = self._pending + chunk if self._pending else chunk
        held = buffer.endswith(b"\r")
        if held:
            buffer = buffer[:-1]
        lines = buffer.splitlines()
        rest = lines.pop() if buffer and buffer[-1] not in _LINE_ENDS else b""
        self._pending = rest + b"\r" if held else rest
        return lines

    def rest(self) -> bytes | None:
        """The last line when the body did not end with a line ending (None when it did)."""
        pending = self._pending.removesuffix(b"\r")
        return pending if pending or self._pending else None


_LINE_ENDS = b"\r\n"


class HttpStream(Protocol):
    """A response whose body is read incrementally (``Transport.stream_post``)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes:
        """The whole remaining body (used for error responses)."""
        ...

    def lines(self) -> AsyncIterator[bytes]:
        """The body's lines without their line endings."""
        ...


class Transport(Protocol):
    """What an HTTP adapter needs from the network: POST (whole or streamed), GET, and closing.

    ``deadline`` is a time on the transport's clock (the one every layer reads). Failures to connect,
    time-outs and cut-off bodies raise core errors (``UpstreamConnectionError``, ``RequestTimeoutError``,
    ``DeadlineExceededError``); any status, 4xx and 5xx included, is returned for the adapter to classify.
    Adapters time their calls on ``clock``, the same clock the deadline is read on.
    """

    @property
    def clock(self) -> Clock:
        """The clock deadlines are compared with and latencies measured on."""
        ...

    async def post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> HttpResponse:
        """POST ``body`` and read the whole response."""
        ...

    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> HttpResponse:
        """GET ``url`` and read the whole response."""
        ...

    def stream_post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> AbstractAsyncContextManager[HttpStream]:
        """POST ``body``; the context yields the response as soon as its headers arrive."""
        ...

    async def aclose(self) -> None:
        """Release what the transport holds (idempotent)."""
        ...
