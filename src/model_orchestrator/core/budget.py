"""Budgets across requests: the ``BudgetKeeper`` reservation interface and its values.

A guard in front of each deployment reserves a call's estimated cost (and one call against a provider's
daily quota) on every budget that applies, before anything is sent; afterwards it settles the reservation
with what was actually spent, or releases it. The keeper (the ledger implements it) makes reserve atomic
across concurrent requests and processes. What a guarded call actually spent is the tally of its own
``RequestScope.child`` (so concurrent calls on one deployment never mix). Per-request caps (``max_cost``)
are not this module's job: ``request_scope`` owns those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Unit = Literal["usd", "calls"]
Period = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """One limit: ``limit`` USD (or calls) per UTC day or month for the budget called ``name``.

    ``name`` says what is limited (``global``, ``category:NAME``, ``key:ID``, ``provider:NAME``). A soft
    limit (``hard=False``) only warns; ``warn_at`` is the fraction of the limit that triggers a warning.
    """

    name: str
    unit: Unit
    period: Period
    limit: float
    hard: bool = True
    warn_at: float | None = 0.8

    def describe(self) -> str:
        """A human label such as ``daily budget 'global'`` or ``daily call quota 'provider:x'``."""
        when = "daily" if self.period == "day" else "monthly"
        what = "budget" if self.unit == "usd" else "call quota"
        return f"{when} {what} {self.name!r}"


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one limit stands after a reservation (for warnings): used = spent + reserved."""

    limit: BudgetLimit
    period_key: str
    spent: float
    reserved: float

    @property
    def fraction(self) -> float:
        """Spent plus reserved, as a fraction of the limit (1.0 = exhausted)."""
        return (self.spent + self.reserved) / self.limit.limit if self.limit.limit > 0 else 1.0


@dataclass(frozen=True, slots=True)
class Reservation:
    """Room held on some limits until settled or released.

    ``period_keys`` (one per limit) fix the day or month charged, even if the call ends after midnight.
    ``warnings`` lists limits that crossed their ``warn_at`` for the first time (in this process).
    """

    id: str
    limits: tuple[BudgetLimit, ...]
    period_keys: tuple[str, ...]
    usd: float
    calls: int
    warnings: tuple[BudgetStatus, ...] = ()


class BudgetKeeper(Protocol):
    """Holds budget counters shared by every request (and process) using one ledger."""

    async def reserve(self, limits: Sequence[BudgetLimit], *, usd: float, calls: int) -> Reservation:
        """Hold ``usd`` on every USD limit and ``calls`` on every call limit, atomically.

        Raises ``BudgetExceededError`` (``QuotaExceededError`` for call quotas) when a hard limit has no
        room, holding nothing. Safe to cancel: a reservation made meanwhile is released.
        """
        ...

    async def settle(self, reservation: Reservation, *, usd: float, calls: int) -> None:
        """Replace the held amounts by what was actually spent; the reservation is gone afterwards."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give the held amounts back without charging anything."""
        ...


class BudgetWarnings:
    """Which budget warnings this keeper has given: each limit warns once near ``warn_at`` and once past a
    soft limit, per period."""

    def __init__(self) -> None:
        self._given: set[tuple[str, str, str]] = set()

    def first(self, statuses: Sequence[BudgetStatus]) -> tuple[BudgetStatus, ...]:
        """Statuses crossing ``warn_at``, or going past a soft limit, for the first time this period."""
        fresh = []
        for status in statuses:
            warn_at = status.limit.warn_at
            if warn_at is None or status.fraction < warn_at:
                continue
            key = (status.limit.name, status.period_key, "over" if status.fraction > 1 else "near")
            if key not in self._given:
                self._given.add(key)
                fresh.append(status)
        return tuple(fresh)
