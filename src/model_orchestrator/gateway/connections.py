"""Slow and idle clients: how many connections may wait unauthenticated, and where the gateway listens.

Owns ``ConnectionGuard`` (a cap on concurrent connections that have not yet presented a valid key; one
over the cap gets a 503 and is closed before aiohttp sees it) and ``GuardedSite`` (aiohttp's TCP site with
every connection counted by the guard, each served by ``QuietHandler``). Header read timeouts are
aiohttp's keep-alive timer, which closes a connection whose next request has not fully arrived in time;
body read timeouts are ``read_body``. A connection stops counting as unauthenticated once one of its
requests passed auth (the auth middleware calls ``authenticated``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from model_orchestrator.gateway.errors import GatewayError

SERVER_NAME = "model-orchestrator"
_log = logging.getLogger(__name__)
_BUSY_BODY = json.dumps(
    {
        "error": {
            "message": "Too many connections are waiting to authenticate; retry shortly.",
            "type": "server_error",
            "param": None,
            "code": "too_many_connections",
        }
    }
).encode()
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


class ConnectionGuard:
    """Counts connections that have not authenticated; admits new ones while fewer than ``limit`` wait."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending: set[asyncio.BaseTransport] = set()
        self.refused = 0

    @property
    def pending(self) -> int:
        """Connections open now that have not yet passed auth."""
        return len(self._pending)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Whether a new connection may be served (and count it as unauthenticated)."""
        if len(self._pending) >= self.limit:
            self.refused += 1
            return False
        self._pending.add(transport)
        return True

    def authenticated(self, transport: asyncio.BaseTransport | None) -> None:
        """One of the connection's requests passed auth: it no longer counts against the cap."""
        if transport is not None:
            self._pending.discard(transport)

    def closed(self, transport: asyncio.BaseTransport) -> None:
        """The connection is gone."""
        self._pending.discard(transport)


class _GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection (made by ``handler`` once the guard admitted it)."""

    def __init__(self, handler: Callable[[], RequestHandler], guard: ConnectionGuard) -> None:
        self._handler = handler
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None
        self._inner: RequestHandler | None = None  # None: refused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if not self._guard.admit(transport):
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_BUSY)
            transport.close()
            return
        self._inner = self._handler()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            self._inner.eof_received()
        return None  # None: the transport closes itself, as aiohttp's handler wants

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.closed(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class QuietHandler(RequestHandler):
    """aiohttp's per-connection handler, minus what it gives away on a request it cannot parse: anyone can
    send one, and aiohttp would answer with its ``Server: Python/... aiohttp/...`` banner and log a full
    traceback for each. Here: our server name, and one warning line (the traceback at DEBUG)."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers[hdrs.SERVER] = SERVER_NAME
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        error = kw.get("exc_info")
        what = str(args[0]) % args[1:] if len(args) > 1 else str(args[0])
        detail = " ".join(str(error).split())[:200] if isinstance(error, BaseException) else ""
        _log.warning("%s: %s %s", what, type(error).__name__ if error else "", detail)
        _log.debug("the same, with its traceback", exc_info=error)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through ``guard`` before a ``QuietHandler`` (made with
    ``handler_options``, aiohttp's ``RequestHandler`` keywords) serves them; ``reuse_port``: bound with
    ``SO_REUSEPORT``, so other worker processes can listen on the same port."""

    __slots__ = ("_guard", "_handler_options", "_host", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        handler_options: Mapping[str, Any],
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard
        self._handler_options = dict(handler_options)
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # set by runner.setup(), which comes first
        guard, options = self._guard, self._handler_options
        loop = asyncio.get_running_loop()

        def handler() -> RequestHandler:
            return QuietHandler(server, loop=loop, **options)

        self._server = await loop.create_server(
            lambda: _GuardedConnection(handler, guard),
            self._host,
            self._port,
            reuse_port=self._reuse_port or None,
        )


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The whole request body, or 408 when it has not arrived within ``timeout`` seconds."""
    if request.content.is_eof():  # all of it is here already (the usual case): nothing to time
        return await request.read()
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise GatewayError(
            408,
            f"The request body did not arrive within {timeout:g} seconds.",
            code="request_timeout",
        ) from None
