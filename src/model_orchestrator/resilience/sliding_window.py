"""A sliding-window log that never lets more than ``limit`` units through in any 60-second window.

Owns the pure algorithm behind the per-minute request and token limits (``rate_limiter`` applies it):
state is a frozen ``WindowLog``, every function returns a new one, nothing here knows a clock or a store.

Why not GCRA or a token bucket: a bucket of burst ``limit`` lets a full burst through at the end of one
minute and another right after, up to twice the limit inside one 60-second window. Here a send of ``n``
units at ``t`` is allowed only when the units sent in the 60 seconds up to ``t`` plus ``n`` stay within
``limit``; every unit stays counted until 60 s after it was sent, so no 60-second window ever holds
more than ``limit``.

To keep the state small whatever the limit (it is copied on every update, and a shared store will
serialise it), sends are grouped into one-second slots; a slot stays counted until 60 s after its LATEST
send. That is conservative: capacity may come back up to one slot later than exact, never sooner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

WINDOW = 60.0
SLOT = 1.0


@dataclass(frozen=True, slots=True)
class Slot:
    """The units sent during one ``SLOT`` of time (``index = floor(time / SLOT)``)."""

    index: int
    last: float
    amount: int


@dataclass(frozen=True, slots=True)
class WindowLog:
    """Slots of the last minute, oldest first, and the sum of their amounts."""

    slots: tuple[Slot, ...] = ()
    total: int = 0


def _alive(slot: Slot, now: float) -> bool:
    # Written ``last + WINDOW > now`` everywhere (never ``last > now - WINDOW``), so waiting until
    # exactly ``last + WINDOW`` always frees the slot despite float rounding.
    return slot.last + WINDOW > now


def pruned(log: WindowLog, now: float) -> WindowLog:
    """``log`` without the slots that left the window by ``now``."""
    first = 0
    while first < len(log.slots) and not _alive(log.slots[first], now):
        first += 1
    if first == 0:
        return log
    gone = sum(s.amount for s in log.slots[:first])
    return WindowLog(log.slots[first:], log.total - gone)


def ready_at(log: WindowLog, now: float, limit: int, amount: int) -> float | None:
    """The earliest time (>= ``now``) ``amount`` more units fit under ``limit``; None if they never can."""
    if amount > limit:
        return None
    live = pruned(log, now)
    used = live.total
    if used + amount <= limit:
        return now
    for slot in live.slots:
        used -= slot.amount
        if used + amount <= limit:
            return max(now, slot.last + WINDOW)
    return now  # unreachable: once every slot has left, ``amount <= limit`` fits


def take(log: WindowLog, now: float, limit: int, amount: int) -> tuple[WindowLog, int | None]:
    """Record ``amount`` units sent at ``now`` if they fit: the new log and the slot index (None: refused)."""
    live = pruned(log, now)
    ready = ready_at(live, now, limit, amount)
    if ready is None or ready > now:
        return live, None
    index = math.floor(now / SLOT)
    slots = live.slots
    if slots and slots[-1].index == index:
        last = slots[-1]
        slots = (*slots[:-1], replace(last, last=max(last.last, now), amount=last.amount + amount))
    else:
        slots = (*slots, Slot(index, now, amount))
    return WindowLog(slots, live.total + amount), index


def adjust(log: WindowLog, index: int, delta: int) -> WindowLog:
    """Add ``delta`` units (negative: give back) to the slot ``index``; a slot already gone is left alone."""
    for position in range(len(log.slots) - 1, -1, -1):
        slot = log.slots[position]
        if slot.index == index:
            amount = max(0, slot.amount + delta)
            changed = replace(slot, amount=amount)
            slots = (*log.slots[:position], changed, *log.slots[position + 1 :])
            return WindowLog(slots, log.total - slot.amount + amount)
    return log
