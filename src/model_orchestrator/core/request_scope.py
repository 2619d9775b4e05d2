"""``RequestScope``: the one per-request state every layer reads and updates (tenacity's ``RetryCallState``
for a whole request): attempts and failures against the attempt budget, spend against the cost cap, and
the pauses deployments asked for.

The façade opens a scope per request; strategies, retry, cooldown, ``ObservedModel`` and the budget guard
read and update it through one context variable, so nested layers share one attempt budget and one cost
total instead of multiplying retries or losing spend. Tasks started inside the request inherit the same
scope object. A part of the request that must know its own spend (one budget-guarded call, while ensemble
members run concurrently) runs in a ``child`` scope: its attempts count toward the request too.

The attempt budget bounds *wasted* calls, never the calls a strategy plans: every failed upstream attempt
uses one unit, and a retry of the same deployment is made only while a unit is left. A strategy's first
call to each member (fallback members, ensemble members, pipeline stages) never needs one, so a large
ensemble or a long pipeline runs whole, while a request whose deployments keep failing stops retrying.

The deadline stays on ``ChatRequest.deadline`` (it travels with the request into every layer, on the
injected clock). Not owned here: budgets across requests (``core.budget``), events (``core.events``).
"""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field

_CURRENT: ContextVar[RequestScope | None] = ContextVar("model_orchestrator_request_scope", default=None)


@dataclass(slots=True)
class RequestScope:
    """Mutable per-request accounting: failed attempts against the attempt budget, spend against its cap.

    ``attempt_budget``: how many failed upstream attempts the request may make before retries stop
    (None: no limit). ``failures`` counts them per deployment and error type, to say what used it up;
    ``attempts`` counts every upstream attempt made (``ObservedModel`` counts them). ``pauses`` holds, per
    deployment, when a cooldown it started ends (the cooling wrapper's monotonic clock), so a retry waits
    it out instead of hitting it. ``answered_by``: the provider and deployment of the last attempt that
    succeeded (what a streamed answer reports, as a whole one reports its completion's). ``parent``: the
    scope a ``child`` also counts toward.
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
    pauses: dict[str, float] = field(default_factory=dict)
    answered_by: tuple[str, str] = ("", "")
    parent: RequestScope | None = field(default=None, repr=False)

    def child(self) -> RequestScope:
        """A scope for one part of this request with its own tally (attempts, spend, failures); everything
        it records counts toward this scope too, and budget questions are answered by the request's."""
        return RequestScope(self.request_id, self.attempt_budget, self.max_cost, parent=self)

    @property
    def root(self) -> RequestScope:
        """The request's own scope (this one, unless it is a child)."""
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    @property
    def failed_attempts(self) -> int:
        """Failed upstream attempts so far (every deployment, every layer)."""
        return sum(self.failures.values())

    def record_attempt(self) -> None:
        """Count one upstream attempt as it starts."""
        scope: RequestScope | None = self
        while scope is not None:
            scope.attempts += 1
            scope = scope.parent

    def record_success(self, provider: str, deployment: str) -> None:
        """Note the deployment whose attempt just succeeded."""
        scope: RequestScope | None = self
        while scope is not None:
            scope.answered_by = (provider, deployment)
            scope = scope.parent

    def record_failure(self, deployment: str, error_type: str) -> None:
        """Count one upstream attempt that was made and failed."""
        scope: RequestScope | None = self
        while scope is not None:
            scope.failures[(deployment, error_type)] += 1
            scope = scope.parent

    def record_cost(self, model: str, cost: float | None) -> None:
        """Add one finished attempt's cost (None: the price is unknown)."""
        scope: RequestScope | None = self
        while scope is not None:
            scope.attempt_costs.append((model, cost))
            if cost is None:
                scope.unpriced_attempts += 1
            else:
                scope.spent += cost
            scope = scope.parent

    def may_retry(self) -> bool:
        """Whether the request's budget allows one more retry; a refusal is counted (for the error
        message)."""
        root = self.root
        if root.attempt_budget is None or root.failed_attempts < root.attempt_budget:
            return True
        root.retries_refused += 1
        return False

    def budget_used_up(self) -> str | None:
        """When the budget stopped a retry: what used it up, for error messages; else None."""
        root = self.root
        if not root.retries_refused:
            return None
        per_deployment: dict[str, list[str]] = {}
        for (deployment, error_type), count in sorted(root.failures.items()):
            per_deployment.setdefault(deployment, []).append(f"{count}x {error_type}")
        used = "; ".join(f"{d}: {', '.join(kinds)}" for d, kinds in per_deployment.items())
        refused = root.retries_refused
        return (
            f"the request's attempt budget ({root.attempt_budget} failed attempts) was used up, so "
            f"{refused} retr{'y was' if refused == 1 else 'ies were'} not made; "
            f"failed attempts: {used} (raise resilience.max_attempts_per_request to allow more retries)"
        )

    def pause(self, deployment: str, until: float) -> None:
        """Record that ``deployment`` must not be called before ``until`` (a cooldown it started; the later
        end wins)."""
        pauses = self.root.pauses
        current = pauses.get(deployment)
        if current is None or until > current:
            pauses[deployment] = until

    def paused_for(self, deployment: str, now: float) -> float | None:
        """Seconds left of ``deployment``'s recorded pause at ``now`` (None: none, or over)."""
        until = self.root.pauses.get(deployment)
        return None if until is None or until <= now else until - now

    @property
    def remaining_cost(self) -> float | None:
        """USD left under the request's ``max_cost`` (None: no cap)."""
        root = self.root
        return None if root.max_cost is None else root.max_cost - root.spent

    @property
    def total_cost(self) -> float | None:
        """Everything this scope spent so far, or None when some attempt had an unknown price."""
        return None if self.unpriced_attempts else self.spent


def current_scope() -> RequestScope | None:
    """The scope of the request being served in this task, if any."""
    return _CURRENT.get()


def request_scope(scope: RequestScope) -> AbstractContextManager[RequestScope]:
    """Make ``scope`` current for the code inside the ``with`` block (and tasks it starts); set and reset in
    one step, so it is safe around a single ``await`` inside an async generator."""
    return _Current(scope)


class _Current:
    """``request_scope``'s context manager: a plain class, cheaper per request than a generator-based one."""

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: RequestScope) -> None:
        self._scope = scope

    def __enter__(self) -> RequestScope:
        self._token = _CURRENT.set(self._scope)
        return self._scope

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)
