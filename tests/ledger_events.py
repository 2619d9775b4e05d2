"""Events for ledger tests: a successful attempt with fixed usage, cost and latency."""

from __future__ import annotations

from model_orchestrator.core.events import AttemptSucceeded
from model_orchestrator.core.usage import Usage


def attempt(n: int, request_id: str = "r") -> AttemptSucceeded:
    """Attempt ``a{n:05d}`` of ``request_id``, finished ``n`` seconds after a fixed moment."""
    return AttemptSucceeded(
        request_id=request_id,
        timestamp=1_700_000_000.0 + n,
        attempt_id=f"a{n:05d}",
        model="m",
        provider="p",
        deployment="m@p",
        usage=Usage(10, 5),
        cost=0.001,
        latency=0.5,
    )
