"""``FakeClock``: a ``core.clock.Clock`` whose time moves only when someone sleeps or calls ``advance``.

Owns virtual time and the record of sleeps, so backoff, deadline and cooldown tests run instantly and
can assert exactly how long the code under test chose to wait. It does not drive an event loop's own
timers (``asyncio.sleep`` elsewhere still takes real time).
"""

from __future__ import annotations

import asyncio

_DEFAULT_WALL = 1_700_000_000.0


class FakeClock:
    """Virtual monotonic and wall time; ``sleeps`` lists every requested sleep, in order."""

    def __init__(self, *, start: float = 0.0, wall_start: float = _DEFAULT_WALL) -> None:
        self._monotonic = start
        self._wall = wall_start
        self.sleeps: list[float] = []

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._monotonic}, sleeps={len(self.sleeps)})"

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._wall

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, move time forward by it, and yield once so other tasks can run."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._monotonic += seconds
        self._wall += seconds

    @property
    def total_slept(self) -> float:
        """The sum of all recorded sleeps."""
        return sum(self.sleeps)
