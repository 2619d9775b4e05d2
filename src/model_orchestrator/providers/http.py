"""The HTTP seam every HTTP adapter sends through: one pooled aiohttp session per ``HttpTransport``.

Owns connection pooling, timeouts and deadlines (on the injected clock, the one every layer reads),
line framing of streamed bodies, and translating
aiohttp's exceptions into the core error tree (timeouts -> ``RequestTimeoutError``, connection failures,
resets and truncated bodies -> ``UpstreamConnectionError``). It does not know any wire format, does not
look at status codes (adapters classify those) and never sees a provider name: adapters fill in
``provider`` and ``deployment`` on the errors it raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp
from yarl import URL

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import (
    DeadlineExceededError,
    ProviderError,
    RequestTimeoutError,
    UpstreamConnectionError,
)
from model_orchestrator.core.transport import HttpResponse, HttpStream, LineBuffer, Timeouts, Transport

__all__ = ["HttpResponse", "HttpStream", "HttpTransport", "Timeouts", "Transport", "translate_client_error"]


class HttpTransport:
    """The default ``Transport``: one pooled ``aiohttp.ClientSession``, created lazily inside the running
    event loop.

    The session is bound to the loop that first used it; ``aclose`` releases it, after which the
    transport may be used again (a fresh session is made). The transport belongs to whoever built
    it: adapters never close it.
    """

    def __init__(
        self,
        *,
        limit: int = 100,
        limit_per_host: int = 0,
        keepalive_timeout: float = 30.0,
        trust_env: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive_timeout = keepalive_timeout
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Without a deadline the limits depend on the deployment's timeouts only: built once, not per call.
        self._fixed_limits: dict[tuple[Timeouts, bool], aiohttp.ClientTimeout] = {}

    def __repr__(self) -> str:
        state = "open" if self._session is not None and not self._session.closed else "idle"
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
        limits = self._client_timeout(timeout, deadline, stream=False)
        return await self._request("POST", url, headers, body, limits)

    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> HttpResponse:
        """GET ``url`` and read the whole response (health probes list models this way)."""
        limits = self._client_timeout(timeout, deadline, stream=False)
        return await self._request("GET", url, headers, None, limits)

    def stream_post(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeouts,
        deadline: float | None = None,
    ) -> AbstractAsyncContextManager[HttpStream]:
        """POST ``body``; the context yields the response as soon as its headers arrive. No silence may
        last longer than ``timeout.stall``; the deadline bounds the whole stream."""
        return self._stream(url, headers, body, self._client_timeout(timeout, deadline, stream=True))

    async def aclose(self) -> None:
        """Close the pooled connections (idempotent)."""
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()

    async def _request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        client_timeout: aiohttp.ClientTimeout,
    ) -> HttpResponse:
        session = self._session_in_loop()
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=client_timeout
            ) as resp:
                data = await resp.read()
                return HttpResponse(resp.status, _lower_headers(resp.headers), data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate_client_error(exc, url) from exc

    @asynccontextmanager
    async def _stream(
        self, url: str, headers: Mapping[str, str], body: bytes, client_timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[HttpStream]:
        session = self._session_in_loop()
        try:
            resp = await session.post(url, data=body, headers=headers, timeout=client_timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate_client_error(exc, url) from exc
        try:
            yield _AiohttpStream(resp, url)
        except BaseException:
            # Cancelled or failed mid-body: drop the connection instead of returning it to the pool,
            # so the upstream sees the disconnect and stops generating.
            resp.close()
            raise
        else:
            resp.release()

    def _client_timeout(
        self, timeout: Timeouts, deadline: float | None, *, stream: bool
    ) -> aiohttp.ClientTimeout:
        if deadline is None:
            limits = self._fixed_limits.get((timeout, stream))
            if limits is None:
                limits = self._fixed_limits[timeout, stream] = _limits(timeout, None, stream=stream)
            return limits
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError("the request deadline passed before it was sent")
        return _limits(timeout, remaining, stream=stream)

    def _session_in_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if self._loop is not loop:
                raise RuntimeError("HttpTransport is bound to another event loop; build one per loop")
            return self._session
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            keepalive_timeout=self._keepalive_timeout,
        )
        self._session = aiohttp.ClientSession(connector=connector, trust_env=self._trust_env)
        self._loop = loop
        return self._session


class _AiohttpStream:
    """``HttpStream`` over an aiohttp response; read errors are translated like request errors."""

    def __init__(self, resp: aiohttp.ClientResponse, url: str) -> None:
        self._resp = resp
        self._url = url
        self.status = resp.status
        self.headers: Mapping[str, str] = _lower_headers(resp.headers)

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate_client_error(exc, self._url) from exc

    async def lines(self) -> AsyncIterator[bytes]:
        buffer = LineBuffer()
        try:
            async for chunk in self._resp.content.iter_any():
                for line in buffer.feed(chunk):
                    yield line
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise translate_client_error(exc, self._url) from exc
        rest = buffer.rest()
        if rest is not None:
            yield rest


def translate_client_error(exc: BaseException, url: str) -> ProviderError:
    """The core error for an aiohttp/timeout failure; the message never includes the URL's query."""
    where = _safe_url(url)
    detail = _redact_url(str(exc), url, where) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        # aiohttp's ServerTimeoutError/ConnectionTimeoutError are TimeoutErrors too.
        return RequestTimeoutError(f"request to {where} timed out ({type(exc).__name__})")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamConnectionError(f"response from {where} was cut off: {detail}")
    return UpstreamConnectionError(f"connection to {where} failed: {type(exc).__name__}: {detail}")


def _limits(timeout: Timeouts, remaining: float | None, *, stream: bool) -> aiohttp.ClientTimeout:
    """aiohttp's limits for one call: a stream is bounded by its stalls (and the deadline), a whole
    answer by ``timeout.read``; the connect limit never outlasts the total."""
    if stream:
        total, stall = remaining, _sooner(timeout.stall, remaining)
    else:
        total, stall = _sooner(timeout.read, remaining), None
    return aiohttp.ClientTimeout(total=total, sock_connect=_sooner(timeout.connect, total), sock_read=stall)


def _sooner(limit: float, other: float | None) -> float:
    return limit if other is None else min(limit, other)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _safe_url(url: str) -> str:
    """``url`` without query, fragment or user info (keys sometimes travel there)."""
    parsed = URL(url)
    return str(parsed.with_query(None).with_fragment(None).with_user(None))


def _redact_url(text: str, url: str, safe: str) -> str:
    return text.replace(url, safe) if url != safe else text
