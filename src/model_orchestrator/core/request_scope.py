"""``RequestScope``: what one request may still spend, shared by every layer working on it.

The façade opens a scope per request; strategies, retry wrappers and ``ObservedModel`` read and update it
through a context variable, so nested layers share one attempt budget and one cost total instead of
multiplying retries or losing spend. Tasks started inside the request inherit the same scope object.

The attempt budget bounds *wasted* calls, never the calls a strategy plans: every failed upstream attempt
uses one unit, and a retry of the same deployment is made only while a unit is left. A strategy's first
call to each member (fallback members, ensemble members, pipeline stages) never needs one, so a large
ensemble or a long pipeline runs whole, while a request whose deployments keep failing stops retrying.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

_CURRENT: ContextVar[RequestScope | None] = ContextVar("model_orchestrator_request_scope", default=None)


@dataclass(slots=True)
class RequestScope:
    """Mutable per-request accounting: failed attempts against the attempt budget, spend against its cap.

    ``attempt_budget``: how many failed upstream attempts the request may make before retries stop
    (None: no limit). ``failures`` counts them per deployment and error type, to say what used it up;
    ``attempts`` counts every upstream attempt made (``ObservedModel`` counts them).
    """

    request_id: str
    attempt_budget: int | None = None
    max_cost: float | None = None
    attempts: int = 0
    spent: float = 0.0
    unpriced_attempts: int = 0
    attempt_costs: list[tuple[str, float | None]] = field(default_factory=list)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries_refused: int = 0

    @property
    def failed_attempts(self) -> int:
        """Failed upstream attempts so far (every deployment, every layer)."""
        return sum(self.failures.values())

    def record_failure(self, deployment: str, error_type: str) -> None:
        """Count one upstream attempt that was made and failed."""
        self.failures[(deployment, error_type)] += 1

    def may_retry(self) -> bool:
        """Whether the budget allows one more retry; a refusal is counted (for the error message)."""
        if self.attempt_budget is None or self.failed_attempts < self.attempt_budget:
            return True
        self.retries_refused += 1
        return False

    def budget_used_up(self) -> str | None:
        """When the budget stopped a retry: what used it up, for error messages; else None."""
        if not self.retries_refused:
            return None
        per_deployment: dict[str, list[str]] = {}
        for (deployment, error_type), count in sorted(self.failures.items()):
            per_deployment.setdefault(deployment, []).append(f"{count}x {error_type}")
        used = "; ".join(f"{d}: {', '.join(kinds)}" for d, kinds in per_deployment.items())
        return (
            f"the request's attempt budget ({self.attempt_budget} failed attempts) was used up, so "
            f"{self.retries_refused} retr{'y was' if self.retries_refused == 1 else 'ies were'} not made; "
            f"failed attempts: {used} (raise resilience.max_attempts_per_request to allow more retries)"
        )

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
