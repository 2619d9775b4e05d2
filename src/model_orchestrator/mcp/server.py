"""Builds the MCP server around one ``Orchestrator`` and runs it over stdio or streamable HTTP.

Owns the transports and the lifecycle: one orchestrator for the server's life, closed when the client goes
away (stdio) or the server stops (HTTP). Over HTTP the gateway's access rules apply (``http_access``). The
tools themselves live in ``tools``. Over stdio nothing but the protocol reaches stdout: the SDK diverts file
descriptor 1 to stderr while it serves, so stray prints and native-library output cannot corrupt the stream,
and logs go to stderr.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from uvicorn.protocols.http.h11_impl import H11Protocol

from model_orchestrator import __version__
from model_orchestrator.core.clock import SystemClock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.mcp.http_access import HttpAccess
from model_orchestrator.mcp.tools import OrchestratorTools
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.orchestrator.access import browser_guard, check_exposure, is_loopback

SERVER_NAME = "model-orchestrator"
HTTP_PATH = "/mcp"
INSTRUCTIONS = (
    "Sends LLM work to the right model. Call orchestrator_route to learn which model a task needs and what "
    "it would cost, orchestrator_execute to run a prompt on a model or a strategy (fallback, cascade, "
    "ensemble, ...), orchestrator_validate to check an output, orchestrator_costs for spending, "
    "orchestrator_models for the names you can use, and orchestrator_feedback to say how good an answer was."
)
# Hints for clients: reading tools change nothing; the others call models, which costs money.
_READS = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_CALLS_MODELS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
_LABELS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


def build_server(orchestrator: Orchestrator) -> MCPServer[Any]:
    """The MCP server exposing ``orchestrator``'s tools; the caller owns (and closes) the orchestrator."""
    tools = OrchestratorTools(orchestrator)
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME, version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    server.add_tool(tools.orchestrator_route, title="Route a task", annotations=_READS)
    server.add_tool(tools.orchestrator_execute, title="Run a prompt", annotations=_CALLS_MODELS)
    server.add_tool(tools.orchestrator_validate, title="Validate an output", annotations=_CALLS_MODELS)
    server.add_tool(tools.orchestrator_costs, title="Report costs", annotations=_READS)
    server.add_tool(tools.orchestrator_models, title="List models", annotations=_READS)
    server.add_tool(tools.orchestrator_feedback, title="Label an answer", annotations=_LABELS)
    return server


async def serve_stdio(orchestrator: Orchestrator) -> None:
    """Serve over stdin/stdout until the client closes the stream."""
    async with orchestrator:
        await build_server(orchestrator).run_stdio_async()


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """How ``orchestrator mcp --http`` listens. Auth is on when ``master_key`` is set, and always off
    loopback (where a master key of 32+ characters is required); on loopback without a master key every
    local caller is trusted, as over stdio. ``allowed_hosts``/``allowed_origins``: extra Host names and
    browser origins accepted (``access.BrowserGuard``). ``header_timeout``: seconds (whole, at least 1) a
    connection may take to send a request's headers. ``master_key`` never appears in ``repr``."""

    host: str = "127.0.0.1"
    port: int = 8765
    master_key: str | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    header_timeout: float = 15.0

    @property
    def auth(self) -> bool:
        """Whether callers must present a key."""
        return self.master_key is not None or not is_loopback(self.host)


async def serve_http(
    orchestrator: Orchestrator, settings: HttpSettings, *, announce: Callable[[str], None]
) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` until stopped; ``announce`` gets the URL once the
    socket is bound (port 0 picks a free port). Refuses (``ConfigError``) to serve off loopback without a
    long enough master key, and says so when the address cannot be bound."""
    check_exposure(settings.host, auth=True, master_key=settings.master_key, server="the MCP server")
    host = settings.host
    try:
        sock = socket.create_server(
            (host, settings.port), family=socket.AF_INET6 if ":" in host else socket.AF_INET
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host} port {settings.port}: {exc.strerror or exc}; "
            "pick another --host or --port"
        ) from None
    async with orchestrator:
        app = await _guarded_app(orchestrator, settings)
        bound = sock.getsockname()[1]
        announce(f"http://{_url_host(host)}:{bound}{HTTP_PATH}")
        # No Server header: versions tell an attacker which advisories to try.
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            server_header=False,
            http=_HeadersInTime,
            timeout_keep_alive=max(1, round(settings.header_timeout)),
        )
        await _StopsOnSignal(config).serve(sockets=[sock])


async def _guarded_app(orchestrator: Orchestrator, settings: HttpSettings) -> HttpAccess:
    """The SDK's app behind our access rules (the SDK's own Host check is off: ours covers it, with the
    operator's --allow-host and --allow-origin)."""
    sdk_app = build_server(orchestrator).streamable_http_app(
        streamable_http_path=HTTP_PATH,
        host=settings.host,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    keys = await orchestrator.keys.store() if settings.auth else None
    return HttpAccess(
        sdk_app,
        guard=browser_guard(settings.host, settings.allowed_hosts, settings.allowed_origins),
        auth=settings.auth,
        master_key=settings.master_key,
        keys=keys,
        clock=SystemClock(),
    )


class _HeadersInTime(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a header read timeout: a connection whose next request has not
    fully arrived ``timeout_keep_alive`` seconds after it connected (or got its last response) is closed.
    uvicorn alone only times out idle connections after a response, so a client trickling headers (or
    sending none) would hold its connection for ever."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.timeout_keep_alive, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete  # no request in progress
        if waiting and not self.transport.is_closing():
            self.transport.close()


class _StopsOnSignal(uvicorn.Server):
    """uvicorn stops on SIGINT/SIGTERM, then raises the signal again; asyncio would answer that by
    cancelling us before the orchestrator is closed (its ledger flushed, its pool shut). This stops the
    same way, without the second signal, so the caller returns normally."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop without waiting
        self.should_exit = True


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
