"""``StateStore``: where breakers, cooldowns and rate limiters keep per-deployment state.

Algorithms never hold state themselves: they read it with ``get`` and change it with ``update``, an
atomic read-modify-write (the in-memory store is atomic because ``update`` never awaits inside; a Redis
store will use optimistic transactions). State values are frozen dataclasses of plain fields, so a
shared store can serialise them. This module owns the interface and the in-memory store only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

S = TypeVar("S")
R = TypeVar("R")


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

    async def items(self, prefix: str) -> dict[str, object]:
        """Every key starting with ``prefix`` and its value (for ``orchestrator health``)."""
        ...


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

    async def items(self, prefix: str) -> dict[str, object]:
        return {k: v for k, v in self._values.items() if k.startswith(prefix)}
