"""Budget counters in SQL: atomic reserve, settle and release (reserve-then-settle).

A counter row per (budget name, period) holds what was spent; each live reservation is its own row, so
"reserved" is always the sum of live reservation rows and can never drift. ``reserve`` runs in one
transaction that serialises on the counters it touches: ``BEGIN IMMEDIATE`` on SQLite (one writer at a
time); on PostgreSQL a row lock on each counter (a no-op ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``,
which locks like ``SELECT ... FOR UPDATE`` and creates a missing row in the same statement), taken in a
fixed order so concurrent reservations never deadlock. Inside it: spent + live reservations + this amount
must fit every hard limit, else nothing is held. A reservation left behind by a killed process stops
counting after the TTL (and is swept by the next settlement). Limits whose amount is zero are
not touched (a free call needs no room, and costs no round trip).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from model_orchestrator.core.budget import BudgetLimit, BudgetStatus, Period, Reservation
from model_orchestrator.core.errors import BudgetExceededError, QuotaExceededError
from model_orchestrator.core.money import usd
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import budget_counters, budget_reservations

# Float sums of many small costs are not exact; a hair over the limit is still "fits".
_EPSILON = 1e-12

Key = tuple[str, str]


def period_key(period: Period, timestamp: float) -> str:
    """``YYYY-MM-DD`` (day) or ``YYYY-MM`` (month), in UTC."""
    return time.strftime("%Y-%m-%d" if period == "day" else "%Y-%m", time.gmtime(timestamp))


class BudgetBook:
    """The SQL side of ``BudgetKeeper`` (``Ledger`` adds cancellation safety and warnings on top)."""

    def __init__(self, store: LedgerStore, *, ttl: float) -> None:
        self._store = store
        self._ttl = ttl

    async def reserve(
        self, reservation_id: str, claims: Sequence[tuple[BudgetLimit, float]], *, now: float
    ) -> tuple[tuple[str, ...], tuple[BudgetStatus, ...]]:
        """Hold each claim's amount on its limit, or raise and hold nothing; (period keys, statuses)."""
        keys = [(limit.name, period_key(limit.period, now)) for limit, _ in claims]
        insert = self._store.insert

        def work(conn: sa.Connection) -> tuple[BudgetStatus, ...]:
            spent = _lock_counters(conn, insert, claims, keys)
            reserved = _reserved(conn, keys, live_at=now)
            statuses = []
            for (limit, amount), key in zip(claims, keys, strict=True):
                status = BudgetStatus(limit, key[1], spent[key], reserved.get(key, 0.0) + amount)
                if limit.hard and status.spent + status.reserved > limit.limit + _EPSILON:
                    raise exceeded_error(status, amount)
                statuses.append(status)
            rows = [
                {"reservation_id": reservation_id, "name": name, "period_key": period, "amount": amount}
                for (_, amount), (name, period) in zip(claims, keys, strict=True)
            ]
            conn.execute(budget_reservations.insert().values(expires_at=now + self._ttl), rows)
            return tuple(statuses)

        statuses = await self._store.run(work)
        return tuple(k[1] for k in keys), statuses

    async def settle(self, reservation: Reservation, *, usd: float, calls: int, now: float) -> None:
        """Drop the reservation and add the actual amounts to its counters, in one transaction."""
        pairs = sorted(zip(reservation.limits, reservation.period_keys, strict=True), key=_order)
        charges = [(limit.name, key, usd if limit.unit == "usd" else float(calls)) for limit, key in pairs]

        def work(conn: sa.Connection) -> None:
            _delete(conn, reservation.id, now)
            for name, key, amount in charges:
                if amount:
                    conn.execute(_CHARGE, {"n": name, "k": key, "amount": amount})

        await self._store.run(work)

    async def release(self, reservation_id: str, *, now: float) -> None:
        """Drop the reservation without charging anything."""
        await self._store.run(lambda conn: _delete(conn, reservation_id, now))

    async def usage(self, limits: Sequence[BudgetLimit], *, now: float) -> list[BudgetStatus]:
        """Where each limit stands in the current period (live reservations included)."""
        keys = [(limit.name, period_key(limit.period, now)) for limit in limits]

        def read(conn: sa.Connection) -> tuple[dict[Key, float], dict[Key, float]]:
            found = conn.execute(
                sa.select(
                    budget_counters.c.name, budget_counters.c.period_key, budget_counters.c.spent
                ).where(_key_in(budget_counters, keys))
            )
            spent = {(row.name, row.period_key): float(row.spent) for row in found}
            return spent, _reserved(conn, keys, live_at=now)

        async with self._store.engine.connect() as conn:
            spent, reserved = await conn.run_sync(read)
        return [
            BudgetStatus(limit, key[1], spent.get(key, 0.0), reserved.get(key, 0.0))
            for limit, key in zip(limits, keys, strict=True)
        ]

    async def reserved_total(self, *, now: float | None = None) -> float:
        """The sum of every live reservation (0 when nothing is in flight)."""
        query = sa.select(sa.func.coalesce(sa.func.sum(budget_reservations.c.amount), 0.0))
        if now is not None:
            query = query.where(budget_reservations.c.expires_at >= now)
        async with self._store.engine.connect() as conn:
            return float((await conn.execute(query)).scalar() or 0.0)


_CHARGE = (
    budget_counters.update()
    .where(budget_counters.c.name == sa.bindparam("n"), budget_counters.c.period_key == sa.bindparam("k"))
    .values(spent=budget_counters.c.spent + sa.bindparam("amount", type_=sa.Double))
)


def _lock_counters(
    conn: sa.Connection,
    insert: Callable[[sa.Table], Any],
    claims: Sequence[tuple[BudgetLimit, float]],
    keys: list[Key],
) -> dict[Key, float]:
    """Each counter's spend, creating missing rows; on PostgreSQL the no-op upsert (the equivalent of
    SELECT ... FOR UPDATE) locks the row until commit, in sorted key order so reservations never deadlock."""
    units = {key: limit.unit for (limit, _), key in zip(claims, keys, strict=True)}
    spent = {}
    for key in sorted(units):
        upsert = (
            insert(budget_counters)
            .values(name=key[0], period_key=key[1], unit=units[key], spent=0.0)
            .on_conflict_do_update(
                index_elements=["name", "period_key"], set_={"spent": budget_counters.c.spent}
            )
            .returning(budget_counters.c.spent)
        )
        spent[key] = float(conn.execute(upsert).scalar_one())
    return spent


def _delete(conn: sa.Connection, reservation_id: str, now: float) -> None:
    # Expired reservations (their process died) are swept here too: they no longer count anyway.
    table = budget_reservations
    conn.execute(
        table.delete().where(sa.or_(table.c.reservation_id == reservation_id, table.c.expires_at < now))
    )


def _order(pair: tuple[BudgetLimit, str]) -> Key:
    return pair[0].name, pair[1]


def _key_in(table: sa.Table, keys: Sequence[Key]) -> sa.ColumnElement[bool]:
    return sa.tuple_(table.c.name, table.c.period_key).in_(list(keys))


def _reserved(conn: sa.Connection, keys: Sequence[Key], *, live_at: float) -> dict[Key, float]:
    table = budget_reservations
    query = (
        sa.select(table.c.name, table.c.period_key, sa.func.sum(table.c.amount).label("held"))
        .where(_key_in(table, keys), table.c.expires_at >= live_at)
        .group_by(table.c.name, table.c.period_key)
    )
    return {(row.name, row.period_key): float(row.held) for row in conn.execute(query)}


def exceeded_error(status: BudgetStatus, amount: float) -> BudgetExceededError:
    """The refusal of ``amount`` on a hard limit (shared by every keeper, so the wording is one)."""
    limit = status.limit
    held = status.reserved - amount
    if limit.unit == "calls":
        return QuotaExceededError(
            f"{limit.describe()} of {limit.limit:g} calls is used up for {status.period_key} "
            f"({status.spent:g} made, {held:g} in flight); nothing was sent. Raise the quota, "
            "use another provider, or set quotas.hard_stop: false to only warn."
        )
    return BudgetExceededError(
        f"{limit.describe()} of {usd(limit.limit)} would be exceeded for {status.period_key} (UTC): "
        f"spent {usd(status.spent)}, in flight {usd(held)}, this call needs about {usd(amount)}; "
        "nothing was sent. Raise the budget, use a cheaper model, or wait for the next period."
    )
