"""Running the gateway: ``Gateway`` (start, url, graceful stop) and ``serve`` (until SIGTERM/SIGINT).

Owns the server lifecycle on aiohttp.web (chosen by measurement: docs/decisions.md), on uvloop when it is
installed, behind the slow-client defences (``connections``: a cap on unauthenticated connections; the
keep-alive timer as the header read timeout). A graceful stop stops accepting connections, lets requests
in flight finish (up to ``shutdown_timeout``), then closes the orchestrator, which flushes the ledger. A
client that disconnects cancels its request, so abandoned calls stop costing money.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from aiohttp import web

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.gateway.app import build_app
from model_orchestrator.gateway.connections import ConnectionGuard, GuardedSite
from model_orchestrator.gateway.key_budgets import KeyBudgets
from model_orchestrator.gateway.keys_admin import KeyStore
from model_orchestrator.gateway.settings import GatewaySettings, check_auth_rule

if TYPE_CHECKING:
    from model_orchestrator.orchestrator import Orchestrator

_log = logging.getLogger(__name__)


class Gateway:
    """The gateway over ``orch``; ``async with Gateway(...) as gw:`` serves on ``gw.url`` until the block
    ends. ``close_orchestrator``: whether stopping also closes ``orch`` (and flushes its ledger)."""

    def __init__(
        self, orch: Orchestrator, settings: GatewaySettings, *, close_orchestrator: bool = True
    ) -> None:
        check_auth_rule(settings)
        self.orch = orch
        self.connections = ConnectionGuard(settings.limits.max_pending_connections)
        self.settings = settings
        self._close_orchestrator = close_orchestrator
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` (the real port when ``settings.port`` was 0)."""
        host = self.settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Open the virtual-key store (in the ledger database), bind and start serving."""
        keys, budgets = await _key_services(self.orch) if self.settings.auth else (None, None)
        app = build_app(self.orch, self.settings, keys=keys, budgets=budgets, connections=self.connections)
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=self.settings.shutdown_timeout
        )
        await runner.setup()
        handler_options = {
            "access_log": None,
            # aiohttp closes a connection whose next request has not fully arrived this long after it
            # connected or got its last response: the header read timeout (its default is an hour).
            "keepalive_timeout": self.settings.limits.header_timeout,
        }
        site = GuardedSite(
            runner,
            self.settings.host,
            self.settings.port,
            self.connections,
            handler_options=handler_options,
            reuse_port=self.settings.reuse_port,
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"cannot listen on {self.settings.host} port {self.settings.port}: {exc.strerror or exc}; "
                "pick another --host or --port"
            ) from None
        self._runner = runner
        self._port = _bound_port(runner, self.settings.port)
        if self.settings.auth and not self.settings.master_key:
            _log.warning("no master key set: only virtual keys are accepted and admin routes are closed")

    async def stop(self) -> None:
        """Stop accepting, finish requests in flight, then close the orchestrator (flushing the ledger).
        Stopping a gateway that is not running does nothing."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await runner.cleanup()
        finally:
            if self._close_orchestrator:
                await self.orch.aclose()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def _key_services(orch: Orchestrator) -> tuple[KeyStore | None, KeyBudgets | None]:
    """The façade's virtual-key store and budget keeper (both None when the ledger is off)."""
    keys = await orch.virtual_keys()
    if keys is None:
        return None, None
    return keys, KeyBudgets(orch.ledger, orch.estimate_cost)


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested


async def serve(gateway: Gateway, *, announce: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully; ``announce`` gets the URL once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Probes every resilience.health.interval seconds, so /health/providers shows real state.
    monitor = gateway.orch.health_monitor()
    try:
        await gateway.start()
        settle_heap()
        monitor.start()
        _log.info("gateway listening on %s", gateway.url)
        if announce is not None:
            announce(gateway.url)
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await monitor.stop()
        await gateway.stop()


def settle_heap() -> None:
    """Tune the cycle collector for a long-running server, once startup is done. What startup built
    (config, app, schemas, modules: ~130,000 objects) is frozen, so no full collection walks it again (one
    took ~55 ms under load, about 80 µs a request averaged); young objects are collected every 10,000 net
    allocations instead of 700, since a request's objects are freed by reference counting and the default
    ran a collection every few requests that found almost nothing (25-45 µs a request). Issue 13's
    figures are in docs/decisions.md."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000)


def run(make: Callable[[], Gateway], *, announce: Callable[[str], None] | None = None) -> None:
    """Build the gateway with ``make`` (inside the loop) and serve it until signalled, on uvloop when
    it is installed."""

    async def main() -> None:
        await serve(make(), announce=announce)

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
