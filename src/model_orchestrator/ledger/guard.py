"""``BudgetGuardModel``: reserve before a deployment is called, settle with what it really cost after.

The composition root puts it outermost around each deployment, outside the retries
(``BudgetGuardModel(RetryingModel(...))``), so one reservation covers a call and its retries and the
settlement charges all of them. Before any upstream call it reserves the estimated cost
(``ModelProfile.estimate_cost``: prompt estimate + reserved output at the model's price) on every
budget that applies (global day/month, the request's category, its API key id) and one call on the
provider's daily quota; a hard limit without room raises ``BudgetExceededError`` (``QuotaExceededError``)
and nothing is sent. Whatever happens next (answer, error, cancellation, timeout), a ``finally``
settles the reservation with the attempts' actual cost (the tally of the call's own
``RequestScope.child``, so concurrent calls of one request never mix) or releases it.
Under a USD budget a model whose price is unknown is refused: nothing could keep the budget honest.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from model_orchestrator.core.budget import BudgetKeeper, Reservation
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import BudgetExceededError
from model_orchestrator.core.events import BudgetWarning, EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.money import usd
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, current_scope, request_scope
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import close_stream
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.ledger.limits import BudgetRules

_log = logging.getLogger(__name__)


class BudgetGuardModel(WrapperModel):
    """Wraps one deployment's resilience stack with budget and quota reservations."""

    def __init__(
        self,
        inner: ChatModel,
        *,
        keeper: BudgetKeeper,
        rules: BudgetRules,
        profile: ModelProfile,
        provider: str,
        deployment: str,
        bus: EventBus,
        clock: Clock,
    ) -> None:
        super().__init__(inner)
        self._keeper = keeper
        self._rules = rules
        self._profile = profile
        self._provider = provider
        self._deployment = deployment
        self._bus = bus
        self._clock = clock

    async def complete(self, request: ChatRequest) -> Completion:
        reservation = await self._reserve(request)
        call = _call_scope(request)
        try:
            with request_scope(call):
                return await self.inner.complete(request)
        finally:
            await self._finish(reservation, call)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        reservation = await self._reserve(request)
        call = _call_scope(request)
        deltas = self.inner.stream(request)
        try:
            while True:
                # The call's scope is current only while the inner stream runs, never across our own yield.
                with request_scope(call):
                    try:
                        delta = await anext(deltas)
                    except StopAsyncIteration:
                        break
                yield delta
        finally:
            with request_scope(call):
                await close_stream(deltas)
            await self._finish(reservation, call)

    async def _reserve(self, request: ChatRequest) -> Reservation | None:
        limits = self._rules.limits_for(request, self._provider)
        if not limits:
            return None
        estimate = self._profile.estimate_cost(request)
        if estimate is None and any(limit.unit == "usd" for limit in limits):
            names = ", ".join(limit.describe() for limit in limits if limit.unit == "usd")
            raise BudgetExceededError(
                f"the price of {self._profile.name!r} is unknown, so it cannot be kept within the "
                f"{names}; nothing was sent. Give the model a price: in config.",
                deployment=self._deployment,
            )
        reservation = await self._keeper.reserve(limits, usd=estimate or 0.0, calls=1)
        for status in reservation.warnings:
            used, limit = status.spent + status.reserved, status.limit.limit
            amounts = (usd(used), usd(limit)) if status.limit.unit == "usd" else (f"{used:g}", f"{limit:g}")
            _log.warning(
                "%s at %.0f%% for %s: %s of %s used or in flight",
                status.limit.describe(),
                status.fraction * 100,
                status.period_key,
                *amounts,
            )
            self._bus.emit(
                BudgetWarning(
                    request_id=request.request_id or "",
                    timestamp=self._clock.wall(),
                    budget=status.limit.name,
                    unit=status.limit.unit,
                    period_key=status.period_key,
                    used=used,
                    limit=status.limit.limit,
                    fraction=status.fraction,
                )
            )
        return reservation

    async def _finish(self, reservation: Reservation | None, call: RequestScope) -> None:
        if reservation is None:
            return
        calls = len(call.attempt_costs)
        if calls:
            await self._keeper.settle(reservation, usd=call.spent, calls=calls)
        else:
            await self._keeper.release(reservation)


def _call_scope(request: ChatRequest) -> RequestScope:
    """The tally of one guarded call: a child of the request's scope (or a scope of its own outside one)."""
    scope = current_scope()
    return RequestScope(request.request_id or "") if scope is None else scope.child()
