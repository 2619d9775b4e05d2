"""``CheapestModel``: answer with the member whose estimated cost is lowest (seed 004's ``cheapest``).

Price only: it looks at price and context fit, not at whether the cheap model can do the task. It is what
``cheapest`` does with ``router: none`` (or when no learned router can be loaded); with a router,
``strategies.route.RouteModel`` picks the cheapest member of the tier the prompt needs. If the chosen
member fails, the next cheapest is tried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import AllModelsFailedError, ConfigError, OrchestratorError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.money import usd_or_unknown
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.strategies.capabilities import capable, missing_reason, require_capable
from model_orchestrator.strategies.chain import with_fallback
from model_orchestrator.strategies.member import (
    Member,
    one_delta,
    step_failed,
    step_ok,
    step_skipped,
    strategy_completion,
)

PRICE_ONLY_NOTE = "lowest estimated cost among members that fit; no router judged the task"


def by_estimated_cost(members: Sequence[Member], request: ChatRequest) -> list[Member]:
    """Members that fit the request and have what it needs, cheapest first; unknown prices go last, in the
    given order."""
    fitting = [m for m in capable(members, request) if m.profile.fits(request)]

    def key(member: Member) -> tuple[int, float]:
        cost = member.profile.estimate_cost(request)
        return (1, 0.0) if cost is None else (0, cost)

    return sorted(fitting, key=key)


class CheapestModel:
    """Calls the cheapest fitting member; moves to the next cheapest only if it fails."""

    def __init__(
        self, members: Sequence[Member], *, name: str = "cheapest", clock: Clock, bus: EventBus
    ) -> None:
        if not members:
            raise ConfigError("the cheapest strategy needs at least one member")
        self._members = list(members)
        self._name = name
        self._clock = clock
        self._bus = bus

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        require_capable(self._members, request, self._name)
        ordered = by_estimated_cost(self._members, request)
        steps: list[StepRecord] = [
            step_skipped(m, missing_reason(m.profile, request) or "context window too small")
            for m in self._members
            if m not in ordered
        ]
        errors: list[OrchestratorError] = []
        for position, member in enumerate(ordered):
            try:
                # Every member but the last has somewhere else to go (its deployments move on at once).
                completion = await member.model.complete(with_fallback(request, position + 1 < len(ordered)))
            except OrchestratorError as exc:
                errors.append(exc)
                steps.append(step_failed(member, exc))
                continue
            steps.append(step_ok(member, completion, reason=_estimate_text(member, request)))
            explanation = Explanation("cheapest", tuple(steps), chosen=member.name, reason=PRICE_ONLY_NOTE)
            return strategy_completion(completion, member, [completion], explanation)
        raise AllModelsFailedError(
            f"{self._name}: no member answered ({len(steps)} tried or skipped)", errors
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        async for delta in one_delta(await self.complete(request)):
            yield delta

    async def aclose(self) -> None:
        return None


def _estimate_text(member: Member, request: ChatRequest) -> str:
    cost = member.profile.estimate_cost(request)
    return f"estimated cost {usd_or_unknown(cost)}"
