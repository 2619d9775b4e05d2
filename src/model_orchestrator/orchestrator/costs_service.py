"""``CostsService``: what the cost ledger reports (spend by period and group, totals, export).

An admin service beside the answering API (``orch.costs``): it reads the ledger and answers nothing.
Queries are built by ``ledger.query.cost_query``; this module only turns the callers' words (period,
group, dates) into them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from model_orchestrator.core.clock import Clock

if TYPE_CHECKING:
    from model_orchestrator.ledger.ledger import Ledger
    from model_orchestrator.ledger.query import CostReport, CostStats


class CostsService:
    """Reports over the ledger ``ledger()`` returns (it raises ``ConfigError`` when the ledger is off)."""

    def __init__(self, ledger: Callable[[], Ledger], clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock

    @property
    def ledger(self) -> Ledger:
        """The cost ledger; a ``ConfigError`` when it is disabled."""
        return self._ledger()

    async def report(
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

    async def stats(
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

    async def export(
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
