"""``StateStore``: where breakers, cooldowns, rate limiters, health and key limits keep their state.

Algorithms never hold state themselves: they read it with ``get`` and change it with ``update``, an
atomic read-modify-write (the in-memory store is atomic because ``update`` never awaits inside; the Redis
store, ``redis_state``, uses optimistic transactions). Rate windows are the hottest keys, so they have
their own atomic operation, ``take_window`` / ``adjust_window`` (a Lua script on Redis, no retries under
contention). State values are frozen dataclasses of plain fields (``state_codec`` serialises them).

Times written into state are on the store's timebase, ``now(clock)``: the monotonic clock for a
process-local store (immune to wall-clock steps), wall time for a shared one (it crosses processes and
hosts, whose clocks must be synchronised). This module owns the interface and the in-memory store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import StateUnavailableError
from model_orchestrator.core.frozen import quick_init
from model_orchestrator.resilience import sliding_window
from model_orchestrator.resilience.request_log import RequestLog, request_ready_at, sent_at
from model_orchestrator.resilience.sliding_window import WindowLog

S = TypeVar("S")
R = TypeVar("R")


class StateContentionError(StateUnavailableError):
    """A shared key kept changing under every attempt to update it (the store itself answered)."""


WindowKind = Literal["requests", "units"]
"""``requests``: the key holds a ``RequestLog`` (a window of sends plus provider pacing; ``limit`` may
be None: paced only); ``units``: a bare ``WindowLog`` (tokens, a virtual key's requests)."""


@quick_init
@dataclass(frozen=True, slots=True)
class WindowGrant:
    """The outcome of ``take_window``. Taken: ``slot`` is where the units were counted (None: not
    counted, only paced) and ``previous_last_sent`` the send it replaced as the latest. Refused:
    ``ready_at`` is the earliest time the units may fit (None: never, they exceed the limit)."""

    taken: bool
    slot: int | None = None
    previous_last_sent: float | None = None
    ready_at: float | None = None


@dataclass(frozen=True, slots=True)
class WindowTake:
    """One window of a ``take_windows`` call: ``amount`` units under ``limit`` per minute at ``key``."""

    key: str
    kind: WindowKind
    limit: int | None
    amount: int


class StateStore(Protocol):
    """Keyed state with atomic updates. Keys look like ``breaker:<deployment>``."""

    async def get(self, key: str) -> object | None:
        """The current value, or None."""
        ...

    async def update(self, key: str, change: Callable[[S | None], tuple[S, R]]) -> R:
        """Atomically replace the value with ``change(old)[0]`` and return ``change(old)[1]``.

        ``change`` must be pure and fast: a shared store may call it more than once on contention.
        """
        ...

    async def record(self, key: str, change: Callable[[S | None], S]) -> None:
        """Atomically replace the value with ``change(old)``, without waiting for it to be written.

        For outcomes no caller needs an answer from (a success counted in a closed breaker's window): a
        shared store may hold the change for a few milliseconds and write it together with the key's other
        changes (in order), so the store sees it late but never loses its place among the updates.
        """
        ...

    async def items(self, prefix: str) -> dict[str, object]:
        """Every key starting with ``prefix`` and its value (for ``orchestrator health``)."""
        ...

    def now(self, clock: Clock) -> float:
        """The current time on this store's timebase (see the module docstring)."""
        ...

    async def take_window(
        self, key: str, *, kind: WindowKind, now: float, limit: int | None, amount: int
    ) -> WindowGrant:
        """Atomically count ``amount`` units sent at ``now`` under ``limit`` per minute, if they fit."""
        ...

    async def take_windows(self, takes: Sequence[WindowTake], *, now: float) -> tuple[WindowGrant, ...]:
        """``take_window`` for several windows (distinct keys) in one atomic step: all count, or none.

        A rate limiter with rpm and tpm asks once (one round trip on a shared store) and has nothing to give
        back when the second window is full. When any window refuses, nothing is counted: its grant says
        when it may fit, and the windows that would have fitted answer ``ready_at=now``.
        """
        ...

    async def adjust_window(self, key: str, *, slot: int, delta: int) -> None:
        """Atomically add ``delta`` units (negative: give back) to ``slot`` of the ``units`` window.

        Like ``record``, it does not wait for the write: a shared store may hold the correction a few
        milliseconds, but applies it before this process's next ``take_window(s)`` of that window.
        """
        ...


def take_from(
    value: object | None, kind: WindowKind, now: float, limit: int | None, amount: int
) -> tuple[object, WindowGrant]:
    """The pure ``take_window``: the new value (unchanged when refused) and the grant."""
    if kind == "requests":
        log = value if isinstance(value, RequestLog) else RequestLog()
        ready = request_ready_at(log, now, limit)
        if ready > now:
            return log, WindowGrant(False, ready_at=ready)
        taken, took, slot = sent_at(log, now, limit)
        return taken, WindowGrant(took, slot, log.last_sent, None if took else now)
    window = value if isinstance(value, WindowLog) else WindowLog()
    if limit is None:
        return window, WindowGrant(True)
    updated, slot = sliding_window.take(window, now, limit, amount)
    if slot is not None:
        return updated, WindowGrant(True, slot)
    return updated, WindowGrant(False, ready_at=sliding_window.ready_at(window, now, limit, amount))


def adjusted(value: object | None, slot: int, delta: int) -> tuple[object, None]:
    """The pure ``adjust_window``."""
    window = value if isinstance(value, WindowLog) else WindowLog()
    return sliding_window.adjust(window, slot, delta), None


class MemoryStateStore:
    """Process-local state: a dict. Atomic under asyncio because nothing here awaits."""

    def __init__(self) -> None:
        self._values: dict[str, object] = {}

    async def get(self, key: str) -> object | None:
        return self._values.get(key)

    async def update(self, key: str, change: Callable[[S | None], tuple[S, R]]) -> R:
        old = self._values.get(key)
        new, result = change(old)  # type: ignore[arg-type]
        self._values[key] = new
        return result

    async def record(self, key: str, change: Callable[[S | None], S]) -> None:
        self._values[key] = change(self._values.get(key))  # type: ignore[arg-type]

    async def items(self, prefix: str) -> dict[str, object]:
        return {k: v for k, v in self._values.items() if k.startswith(prefix)}

    def now(self, clock: Clock) -> float:
        return clock.monotonic()

    async def take_window(
        self, key: str, *, kind: WindowKind, now: float, limit: int | None, amount: int
    ) -> WindowGrant:
        value, grant = take_from(self._values.get(key), kind, now, limit, amount)
        self._values[key] = value
        return grant

    async def take_windows(self, takes: Sequence[WindowTake], *, now: float) -> tuple[WindowGrant, ...]:
        planned = [take_from(self._values.get(t.key), t.kind, now, t.limit, t.amount) for t in takes]
        return settled_takes(self._values, takes, planned, now)

    async def adjust_window(self, key: str, *, slot: int, delta: int) -> None:
        await self.update(key, lambda old: adjusted(old, slot, delta))


def settled_takes(
    values: dict[str, object],
    takes: Sequence[WindowTake],
    planned: Sequence[tuple[object, WindowGrant]],
    now: float,
) -> tuple[WindowGrant, ...]:
    """The pure rule of ``take_windows``: store every planned value when all were taken, else none."""
    if all(grant.taken for _, grant in planned):
        for take, (value, _) in zip(takes, planned, strict=True):
            values[take.key] = value
        return tuple(grant for _, grant in planned)
    return tuple(WindowGrant(False, ready_at=now) if grant.taken else grant for _, grant in planned)
