"""``RouteModel``: a routing policy picks the member for each request; the others are the fallback.

Owns asking the injected ``RoutingPolicy`` (from ``routing/``, wired by the composition root: this module
never imports it) for the order in which to try the members, emitting ``RoutingDecided``, and attaching
the decision to the explanation (router, score, threshold, tier, members left out and why). Calling the
members in that order, with budget, context and unavailability handling, is ``FallbackModel``'s job.
With ``tiers_by_position`` the members are tiers in the order given (weak first, as in a ``route``
strategy); otherwise their profiles' tiers count (``cheapest``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import AllModelsFailedError, ConfigError
from model_orchestrator.core.events import EventBus, RoutingDecided
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.routing import RouteChoice, RoutingPolicy
from model_orchestrator.core.stream_start import closing
from model_orchestrator.strategies.budget import require_affordable
from model_orchestrator.strategies.capabilities import require_capable
from model_orchestrator.strategies.fallback import FallbackModel
from model_orchestrator.strategies.member import Member, step_skipped


class RouteModel:
    """Routes each request to the member ``policy`` chooses; falls back along the policy's order."""

    def __init__(
        self,
        members: Sequence[Member],
        *,
        policy: RoutingPolicy,
        name: str = "route",
        label: str = "route",
        tiers_by_position: bool = True,
        clock: Clock,
        bus: EventBus,
    ) -> None:
        if not members:
            raise ConfigError(f"{label} {name!r} needs at least one member")
        self._members = tuple(members)
        self._policy = policy
        self._name = name
        self._label = label
        self._by_position = tiers_by_position
        self._clock = clock
        self._bus = bus

    def __repr__(self) -> str:
        return f"RouteModel(name={self._name!r}, members={[m.name for m in self._members]})"

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        ordered, choice = self._route(request)
        completion = await self._inner(ordered).complete(request)
        return replace(completion, explanation=self._explain(completion.explanation, choice))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        ordered, choice = self._route(request)
        async with closing(self._inner(ordered).stream(request)) as deltas:
            async for delta in deltas:
                if delta.explanation is not None:
                    delta = replace(delta, explanation=self._explain(delta.explanation, choice))
                yield delta

    async def aclose(self) -> None:
        await asyncio.gather(*(m.model.aclose() for m in self._members))

    def _route(self, request: ChatRequest) -> tuple[list[Member], RouteChoice]:
        require_capable(self._members, request, self._name)
        profiles = [
            replace(m.profile, tier=position) if self._by_position else m.profile
            for position, m in enumerate(self._members)
        ]
        choice = self._policy.choose(request, profiles)
        self._bus.emit(
            RoutingDecided(
                request_id=request.request_id or "",
                timestamp=self._clock.wall(),
                strategy=self._name,
                router=choice.router,
                chosen=choice.order[0] if choice.order else None,
                tier=choice.tier,
                reason=choice.reason,
                strong_score=choice.strong_score,
                threshold=choice.threshold,
                candidates=choice.order,
            )
        )
        by_name = {m.name: m for m in self._members}
        ordered = [by_name[name] for name in choice.order if name in by_name]
        if not ordered:
            require_affordable(self._members, request)
            reasons = "; ".join(f"{name}: {why}" for name, why in choice.skipped)
            raise AllModelsFailedError(f"{self._name}: no member can take this request ({reasons})", [])
        return ordered, choice

    def _inner(self, ordered: Sequence[Member]) -> FallbackModel:
        return FallbackModel(ordered, name=self._name, clock=self._clock, bus=self._bus)

    def _explain(self, inner: Explanation | None, choice: RouteChoice) -> Explanation:
        skipped = tuple(
            step_skipped(m, why) for name, why in choice.skipped for m in self._members if m.name == name
        )
        steps: tuple[StepRecord, ...] = skipped + (inner.steps if inner is not None else ())
        routing: dict[str, object] = {
            "router": choice.router,
            "tier": choice.tier,
            "strong_score": choice.strong_score,
            "threshold": choice.threshold,
            "order": list(choice.order),
            **dict(choice.facts),
        }
        return Explanation(
            strategy=self._label,
            steps=steps,
            chosen=inner.chosen if inner is not None else None,
            reason=choice.reason if inner is None or not inner.reason else f"{choice.reason}; {inner.reason}",
            facts=(("routing", routing),),
        )
