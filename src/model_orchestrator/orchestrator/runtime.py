"""``Runtime``: everything one orchestrator is built from, and the order in which it is closed.

The one composition root of a process: ``Runtime.build(config)`` builds, in this order, the event bus's
telemetry subscribers, the cost ledger (its recorder subscribes too), the model factory (shared HTTP
transport, state store) with the model registry, and the name resolver (strategies, routers). The
façade and the admin services take their parts from it; nothing else builds them. ``aclose`` closes the
parts in reverse build order, each once per call, and a part that fails to close does not keep the
others open. Parts reopen on use, so a runtime may be used again after ``aclose`` (``complete_sync`` does).
It does not answer requests (the façade does) nor decide what a deployment's stack is (``config.build``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.events import EventBus

if TYPE_CHECKING:
    from model_orchestrator.config.build import ModelFactory
    from model_orchestrator.config.registry import ModelRegistry
    from model_orchestrator.config.schema import OrchestratorConfig
    from model_orchestrator.config.strategy_registry import NameResolver
    from model_orchestrator.ledger.ledger import Ledger
    from model_orchestrator.resilience.state_store import StateStore
    from model_orchestrator.telemetry.setup import Telemetry

logger = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[object]]


@dataclass(slots=True, eq=False)
class Runtime:
    """The built parts of one orchestrator (see the module docstring); make one with ``Runtime.build``."""

    config: OrchestratorConfig
    config_path: Path | None
    clock: Clock
    events: EventBus
    telemetry: Telemetry
    ledger: Ledger | None
    factory: ModelFactory
    registry: ModelRegistry
    names: NameResolver
    # (part, its close), in build order; ``aclose`` walks it backwards.
    closers: list[tuple[str, Closer]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        config: OrchestratorConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        config_path: Path | None = None,
    ) -> Runtime:
        """Build every part from ``config`` (default: an empty config), reading keys from ``env``
        (default: the process environment). Nothing connects yet: connections open on first use."""
        from model_orchestrator.config.build import build_registry
        from model_orchestrator.config.schema import OrchestratorConfig
        from model_orchestrator.config.strategy_registry import NameResolver

        config = config or OrchestratorConfig()
        env = dict(os.environ) if env is None else env
        clock = clock or SystemClock()
        events = EventBus()
        telemetry = _telemetry(config, events, env)
        ledger = _ledger(config, events, env, clock)
        registry, factory = build_registry(config, env, events, clock, keeper=ledger)
        names = NameResolver(config, registry, clock=clock, bus=events)
        closers: list[tuple[str, Closer]] = [("telemetry", telemetry.aclose)]
        if ledger is not None:
            closers.append(("ledger", ledger.aclose))
        # The factory's transport and state store serve the registry's models, which serve the strategies.
        closers += [("factory", factory.aclose), ("registry", registry.aclose), ("names", names.aclose)]
        return cls(config, config_path, clock, events, telemetry, ledger, factory, registry, names, closers)

    @property
    def state_store(self) -> StateStore:
        """Where breakers, cooldowns, rate limits, health and key limits live (``state:`` in config)."""
        return self.factory.store

    def require_ledger(self) -> Ledger:
        """The cost ledger; a ``ConfigError`` saying how to turn it on when it is disabled."""
        if self.ledger is None:
            raise ConfigError("the cost ledger is disabled (ledger.enabled: false in orchestrator.yaml)")
        return self.ledger

    def on_close(self, part: str, close: Closer) -> None:
        """Close ``close`` with the runtime, before every part built earlier (a front door's own parts)."""
        self.closers.append((part, close))

    async def aclose(self) -> None:
        """Close every part, the last built first, each once. A part that fails to close does not stop
        the others; the first failure is raised after all were closed, the others are logged."""
        failures: list[tuple[str, Exception]] = []
        for part, close in reversed(self.closers):
            try:
                await close()
            except Exception as exc:  # noqa: BLE001 - every part gets its turn; the first error is raised below
                failures.append((part, exc))
        for part, error in failures[1:]:
            logger.warning("closing the %s failed too: %s: %s", part, type(error).__name__, error)
        if failures:
            raise failures[0][1]


def _ledger(config: OrchestratorConfig, bus: EventBus, env: Mapping[str, str], clock: Clock) -> Ledger | None:
    """The cost ledger (unopened) with its recorder listening on ``bus``; None when disabled."""
    from model_orchestrator.config.ledger import build_ledger

    ledger = build_ledger(config, env, clock)
    if ledger is not None:
        bus.subscribe(ledger.recorder)
    return ledger


def _telemetry(config: OrchestratorConfig, bus: EventBus, env: Mapping[str, str]) -> Telemetry:
    """Subscribe tracing (when an OTLP endpoint is configured) and event logs to ``bus``."""
    from model_orchestrator.telemetry.setup import Telemetry, TracingSettings

    t = config.telemetry
    settings = TracingSettings(t.tracing, t.otlp_endpoint, t.service_name, t.project_name, t.record_content)
    return Telemetry.attach(bus, settings, env)
