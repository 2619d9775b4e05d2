"""Rate-limit header parsing: every header form the supported services send."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.providers.rate_limit_headers import (
    parse_duration,
    parse_rate_limit_headers,
    parse_retry_after,
)

NOW = 1_750_000_000.0


def _http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=True)


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2m59.56s", 179.56),
        ("7.66s", 7.66),
        ("0.5", 0.5),
        ("12", 12.0),
        ("150us", 0.00015),
        ("1m", 60.0),
    ],
)
def test_durations(value: str, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "abc", "1x", "s", "1s junk", "m1s"])
def test_bad_durations_are_none(value: str) -> None:
    assert parse_duration(value) is None


def test_retry_after_seconds_integer_and_float() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25


def test_retry_after_http_date_is_seconds_from_now() -> None:
    assert parse_retry_after({"retry-after": _http_date(NOW + 30)}, NOW) == pytest.approx(30.0)


def test_retry_after_in_the_past_is_zero() -> None:
    assert parse_retry_after({"retry-after": _http_date(NOW - 30)}, NOW) == 0.0
    assert parse_retry_after({"retry-after": "-5"}) == 0.0


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5


def test_garbage_retry_after_is_ignored() -> None:
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after-ms": "nan", "retry-after": "3"}) == 3.0
    assert parse_retry_after({}) is None


def test_openai_style_headers() -> None:
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert parse_rate_limit_headers(headers, NOW) == RateLimitSnapshot(
        retry_after=None,
        remaining_requests=59,
        remaining_tokens=149984,
        limit_requests=60,
        limit_tokens=150000,
        reset_requests_after=1.0,
        reset_tokens_after=360.0,
    )


@pytest.mark.parametrize(
    ("reset", "after"), [(str(int(NOW) + 30), 30.0), ("30", 30.0), ("1m0s", 60.0), (str(int(NOW) - 5), 0.0)]
)
def test_seed_002_unsuffixed_headers_are_a_request_budget(reset: str, after: float) -> None:
    # Seed 002 reads x-ratelimit-remaining and x-ratelimit-reset (epoch seconds) without a suffix.
    headers = {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
    assert parse_rate_limit_headers(headers, NOW) == RateLimitSnapshot(
        remaining_requests=0, limit_requests=100, reset_requests_after=after
    )


def test_suffixed_request_headers_win_over_unsuffixed_ones() -> None:
    headers = {"x-ratelimit-remaining-requests": "7", "x-ratelimit-remaining": "0"}
    assert parse_rate_limit_headers(headers, NOW).remaining_requests == 7


def test_anthropic_headers_with_rfc3339_resets() -> None:
    headers = {
        "retry-after": "4",
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": _rfc3339(NOW + 4),
        "anthropic-ratelimit-tokens-limit": "100000",
        "anthropic-ratelimit-tokens-remaining": "90000",
        "anthropic-ratelimit-tokens-reset": _rfc3339(NOW + 10),
    }
    snapshot = parse_rate_limit_headers(headers, NOW)
    assert snapshot.retry_after == 4.0
    assert (snapshot.limit_requests, snapshot.remaining_requests) == (50, 0)
    assert snapshot.reset_requests_after == pytest.approx(4.0)
    assert (snapshot.limit_tokens, snapshot.remaining_tokens) == (100000, 90000)
    assert snapshot.reset_tokens_after == pytest.approx(10.0)


def test_anthropic_tightest_token_bucket_binds() -> None:
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "39000",
        "anthropic-ratelimit-input-tokens-reset": _rfc3339(NOW + 1),
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "100",
        "anthropic-ratelimit-output-tokens-reset": _rfc3339(NOW + 20),
    }
    snapshot = parse_rate_limit_headers(headers, NOW)
    assert (snapshot.limit_tokens, snapshot.remaining_tokens) == (8000, 100)
    assert snapshot.reset_tokens_after == pytest.approx(20.0)


def test_no_headers_is_empty_and_garbage_is_ignored() -> None:
    assert parse_rate_limit_headers({}, NOW).is_empty
    garbage = {"x-ratelimit-remaining-requests": "many", "x-ratelimit-reset-tokens": "later"}
    assert parse_rate_limit_headers(garbage, NOW).is_empty


def test_naive_rfc3339_reset_is_ignored() -> None:
    headers = {"anthropic-ratelimit-requests-reset": "2025-01-01T00:00:00"}
    assert parse_rate_limit_headers(headers, NOW).reset_requests_after is None
