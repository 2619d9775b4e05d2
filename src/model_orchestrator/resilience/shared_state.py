"""``FailoverStateStore``: a shared store with a bounded wait and a policy for when it is unreachable.

Owns the failure policy of ``state.on_unavailable``. Every call to the shared store is bounded by
``timeout`` (default 0.25 s) of the event loop waiting for it (a deadline noticed late, because the loop
was blocked by other work, is extended). When one fails, the store is marked down: one WARNING, a
``StateStoreUnavailable`` event (the metrics sink counts it), and for ``retry_interval`` seconds no call
tries it again, so a request never waits on a dead store more than once per interval (a timeout is
confirmed by a second read first: an event loop stalled by other work expires timers too; the timed-out
call is then sent again, so a write whose answer was lost may count twice, which errs on the safe side
for rate windows; timing out again while reads answer fails that call with ``StateContentionError``).
Meanwhile:

- ``local`` (the default): state lives in this process, with rate limits divided by ``replicas`` so the
  replicas together stay near the configured limits; cooldowns and breakers are per process;
- ``fail``: every call raises ``StateUnavailableError`` (a 503 at the gateway; a strategy moves on).

After the interval the next call tries the shared store again; when it answers, an INFO line and a
``StateStoreRecovered`` event, and state is shared again (what was learnt locally meanwhile stays local).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Literal, TypeVar

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import StateUnavailableError
from model_orchestrator.core.events import EventBus, StateStoreRecovered, StateStoreUnavailable
from model_orchestrator.resilience.state_store import (
    MemoryStateStore,
    StateContentionError,
    StateStore,
    WindowGrant,
    WindowKind,
    WindowTake,
)

_log = logging.getLogger(__name__)

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")

OnUnavailable = Literal["local", "fail"]
_PING_KEY = "ping"
_REARMS = 8


class FailoverStateStore:
    """``shared`` while it answers within ``timeout``; else per ``on_unavailable``. Times are wall time."""

    def __init__(
        self,
        shared: StateStore,
        *,
        clock: Clock,
        bus: EventBus,
        on_unavailable: OnUnavailable = "local",
        replicas: int = 1,
        timeout: float = 0.25,
        retry_interval: float = 1.0,
    ) -> None:
        if replicas < 1 or timeout <= 0 or retry_interval <= 0:
            raise ValueError("replicas must be at least 1; timeout and retry_interval above 0")
        self._shared = shared
        self._local = MemoryStateStore()
        self._clock = clock
        self._bus = bus
        self._policy = on_unavailable
        self._replicas = replicas
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._down = False
        self._retry_at = 0.0
        # A read (or an update that changes nothing) the shared store can answer from its own cache
        # (``RedisStateStore.cached``) skips the deadline machinery: it cannot wait on anything.
        self._cached: Callable[[str], tuple[bool, object | None]] | None = getattr(shared, "cached", None)

    def __repr__(self) -> str:
        return f"FailoverStateStore({self._shared!r}, on_unavailable={self._policy!r}, down={self._down})"

    @property
    def shared(self) -> bool:
        """Whether the last call reached the shared store (False while it is marked down)."""
        return not self._down

    def now(self, clock: Clock) -> float:
        return clock.wall()

    async def get(self, key: str) -> object | None:
        if self._cached is not None and not self._down:
            hit, value = self._cached(key)
            if hit:
                return value
        return await self._run(lambda store: store.get(key))

    async def update(self, key: str, change: Callable[[S | None], tuple[S, R]]) -> R:
        if self._cached is not None and not self._down:
            hit, value = self._cached(key)
            if hit:
                new, result = change(value)  # type: ignore[arg-type]
                if new == value:
                    return result  # nothing to write (a closed breaker admitting a call)
        return await self._run(lambda store: store.update(key, change))

    async def record(self, key: str, change: Callable[[S | None], S]) -> None:
        if not self._down:  # a record is held by the shared store and written later: nothing to wait for
            await self._shared.record(key, change)
            return
        await self._run(lambda store: store.record(key, change))

    async def items(self, prefix: str) -> dict[str, object]:
        return await self._run(lambda store: store.items(prefix))

    async def take_window(
        self, key: str, *, kind: WindowKind, now: float, limit: int | None, amount: int
    ) -> WindowGrant:
        local_limit = self._local_limit(limit)
        return await self._run(
            lambda store: store.take_window(key, kind=kind, now=now, limit=limit, amount=amount),
            lambda store: store.take_window(key, kind=kind, now=now, limit=local_limit, amount=amount),
        )

    async def take_windows(self, takes: Sequence[WindowTake], *, now: float) -> tuple[WindowGrant, ...]:
        return await self._run(
            lambda store: store.take_windows(takes, now=now),
            lambda store: store.take_windows(
                [replace(t, limit=self._local_limit(t.limit)) for t in takes], now=now
            ),
        )

    async def adjust_window(self, key: str, *, slot: int, delta: int) -> None:
        if not self._down:  # like a record, a correction is held and written later: nothing to wait for
            await self._shared.adjust_window(key, slot=slot, delta=delta)
            return
        await self._run(lambda store: store.adjust_window(key, slot=slot, delta=delta))

    def _local_limit(self, limit: int | None) -> int | None:
        """This process's share of ``limit`` while state is local."""
        return None if limit is None else max(1, limit // self._replicas)

    async def aclose(self) -> None:
        """Close the shared store's connections (when it has any to close)."""
        close = getattr(self._shared, "aclose", None)
        if close is not None:
            await close()

    async def _run(
        self,
        operation: Callable[[StateStore], Awaitable[T]],
        local: Callable[[StateStore], Awaitable[T]] | None = None,
    ) -> T:
        if self._down and self._clock.monotonic() < self._retry_at:
            return await self._fallback(local or operation)
        if self._down:
            # One caller tries the shared store again; the others stay local until it has answered.
            self._retry_at = self._clock.monotonic() + self._retry_interval
        try:
            result = await self._shared_call(operation)
        except StateContentionError:
            raise  # not an outage: the store answered
        except (StateUnavailableError, TimeoutError) as exc:
            self._went_down(exc)
            return await self._fallback(local or operation)
        if self._down:
            self._recovered()
        return result

    async def _shared_call(self, operation: Callable[[StateStore], Awaitable[T]]) -> T:
        try:
            return await self._bounded(operation)
        except TimeoutError:
            # A stalled event loop (a slow import, a long synchronous step elsewhere) or a queue of updates
            # on one hot key expire the timer too: the store is down only when a fresh read fails as well.
            await self._bounded(lambda store: store.get(_PING_KEY))
            return await self._once_more(operation)

    async def _once_more(self, operation: Callable[[StateStore], Awaitable[T]]) -> T:
        """Retry a call that timed out while the store still answers reads; a second timeout is the
        store being too busy, not gone (``StateContentionError``: this call fails, others go on)."""
        try:
            return await self._bounded(operation)
        except TimeoutError:
            raise StateContentionError(
                f"the shared state store answers, but this update waited more than {self._timeout:g}s twice; "
                "too many concurrent writes to one key (retry the request)"
            ) from None

    async def _bounded(self, operation: Callable[[StateStore], Awaitable[T]]) -> T:
        """``operation`` on the shared store within ``timeout`` seconds of the event loop waiting for it.

        A deadline noticed late means the loop itself was blocked (a first request importing modules
        measured 0.5-0.8 s here), not that the store was slow: then it is re-armed, at most
        ``_REARMS`` times, so a stall elsewhere never turns into an outage.
        """
        loop = asyncio.get_running_loop()
        rearms = 0
        due = loop.time() + self._timeout
        handle: asyncio.TimerHandle | None = None
        async with asyncio.timeout(None) as deadline:

            def check(due: float) -> None:
                nonlocal handle, rearms
                now = loop.time()
                if now - due > self._timeout / 2 and rearms < _REARMS:
                    rearms += 1
                    handle = loop.call_at(now + self._timeout, check, now + self._timeout)
                else:
                    deadline.reschedule(now)

            handle = loop.call_at(due, check, due)
            try:
                return await operation(self._shared)
            finally:
                handle.cancel()

    async def _fallback(self, operation: Callable[[StateStore], Awaitable[T]]) -> T:
        if self._policy == "fail":
            raise StateUnavailableError(
                "the shared state store (state.url) is unreachable and state.on_unavailable is 'fail', "
                "so no call is made; start it again, or set on_unavailable: local to run on per-process state"
            )
        return await operation(self._local)

    def _went_down(self, error: BaseException) -> None:
        self._retry_at = self._clock.monotonic() + self._retry_interval
        if self._down:
            return
        self._down = True
        reason = str(error) or f"no answer within {self._timeout:g}s"
        then = (
            f"using per-process state (rate limits divided by {self._replicas} replicas)"
            if self._policy == "local"
            else "calls fail until it is back"
        )
        _log.warning("shared state store unavailable (%s); %s", reason, then)
        self._bus.emit(StateStoreUnavailable("", self._clock.wall(), error=reason, policy=self._policy))

    def _recovered(self) -> None:
        self._down = False
        _log.info("shared state store reachable again; state is shared across processes again")
        self._bus.emit(StateStoreRecovered("", self._clock.wall()))
