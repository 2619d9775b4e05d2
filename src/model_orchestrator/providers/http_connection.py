"""One HTTP/1.1 client connection: an asyncio protocol that writes a request and parses its response with
httptools (llhttp, the parser Node.js uses).

Owns one exchange at a time on one socket: framing by Content-Length, chunked encoding or the close of the
connection, gzip/deflate bodies, read-side flow control, the read and stall limits, and whether the socket
may serve another request. It knows nothing of URLs, pools or wire formats (``providers.http`` does), and
raises core errors only. Chosen over aiohttp's client by measurement: about a third of its CPU per call
(docs/decisions.md, "The upstream HTTP client").
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any, cast

import httptools

from model_orchestrator.core.errors import ProviderError, RequestTimeoutError, UpstreamConnectionError

# A reader that falls this far behind pauses the socket, so a slow consumer never buffers a whole stream.
_HIGH_WATER = 1 << 20
_NO_BODY_STATUS = frozenset({204, 304})


class Http1Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection carrying one request at a time.

    ``begin`` writes a request; ``head`` waits for the status line and headers; ``next_chunk`` returns the
    body in the pieces it arrives in (``b""`` at its end) and ``read_body`` all of it. A failure, a timeout
    or ``abort`` fails the exchange with a core error and closes the socket; ``reusable`` says whether the
    socket may carry another request.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str, origin_key: tuple[str, str, int]) -> None:
        self._loop = loop
        self._where = where
        self.origin_key = origin_key
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._decoder: Any = None
        self._error: ProviderError | None = None
        self._closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._head_done = False
        self._complete = False
        self._keep_alive = False
        self._until_close = False
        self._reading_all = False
        self._stall: float | None = None
        self._total_at: float | None = None
        self._last_data = 0.0

    # -- used by the pool -------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Open, its last response read to the end, and the server willing to keep it."""
        return (
            not self._closed
            and self._complete
            and self._error is None
            and not self._chunks
            and self._keep_alive
        )

    @property
    def closed(self) -> bool:
        """True once the socket is gone (the server hung up, or we did)."""
        return self._closed

    def begin(self, request: bytes, *, total: float | None, stall: float | None) -> None:
        """Write one request; its response must finish within ``total`` seconds and never go silent for
        longer than ``stall`` (either may be None)."""
        self._reset()
        self._stall = stall
        self._last_data = now = self._loop.time()
        limit = _sooner(stall, total)
        if limit is not None:
            self._total_at = None if total is None else now + total
            self._arm(now + limit)
        assert self._transport is not None
        self._transport.write(request)

    async def head(self) -> None:
        """Wait for the status line and headers (``status`` and ``headers`` are then set)."""
        while not self._head_done:
            await self._wait()

    async def next_chunk(self) -> bytes:
        """The body bytes that arrived since the last call, waiting for some; ``b""`` at its end."""
        while not self._chunks:
            if self._complete:
                self._finish()
                return b""
            await self._wait()
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        self._resume()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read_body(self) -> bytes:
        """The rest of the body."""
        self._reading_all = True
        self._resume()
        while not self._complete:
            await self._wait()
        self._finish()
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def abort(self) -> None:
        """Drop the socket now (cancelled, or left before the end): the upstream sees the disconnect."""
        self._cancel_timer()
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, though they implement it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # A callback's own error (a bad gzip stream) comes wrapped, with the cause as its context.
            detail = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
            self._fail(UpstreamConnectionError(f"response from {self._where} is not readable: {detail}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._head_done and self._until_close and not self._complete:
            self.on_message_complete()  # the close ends a body that had no length
            return
        if not self._complete and self._error is None and self._transport is not None:
            cause = exc or ConnectionResetError("the server closed the connection")
            if self._head_done:
                error = UpstreamConnectionError(f"response from {self._where} was cut off: {cause}")
            else:
                error = UpstreamConnectionError(
                    f"connection to {self._where} closed before answering: {cause}"
                )
            error.__cause__ = cause
            self._fail(error)

    def pause_writing(self) -> None:
        """The request is written whole; the response is what we wait for, so nothing to pause."""

    def resume_writing(self) -> None:
        """See ``pause_writing``."""

    # -- httptools callbacks --------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:
            return  # an interim response (103 Early Hints): the real one follows on the same socket
        headers = self.headers
        self._until_close = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and self.status not in _NO_BODY_STATUS
        )
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        elif encoding == "identity":
            self._decoder = None
        else:
            self._fail(
                UpstreamConnectionError(f"response from {self._where} uses unsupported encoding {encoding!r}")
            )
            return
        self._head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            body = self._decoder.decompress(body)
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and not self._reading_all and self._transport:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status < 200:
            self.headers = {}
            return
        if self._decoder is not None:
            self._chunks.append(self._decoder.flush())
            self._decoder = None
        self._keep_alive = self._parser.should_keep_alive()
        self._complete = True
        self._wake()

    # -- internals ------------------------------------------------------------------------------------

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    def _fail(self, error: ProviderError) -> None:
        if self._error is None:
            self._error = error
        self.abort()
        self._wake()

    def _finish(self) -> None:
        if self._error is not None:
            raise self._error

    def _arm(self, due: float) -> None:
        """Have ``_check_limits`` run by ``due``. A timer already due sooner is kept (it re-arms for the
        rest when it fires), so a kept-alive connection arms about once per limit, not once per request:
        a timer per request is a heap push and a cancel on every call."""
        timer = self._timer
        if timer is not None:
            if timer.when() <= due:
                return
            timer.cancel()
        self._timer = self._loop.call_at(due, self._check_limits)

    def _check_limits(self) -> None:
        self._timer = None
        total_at, stall = self._total_at, self._stall
        if self._complete or self._closed or (total_at is None and stall is None):
            return  # the exchange this timer was armed for is over; the next one arms its own
        now = self._loop.time()
        if total_at is not None and now >= total_at:
            self._fail(RequestTimeoutError(f"request to {self._where} timed out (no full answer in time)"))
        elif stall is not None and now - self._last_data >= stall:
            self._fail(RequestTimeoutError(f"request to {self._where} timed out (silent for {stall:g} s)"))
        else:
            next_stall = None if stall is None else self._last_data + stall
            self._timer = self._loop.call_at(_earliest(next_stall, total_at), self._check_limits)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _sooner(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _earliest(a: float | None, b: float | None) -> float:
    found = _sooner(a, b)
    assert found is not None
    return found
