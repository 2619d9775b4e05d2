"""Per-virtual-key USD budgets: reserve a request's estimated cost before it runs, settle with what it cost.

Owns the request-level reservation on the ledger's budget counters (``BudgetKeeper``), one counter per key
and period, named ``vkey:<id>`` (apart from config's ``key:<id>`` budgets, which the per-deployment guards
charge, so nothing is counted twice). The estimate is the façade's upper bound for the requested model or
strategy; the settlement is the request's real cost, every attempt included (failed ones too). A key over
its budget gets 429 ``insufficient_quota`` (the Chat Completions convention) with ``x-should-retry: false``.
A request whose estimate is unknown (a model without a price, an inline strategy) still needs room left;
a request whose real cost is unknown is not counted and is logged (give every model a price). The real cost
comes from the request's ``RequestFinished`` event (``FinishedRequests``): a request that failed has no
result to read it from, and its failed attempts still count. Requests on keys without a budget are not
watched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from model_orchestrator.core.budget import BudgetKeeper, BudgetLimit, Period, Reservation
from model_orchestrator.core.errors import BudgetExceededError
from model_orchestrator.core.events import Event, RequestFinished
from model_orchestrator.core.money import usd
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.gateway.errors import GatewayError

if TYPE_CHECKING:
    from model_orchestrator.gateway.auth import Principal

Estimator = Callable[[str, ChatRequest], float | None]
_NO_RETRY = {"x-should-retry": "false"}
_MIN_HOLD = 1e-9  # a free request still needs room: an exhausted budget refuses it
_log = logging.getLogger(__name__)


class FinishedRequests:
    """An event sink keeping the ``RequestFinished`` of the requests it watches (budgeted ones), whose cost
    of every attempt is known once they end, failed or not."""

    def __init__(self) -> None:
        self._watched: dict[str, RequestFinished | None] = {}

    def watch(self, request_id: str) -> None:
        """Keep ``request_id``'s ``RequestFinished`` when it comes."""
        self._watched[request_id] = None

    def pop(self, request_id: str) -> RequestFinished | None:
        """Stop watching ``request_id``; its ``RequestFinished`` if it came."""
        return self._watched.pop(request_id, None)

    def handle(self, event: Event) -> None:
        if isinstance(event, RequestFinished) and event.request_id in self._watched:
            self._watched[event.request_id] = event


class KeyBudgets:
    """Reservations for keys that have a budget (keys without one pass through untouched)."""

    def __init__(self, keeper: BudgetKeeper, estimate: Estimator) -> None:
        self._keeper = keeper
        self._estimate = estimate

    async def reserve(self, principal: Principal, model: str, request: ChatRequest) -> Reservation | None:
        """Hold the request's estimated cost on the key's budget (429 when it has no room left)."""
        if principal.budget_usd is None or principal.key_id is None:
            return None
        period: Period = "day" if principal.budget_period == "day" else "month"
        limit = BudgetLimit(f"vkey:{principal.key_id}", "usd", period, principal.budget_usd, True, None)
        # Unknown estimate (a strategy spelled inline, a model without a price): still refuse an exhausted
        # budget; the settlement charges what the request really cost.
        estimate = self._estimate(model, request)
        try:
            return await self._keeper.reserve([limit], usd=max(estimate or 0.0, _MIN_HOLD), calls=0)
        except BudgetExceededError as exc:
            which = "daily" if period == "day" else "monthly"
            raise GatewayError(
                429,
                f"API key {principal.key_id} has no room left in its {which} budget of "
                f"{usd(principal.budget_usd)}. {exc.message}",
                "insufficient_quota",
                "insufficient_quota",
                headers=dict(_NO_RETRY),
            ) from None

    async def settle(self, reservation: Reservation | None, cost: float | None) -> None:
        """Charge the request's real cost, every attempt included (0 releases the hold)."""
        if reservation is None:
            return
        if cost is None:
            _log.warning("a request on a budgeted key had no known price; its cost is not counted")
        await self._keeper.settle(reservation, usd=cost or 0.0, calls=0)
