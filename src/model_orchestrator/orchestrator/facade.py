"""``Orchestrator`` (async) and ``run_orchestration`` (sync): answering requests. Front doors use these.

It owns turning a prompt into a request, choosing the model by name (a strategy is just another
model), and explaining the outcome as an ``OrchestrationResult``. It does not know any provider.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import BudgetExceededError, ConfigError
from model_orchestrator.core.lifecycle import RequestLifecycle
from model_orchestrator.core.messages import Message
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.money import usd
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.core.response import StreamDelta
from model_orchestrator.core.result import OrchestrationResult, result_from_completion
from model_orchestrator.orchestrator import services
from model_orchestrator.orchestrator.run_options import (
    RequestOptions,
    RunOptions,
    request_changes,
    split_options,
)
from model_orchestrator.orchestrator.runtime import Runtime
from model_orchestrator.orchestrator.stream_handle import Publish, StreamHandle, StreamTally

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

Prompt = str | ChatRequest | Sequence[Message]


class Orchestrator:
    """Answers prompts with the configured models; use ``async with`` or call ``aclose()``."""

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
        self._clock = runtime.clock
        self._ledger = runtime.ledger
        self._registry = runtime.registry
        self._factory = runtime.factory
        self._names = runtime.names

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
        return self._registry.infos() + self._names.infos()

    def model(self, name: str) -> ChatModel:
        """The model or strategy called ``name`` (``fallback:a,b`` builds a strategy on the fly)."""
        return self._names.resolve(name)

    @property
    def default_model(self) -> str:
        """The configured ``default_model``, else the cheapest usable model (the embedded one first); the
        rule is ``config.default_models``'s, shared with default members and the default judge."""
        from model_orchestrator.config.default_models import default_model

        embedded = self._registry.embedded_model
        return default_model(self._registry.infos(), self.config.default_model, embedded)

    def _default_for(self, needs: frozenset[str]) -> str:
        from model_orchestrator.config.default_models import default_model

        embedded = self._registry.embedded_model
        return default_model(self._registry.infos(), self.config.default_model, embedded, needs)

    def request(
        self, prompt: Prompt, *, max_cost: float | None = None, **options: Unpack[RequestOptions]
    ) -> ChatRequest:
        """Turn a prompt (text, messages or a ready request) and options into a ``ChatRequest``."""
        request_options, strategy_options = split_options(options)
        if strategy_options:
            raise TypeError(
                f"{min(strategy_options)!r} configures a strategy (complete, stream), not a request"
            )
        return self._request(prompt, max_cost, request_options)

    def _request(self, prompt: Prompt, max_cost: float | None, options: Mapping[str, object]) -> ChatRequest:
        system = options.get("system")
        if isinstance(prompt, str):
            base = ChatRequest.from_prompt(prompt, system=system)  # type: ignore[arg-type]
        elif system is not None:
            raise TypeError(
                "system= is for a text prompt; put a system message first in the messages instead"
            )
        else:
            base = prompt if isinstance(prompt, ChatRequest) else ChatRequest(messages=tuple(prompt))
        changes = request_changes(options, self._clock.monotonic())
        if max_cost is not None:
            changes["max_cost"] = max_cost
        changes.setdefault("request_id", base.request_id or uuid.uuid4().hex)
        return base.with_options(**changes)

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
        models chosen by tier and price). ``max_cost`` caps what the whole request may spend (USD).
        """
        request_options, strategy_options = split_options(options)
        request = self._request(prompt, max_cost, request_options)
        chat_model, requested, label = self._select(model, strategy, members, strategy_options, request)
        scope = self._scope(request)
        lifecycle = self._lifecycle(request, requested, label, scope)
        lifecycle.start()
        try:
            with request_scope(scope):
                self._refuse_over_budget(label, requested, request, scope)
                completion = await chat_model.complete(request)
        except BaseException as exc:
            lifecycle.failed(exc)
            raise
        result = result_from_completion(
            completion,
            requested=requested,
            strategy=label,
            latency=lifecycle.elapsed,
            scope=scope,
            request_id=request.request_id,
        )
        lifecycle.succeeded(
            model_used=result.model_used,
            cost=result.cost,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            explanation=completion.explanation,
            response_text=result.response,
        )
        return result

    def _lifecycle(
        self, request: ChatRequest, requested: str, label: str, scope: RequestScope
    ) -> RequestLifecycle:
        record = self.config.telemetry.record_content
        prompt = None
        if self._ledger is not None and self._ledger.settings.store_prompts:
            from model_orchestrator.routing.policy import prompt_of

            prompt = prompt_of(request)
        return RequestLifecycle(self.events, self._clock, request, requested, label, scope, record, prompt)

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
        selection = (model, strategy, members, strategy_options)
        return StreamHandle(functools.partial(self._streamed, prompt, max_cost, request_options, selection))

    async def _streamed(
        self,
        prompt: Prompt,
        max_cost: float | None,
        options: Mapping[str, object],
        selection: tuple[str | None, str | None, Sequence[str] | None, dict[str, object]],
        publish: Publish,
    ) -> AsyncGenerator[StreamDelta, None]:
        """The request path of ``stream``: the deltas, then the result handed to ``publish``."""
        request = self._request(prompt, max_cost, options)
        chat_model, requested, label = self._select(*selection, request)
        scope = self._scope(request)
        lifecycle = self._lifecycle(request, requested, label, scope)
        lifecycle.start()
        tally = StreamTally()
        try:
            with request_scope(scope):
                self._refuse_over_budget(label, requested, request, scope)
                async for delta in chat_model.stream(request):
                    tally.add(delta)
                    yield delta
        except BaseException as exc:
            lifecycle.failed(exc)
            raise
        usage = tally.usage
        lifecycle.succeeded(
            model_used=tally.model,
            cost=scope.total_cost,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            explanation=tally.explanation,
            response_text=tally.text,
        )
        publish(
            tally.result(
                requested=requested,
                strategy=label,
                latency=lifecycle.elapsed,
                scope=scope,
                request_id=request.request_id,
            )
        )

    def _select(
        self,
        model: str | None,
        strategy: str | None,
        members: Sequence[str] | None,
        strategy_options: dict[str, Any],
        request: ChatRequest,
    ) -> tuple[ChatModel, str, str]:
        """(the model to call, the name asked for, the strategy label for the result).

        With no model named, the default model is the cheapest usable one that has what the request
        needs (tools, vision, json_schema), so an image never goes to a text-only default.
        """
        if strategy in (None, "single"):
            if members or strategy_options:
                raise ConfigError(
                    "members (--chain) and strategy options (--threshold, --ensemble-size) need a --strategy "
                    "such as fallback, cascade or ensemble"
                )
            name = self._names.canonical(model or self._default_for(request.required_capabilities))
            return self._names.fitted(name), name, self._names.kind_of(name)
        chosen = list(members) if members else ([model] if model else None)
        built = self._names.inline(strategy, chosen, strategy_options)
        return built, built.name, strategy

    def _refuse_over_budget(
        self, label: str, requested: str, request: ChatRequest, scope: RequestScope
    ) -> None:
        """A plain model under a cost cap: refuse before any call when the estimate cannot fit.

        Strategies check their members themselves; a single model has no strategy to do it.
        """
        if label != "single" or scope.max_cost is None:
            return
        estimate = self._names.profile(requested).estimate_cost(request)
        if estimate is None:
            raise BudgetExceededError(
                f"{requested!r} has no known price, so max_cost {usd(scope.max_cost)} cannot be kept; "
                "nothing was sent (give it a price: in orchestrator.yaml, or drop the cap)"
            )
        if estimate > scope.max_cost:
            raise BudgetExceededError(
                f"{requested!r} would cost about {usd(estimate)} for this request (prompt estimate plus "
                f"reserved output), over max_cost {usd(scope.max_cost)}; nothing was sent (raise the cap, "
                "lower --max-tokens, or choose a cheaper model)"
            )

    def _scope(self, request: ChatRequest) -> RequestScope:
        budgets = self.config.budgets
        cap = (
            request.max_cost
            if request.max_cost is not None
            else (budgets.per_request_usd if budgets else None)
        )
        return RequestScope(
            request_id=request.request_id or "",
            attempt_budget=self.config.resilience.max_attempts_per_request,
            max_cost=cap,
        )

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

    async def health(self, *, probe: bool = True) -> list[DeploymentHealth]:
        """Per deployment: healthy, last latency, consecutive failures, breaker state, cooldown left.

        Builds every usable model first; ``probe`` runs each deployment's free health check (a model-list
        request) now, otherwise only the state gathered so far is reported.
        """
        return await services.deployment_health(self, probe=probe)

    def health_monitor(self) -> HealthMonitor:
        """A background prober of every usable deployment, every ``resilience.health.interval`` seconds
        once ``start()``ed (``orchestrator serve`` does; ``await stop()`` ends it). What it finds is what
        ``health(probe=False)`` reports, and strategies pass over a deployment whose last probe failed
        while they have another option."""
        return services.health_monitor(self)

    async def route(
        self, task: str, context: Mapping[str, object] | None = None, router: str | None = None
    ) -> RoutingDecision:
        """Seed 003's routing decision for ``task``, without calling any model (see ``services.route``)."""
        return await services.route(self, task, context, router)

    def router(self, name: str | None = None) -> Router:
        """The router called ``name`` (``learned``, ``complexity``, ``length``; default: the config's)."""
        return self._names.routers.router(name)

    def default_judge(self) -> str | None:
        """The model ``validate`` asks: config ``validation.judge``, else the strongest usable model (highest
        tier, then price), else None."""
        return services.default_judge(self)

    async def validate(
        self,
        task: str,
        output: str,
        *,
        judge: str | None = None,
        validators: Sequence[str] = (),
        max_cost: float | None = None,
    ) -> ValidationResult:
        """Check ``output`` against ``task``: seed 003's verdict (pass, up to 3 issues, confidence, escalate).

        ``validators`` (``python``, ``json``) run first; a failure is final. Then ``judge`` (default:
        ``default_judge()``) reads task and output, unless there is none and validators alone decide.
        The judge call is a request like any other: events, budget (``max_cost``) and cost.
        """
        return await services.validate(
            self, task, output, judge=judge, validators=validators, max_cost=max_cost
        )

    async def feedback(
        self, request_id: str, score: float, *, api_key_id: str | None = None
    ) -> FeedbackReceipt:
        """Record how good the answer to ``request_id`` was: ``score`` from 0 (wrong or useless) to 1
        (right), kept in the ledger as an outcome label for ``orchestrator train-router --from-ledger``.

        ``api_key_id``: the virtual key asking; a key may label only its own requests (None: any request).
        Raises ``UnknownRequestError`` for an id the ledger does not know and ``InvalidFeedbackError`` for
        a score off the scale or a request that failed.
        """
        return await self.ledger.feedback(request_id, score, caller_key_id=api_key_id, tier_of=self._tier_of)

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

    def _tier_of(self, name: str) -> int | None:
        """The configured tier of the model called ``name`` (None when unknown or no longer configured)."""
        return next((i.tier for i in self.models() if i.name == name), None)

    async def aclose(self) -> None:
        """Close every model built so far, the shared HTTP connections and the ledger (``Runtime.aclose``)."""
        await self.runtime.aclose()

    @property
    def state_store(self) -> StateStore:
        """Where breakers, cooldowns, rate limits, health and key limits live (``state:`` in config:
        this process's memory, or Redis shared by every process naming it)."""
        return self.runtime.state_store

    @property
    def ledger(self) -> Ledger:
        """The cost ledger (attempt records, budgets, reports), opened on first use."""
        return self.runtime.require_ledger()

    async def virtual_keys(self) -> VirtualKeyStore | None:
        """The gateway's virtual keys, kept hashed in the ledger database (None when the ledger is off)."""
        if self._ledger is None:
            return None
        from model_orchestrator.ledger.keys import VirtualKeyStore

        return VirtualKeyStore((await self._ledger.store()).engine, clock=self._clock)

    def estimate_cost(self, name: str, request: ChatRequest) -> float | None:
        """An upper bound (USD) of what ``request`` costs on the model or strategy ``name``; None: unknown."""
        return self._names.profile(name).estimate_cost(request)

    async def costs_report(
        self,
        *,
        period: str = "daily",
        by: str = "model",
        category: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
    ) -> CostReport:
        """Spend per day/week/month by model, provider, deployment, strategy, category or key id."""
        from model_orchestrator.ledger.query import cost_query

        return await self.ledger.report(cost_query(period, by, category, since, until))

    async def costs_stats(
        self,
        *,
        period: str | None = None,
        category: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
    ) -> CostStats:
        """Totals, latency, top models, budgets and quotas; ``period`` = this day/week/month only."""
        from model_orchestrator.ledger.query import cost_query

        query = cost_query(period, "model", category, since, until)
        return await self.ledger.stats(query.window_of(query.period, self._clock.wall()) if period else query)

    async def costs_export(
        self,
        path: str | os.PathLike[str] | None,
        *,
        fmt: str = "csv",
        category: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
    ) -> int:
        """Write every attempt (``fmt``: csv or json) to ``path`` (None: stdout); returns the row count."""
        from model_orchestrator.ledger.query import cost_query

        query = cost_query(None, "model", category, since, until)
        return await self.ledger.export(query, None if path is None else Path(path), fmt)

    def metrics_sink(self) -> MetricsSink:
        """Prometheus series of this orchestrator's requests, counted from the first call of this (or of
        ``metrics_text``) on; needs the ``metrics`` extra."""
        return self.telemetry.metrics(self._registry.names())

    def metrics_text(self) -> str:
        """``metrics_sink()`` in the Prometheus text exposition format."""
        return self.metrics_sink().render().decode()

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def run_orchestration(
    prompt: str,
    strategy: str = "single",
    model: str | None = None,
    config: str | os.PathLike[str] | None = None,
    **options: Unpack[RunOptions],
) -> OrchestrationResult:
    """Answer ``prompt`` synchronously: ``run_orchestration(prompt="...", model="fast").response``."""
    return Orchestrator.from_config(config).complete_sync(prompt, model=model, strategy=strategy, **options)
