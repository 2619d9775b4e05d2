"""``RequestScope``: what one request may still spend, shared by every layer working on it.

The façade opens a scope per request; strategies, retry wrappers and ``ObservedModel`` read and update it
through a context variable, so nested layers share one bounded attempt budget and one cost total instead
of multiplying retries or losing spend. Tasks started inside the request inherit the same scope object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

_CURRENT: ContextVar[RequestScope | None] = ContextVar("model_orchestrator_request_scope", default=None)


@dataclass(slots=True)
class RequestScope:
    """Mutable per-request accounting: attempts used, spend so far, the caps on both."""

    request_id: str
    max_attempts: int | None = None
    max_cost: float | None = None
    attempts: int = 0
    spent: float = 0.0
    unpriced_attempts: int = 0
    attempt_costs: list[tuple[str, float | None]] = field(default_factory=list)

    def take_attempt(self) -> bool:
        """Count one more upstream attempt; False (nothing counted) when the budget is used up."""
        if self.max_attempts is not None and self.attempts >= self.max_attempts:
            return False
        self.attempts += 1
        return True

    def refund_attempt(self) -> None:
        """Give back an attempt that made no upstream call (the deployment was skipped)."""
        self.attempts = max(0, self.attempts - 1)

    def record_cost(self, model: str, cost: float | None) -> None:
        """Add one finished attempt's cost (None: the price is unknown)."""
        self.attempt_costs.append((model, cost))
        if cost is None:
            self.unpriced_attempts += 1
        else:
            self.spent += cost

    @property
    def remaining_cost(self) -> float | None:
        """USD left under ``max_cost`` (None: no cap)."""
        return None if self.max_cost is None else self.max_cost - self.spent

    @property
    def total_cost(self) -> float | None:
        """Everything spent so far, or None when some attempt had an unknown price."""
        return None if self.unpriced_attempts else self.spent


def current_scope() -> RequestScope | None:
    """The scope of the request being served in this task, if any."""
    return _CURRENT.get()


@contextlib.contextmanager
def request_scope(scope: RequestScope) -> Iterator[RequestScope]:
    """Make ``scope`` current for the code inside the ``with`` block (and tasks it starts)."""
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)
