"""``Orchestrator`` (async) and ``run_orchestration`` (sync): answering requests. Front doors use these.

The answering API is ``complete``, ``stream`` (a ``StreamHandle``), ``request`` and ``complete_sync``,
over the ``RequestPath`` (prompt → request → chosen model → ``OrchestrationResult``). Beside it, small
admin services built from the same ``Runtime``: ``costs``, ``keys``, ``deployment_health``, ``routing``
and ``validation``; the methods below that delegate to them keep the documented API (``costs_report``,
``health``, ``route``, ``feedback``, ...). It does not know any provider.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.result import OrchestrationResult
from model_orchestrator.orchestrator.costs_service import CostsService
from model_orchestrator.orchestrator.health_service import HealthService
from model_orchestrator.orchestrator.keys_service import KeysService
from model_orchestrator.orchestrator.request_path import Prompt, RequestPath, Selection
from model_orchestrator.orchestrator.routing_service import RoutingService
from model_orchestrator.orchestrator.run_options import RequestOptions, RunOptions, split_options
from model_orchestrator.orchestrator.runtime import Runtime
from model_orchestrator.orchestrator.stream_handle import StreamHandle
from model_orchestrator.orchestrator.validation_service import ValidationService

if TYPE_CHECKING:
    from typing import Unpack

    from model_orchestrator.config.registry import ModelInfo
    from model_orchestrator.config.schema import OrchestratorConfig
    from model_orchestrator.core.routing import Router
    from model_orchestrator.ledger.feedback import FeedbackReceipt
    from model_orchestrator.ledger.keys import VirtualKeyStore
    from model_orchestrator.ledger.ledger import Ledger
    from model_orchestrator.ledger.query import CostReport, CostStats
    from model_orchestrator.resilience.health import DeploymentHealth, HealthMonitor
    from model_orchestrator.resilience.state_store import StateStore
    from model_orchestrator.routing.decision import RoutingDecision
    from model_orchestrator.strategies.validate import ValidationResult
    from model_orchestrator.telemetry.metrics import MetricsSink

__all__ = ["Orchestrator", "Prompt", "run_orchestration"]


class Orchestrator:
    """Answers prompts with the configured models; use ``async with`` or call ``aclose()``.

    Admin services (attributes): ``costs`` (report, stats, export), ``keys`` (the virtual key store),
    ``deployment_health`` (check, monitor), ``routing`` (route, router, feedback), ``validation``.
    """

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        config_path: Path | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        """Answer with ``runtime``'s parts, or with a runtime built here from ``config`` (default: an empty
        config), ``env`` (default: the process environment), ``clock`` and ``config_path``."""
        if runtime is None:
            runtime = Runtime.build(config, env=env, clock=clock, config_path=config_path)
        elif config is not None or env is not None or clock is not None or config_path is not None:
            raise ConfigError("give the Orchestrator a runtime or what to build one from, not both")
        self.runtime = runtime
        self.config = runtime.config
        self.config_path = runtime.config_path
        self.events = runtime.events
        self.telemetry = runtime.telemetry
        self._names = runtime.names
        self._path = RequestPath(runtime)
        clock, events = runtime.clock, runtime.events
        self.costs = CostsService(runtime.require_ledger, clock)
        self.keys = KeysService(runtime.ledger, clock)
        settings = runtime.config.resilience.health
        self.deployment_health = HealthService(
            runtime.registry, runtime.factory, settings, clock=clock, events=events
        )
        self.routing = RoutingService(
            runtime.names,
            runtime.registry,
            self.deployment_health,
            runtime.require_ledger,
            clock=clock,
            events=events,
        )
        self.validation = ValidationService(
            self._path, runtime.names, runtime.registry, runtime.config.validation
        )

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> Orchestrator:
        """Build from ``orchestrator.yaml``: ``path``, else ``$ORCHESTRATOR_CONFIG``, else the working dir."""
        from model_orchestrator.config.loader import load_config

        config, found = load_config(path, env)
        return cls(config, env=env, clock=clock, config_path=found)

    def models(self) -> list[ModelInfo]:
        """Every model name with its provider, tier, context window, prices and whether it is usable."""
        return self.runtime.registry.infos() + self._names.infos()

    def model(self, name: str) -> ChatModel:
        """The model or strategy called ``name`` (``fallback:a,b`` builds a strategy on the fly)."""
        return self._names.resolve(name)

    @property
    def default_model(self) -> str:
        """The configured ``default_model``, else the cheapest usable model (the embedded one first); the
        rule is ``config.default_models``'s, shared with default members and the default judge."""
        return self._path.default_model()

    def request(
        self, prompt: Prompt, *, max_cost: float | None = None, **options: Unpack[RequestOptions]
    ) -> ChatRequest:
        """Turn a prompt (text, messages or a ready request) and options into a ``ChatRequest``."""
        request_options, strategy_options = split_options(options)
        if strategy_options:
            raise TypeError(
                f"{min(strategy_options)!r} configures a strategy (complete, stream), not a request"
            )
        return self._path.request(prompt, max_cost, request_options)

    async def complete(
        self,
        prompt: Prompt,
        *,
        model: str | None = None,
        strategy: str | None = None,
        members: Sequence[str] | None = None,
        max_cost: float | None = None,
        **options: Unpack[RunOptions],
    ) -> OrchestrationResult:
        """Answer ``prompt`` and explain how.

        ``model`` names a model or a configured strategy (default: ``default_model``); ``strategy`` builds
        one on the fly (``fallback``, ``cascade``, ``ensemble``, ...) over ``members`` (default: usable
        models chosen by tier and price). ``max_cost`` caps what the whole request may spend (USD). The
        other options (``RunOptions``: ``max_tokens``, ``temperature``, ``timeout``, ``threshold``, ...)
        are typed; an unknown one is a ``TypeError``.
        """
        request_options, strategy_options = split_options(options)
        request = self._path.request(prompt, max_cost, request_options)
        return await self._path.complete(request, Selection(model, strategy, members, strategy_options))

    def stream(
        self,
        prompt: Prompt,
        *,
        model: str | None = None,
        strategy: str | None = None,
        members: Sequence[str] | None = None,
        max_cost: float | None = None,
        **options: Unpack[RunOptions],
    ) -> StreamHandle:
        """Stream the answer to ``prompt``: ``async with orch.stream(...) as s``, ``async for delta in s``,
        then ``s.result()`` (the ``OrchestrationResult``, as ``complete`` returns it). Leaving the block
        closes the stream; plain ``async for delta in orch.stream(...)`` works too. Options as ``complete``.
        """
        request_options, strategy_options = split_options(options)
        selection = Selection(model, strategy, members, strategy_options)
        return self._path.stream(prompt, max_cost, request_options, selection)

    def complete_sync(
        self,
        prompt: Prompt,
        *,
        model: str | None = None,
        strategy: str | None = None,
        members: Sequence[str] | None = None,
        max_cost: float | None = None,
        **options: Unpack[RunOptions],
    ) -> OrchestrationResult:
        """``complete`` for synchronous callers (runs its own event loop; closes connections after)."""

        async def _run() -> OrchestrationResult:
            try:
                return await self.complete(
                    prompt, model=model, strategy=strategy, members=members, max_cost=max_cost, **options
                )
            finally:
                await self.aclose()

        return asyncio.run(_run())

    def estimate_cost(self, name: str, request: ChatRequest) -> float | None:
        """An upper bound (USD) of what ``request`` costs on the model or strategy ``name``; None: unknown."""
        return self._names.profile(name).estimate_cost(request)

    async def aclose(self) -> None:
        """Close every model built so far, the shared HTTP connections and the ledger (``Runtime.aclose``)."""
        await self.runtime.aclose()

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- the runtime's parts ---------------------------------------------------------------------------

    @property
    def state_store(self) -> StateStore:
        """Where breakers, cooldowns, rate limits, health and key limits live (``state:`` in config:
        this process's memory, or Redis shared by every process naming it)."""
        return self.runtime.state_store

    @property
    def ledger(self) -> Ledger:
        """The cost ledger (attempt records, budgets, reports), opened on first use."""
        return self.runtime.require_ledger()

    def metrics_sink(self) -> MetricsSink:
        """Prometheus series of this orchestrator's requests, counted from the first call of this (or of
        ``metrics_text``) on; needs the ``metrics`` extra."""
        return self.telemetry.metrics(self.runtime.registry.names())

    def metrics_text(self) -> str:
        """``metrics_sink()`` in the Prometheus text exposition format."""
        return self.metrics_sink().render().decode()

    # --- the documented API of the admin services (each delegates) ------------------------------------

    async def health(self, *, probe: bool = True) -> list[DeploymentHealth]:
        """Per deployment: healthy, latency, failures, breaker, cooldown (``deployment_health.check``)."""
        return await self.deployment_health.check(probe=probe)

    def health_monitor(self) -> HealthMonitor:
        """A background prober of every usable deployment (``deployment_health.monitor``)."""
        return self.deployment_health.monitor()

    async def route(
        self, task: str, context: Mapping[str, object] | None = None, router: str | None = None
    ) -> RoutingDecision:
        """Seed 003's routing decision for ``task``, without calling any model (``routing.route``)."""
        return await self.routing.route(task, context, router)

    def router(self, name: str | None = None) -> Router:
        """The router called ``name`` (``routing.router``)."""
        return self.routing.router(name)

    async def feedback(
        self, request_id: str, score: float, *, api_key_id: str | None = None
    ) -> FeedbackReceipt:
        """Record how good the answer to ``request_id`` was, 0 to 1 (``routing.feedback``)."""
        return await self.routing.feedback(request_id, score, api_key_id=api_key_id)

    def feedback_sync(
        self, request_id: str, score: float, *, api_key_id: str | None = None
    ) -> FeedbackReceipt:
        """``feedback`` for synchronous callers (runs its own event loop; closes connections after)."""

        async def _run() -> FeedbackReceipt:
            try:
                return await self.feedback(request_id, score, api_key_id=api_key_id)
            finally:
                await self.aclose()

        return asyncio.run(_run())

    def default_judge(self) -> str | None:
        """The model ``validate`` asks (``validation.default_judge``)."""
        return self.validation.default_judge()

    async def validate(
        self,
        task: str,
        output: str,
        *,
        judge: str | None = None,
        validators: Sequence[str] = (),
        max_cost: float | None = None,
    ) -> ValidationResult:
        """Check ``output`` against ``task``: seed 003's verdict (``validation.validate``)."""
        return await self.validation.validate(
            task, output, judge=judge, validators=validators, max_cost=max_cost
        )

    async def virtual_keys(self) -> VirtualKeyStore | None:
        """The gateway's virtual keys (``keys.store``; None when the ledger is off)."""
        return await self.keys.store()

    async def costs_report(
        self,
        *,
        period: str = "daily",
        by: str = "model",
        category: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
    ) -> CostReport:
        """Spend per period by model, provider, deployment, strategy, category or key (``costs.report``)."""
        return await self.costs.report(period=period, by=by, category=category, since=since, until=until)

    async def costs_stats(
        self,
        *,
        period: str | None = None,
        category: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
    ) -> CostStats:
        """Totals, latency, top models, budgets and quotas (``costs.stats``)."""
        return await self.costs.stats(period=period, category=category, since=since, until=until)

    async def costs_export(
        self,
        path: str | os.PathLike[str] | None,
        *,
        fmt: str = "csv",
        category: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
    ) -> int:
        """Write every attempt as csv or json to ``path`` (None: stdout); the row count (``costs.export``)."""
        return await self.costs.export(path, fmt=fmt, category=category, since=since, until=until)


def run_orchestration(
    prompt: str,
    strategy: str = "single",
    model: str | None = None,
    config: str | os.PathLike[str] | None = None,
    **options: Unpack[RunOptions],
) -> OrchestrationResult:
    """Answer ``prompt`` synchronously: ``run_orchestration(prompt="...", model="fast").response``."""
    return Orchestrator.from_config(config).complete_sync(prompt, model=model, strategy=strategy, **options)
