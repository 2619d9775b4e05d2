"""Cost reports and statistics: aggregate SQL over attempts (joined to their requests), portable to
SQLite and PostgreSQL.

Grouping is by UTC day in SQL (the ``day`` column), folded into ISO weeks or months here, so no
dialect-specific date functions are needed and the rows fetched stay few. Spend is the sum of priced
attempts; attempts with an unknown price are counted apart (never as 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from model_orchestrator.core.budget import BudgetStatus
from model_orchestrator.ledger.migrations import schema_version
from model_orchestrator.ledger.query import (
    CostQuery,
    CostReport,
    CostStats,
    LimitUse,
    ReportRow,
    RequestOutcomes,
    Totals,
    period_label,
)
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import attempts, requests

NONE_LABEL = "(none)"
_TOP_MODELS = 5
# A request whose caller gave up: a cancelled task, or a stream abandoned before its end (GeneratorExit).
_GAVE_UP = ("Cancelled", "GeneratorExit")
_JOINED = attempts.outerjoin(requests, attempts.c.request_id == requests.c.request_id)
_DIMENSIONS: dict[str, sa.ColumnElement[Any]] = {
    "model": attempts.c.model,
    "provider": attempts.c.provider,
    "deployment": attempts.c.deployment,
    "strategy": requests.c.strategy,
    "category": requests.c.category,
    "key": requests.c.api_key_id,
}


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _sum(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(column), 0)


_AGGREGATES: tuple[sa.ColumnElement[Any], ...] = (
    sa.func.count().label("attempts"),
    _count_if(attempts.c.status == "failed").label("failed"),
    _count_if(attempts.c.status == "cancelled").label("cancelled"),
    sa.func.count(sa.distinct(attempts.c.request_id)).label("requests"),
    _sum(attempts.c.input_tokens).label("input_tokens"),
    _sum(attempts.c.output_tokens).label("output_tokens"),
    _sum(attempts.c.cached_input_tokens).label("cached_input_tokens"),
    _sum(attempts.c.reasoning_tokens).label("reasoning_tokens"),
    _sum(attempts.c.cache_write_tokens).label("cache_write_tokens"),
    _count_if(attempts.c.usage_estimated == sa.true()).label("estimated"),
    _count_if(attempts.c.cost.is_(None)).label("unpriced"),
    _sum(attempts.c.cost).label("cost"),
)


def filters(query: CostQuery) -> list[sa.ColumnElement[bool]]:
    """WHERE conditions on the attempts-requests join for ``query``'s window and category."""
    found: list[sa.ColumnElement[bool]] = []
    if query.category is not None:
        found.append(requests.c.category == query.category)
    if query.since is not None:
        found.append(attempts.c.finished_at >= query.since)
    if query.until is not None:
        found.append(attempts.c.finished_at < query.until)
    return found


def _totals(row: Any) -> Totals:
    return Totals(
        attempts=int(row.attempts),
        failed=int(row.failed),
        cancelled=int(row.cancelled),
        requests=int(row.requests),
        input_tokens=int(row.input_tokens),
        output_tokens=int(row.output_tokens),
        cached_input_tokens=int(row.cached_input_tokens),
        reasoning_tokens=int(row.reasoning_tokens),
        cache_write_tokens=int(row.cache_write_tokens),
        estimated=int(row.estimated),
        unpriced=int(row.unpriced),
        cost=float(row.cost),
    )


async def cost_report(store: LedgerStore, query: CostQuery) -> CostReport:
    """Spend per period and per ``query.by`` group (periods in order, then highest cost first)."""
    group = _DIMENSIONS[query.by]
    statement = (
        sa.select(attempts.c.day, group.label("grp"), *_AGGREGATES)
        .select_from(_JOINED)
        .where(*filters(query))
        .group_by(attempts.c.day, group)
    )
    folded: dict[tuple[str, str], Totals] = {}
    async with store.engine.connect() as conn:
        for row in await conn.execute(statement):
            key = (period_label(row.day, query.period), NONE_LABEL if row.grp is None else str(row.grp))
            folded[key] = folded.get(key, Totals()) + _totals(row)
    rows = tuple(
        ReportRow(period, grp, totals)
        for (period, grp), totals in sorted(folded.items(), key=lambda kv: (kv[0][0], -kv[1].cost, kv[0][1]))
    )
    return CostReport(query, rows, await _overall(store, query))


async def _overall(store: LedgerStore, query: CostQuery) -> Totals:
    statement = sa.select(*_AGGREGATES).select_from(_JOINED).where(*filters(query))
    async with store.engine.connect() as conn:
        return _totals((await conn.execute(statement)).one())


async def cost_stats(
    store: LedgerStore, query: CostQuery, limits: Sequence[BudgetStatus], ledger: dict[str, object]
) -> CostStats:
    """Totals, request outcomes, latency (average and p95 of answered attempts), top models by spend,
    budget and quota use, and the ledger's own state."""
    totals = await _overall(store, query)
    outcomes = await _request_outcomes(store, query)
    average, p95 = await _latency(store, query)
    async with store.engine.connect() as conn:
        version = await schema_version(conn)
        spend = sa.func.coalesce(sa.func.sum(attempts.c.cost), 0)
        top = await conn.execute(
            sa.select(attempts.c.model, spend.label("cost"))
            .select_from(_JOINED)
            .where(*filters(query))
            .group_by(attempts.c.model)
            .order_by(spend.desc(), attempts.c.model)
            .limit(_TOP_MODELS)
        )
        top_models = tuple((str(r.model), float(r.cost)) for r in top)
    uses = tuple(
        LimitUse(
            s.limit.name,
            s.limit.unit,
            s.limit.period,
            s.period_key,
            s.spent,
            s.reserved,
            s.limit.limit,
            s.limit.hard,
        )
        for s in limits
    )
    return CostStats(
        query, totals, outcomes, average, p95, top_models, uses, {**ledger, "schema_version": version}
    )


async def _request_outcomes(store: LedgerStore, query: CostQuery) -> RequestOutcomes:
    """Every request row started in the window, by how it ended (the counts add up to the rows)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if query.category is not None:
        conditions.append(requests.c.category == query.category)
    if query.since is not None:
        conditions.append(requests.c.started_at >= query.since)
    if query.until is not None:
        conditions.append(requests.c.started_at < query.until)
    cancelled = sa.and_(
        requests.c.ok == sa.false(), sa.func.coalesce(requests.c.error_type, "").in_(_GAVE_UP)
    )
    statement = sa.select(
        _count_if(requests.c.ok == sa.true()),
        _count_if(sa.and_(requests.c.ok == sa.false(), sa.not_(cancelled))),
        _count_if(cancelled),
        _count_if(requests.c.ok.is_(None)),
    ).where(*conditions)
    async with store.engine.connect() as conn:
        ok, failed, gave_up, unfinished = (await conn.execute(statement)).one()
    return RequestOutcomes(int(ok), int(failed), int(gave_up), int(unfinished))


async def _latency(store: LedgerStore, query: CostQuery) -> tuple[float | None, float | None]:
    answered = [*filters(query), attempts.c.status == "ok"]
    async with store.engine.connect() as conn:
        count, average = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.avg(attempts.c.latency))
                .select_from(_JOINED)
                .where(*answered)
            )
        ).one()
        if not count:
            return None, None
        rank = max(0, math.ceil(0.95 * int(count)) - 1)
        p95 = (
            await conn.execute(
                sa.select(attempts.c.latency)
                .select_from(_JOINED)
                .where(*answered)
                .order_by(attempts.c.latency)
                .offset(rank)
                .limit(1)
            )
        ).scalar()
    return float(average), None if p95 is None else float(p95)
