"""Reading rate-limit state from response headers into a ``RateLimitSnapshot``.

Owns the header forms the supported services send; not what to do with them (resilience decides).
A malformed value is ignored, never raised: headers are advice.

- ``retry-after``: seconds or an HTTP date (RFC 9110 section 10.2.3).
- ``retry-after-ms``: milliseconds, sent by OpenAI and Azure OpenAI; preferred when present.
- ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``: OpenAI, Azure, Groq, Together, ...
  resets are Go-style durations such as ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``
  (https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers).
- ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``:
  resets are RFC 3339 times (https://docs.anthropic.com/en/api/rate-limits#response-headers).
- ``x-ratelimit-{limit,remaining,reset}`` without a suffix (the form seed 002 reads; GitHub-style APIs
  send it): a request budget, paced like ``-requests``; the reset is epoch seconds, or (a number too
  small to be a date since 2001) seconds from now, or a duration.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from model_orchestrator.core.rate_limits import EMPTY_RATE_LIMITS, RateLimitSnapshot

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_ANTHROPIC_TOKEN_BUCKETS = ("tokens", "input-tokens", "output-tokens")
_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "retry-after")
# A reset above this many seconds is an epoch time (2001-09-09), not a wait: no one waits 31 years.
_EPOCH_FLOOR = 1e9


def parse_rate_limit_headers(headers: Mapping[str, str], now: float | None = None) -> RateLimitSnapshot:
    """The rate-limit facts in ``headers`` (lower-case keys); ``now`` is wall-clock epoch seconds."""
    # Fast path: most responses of most servers carry none of these, and this runs on every call.
    if not any(name.startswith(_PREFIXES) for name in headers):
        return EMPTY_RATE_LIMITS
    wall = time.time() if now is None else now
    requests = (
        _bucket(headers, "x-ratelimit-{}-requests", wall)
        or _bucket(headers, "anthropic-ratelimit-requests-{}", wall)
        or _bucket(headers, "x-ratelimit-{}", wall)
    )
    tokens = _bucket(headers, "x-ratelimit-{}-tokens", wall) or _tightest_anthropic_tokens(headers, wall)
    return RateLimitSnapshot(
        retry_after=parse_retry_after(headers, wall),
        remaining_requests=requests[1] if requests else None,
        remaining_tokens=tokens[1] if tokens else None,
        limit_requests=requests[0] if requests else None,
        limit_tokens=tokens[0] if tokens else None,
        reset_requests_after=requests[2] if requests else None,
        reset_tokens_after=tokens[2] if tokens else None,
    )


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date), else None."""
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    return _seconds_until_http_date(value, time.time() if now is None else now)


def parse_duration(value: str) -> float | None:
    """Seconds in a Go-style duration (``6m0s``, ``20ms``, ``1h2m3.5s``) or a bare number of seconds."""
    text = value.strip()
    plain = _number(text)
    if plain is not None:
        return plain
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position > 0 else None


_Bucket = tuple[int | None, int | None, float | None]  # limit, remaining, reset-after seconds


def _bucket(headers: Mapping[str, str], pattern: str, now: float) -> _Bucket | None:
    limit = _integer(headers.get(pattern.format("limit")))
    remaining = _integer(headers.get(pattern.format("remaining")))
    reset = _reset_seconds(headers.get(pattern.format("reset")), now)
    if limit is None and remaining is None and reset is None:
        return None
    return limit, remaining, reset


def _tightest_anthropic_tokens(headers: Mapping[str, str], now: float) -> _Bucket | None:
    """Anthropic reports combined, input and output token buckets; the one with least room binds."""
    buckets = [_bucket(headers, f"anthropic-ratelimit-{name}-{{}}", now) for name in _ANTHROPIC_TOKEN_BUCKETS]
    present = [b for b in buckets if b is not None]
    if not present:
        return None
    return min(present, key=lambda b: float("inf") if b[1] is None else b[1])


def _reset_seconds(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    duration = parse_duration(value)
    if duration is not None and duration >= _EPOCH_FLOOR:
        return max(0.0, duration - now)
    if duration is not None:
        return max(0.0, duration)
    return _seconds_until_rfc3339(value, now)


def _seconds_until_rfc3339(value: str, now: float) -> float | None:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)


def _seconds_until_http_date(value: str, now: float) -> float | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def _integer(value: str | None) -> int | None:
    number = _number(value)
    return None if number is None else int(number)
