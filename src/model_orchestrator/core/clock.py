"""Time as a dependency: the monotonic clock and sleep that every deadline and backoff reads.

Tests inject ``model_orchestrator.testing.FakeClock`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time in seconds, wall time, and an awaitable sleep."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    # The C functions themselves, with no method frame around them: a call reads the clock about twenty
    # times on its way through the layers.
    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
