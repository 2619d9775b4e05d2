"""What a provider told us about its rate limits on one response. Parsing headers is the providers' job."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """Rate-limit state read from one response's headers; any field may be unknown (None).

    Times are seconds from the moment the response was received, so they need no clock to compare.
    """

    retry_after: float | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None
    reset_requests_after: float | None = None
    reset_tokens_after: float | None = None

    @property
    def is_empty(self) -> bool:
        """True when the response carried no rate-limit information at all."""
        return self == _EMPTY


_EMPTY = RateLimitSnapshot()
EMPTY_RATE_LIMITS = _EMPTY
