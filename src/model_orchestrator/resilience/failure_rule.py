"""Which errors count against a deployment: the one rule the circuit breaker applies to every outcome.

It says nothing about retrying (``resilience.retry`` decides that) or about empty answers
(``resilience.empty_answer``).
"""

from __future__ import annotations

from model_orchestrator.core.errors import (
    BadRequestError,
    ContentFilteredError,
    DeadlineExceededError,
    DeploymentUnavailableError,
    ProviderError,
    RateLimitedError,
)

_NOT_FOUND = 404


def counts_as_failure(error: BaseException) -> bool:
    """Whether ``error`` from the wrapped call is evidence that the deployment is broken.

    Counted: server errors, overloads, connection failures, timeouts of the call itself, unusable answers,
    authentication failures (a bad or revoked key fails every call: skipping the deployment is right) and
    404s (the model or endpoint does not exist there; every call would fail the same way).
    Not counted: a skip without a call (open circuit, cooldown, local rate limit); the caller's own
    deadline; requests rejected as malformed, too long or filtered (the next request may be fine); 429s
    (the deployment is alive and said when to come back: the cooldown honours exactly that, and counting
    them too would keep a busy but healthy deployment out for the whole reset timeout); cancellation and
    anything that is not a ``ProviderError`` (our own bugs say nothing about the upstream).
    """
    if not isinstance(error, ProviderError):
        return False
    if isinstance(error, BadRequestError) and error.status_code == _NOT_FOUND:
        return True
    skipped = (DeploymentUnavailableError, DeadlineExceededError, RateLimitedError)
    callers_fault = (BadRequestError, ContentFilteredError)
    return not isinstance(error, skipped + callers_fault)
