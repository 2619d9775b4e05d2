"""``SharedBudgetKeeper``: budget reservations on Redis, for processes or hosts whose ledgers are not shared.

With a SQLite ledger per host, each ``BudgetBook`` only sees its own host's spend, so a day budget would
hold per process. This keeper keeps the running totals in Redis instead (the ledger database still
records every attempt: it stays the record of what was spent; Redis is the shared tally that limits are
enforced against). Layout, under the state store's prefix: per (budget name, period key) a hash
``{prefix}budget:{name}:{period}`` (fields ``spent``, ``held``, ``r:{reservation id}`` = amount held, and
``seeded:{ledger id}``) and a sorted set ``...:holds`` of reservation ids by expiry. Both expire a day
after their period ends. ``reserve`` is one Lua script (``budget_scripts.RESERVE``): expired holds are
dropped, then spent + held + amount must fit every hard limit, else nothing is held; ``settle`` moves the
actual amount into ``spent`` and drops the hold, ``release`` drops it. A hold lapses after
``ledger.reservation_ttl``, so a killed process's reservation stops counting.

The tally is seeded by contribution: the first time a ledger (``ledger_id``: host and ledger URL) touches a
counter, it adds what its own database recorded for that budget and period, once (``seeded:`` marks
it). On a new period that adds nothing; after a Redis restart that lost the tally, every host adds its
own spend as it makes its next reservation, so the total converges to the truth instead of holding one
host's share. Until an idle host reserves again its earlier spend is missing (an undercount of at most
that host's spend this period); settlements of reservations made before the loss are not charged twice.

When Redis fails or answers later than ``timeout``: ``on_unavailable: local`` reserves in this process's
own ledger (``fallback``) with every limit divided by ``replicas``, less what its ledger recorded for the
period when the outage began (so a process that spent its share already gets no more; one WARNING per
outage, an INFO when Redis answers again, tried again after ``retry_interval``); ``fail`` raises
``StateUnavailableError`` (503).
A settlement that cannot reach Redis is dropped with a WARNING: its hold lapses after the TTL and the
spend stays in the ledger (the shared tally undercounts it).
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError

from model_orchestrator.core.budget import (
    BudgetKeeper,
    BudgetLimit,
    BudgetStatus,
    BudgetWarnings,
    Period,
    Reservation,
)
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import StateUnavailableError
from model_orchestrator.ledger.budget_scripts import RESERVE, SEED, SETTLE
from model_orchestrator.ledger.budgets import exceeded_error, period_key
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import attempts, requests

_log = logging.getLogger(__name__)
T = TypeVar("T")

Seeder = Callable[[BudgetLimit, str], Awaitable[float]]
"""What this process's ledger recorded for a limit's budget in a period key (USD or calls)."""

_KEEP_AFTER_PERIOD = 86400  # seconds a period's counter outlives the period (late settlements land)


class SharedBudgetKeeper:
    """A ``BudgetKeeper`` on Redis (see the module docstring); close it with ``aclose()``."""

    def __init__(
        self,
        client: Redis,
        *,
        fallback: BudgetKeeper,
        seed: Seeder,
        ledger_id: str,
        clock: Clock,
        ttl: float,
        prefix: str = "orchestrator:state:",
        on_unavailable: Literal["local", "fail"] = "local",
        replicas: int = 1,
        timeout: float = 0.25,
        retry_interval: float = 1.0,
    ) -> None:
        self._client = client
        self._fallback = fallback
        self._seed = seed
        self._ledger_id = ledger_id
        self._clock = clock
        self._ttl = ttl
        self._prefix = prefix + "budget:"
        self._policy = on_unavailable
        self._replicas = replicas
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._retry_at: float | None = None  # monotonic time Redis is tried again; None while it answers
        self._local: set[str] = set()  # ids of reservations held by the fallback
        self._spent_before: dict[tuple[str, str], float] = {}  # this ledger's spend when Redis went down
        self._warnings = BudgetWarnings()
        self._background: set[asyncio.Task[Any]] = set()
        self._reserve_script = client.register_script(RESERVE)
        self._settle_script = client.register_script(SETTLE)
        self._seed_script = client.register_script(SEED)

    def __repr__(self) -> str:
        return f"SharedBudgetKeeper(prefix={self._prefix!r}, on_unavailable={self._policy!r})"

    async def reserve(self, limits: Sequence[BudgetLimit], *, usd: float, calls: int) -> Reservation:
        claims = [(limit, usd if limit.unit == "usd" else float(calls)) for limit in limits]
        claims = [(limit, amount) for limit, amount in claims if amount > 0]
        if not claims:
            return Reservation(uuid.uuid4().hex, (), (), usd, calls)
        if self._down():
            return await self._reserve_locally(limits, usd=usd, calls=calls)
        reservation_id = uuid.uuid4().hex
        now = self._clock.wall()
        keys = tuple(period_key(limit.period, now) for limit, _ in claims)
        held = tuple(limit for limit, _ in claims)
        made = Reservation(reservation_id, held, keys, usd, calls)
        try:
            statuses = await self._redis(self._hold(reservation_id, claims, keys, now), undo=made)
        except StateUnavailableError:
            if self._policy == "fail":
                raise
            return await self._reserve_locally(limits, usd=usd, calls=calls)
        return replace(made, warnings=self._warnings.first(statuses))

    async def settle(self, reservation: Reservation, *, usd: float, calls: int) -> None:
        if reservation.id in self._local:
            self._local.discard(reservation.id)
            await self._fallback.settle(reservation, usd=usd, calls=calls)
        elif reservation.limits:
            charges = [usd if limit.unit == "usd" else float(calls) for limit in reservation.limits]
            await self._finish(reservation, charges)

    async def release(self, reservation: Reservation) -> None:
        if reservation.id in self._local:
            self._local.discard(reservation.id)
            await self._fallback.release(reservation)
        elif reservation.limits:
            await self._finish(reservation, [0.0] * len(reservation.limits))

    async def aclose(self) -> None:
        """Wait for settlements in flight, then close the connection pool."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._client.aclose()

    # --- Redis -------------------------------------------------------------------------------------

    async def _hold(
        self,
        reservation_id: str,
        claims: Sequence[tuple[BudgetLimit, float]],
        keys: Sequence[str],
        now: float,
    ) -> tuple[BudgetStatus, ...]:
        names = self._names(claims, keys)
        args = [repr(now), repr(now + self._ttl), reservation_id, self._ledger_id]
        for (limit, amount), key in zip(claims, keys, strict=True):
            hard = "1" if limit.hard else "0"
            args += [repr(amount), repr(limit.limit), hard, str(_expiry(limit.period, key))]
        for _ in range(3):
            reply = [_text(part) for part in await self._reserve_script(keys=names, args=args)]
            if reply[0] == "ok":
                values = [float(v) for v in reply[1:]]
                return tuple(
                    BudgetStatus(limit, key, values[2 * i], values[2 * i + 1])
                    for i, ((limit, _), key) in enumerate(zip(claims, keys, strict=True))
                )
            if reply[0] == "exceeded":
                index, spent, held = int(reply[1]) - 1, float(reply[2]), float(reply[3])
                limit, amount = claims[index]
                raise exceeded_error(BudgetStatus(limit, keys[index], spent, held + amount), amount)
            await self._contribute(claims, keys, names, [int(i) - 1 for i in reply[1:]])
        raise StateUnavailableError(
            "shared budget counters kept disappearing while being seeded: Redis is evicting keys (set "
            "maxmemory-policy to noeviction) or this host's clock is days behind Redis's (sync it with "
            "NTP); nothing was sent"
        )

    async def _contribute(
        self,
        claims: Sequence[tuple[BudgetLimit, float]],
        keys: Sequence[str],
        names: Sequence[str],
        indexes: Sequence[int],
    ) -> None:
        """Add this ledger's own spend to the counters it has not contributed to yet (once each)."""
        for i in indexes:
            limit = claims[i][0]
            spent = await self._seed(limit, keys[i])
            keep = str(_expiry(limit.period, keys[i]))
            await self._seed_script(keys=names[2 * i : 2 * i + 2], args=[self._ledger_id, repr(spent), keep])

    async def _finish(self, reservation: Reservation, charges: Sequence[float]) -> None:
        pairs = list(zip(reservation.limits, reservation.period_keys, strict=True))
        names = self._names(pairs, reservation.period_keys)
        args = [repr(self._clock.wall()), reservation.id, self._ledger_id]
        for (limit, key), charge in zip(pairs, charges, strict=True):
            args += [repr(charge), str(_expiry(limit.period, key))]
        try:
            await self._redis(self._settle_script(keys=names, args=args))
        except StateUnavailableError as exc:
            _log.warning("a budget settlement was not counted in the shared tally (it lapses): %s", exc)

    def _names(self, claims: Sequence[tuple[BudgetLimit, Any]], keys: Sequence[str]) -> list[str]:
        names = []
        for (limit, _), key in zip(claims, keys, strict=True):
            counter = f"{self._prefix}{limit.name}:{key}"
            names += [counter, counter + ":holds"]
        return names

    async def _redis(self, work: Coroutine[Any, Any, T], *, undo: Reservation | None = None) -> T:
        """``work``'s result within ``timeout``; it runs to the end even if the caller leaves, and the
        reservation ``undo`` is then released once made. A failure marks Redis down and raises
        ``StateUnavailableError``."""
        task = self._spawn(work)
        try:
            await self._wait(task)
        finally:
            if undo is not None and not task.done():  # the caller left or gave up: undo what lands
                task.add_done_callback(lambda done: self._release_if_made(done, undo))
        if not task.done():
            self._mark_down(TimeoutError())
            raise StateUnavailableError(
                f"shared budget counters (Redis) did not answer within {self._timeout:g} s (state.timeout); "
                "check that Redis runs and is not overloaded; nothing was sent"
            )
        try:
            result = task.result()
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
            raise StateUnavailableError(
                f"shared budget counters (Redis) failed: {type(exc).__name__}: {exc}; check that Redis "
                "runs and that state.url points at it; nothing was sent"
            ) from None
        if self._retry_at is not None:
            self._retry_at = None
            self._spent_before.clear()
            _log.info("shared budget counters (Redis) answer again: budgets are shared again")
        return result

    async def _wait(self, task: asyncio.Task[Any]) -> None:
        """Wait up to ``timeout`` for ``task``, once more if the event loop itself was late (busy with other
        work, which is not Redis being slow)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait([task], timeout=self._timeout)
        if not task.done() and loop.time() - start > 2 * self._timeout:
            await asyncio.wait([task], timeout=self._timeout)

    def _release_if_made(self, done: asyncio.Task[Any], reservation: Reservation) -> None:
        if not done.cancelled() and done.exception() is None:
            self._spawn(self._finish(reservation, [0.0] * len(reservation.limits)))

    def _down(self) -> bool:
        if self._retry_at is None or self._clock.monotonic() >= self._retry_at:
            return False
        if self._policy == "fail":
            raise StateUnavailableError(
                "shared budget counters (Redis) are unreachable and state.on_unavailable is fail; "
                f"nothing was sent (Redis is tried again within {self._retry_interval:g} s)"
            )
        return True

    def _mark_down(self, exc: BaseException) -> None:
        if self._retry_at is None:
            _log.warning(
                "shared budget counters (Redis) are unreachable (%s); state.on_unavailable=%s: %s",
                type(exc).__name__,
                self._policy,
                f"each process keeps budgets in its own ledger, limits divided by {self._replicas}"
                if self._policy == "local"
                else "calls under a budget are refused",
            )
        self._retry_at = self._clock.monotonic() + self._retry_interval

    async def _reserve_locally(self, limits: Sequence[BudgetLimit], *, usd: float, calls: int) -> Reservation:
        now = self._clock.wall()
        shares = [replace(limit, limit=await self._share(limit, now)) for limit in limits]
        reservation = await self._fallback.reserve(shares, usd=usd, calls=calls)
        self._local.add(reservation.id)
        return reservation

    async def _share(self, limit: BudgetLimit, now: float) -> float:
        """This process's part of ``limit`` while Redis is down: the limit over ``replicas``, less what
        its ledger recorded for the period before the outage (read once per outage)."""
        key = (limit.name, period_key(limit.period, now))
        if key not in self._spent_before:
            self._spent_before[key] = await self._seed(limit, key[1])
        part = int(limit.limit) // self._replicas if limit.unit == "calls" else limit.limit / self._replicas
        return max(0.0, part - self._spent_before[key])

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_forget)
        return task


async def recorded_spend(store: LedgerStore, limit: BudgetLimit, key: str) -> float:
    """What the ledger at ``store`` recorded against ``limit``'s budget in period ``key``: the cost of its
    attempts (USD) or their number (calls), by the attempt's UTC day."""
    amount = sa.func.coalesce(sa.func.sum(attempts.c.cost), 0.0) if limit.unit == "usd" else sa.func.count()
    day = attempts.c.day == key if limit.period == "day" else attempts.c.day.like(f"{key}-%")
    query = sa.select(amount).select_from(attempts).where(day)
    scope, _, value = limit.name.partition(":")
    if scope == "provider":
        query = query.where(attempts.c.provider == value)
    elif scope in ("category", "key", "vkey"):
        column = requests.c.category if scope == "category" else requests.c.api_key_id
        query = query.join(requests, requests.c.request_id == attempts.c.request_id).where(column == value)
    async with store.engine.connect() as conn:
        return float((await conn.execute(query)).scalar() or 0.0)


def _expiry(period: Period, key: str) -> int:
    """When a counter for ``key`` may go: a day after the period ends (unix seconds)."""
    if period == "day":
        start = calendar.timegm(time.strptime(key, "%Y-%m-%d"))
        return start + 86400 + _KEEP_AFTER_PERIOD
    year, month = (int(part) for part in key.split("-"))
    following = (year + month // 12, month % 12 + 1)
    return calendar.timegm((*following, 1, 0, 0, 0)) + _KEEP_AFTER_PERIOD


def _text(part: object) -> str:
    return part.decode() if isinstance(part, bytes) else str(part)


def _forget(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned command's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
