"""The HTTP seam every HTTP adapter sends through: a pool of keep-alive HTTP/1.1 connections per origin.

Owns connection pooling (a cap on connections in use, idle ones reused newest first and dropped after
``keepalive_timeout``), TLS for https, request framing, timeouts and deadlines (on the injected clock, the
one every layer reads), line framing of streamed bodies, and turning network failures into the core error
tree (timeouts -> ``RequestTimeoutError``, refused or failed connections, resets and truncated bodies ->
``UpstreamConnectionError``). It does not know any wire format, does not look at status codes (adapters
classify those) and never sees a provider name: adapters fill in ``provider`` and ``deployment`` on the
errors it raises. One exchange on the wire is ``http_connection.Http1Connection``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import (
    DeadlineExceededError,
    RequestTimeoutError,
    UpstreamConnectionError,
)
from model_orchestrator.core.transport import HttpResponse, HttpStream, LineBuffer, Timeouts, Transport
from model_orchestrator.providers.http_connection import Http1Connection
from model_orchestrator.providers.http_request import Origin, RequestHeads

__all__ = ["HttpResponse", "HttpStream", "HttpTransport", "Timeouts", "Transport"]


class HttpTransport:
    """The default ``Transport``: keep-alive HTTP/1.1 connections, opened lazily in the running event loop.

    At most ``limit`` connections are in use at once (more requests wait for one). https upstreams are
    verified with ``tls``, by default the system's trusted CAs (``SSL_CERT_FILE`` points elsewhere). The
    pool is bound to the loop that first used it; ``aclose`` closes every connection, after which the
    transport may be used again. The transport belongs to whoever built it: adapters never close it.
    """

    def __init__(
        self,
        *,
        limit: int = 100,
        keepalive_timeout: float = 30.0,
        clock: Clock | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._limit = limit
        self._keepalive_timeout = keepalive_timeout
        self._heads = RequestHeads()
        self._idle: dict[tuple[str, str, int], list[Http1Connection]] = {}
        self._open: set[Http1Connection] = set()
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tls = tls

    def __repr__(self) -> str:
        state = "open" if self._open else "idle"
        return f"HttpTransport(limit={self._limit}, {state})"

    @property
    def clock(self) -> Clock:
        """The clock deadlines are compared with (and adapters time their calls on)."""
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
        """POST ``body`` and read the whole response (within ``timeout.read`` and the deadline, a time on
        the transport's clock)."""
        total = _sooner(timeout.read, self._remaining(deadline))
        return await self._exchange("POST", url, headers, body, timeout.connect, total)

    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> HttpResponse:
        """GET ``url`` and read the whole response (health probes list models this way)."""
        total = _sooner(timeout.read, self._remaining(deadline))
        return await self._exchange("GET", url, headers, None, timeout.connect, total)

    def stream_post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> _StreamedExchange:
        """POST ``body``; the context yields the response as soon as its headers arrive. No silence may
        last longer than ``timeout.stall``; the deadline bounds the whole stream."""
        remaining = self._remaining(deadline)
        origin, request = self._heads.request("POST", url, headers, body)
        return _StreamedExchange(
            self, origin, request, timeout.connect, remaining, _sooner(timeout.stall, remaining)
        )

    async def aclose(self) -> None:
        """Close every connection (idempotent)."""
        connections, self._open, self._idle = self._open, set(), {}
        self._slots = self._loop = None
        for connection in connections:
            connection.abort()

    async def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        connect: float,
        total: float,
    ) -> HttpResponse:
        origin, request = self._heads.request(method, url, headers, body)
        connection = await self.checkout(origin, _sooner(connect, total))
        try:
            connection.begin(request, total=total, stall=None)
            data = await connection.read_body()
        except BaseException:
            self.release(connection, reuse=False)
            raise
        self.release(connection, reuse=True)
        return HttpResponse(connection.status, connection.headers, data)

    def _remaining(self, deadline: float | None) -> float | None:
        if deadline is None:
            return None
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError("the request deadline passed before it was sent")
        return remaining

    async def checkout(self, origin: Origin, connect: float) -> Http1Connection:
        """A connection to ``origin``: the newest idle one still open, or a new one; waits for a free slot
        when ``limit`` are in use."""
        slots = self._slots_in_loop()
        await slots.acquire()
        try:
            idle = self._idle.get(origin.key)
            if idle:
                oldest_usable = self._clock.monotonic() - self._keepalive_timeout
                while idle:
                    connection = idle.pop()
                    if not connection.closed and connection.idle_since > oldest_usable:
                        return connection
                    self._drop(connection)
            return await self._connect(origin, connect)
        except BaseException:
            slots.release()
            raise

    def release(self, connection: Http1Connection, *, reuse: bool) -> None:
        """Give a connection back: kept for the next request when its exchange ended cleanly, else closed."""
        if self._slots is not None and connection in self._open:
            self._slots.release()
        if reuse and connection.reusable and connection in self._open:
            connection.idle_since = self._clock.monotonic()
            self._idle.setdefault(connection.origin_key, []).append(connection)
        else:
            self._drop(connection)

    def _drop(self, connection: Http1Connection) -> None:
        connection.abort()
        self._open.discard(connection)

    async def _connect(self, origin: Origin, limit: float) -> Http1Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.tls else None
        try:
            async with asyncio.timeout(limit):
                _, connection = await loop.create_connection(
                    lambda: Http1Connection(loop, origin.where, origin.key),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls else None,
                )
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"request to {origin.where} timed out (connecting, {limit:g} s)"
            ) from exc
        except OSError as exc:
            detail = str(exc) or type(exc).__name__
            raise UpstreamConnectionError(
                f"connection to {origin.where} failed: {type(exc).__name__}: {detail}"
            ) from exc
        self._open.add(connection)
        return connection

    def _slots_in_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is not None:
            if self._loop is not loop:
                raise RuntimeError("HttpTransport is bound to another event loop; build one per loop")
            return self._slots
        self._slots = asyncio.Semaphore(self._limit)
        self._loop = loop
        return self._slots

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls


class _StreamedExchange:
    """One streamed POST: an async context manager whose value is the response (``HttpStream``).

    Leaving the block before the body's end, or by an error, drops the connection so the upstream sees
    the disconnect and stops generating; a body read to its end returns the connection to the pool.
    """

    def __init__(
        self,
        transport: HttpTransport,
        origin: Origin,
        request: bytes,
        connect: float,
        total: float | None,
        stall: float,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._request = request
        self._connect = connect
        self._total = total
        self._stall = stall
        self._connection: Http1Connection | None = None
        self.status = 0
        self.headers: Mapping[str, str] = {}

    async def __aenter__(self) -> _StreamedExchange:
        transport = self._transport
        connection = await transport.checkout(self._origin, _sooner(self._connect, self._stall))
        try:
            connection.begin(self._request, total=self._total, stall=self._stall)
            await connection.head()
        except BaseException:
            transport.release(connection, reuse=False)
            raise
        self._connection = connection
        self.status = connection.status
        self.headers = connection.headers
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._transport.release(connection, reuse=kind is None)

    async def read(self) -> bytes:
        """The whole remaining body (used for error responses)."""
        return await self._open().read_body()

    async def lines(self) -> AsyncIterator[bytes]:
        """The body's lines without their line endings."""
        connection = self._open()
        buffer = LineBuffer()
        while chunk := await connection.next_chunk():
            for line in buffer.feed(chunk):
                yield line
        rest = buffer.rest()
        if rest is not None:
            yield rest

    def _open(self) -> Http1Connection:
        if self._connection is None:
            raise RuntimeError("the streamed response is read inside its `async with` block only")
        return self._connection


def _sooner(limit: float, other: float | None) -> float:
    return limit if other is None else min(limit, other)
