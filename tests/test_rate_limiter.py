"""Local rate limits: the sliding-log algorithms, the RPM guarantee, TPM reservations, wait/skip, pacing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from model_orchestrator.core.errors import RateLimitedError, RateLimitExhaustedError
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.tokens import estimate_message_tokens
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.rate_limit_headers import parse_rate_limit_headers
from model_orchestrator.resilience import sliding_window
from model_orchestrator.resilience.rate_limiter import (
    RateLimitedModel,
    RateLimitPolicy,
    RequestLog,
    learn_from_snapshot,
    request_ready_at,
    take_request,
)
from model_orchestrator.resilience.sliding_window import WindowLog
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.testing import FakeClock, FunctionModel, ScriptedModel

REQUEST = ChatRequest.from_prompt("hello there", max_tokens=100)
PROMPT_TOKENS = estimate_message_tokens(REQUEST.messages)


class SendLog:
    """An inner model that records when each call reached it and answers with fixed usage."""

    def __init__(
        self, clock: FakeClock, usage: Usage | None = None, limits: RateLimitSnapshot | None = None
    ) -> None:
        self.clock = clock
        self.sent: list[float] = []
        self.usage = usage or Usage(10, 5)
        self.limits = limits or RateLimitSnapshot()
        self.model = FunctionModel(self._answer, name="inner")

    def _answer(self, request: ChatRequest) -> Completion:
        self.sent.append(self.clock.monotonic())
        return Completion("ok", "inner", "p", "d", self.usage, rate_limits=self.limits)


def limited(
    policy: RateLimitPolicy, clock: FakeClock | None = None, **inner_options: object
) -> tuple[RateLimitedModel, SendLog, MemoryStateStore]:
    clock = clock or FakeClock()
    inner = SendLog(clock, **inner_options)  # type: ignore[arg-type]
    store = MemoryStateStore()
    model = RateLimitedModel(inner.model, deployment="dep-a", policy=policy, store=store, clock=clock)
    return model, inner, store


def most_in_any_window(sends: list[float], window: float = 60.0) -> int:
    """The largest number of sends inside any half-open window [t, t + window)."""
    return max((sum(1 for s in sends if t <= s < t + window) for t in sends), default=0)


# --- pure algorithms ---------------------------------------------------------------------------


def test_window_allows_the_limit_then_waits_for_the_oldest_slot_to_age_out() -> None:
    log = WindowLog()
    for now in (0.0, 1.0, 2.0):
        log, slot = sliding_window.take(log, now, 3, 1)
        assert slot == int(now)
    assert sliding_window.ready_at(log, 10.0, 3, 1) == 60.0
    assert sliding_window.take(log, 59.999, 3, 1)[1] is None
    log, slot = sliding_window.take(log, 60.0, 3, 1)
    assert slot == 60 and [(s.index, s.amount) for s in log.slots] == [(1, 1), (2, 1), (60, 1)]
    assert log.total == 3


def test_sends_in_one_slot_count_until_a_minute_after_the_latest() -> None:
    log = WindowLog()
    for now in (5.1, 5.5, 5.9):
        log, _ = sliding_window.take(log, now, 3, 1)
    assert len(log.slots) == 1 and log.slots[0].last == 5.9
    assert sliding_window.ready_at(log, 6.0, 3, 1) == 65.9  # conservative: never sooner than exact


def test_weighted_amounts_wait_for_enough_room_and_reject_the_impossible() -> None:
    log, _ = sliding_window.take(WindowLog(), 0.0, 1000, 600)
    log, _ = sliding_window.take(log, 10.0, 1000, 300)
    assert sliding_window.ready_at(log, 20.0, 1000, 100) == 20.0
    assert sliding_window.ready_at(log, 20.0, 1000, 500) == 60.0
    assert sliding_window.ready_at(log, 20.0, 1000, 1000) == 70.0
    assert sliding_window.ready_at(log, 20.0, 1000, 1001) is None
    assert sliding_window.adjust(log, 0, -560).total == 340
    assert sliding_window.adjust(log, 10, +50).slots[1].amount == 350
    assert sliding_window.adjust(log, 99, 5) is log
    assert sliding_window.take(log, 65.0, 1000, 10)[0].total == 310  # the first slot left the window


def test_request_log_records_pacing_only_sends_without_counting_them() -> None:
    log, took, slot = take_request(RequestLog(), 3.0, rpm=None)
    assert took and slot is None and log.last_sent == 3.0 and log.window.total == 0
    counted, took, slot = take_request(RequestLog(), 3.0, rpm=1)
    assert took and slot == 3 and take_request(counted, 4.0, rpm=1)[1] is False


def test_a_send_keeps_every_other_field_of_the_request_log() -> None:
    # The log after a send is built field by field (not with ``replace``): nothing else may be lost.
    paced = RequestLog(last_sent=1.0, not_before=2.0, pace_interval=0.5, pace_until=9.0)
    log, took, _ = take_request(paced, 3.0, rpm=None)
    assert took and log == replace(paced, last_sent=3.0)


def test_snapshots_pace_sends_near_exhaustion_and_stop_them_at_zero() -> None:
    low = RateLimitSnapshot(remaining_requests=4, limit_requests=100, reset_requests_after=20.0)
    log = learn_from_snapshot(RequestLog(last_sent=0.0), low, now=1.0)
    assert request_ready_at(log, 1.0, rpm=None) == 5.0  # 20 s / 4 left
    plenty = RateLimitSnapshot(remaining_requests=50, limit_requests=100, reset_requests_after=20.0)
    assert request_ready_at(learn_from_snapshot(log, plenty, now=1.0), 1.0, rpm=None) == 1.0
    none_left = RateLimitSnapshot(remaining_requests=0, reset_requests_after=7.0)
    assert request_ready_at(learn_from_snapshot(RequestLog(), none_left, now=3.0), 3.0, rpm=None) == 10.0
    retry_after = RateLimitSnapshot(retry_after=2.5)
    assert request_ready_at(learn_from_snapshot(RequestLog(), retry_after, now=3.0), 3.0, rpm=None) == 5.5


# --- the RPM guarantee -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
async def test_rpm_is_never_exceeded_in_any_60_second_window(seed: int) -> None:
    rng = random.Random(seed)
    rpm = rng.choice([1, 3, 7, 20])
    clock = FakeClock()
    model, inner, _ = limited(RateLimitPolicy(rpm=rpm, max_wait=1e9), clock)
    for _ in range(400):
        # Bursty arrivals: mostly close together, sometimes long gaps.
        clock.advance(rng.expovariate(rpm / 20) if rng.random() < 0.9 else rng.uniform(30, 200))
        await model.complete(REQUEST)
    sends = inner.sent
    assert len(sends) == 400
    assert all(sends[i] + 60.0 <= sends[i + rpm] for i in range(len(sends) - rpm))
    assert most_in_any_window(sends) <= rpm


async def test_rpm_holds_for_concurrent_callers_too() -> None:
    clock = FakeClock()
    model, inner, _ = limited(RateLimitPolicy(rpm=5, max_wait=1e9), clock)
    await asyncio.gather(*(model.complete(REQUEST) for _ in range(40)))
    assert len(inner.sent) == 40
    assert most_in_any_window(inner.sent) <= 5


async def test_a_burst_at_a_minute_boundary_cannot_double_the_rate() -> None:
    clock = FakeClock(start=59.0)
    model, inner, _ = limited(RateLimitPolicy(rpm=5, max_wait=1e9), clock)
    for _ in range(5):
        await model.complete(REQUEST)
    clock.advance(2.0)  # a bucket refilled on the minute would let 5 more through at 61 s
    for _ in range(5):
        await model.complete(REQUEST)
    assert inner.sent == [59.0] * 5 + [119.0] * 5


async def test_full_rate_is_still_available() -> None:
    clock = FakeClock()
    model, inner, _ = limited(RateLimitPolicy(rpm=10, max_wait=1e9), clock)
    for _ in range(30):
        await model.complete(REQUEST)
    assert inner.sent == [0.0] * 10 + [60.0] * 10 + [120.0] * 10


# --- wait, skip, max_wait, deadline ------------------------------------------------------------


async def test_wait_mode_sleeps_until_there_is_room() -> None:
    model, inner, _ = limited(RateLimitPolicy(rpm=1, max_wait=100.0))
    await model.complete(REQUEST)
    await model.complete(REQUEST)
    assert inner.sent == [0.0, 60.0] and inner.model.requests and len(inner.model.requests) == 2


async def test_skip_mode_raises_at_once_with_when_to_come_back() -> None:
    model, inner, _ = limited(RateLimitPolicy(rpm=1, on_limit="skip"))
    await model.complete(REQUEST)
    with pytest.raises(RateLimitExhaustedError) as caught:
        await model.complete(REQUEST)
    assert caught.value.retry_after == pytest.approx(60.0)
    assert caught.value.reason == "rate_limited_locally" and caught.value.deployment == "dep-a"
    assert inner.sent == [0.0]


async def test_wait_mode_does_not_wait_when_the_request_has_somewhere_else_to_go() -> None:
    model, inner, _ = limited(RateLimitPolicy(rpm=1, max_wait=100.0))
    await model.complete(REQUEST)
    with pytest.raises(RateLimitExhaustedError, match="another deployment to try"):
        await model.complete(replace(REQUEST, has_fallback=True))
    assert inner.sent == [0.0]


async def test_a_wait_longer_than_max_wait_raises_and_a_shorter_one_waits() -> None:
    clock = FakeClock()
    model, inner, _ = limited(RateLimitPolicy(rpm=1, max_wait=5.0), clock)
    await model.complete(REQUEST)
    with pytest.raises(RateLimitExhaustedError):
        await model.complete(REQUEST)
    assert clock.sleeps == []
    clock.advance(56.0)
    await model.complete(REQUEST)
    assert clock.sleeps == [pytest.approx(4.0)] and inner.sent == [0.0, 60.0]


async def test_no_wait_reaches_past_the_deadline() -> None:
    clock = FakeClock()
    model, inner, _ = limited(RateLimitPolicy(rpm=1, max_wait=100.0), clock)
    await model.complete(REQUEST)
    with pytest.raises(RateLimitExhaustedError, match="deadline"):
        await model.complete(REQUEST.with_options(deadline=30.0))
    assert clock.sleeps == [] and inner.sent == [0.0]


async def test_no_limits_means_no_state_and_no_waiting() -> None:
    model, inner, store = limited(RateLimitPolicy(adaptive=False))
    for _ in range(100):
        await model.complete(REQUEST)
    assert len(inner.sent) == 100 and await store.items("") == {}


# --- TPM ---------------------------------------------------------------------------------------


async def test_tokens_are_reserved_then_corrected_by_reported_usage() -> None:
    clock = FakeClock()
    model, _, store = limited(RateLimitPolicy(tpm=1000), clock, usage=Usage(30, 12))
    assert model.estimate_tokens(REQUEST) == PROMPT_TOKENS + 100
    await model.complete(REQUEST)
    log = await store.get("tpm:dep-a")
    assert isinstance(log, WindowLog) and log.total == 42


async def test_reported_usage_above_the_reservation_is_charged() -> None:
    clock = FakeClock()
    model, inner, store = limited(RateLimitPolicy(tpm=1000, max_wait=100.0), clock, usage=Usage(500, 400))
    await model.complete(REQUEST)
    log = await store.get("tpm:dep-a")
    assert isinstance(log, WindowLog) and log.total == 900
    await model.complete(REQUEST)  # 900 used + ~104 reserved > 1000: wait for the first to age out
    assert inner.sent == [0.0, 60.0]


async def test_estimated_usage_does_not_replace_the_reservation() -> None:
    model, _, store = limited(RateLimitPolicy(tpm=1000), usage=Usage(1, 1, estimated=True))
    await model.complete(REQUEST)
    log = await store.get("tpm:dep-a")
    assert isinstance(log, WindowLog) and log.total == PROMPT_TOKENS + 100


async def test_the_reservation_uses_the_profile_when_the_request_sets_no_max_tokens() -> None:
    store = MemoryStateStore()
    profile = ModelProfile(name="m", max_output_tokens=64)
    model = RateLimitedModel(
        ScriptedModel(["x"]), deployment="d", policy=RateLimitPolicy(tpm=10_000), store=store, profile=profile
    )
    assert model.estimate_tokens(ChatRequest.from_prompt("hello there")) == PROMPT_TOKENS + 64


async def test_a_call_bigger_than_the_token_limit_is_refused_without_a_call() -> None:
    model, inner, _ = limited(RateLimitPolicy(tpm=50))
    with pytest.raises(RateLimitExhaustedError, match="tokens per minute"):
        await model.complete(REQUEST)
    assert inner.sent == []


async def test_rpm_and_tpm_together_record_both_or_neither() -> None:
    clock = FakeClock()
    model, inner, store = limited(
        RateLimitPolicy(rpm=10, tpm=300, on_limit="skip"), clock, usage=Usage(200, 50)
    )
    await model.complete(REQUEST)
    with pytest.raises(RateLimitExhaustedError):
        await model.complete(REQUEST)  # room for requests, none for tokens
    log = await store.get("rpm:dep-a")
    assert isinstance(log, RequestLog) and log.window.total == 1
    assert inner.sent == [0.0]


# --- adaptive pacing ---------------------------------------------------------------------------


async def test_low_remaining_requests_space_calls_until_the_reset() -> None:
    low = RateLimitSnapshot(remaining_requests=5, limit_requests=100, reset_requests_after=10.0)
    clock = FakeClock()
    model, inner, _ = limited(RateLimitPolicy(), clock, limits=low)
    for _ in range(3):
        await model.complete(REQUEST)
    assert inner.sent == [0.0, 2.0, 4.0]


async def test_zero_remaining_requests_pause_until_the_reset() -> None:
    empty = RateLimitSnapshot(remaining_requests=0, limit_requests=100, reset_requests_after=7.0)
    clock = FakeClock()
    model, inner, _ = limited(RateLimitPolicy(max_wait=10.0), clock, limits=empty)
    await model.complete(REQUEST)
    await model.complete(REQUEST)
    assert inner.sent == [0.0, 7.0]


async def test_seed_002_unsuffixed_headers_pace_like_the_suffixed_ones() -> None:
    clock = FakeClock()
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(clock.wall()) + 7)}
    empty = parse_rate_limit_headers(headers, clock.wall())
    model, inner, _ = limited(RateLimitPolicy(max_wait=10.0), clock, limits=empty)
    await model.complete(REQUEST)
    await model.complete(REQUEST)
    assert inner.sent == [0.0, 7.0]


async def test_a_429_retry_after_holds_every_caller_back() -> None:
    clock = FakeClock()
    store = MemoryStateStore()
    inner = ScriptedModel([RateLimitedError("slow down", retry_after=3.0), "ok"])
    model = RateLimitedModel(inner, deployment="d", policy=RateLimitPolicy(), store=store, clock=clock)
    with pytest.raises(RateLimitedError):
        await model.complete(REQUEST)
    await model.complete(REQUEST)
    assert clock.sleeps == [3.0]


async def test_headers_are_ignored_when_not_adaptive() -> None:
    empty = RateLimitSnapshot(remaining_requests=0, limit_requests=100, reset_requests_after=7.0)
    model, inner, _ = limited(RateLimitPolicy(adaptive=False), limits=empty)
    await model.complete(REQUEST)
    await model.complete(REQUEST)
    assert inner.sent == [0.0, 0.0]


# --- streams -----------------------------------------------------------------------------------


async def test_a_stream_is_limited_and_settled_with_its_final_usage() -> None:
    clock = FakeClock()
    store = MemoryStateStore()
    inner = ScriptedModel([Completion("streamed text", "m", "p", "d", Usage(20, 7))] * 2)
    model = RateLimitedModel(
        inner,
        deployment="d",
        policy=RateLimitPolicy(rpm=1, tpm=1000, max_wait=100.0),
        store=store,
        clock=clock,
    )
    assert "".join([d.text async for d in model.stream(REQUEST)]) == "streamed text"
    log = await store.get("tpm:d")
    assert isinstance(log, WindowLog) and log.total == 27
    assert "".join([d.text async for d in model.stream(REQUEST)]) == "streamed text"
    assert clock.sleeps == [60.0]


async def test_abandoning_a_stream_closes_the_inner_one() -> None:
    closed: list[bool] = []

    class Endless:
        name = "endless"

        async def complete(self, request: ChatRequest) -> Completion:
            return Completion("x", "m", "p", "d", Usage())

        async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
            try:
                while True:
                    yield StreamDelta(text="x")
            finally:
                closed.append(True)

        async def aclose(self) -> None:
            closed.clear()

    model = RateLimitedModel(
        Endless(), deployment="d", policy=RateLimitPolicy(rpm=5), store=MemoryStateStore()
    )
    stream = model.stream(REQUEST)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
