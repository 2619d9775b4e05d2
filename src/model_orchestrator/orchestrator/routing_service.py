"""``RoutingService``: routing decisions without calling a model, the routers, and outcome feedback
(``orch.routing``).

An admin service beside the answering API. Deciding is ``config.routers.RouterFactory``'s and
``routing``'s; recording feedback is the ledger's. This gathers what they need (the usable models, which
are unavailable now, each model's tier) and publishes ``RoutingDecided``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.events import EventBus, RoutingDecided
from model_orchestrator.orchestrator.health_service import HealthService

if TYPE_CHECKING:
    from model_orchestrator.config.registry import ModelInfo, ModelRegistry
    from model_orchestrator.config.strategy_registry import NameResolver
    from model_orchestrator.core.routing import Router
    from model_orchestrator.ledger.feedback import FeedbackReceipt
    from model_orchestrator.ledger.ledger import Ledger
    from model_orchestrator.routing.decision import RoutingDecision


class RoutingService:
    """Routes over ``registry``'s models with ``names``' routers; feedback goes to ``ledger()``."""

    def __init__(
        self,
        names: NameResolver,
        registry: ModelRegistry,
        health: HealthService,
        ledger: Callable[[], Ledger],
        *,
        clock: Clock,
        events: EventBus,
    ) -> None:
        self._names = names
        self._registry = registry
        self._health = health
        self._ledger = ledger
        self._clock = clock
        self._events = events

    async def route(
        self, task: str, context: Mapping[str, object] | None = None, router: str | None = None
    ) -> RoutingDecision:
        """Seed 003's routing decision for ``task``, without calling any model.

        ``context``: the hints ``files_count``, ``requires_tests``, ``external_apis``, ``subsystems`` (and
        ``capabilities`` such as vision or tools). ``router``: ``learned`` (the config's default),
        ``complexity`` or ``length``. The decision names the cheapest qualifying model, the 0-10
        complexity score with each factor's contribution, the reason, a confidence, the estimated cost
        and every model left out (capability, context window, tier, an open circuit or cooldown) and why.
        Candidates are the usable models of the config (every usable model when none is configured).
        """
        unavailable = await self._health.unavailable_models()
        decision = self._names.routers.decide(task, context, self._registry.infos(), unavailable, router)
        self._events.emit(
            RoutingDecided(
                request_id="",
                timestamp=self._clock.wall(),
                strategy="route",
                router=decision.router,
                chosen=decision.model,
                tier=decision.tier,
                reason=decision.reason,
                strong_score=decision.strong_score,
                threshold=decision.threshold,
                candidates=decision.candidates,
            )
        )
        return decision

    def router(self, name: str | None = None) -> Router:
        """The router called ``name`` (``learned``, ``complexity``, ``length``; default: the config's)."""
        return self._names.routers.router(name)

    async def feedback(
        self, request_id: str, score: float, *, api_key_id: str | None = None
    ) -> FeedbackReceipt:
        """Record how good the answer to ``request_id`` was: ``score`` from 0 (wrong or useless) to 1
        (right), kept in the ledger as an outcome label for ``orchestrator train-router --from-ledger``.

        ``api_key_id``: the virtual key asking; a key may label only its own requests (None: any request).
        Raises ``UnknownRequestError`` for an id the ledger does not know and ``InvalidFeedbackError`` for
        a score off the scale or a request that failed.
        """
        return await self._ledger().feedback(
            request_id, score, caller_key_id=api_key_id, tier_of=self.tier_of
        )

    def tier_of(self, name: str) -> int | None:
        """The configured tier of the model called ``name`` (None when unknown or no longer configured)."""
        return next((i.tier for i in self._models() if i.name == name), None)

    def _models(self) -> list[ModelInfo]:
        return self._registry.infos() + self._names.infos()
