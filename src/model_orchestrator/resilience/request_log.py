"""What the rate limiter keeps per deployment under ``rpm:<deployment>``: the sends of the last minute and
the pacing the provider asked for, with the pure functions that read and change it.

Owns ``RequestLog`` and its transitions (ready time, take, give back, learn from rate-limit headers);
``rate_limiter`` applies them through the ``StateStore``, and the stores run ``take`` atomically (the
Redis store in a Lua script that mirrors these functions). Times are in the store's timebase
(``StateStore.now``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from model_orchestrator.core.frozen import quick_init
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.resilience import sliding_window
from model_orchestrator.resilience.sliding_window import WindowLog

# Below this share of the provider's request limit left, calls are spaced out until its reset.
LOW_REMAINING_SHARE = 0.1


@quick_init
@dataclass(frozen=True, slots=True)
class RequestLog:
    """State under ``rpm:<deployment>``: the sends of the last minute and provider-driven pacing."""

    window: WindowLog = field(default_factory=WindowLog)
    last_sent: float | None = None
    not_before: float = 0.0
    pace_interval: float = 0.0
    pace_until: float = 0.0


def request_ready_at(log: RequestLog, now: float, rpm: int | None) -> float:
    """The earliest time (>= ``now``) a request may be sent."""
    ready = max(now, log.not_before)
    if log.last_sent is not None and now < log.pace_until:
        ready = max(ready, log.last_sent + log.pace_interval)
    if rpm is not None:
        ready = max(ready, sliding_window.ready_at(log.window, now, rpm, 1) or now)
    return ready


def take_request(log: RequestLog, now: float, rpm: int | None) -> tuple[RequestLog, bool, int | None]:
    """Record a send at ``now`` if allowed: the new state, whether it was, and the window slot it
    was counted in (None when requests are only paced, not counted)."""
    if request_ready_at(log, now, rpm) > now:
        return log, False, None
    return sent_at(log, now, rpm)


def sent_at(log: RequestLog, now: float, rpm: int | None) -> tuple[RequestLog, bool, int | None]:
    """``take_request`` for a log already known to be ready at ``now`` (its caller has just asked)."""
    window, slot = (log.window, None) if rpm is None else sliding_window.take(log.window, now, rpm, 1)
    # Built whole rather than with ``replace`` (half the cost): every adaptive call takes one.
    taken = RequestLog(window, now, log.not_before, log.pace_interval, log.pace_until)
    return taken, rpm is None or slot is not None, slot


def learn_from_snapshot(log: RequestLog, snapshot: RateLimitSnapshot, now: float) -> RequestLog:
    """Pace sends by what the provider reported: wait out a reset at zero left, space out when low."""
    log = _learn_retry_after(log, snapshot.retry_after, now)
    remaining, reset = snapshot.remaining_requests, snapshot.reset_requests_after
    if remaining is None or reset is None:
        return log
    if remaining <= 0:
        return replace(log, not_before=max(log.not_before, now + reset))
    limit = snapshot.limit_requests
    if limit is not None and remaining < LOW_REMAINING_SHARE * limit:
        # Spread what is left evenly until the provider's window resets.
        return replace(log, pace_interval=reset / remaining, pace_until=now + reset)
    return replace(log, pace_interval=0.0, pace_until=0.0)


def _learn_retry_after(log: RequestLog, retry_after: float | None, now: float) -> RequestLog:
    if retry_after is None:
        return log
    return replace(log, not_before=max(log.not_before, now + retry_after))
