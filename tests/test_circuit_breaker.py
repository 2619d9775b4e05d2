"""Circuit breaker: pure transitions with explicit times, then the wrapper over scripted models."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from model_orchestrator.core.errors import (
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ContentFilteredError,
    ContextWindowExceededError,
    CoolingDownError,
    DeadlineExceededError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    UpstreamConnectionError,
)
from model_orchestrator.core.events import (
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    Event,
    EventBus,
    RecordingSink,
)
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.resilience.circuit_breaker import (
    BreakerPolicy,
    BreakerState,
    CircuitBreakerModel,
    allow,
    breaker_state,
    record_failure,
    record_success,
    release,
    window_counts,
)
from model_orchestrator.resilience.failure_rule import counts_as_failure
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.testing import FakeClock, FunctionModel, ScriptedModel
from model_orchestrator.testing.scripted import ScriptEntry

REQUEST = ChatRequest.from_prompt("hello", request_id="req-1")
FAST = BreakerPolicy(failure_threshold=3, reset_timeout=30.0)


def fail_n(policy: BreakerPolicy, times: list[float], state: BreakerState | None = None) -> BreakerState:
    for now in times:
        state = record_failure(state, policy, now)
    assert state is not None
    return state


# ---- pure transitions ------------------------------------------------------------------------------


def test_opens_after_n_consecutive_failures() -> None:
    state = fail_n(FAST, [1.0, 2.0])
    assert state.state == "closed" and state.consecutive_failures == 2
    state = record_failure(state, FAST, 3.0)
    assert state.state == "open" and state.opened_at == 3.0


def test_a_success_resets_the_consecutive_count() -> None:
    state = record_success(fail_n(FAST, [1.0, 2.0]), FAST, 3.0)
    state = fail_n(FAST, [4.0, 5.0], state)
    assert state.state == "closed" and state.consecutive_failures == 2


def test_opens_on_failure_rate_over_the_window_once_min_calls_are_reached() -> None:
    policy = BreakerPolicy(failure_threshold=100, failure_rate=0.5, window_seconds=60.0, min_calls=10)
    state: BreakerState | None = None
    for second in range(9):  # alternating: never two failures in a row
        record = record_failure if second % 2 else record_success
        state = record(state, policy, float(second))
    assert state is not None and state.state == "closed"  # 4 failures in 9 calls, below min_calls
    state = record_failure(state, policy, 9.0)  # 5 of 10 = 0.5
    assert state.state == "open" and state.opened_at == 9.0
    assert window_counts(state, policy, 9.0) == (10, 5)


def test_outcomes_older_than_the_window_do_not_count() -> None:
    policy = BreakerPolicy(failure_threshold=100, failure_rate=0.5, window_seconds=60.0, min_calls=10)
    state: BreakerState | None = record_success(None, policy, 0.0)
    for second in range(1, 9):  # 8 failures of 9 calls: below min_calls, so still closed
        state = record_failure(state, policy, float(second))
    for offset in range(10):  # 4 failures of 10, minutes later; with the old ones it would be 12 of 19
        state = (record_failure if offset % 3 == 0 else record_success)(state, policy, 200.0 + offset)
    assert state is not None and state.state == "closed"
    assert window_counts(state, policy, 209.0) == (10, 4)


def test_open_refuses_with_the_remaining_open_time() -> None:
    state = fail_n(FAST, [10.0, 10.0, 10.0])
    new, allowed, retry_after = allow(state, FAST, 25.0)
    assert (new, allowed, retry_after) == (state, False, 15.0)


def test_half_open_after_the_reset_timeout_lets_one_probe_through() -> None:
    state = fail_n(FAST, [10.0, 10.0, 10.0])
    probing, allowed, _ = allow(state, FAST, 40.0)
    assert allowed and probing.state == "half_open" and probing.half_open_in_flight == 1
    again, allowed, retry_after = allow(probing, FAST, 40.5)
    assert (again, allowed, retry_after) == (probing, False, None)


def test_k_probes_run_at_once_and_k_successes_close() -> None:
    policy = BreakerPolicy(failure_threshold=1, reset_timeout=5.0, half_open_probes=2)
    state = fail_n(policy, [0.0])
    first, ok1, _ = allow(state, policy, 5.0)
    second, ok2, _ = allow(first, policy, 5.0)
    third, ok3, _ = allow(second, policy, 5.0)
    assert (ok1, ok2, ok3) == (True, True, False)
    one_back = record_success(third, policy, 6.0, probe=True)
    assert one_back.state == "half_open" and one_back.half_open_successes == 1
    closed = record_success(one_back, policy, 6.5, probe=True)
    assert closed == BreakerState()


def test_a_failed_probe_reopens_for_a_full_reset_timeout() -> None:
    state = fail_n(FAST, [0.0, 0.0, 0.0])
    probing, _, _ = allow(state, FAST, 30.0)
    reopened = record_failure(probing, FAST, 31.0, probe=True)
    assert reopened.state == "open" and reopened.opened_at == 31.0 and reopened.half_open_in_flight == 0
    assert allow(reopened, FAST, 40.0)[1:] == (False, 21.0)


def test_an_uncounted_probe_frees_its_slot() -> None:
    probing, _, _ = allow(fail_n(FAST, [0.0, 0.0, 0.0]), FAST, 30.0)
    freed = release(probing, probe=True)
    assert freed.state == "half_open" and freed.half_open_in_flight == 0
    assert allow(freed, FAST, 30.1)[1] is True


def test_a_lost_probe_is_replaced_after_a_reset_timeout() -> None:
    probing, _, _ = allow(fail_n(FAST, [0.0, 0.0, 0.0]), FAST, 30.0)
    assert allow(probing, FAST, 59.0)[1] is False
    assert allow(probing, FAST, 60.0)[1] is True


def test_late_outcomes_of_calls_let_in_before_opening_are_ignored() -> None:
    state = fail_n(FAST, [0.0, 0.0, 0.0])
    assert record_success(state, FAST, 1.0) == state
    assert record_failure(state, FAST, 1.0) == state
    probing, _, _ = allow(state, FAST, 30.0)
    assert record_success(probing, FAST, 30.5) == probing  # not the probe
    assert record_failure(probing, FAST, 30.5) == probing


@pytest.mark.parametrize(
    ("error", "counted"),
    [
        (ServerError("boom"), True),
        (ServerError("overloaded", status_code=529), True),
        (UpstreamConnectionError("reset"), True),
        (RequestTimeoutError("slow"), True),
        (AuthenticationError("bad key"), True),
        (BadRequestError("no such model", status_code=404), True),
        (DeadlineExceededError("caller ran out of time"), False),
        (BadRequestError("malformed"), False),
        (ContextWindowExceededError("too long"), False),
        (ContentFilteredError("blocked"), False),
        (RateLimitedError("slow down", retry_after=1.0), False),
        (CircuitOpenError("open"), False),
        (CoolingDownError("cooling"), False),
        (RuntimeError("our own bug"), False),
    ],
)
def test_which_errors_count(error: BaseException, counted: bool) -> None:
    assert counts_as_failure(error) is counted


def test_policy_rejects_nonsense() -> None:
    from model_orchestrator.core.errors import ConfigError

    with pytest.raises(ConfigError):
        BreakerPolicy(failure_threshold=0)
    with pytest.raises(ConfigError):
        BreakerPolicy(failure_rate=1.5)


# ---- the wrapper -----------------------------------------------------------------------------------


@dataclass
class Rig:
    inner: FunctionModel
    clock: FakeClock = field(default_factory=FakeClock)
    store: MemoryStateStore = field(default_factory=MemoryStateStore)
    sink: RecordingSink = field(default_factory=RecordingSink)
    policy: BreakerPolicy = FAST

    def __post_init__(self) -> None:
        bus = EventBus()
        bus.subscribe(self.sink)
        self.model = CircuitBreakerModel(
            self.inner,
            deployment="m@host",
            provider="p",
            policy=self.policy,
            store=self.store,
            clock=self.clock,
            bus=bus,
        )

    def transitions(self) -> list[type[Event]]:
        kinds = (CircuitOpened, CircuitHalfOpened, CircuitClosed)
        return [type(e) for e in self.sink.events if isinstance(e, kinds)]


def rig(*script: ScriptEntry, policy: BreakerPolicy = FAST) -> Rig:
    return Rig(ScriptedModel(script, name="m"), policy=policy)


async def fail_times(r: Rig, count: int) -> None:
    for _ in range(count):
        with pytest.raises(ServerError):
            await r.model.complete(REQUEST)


async def test_open_circuit_skips_without_calling_the_inner_model() -> None:
    r = rig(*[ServerError("boom")] * 3, "never sent")
    await fail_times(r, 3)
    r.clock.advance(10.0)
    with pytest.raises(CircuitOpenError) as caught:
        await r.model.complete(REQUEST)
    assert len(r.inner.requests) == 3
    error = caught.value
    assert error.retry_after == pytest.approx(20.0)
    assert (error.deployment, error.provider, error.reason) == ("m@host", "p", "circuit_open")
    assert (await breaker_state(r.store, "m@host")).state == "open"


async def test_recovery_events_in_order_and_the_probe_closes_the_circuit() -> None:
    r = rig(*[ServerError("boom")] * 3, "back")
    await fail_times(r, 3)
    r.clock.advance(30.0)
    assert (await r.model.complete(REQUEST)).text == "back"
    assert r.transitions() == [CircuitOpened, CircuitHalfOpened, CircuitClosed]
    opened = r.sink.of_type(CircuitOpened)[0]
    assert isinstance(opened, CircuitOpened)
    assert (opened.failures, opened.reset_after, opened.deployment, opened.request_id) == (
        3,
        30.0,
        "m@host",
        "req-1",
    )


async def test_a_failing_probe_reopens() -> None:
    r = rig(*[ServerError("boom")] * 4, "late")
    await fail_times(r, 3)
    r.clock.advance(30.0)
    await fail_times(r, 1)
    assert r.transitions() == [CircuitOpened, CircuitHalfOpened, CircuitOpened]
    with pytest.raises(CircuitOpenError) as caught:
        await r.model.complete(REQUEST)
    assert caught.value.retry_after == pytest.approx(30.0)


@pytest.mark.parametrize(
    "error",
    [
        DeadlineExceededError("the caller's deadline passed"),
        BadRequestError("malformed"),
        ContentFilteredError("blocked"),
        RateLimitedError("slow down", retry_after=1.0),
    ],
)
async def test_errors_that_are_not_the_deployments_fault_never_open_it(error: Exception) -> None:
    r = rig(*[error] * 6, "fine")
    for _ in range(6):
        with pytest.raises(type(error)):
            await r.model.complete(REQUEST)
    assert (await r.model.complete(REQUEST)).text == "fine"
    assert r.transitions() == []


async def test_an_empty_answer_is_a_counted_soft_failure() -> None:
    r = rig("", "   \n", "\t", "never sent")
    for _ in range(3):
        with pytest.raises(ServerError) as caught:
            await r.model.complete(REQUEST)
        assert caught.value.retryable and caught.value.status_code == 502
        assert "empty answer" in caught.value.message and caught.value.deployment == "m@host"
    assert r.transitions() == [CircuitOpened]
    with pytest.raises(CircuitOpenError):
        await r.model.complete(REQUEST)


async def test_a_stream_that_raises_counts_and_an_empty_stream_is_a_soft_failure() -> None:
    r = rig(ServerError("mid-stream"), "", "never sent")
    with pytest.raises(ServerError):
        [d async for d in r.model.stream(REQUEST)]
    with pytest.raises(ServerError) as caught:
        [d async for d in r.model.stream(REQUEST)]
    assert "empty answer" in caught.value.message
    assert (await breaker_state(r.store, "m@host")).consecutive_failures == 2


async def test_a_stream_keeps_leading_whitespace_and_counts_as_success() -> None:
    r = Rig(FunctionModel(lambda _: "  hi there", chunk_size=1))
    deltas = [d async for d in r.model.stream(REQUEST)]
    assert "".join(d.text for d in deltas) == "  hi there"
    assert deltas[-1].finish_reason is not None
    state = await breaker_state(r.store, "m@host")
    assert window_counts(state, FAST, r.clock.monotonic()) == (1, 0)


async def test_a_probe_stream_closed_early_is_not_counted_and_frees_the_slot() -> None:
    r = rig(*[ServerError("boom")] * 3, "a long answer", "next")
    await fail_times(r, 3)
    r.clock.advance(30.0)
    deltas = r.model.stream(REQUEST)
    first = await anext(deltas)
    assert first.text
    await deltas.aclose()  # type: ignore[attr-defined]
    state = await breaker_state(r.store, "m@host")
    assert state.state == "half_open" and state.half_open_in_flight == 0
    assert (await r.model.complete(REQUEST)).text == "next"
    assert r.transitions() == [CircuitOpened, CircuitHalfOpened, CircuitClosed]


async def test_deployments_sharing_a_store_share_the_breaker() -> None:
    first = rig(*[ServerError("boom")] * 3)
    second = Rig(ScriptedModel(["never sent"]), store=first.store, clock=first.clock)
    await fail_times(first, 3)
    with pytest.raises(CircuitOpenError):
        await second.model.complete(REQUEST)
    assert second.inner.requests == []


async def test_opening_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    r = rig(*[ServerError("boom")] * 3)
    with caplog.at_level(logging.INFO, logger="model_orchestrator.resilience.circuit_breaker"):
        await fail_times(r, 3)
    warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 1 and "m@host" in warnings[0].getMessage()
