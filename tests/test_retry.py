"""RetryPolicy decisions and RetryingModel: backoff, retry-after, deadline, shared budget, soft failures."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

from model_orchestrator.core.errors import (
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ContentFilteredError,
    ContextWindowExceededError,
    CoolingDownError,
    DeadlineExceededError,
    ProviderError,
    RateLimitedError,
    RateLimitExhaustedError,
    RequestTimeoutError,
    ServerError,
    UpstreamConnectionError,
)
from model_orchestrator.core.events import EventBus, RecordingSink, RetryScheduled
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.tools import ToolCall
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.resilience.empty_answer import is_empty
from model_orchestrator.resilience.retry import RetryingModel, RetryPolicy, is_retryable
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, FunctionModel, Reply, ScriptedModel

NO_JITTER = RetryPolicy(jitter="none")
REQUEST = ChatRequest.from_prompt("hello", request_id="req-1")
CALL = ToolCall("call-1", "lookup", "{}")


def retrying(
    inner: object, policy: RetryPolicy = NO_JITTER, clock: FakeClock | None = None
) -> tuple[RetryingModel, FakeClock, RecordingSink]:
    clock = clock or FakeClock()
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    model = RetryingModel(
        inner,  # type: ignore[arg-type]
        deployment="dep-a",
        policy=policy,
        clock=clock,
        bus=bus,
        rng=random.Random(7),
    )
    return model, clock, sink


def retries(sink: RecordingSink) -> list[RetryScheduled]:
    return [e for e in sink.events if isinstance(e, RetryScheduled)]


# --- the policy, no model or clock -------------------------------------------------------------


def test_backoff_grows_by_the_multiplier_and_is_capped() -> None:
    rng = random.Random(0)
    delays = [NO_JITTER.backoff(retry, rng) for retry in range(1, 9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert NO_JITTER.backoff(10_000, rng) == 8.0  # no overflow for absurd attempt numbers


@pytest.mark.parametrize(("jitter", "low_share"), [("full", 0.0), ("equal", 0.5)])
def test_jitter_stays_within_its_bounds_and_is_reproducible(jitter: str, low_share: float) -> None:
    policy = RetryPolicy(jitter=jitter)  # type: ignore[arg-type]
    for retry in range(1, 8):
        ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
        draws = [policy.backoff(retry, random.Random(seed)) for seed in range(200)]
        assert all(low_share * ceiling <= d <= ceiling for d in draws)
        assert max(draws) - min(draws) > 0.3 * ceiling * (1 - low_share)  # it really jitters
    same = [policy.backoff(3, random.Random(42)) for _ in range(2)]
    assert same[0] == same[1]


def test_retry_after_raises_the_wait_but_never_lowers_it() -> None:
    rng = random.Random(0)
    assert NO_JITTER.delay_after(RateLimitedError("slow", retry_after=5.0), 1, rng) == 5.0
    assert NO_JITTER.delay_after(RateLimitedError("slow", retry_after=0.1), 3, rng) == 2.0
    assert NO_JITTER.waits_too_long(RateLimitedError("slow", retry_after=10.5))
    assert not NO_JITTER.waits_too_long(RateLimitedError("slow", retry_after=10.0))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RateLimitedError("429"), True),
        (RequestTimeoutError("408"), True),
        (ServerError("500"), True),
        (ServerError("529", status_code=529), True),
        (UpstreamConnectionError("reset"), True),
        (BadRequestError("400"), False),
        (AuthenticationError("401"), False),
        (AuthenticationError("403", status_code=403), False),
        (BadRequestError("404", status_code=404), False),
        (ProviderError("mislabelled 404", status_code=404, retryable=True), False),
        (ContextWindowExceededError("too long"), False),
        (ContentFilteredError("blocked"), False),
        (DeadlineExceededError("caller's deadline"), False),
        (CircuitOpenError("open", retry_after=5.0), False),
        (CoolingDownError("cooling", retry_after=5.0), False),
        (RateLimitExhaustedError("local limit"), False),
        (ValueError("not ours"), False),
    ],
)
def test_only_retryable_provider_errors_are_retried(error: BaseException, expected: bool) -> None:
    assert is_retryable(error) is expected


def test_empty_means_no_visible_text_and_no_tool_call() -> None:
    def answer(
        text: str, finish: FinishReason = FinishReason.STOP, calls: tuple[ToolCall, ...] = ()
    ) -> Completion:
        return Completion(text, "m", "p", "d", Usage(), finish_reason=finish, tool_calls=calls)

    assert is_empty(answer("")) and is_empty(answer(" \n\t"))
    assert not is_empty(answer("x"))
    # The calls decide, not the finish reason: some providers finish a tool call with "stop".
    assert not is_empty(answer("", FinishReason.STOP, (CALL,)))
    assert is_empty(answer("", FinishReason.TOOL_CALLS))


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter="some")  # type: ignore[arg-type]


# --- RetryingModel -----------------------------------------------------------------------------


async def test_retries_retryable_failures_with_growing_backoff_and_events() -> None:
    inner = ScriptedModel([ServerError("boom", status_code=503), UpstreamConnectionError("reset"), "fine"])
    model, clock, sink = retrying(inner)
    completion = await model.complete(REQUEST)
    assert completion.text == "fine"
    assert clock.sleeps == [0.5, 1.0]
    events = retries(sink)
    assert [(e.attempt, e.delay, e.error_type, e.model) for e in events] == [
        (1, 0.5, "ServerError", "dep-a"),
        (2, 1.0, "UpstreamConnectionError", "dep-a"),
    ]
    assert all(e.request_id == "req-1" and e.max_attempts == 3 for e in events)


async def test_gives_up_after_max_attempts_with_the_last_error_itself() -> None:
    last = ServerError("third")
    inner = ScriptedModel([ServerError("first"), ServerError("second"), last, "never"])
    model, clock, _ = retrying(inner)
    with pytest.raises(ServerError) as caught:
        await model.complete(REQUEST)
    assert caught.value is last
    assert inner.remaining == 1 and len(clock.sleeps) == 2


async def test_retry_after_of_the_latest_error_wins_over_backoff() -> None:
    inner = ScriptedModel(
        [RateLimitedError("slow", retry_after=4.0), RateLimitedError("slower", retry_after=2.5), "ok"]
    )
    model, clock, sink = retrying(inner)
    assert (await model.complete(REQUEST)).text == "ok"
    # Reusing the first error's 4.0 for the second wait would be the known bug.
    assert clock.sleeps == [4.0, 2.5]
    assert [e.delay for e in retries(sink)] == [4.0, 2.5]


async def test_retry_after_is_honoured_even_with_full_jitter() -> None:
    inner = ScriptedModel([RateLimitedError("slow", retry_after=3.0), "ok"])
    model, clock, _ = retrying(inner, RetryPolicy())
    await model.complete(REQUEST)
    assert clock.sleeps == [3.0]  # full jitter of a 0.5 s backoff stays below the 3 s asked for


async def test_a_retry_after_longer_than_allowed_is_raised_at_once() -> None:
    error = RateLimitedError("come back in a minute", retry_after=60.0)
    inner = ScriptedModel([error, "never"])
    model, clock, sink = retrying(inner)
    with pytest.raises(RateLimitedError) as caught:
        await model.complete(REQUEST)
    assert caught.value is error and caught.value.retry_after == 60.0
    assert clock.sleeps == [] and inner.remaining == 1 and not sink.events


async def test_no_sleep_crosses_the_deadline() -> None:
    clock = FakeClock(start=100.0)
    inner = ScriptedModel([ServerError("a"), ServerError("b"), "late"])
    model, clock, _ = retrying(inner, clock=clock)
    with pytest.raises(ServerError, match="b"):
        await model.complete(REQUEST.with_options(deadline=101.2))
    assert clock.sleeps == [0.5]  # the next 1.0 s wait would end at 101.5, past the deadline
    assert clock.monotonic() <= 101.2


async def test_a_retry_after_past_the_deadline_is_not_waited_for() -> None:
    inner = ScriptedModel([RateLimitedError("slow", retry_after=5.0), "late"])
    model, clock, _ = retrying(inner)
    with pytest.raises(RateLimitedError):
        await model.complete(REQUEST.with_options(deadline=3.0))
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("bad"),
        AuthenticationError("key"),
        ContextWindowExceededError("too long"),
        ContentFilteredError("blocked"),
        DeadlineExceededError("caller's deadline"),
        CircuitOpenError("open", retry_after=1.0),
        CoolingDownError("cooling", retry_after=1.0),
        RateLimitExhaustedError("local limit", retry_after=1.0),
    ],
)
async def test_non_retryable_and_skipped_deployments_are_not_retried(error: ProviderError) -> None:
    inner = ScriptedModel([error, "never"])
    model, clock, _ = retrying(inner)
    with pytest.raises(type(error)):
        await model.complete(REQUEST)
    assert inner.remaining == 1 and clock.sleeps == []


async def test_empty_answers_are_retried_as_server_errors() -> None:
    inner = ScriptedModel(["", "  \n", "real"])
    model, _, sink = retrying(inner)
    assert (await model.complete(REQUEST)).text == "real"
    assert [e.error_type for e in retries(sink)] == ["ServerError", "ServerError"]


async def test_only_empty_answers_end_in_a_server_error() -> None:
    model, _, _ = retrying(ScriptedModel(["", "", ""]))
    with pytest.raises(ServerError, match="no text"):
        await model.complete(REQUEST)


async def test_empty_answers_pass_when_not_retried_and_tool_calls_are_not_empty() -> None:
    model, _, _ = retrying(ScriptedModel([" "]), RetryPolicy(retry_on_empty=False))
    assert (await model.complete(REQUEST)).text == " "
    tool_call = Completion(
        "", "m", "p", "d", Usage(), finish_reason=FinishReason.TOOL_CALLS, tool_calls=(CALL,)
    )
    model, clock, _ = retrying(ScriptedModel([tool_call]))
    assert (await model.complete(REQUEST)) is tool_call and clock.sleeps == []


# --- the shared attempt budget -----------------------------------------------------------------


def observed(model: ScriptedModel, clock: FakeClock) -> ObservedModel:
    """``model`` seen as the deployment ``dep-a`` (ObservedModel charges failed attempts to the budget)."""
    return ObservedModel(
        model, name="a", provider="test", deployment="dep-a", price=None, bus=EventBus(), clock=clock
    )


def nested(budget: int) -> tuple[RetryingModel, ScriptedModel, FakeClock]:
    """An outer RetryingModel around a strategy-like model that calls an inner RetryingModel."""
    clock = FakeClock()
    upstream = ScriptedModel([], default="unused")
    upstream.push(*[ServerError(f"fail {i}") for i in range(20)])
    inner, _, _ = retrying(observed(upstream, clock), clock=clock)

    async def strategy(request: ChatRequest) -> Completion:
        return await inner.complete(request)

    outer, _, _ = retrying(FunctionModel(strategy, name="strategy"), clock=clock)
    return outer, upstream, clock


@pytest.mark.parametrize(("budget", "upstream_calls"), [(4, 4), (6, 6), (1, 1)])
async def test_nested_retries_share_one_budget_of_failed_attempts(budget: int, upstream_calls: int) -> None:
    outer, upstream, _ = nested(budget)
    scope = RequestScope("req-1", attempt_budget=budget)
    with request_scope(scope), pytest.raises(ProviderError):
        await outer.complete(REQUEST)
    # Unbounded, 3 outer x 3 inner attempts would reach the upstream 9 times.
    assert len(upstream.requests) == upstream_calls
    assert scope.failed_attempts == upstream_calls
    assert scope.failures == {("dep-a", "ServerError"): upstream_calls}


async def test_a_spent_budget_never_stops_a_first_attempt_only_retries() -> None:
    spent = RequestScope("req-1", attempt_budget=2)
    spent.record_failure("elsewhere", "RequestTimeoutError")
    spent.record_failure("elsewhere", "RequestTimeoutError")
    answering, _, _ = retrying(ScriptedModel(["planned"]))
    with request_scope(spent):
        assert (await answering.complete(REQUEST)).text == "planned"
    failing = ScriptedModel([ServerError("boom"), "never"])
    clock = FakeClock()
    model, _, _ = retrying(observed(failing, clock), clock=clock)
    with request_scope(spent), pytest.raises(ServerError):
        await model.complete(REQUEST)
    assert len(failing.requests) == 1 and clock.sleeps == []
    note = spent.budget_used_up()
    assert note is not None and "attempt budget (2 failed attempts)" in note
    assert "elsewhere: 2x RequestTimeoutError" in note and "dep-a: 1x ServerError" in note


async def test_a_skipped_deployment_uses_no_budget() -> None:
    scope = RequestScope("req-1", attempt_budget=1)
    model, _, _ = retrying(ScriptedModel([CoolingDownError("cooling", retry_after=1.0)]))
    with request_scope(scope), pytest.raises(CoolingDownError):
        await model.complete(REQUEST)
    assert scope.failed_attempts == 0 and scope.budget_used_up() is None


async def test_an_empty_answer_uses_budget() -> None:
    scope = RequestScope("req-1", attempt_budget=1)
    inner = ScriptedModel(["", "never"])
    model, _, _ = retrying(inner)
    with request_scope(scope), pytest.raises(ServerError, match="no text"):
        await model.complete(REQUEST)
    assert len(inner.requests) == 1 and scope.failures == {("dep-a", "EmptyAnswer"): 1}


# --- somewhere else to go ----------------------------------------------------------------------

WITH_FALLBACK = ChatRequest.from_prompt("hello", request_id="req-1", has_fallback=True)


@pytest.mark.parametrize(
    "error",
    [
        RateLimitedError("429", status_code=429, retry_after=3.0),
        RequestTimeoutError("slow"),
        ServerError("overloaded", status_code=529, retry_after=2.0),
        ServerError("unavailable", status_code=503),
    ],
    ids=["429", "timeout", "529", "503"],
)
async def test_with_somewhere_else_to_go_timeouts_and_rate_limits_move_on(error: ProviderError) -> None:
    inner = ScriptedModel([error, "second try"])
    model, clock, sink = retrying(inner)
    with pytest.raises(type(error)):
        await model.complete(WITH_FALLBACK)
    assert len(inner.requests) == 1 and clock.sleeps == [] and retries(sink) == []
    # The last option waits it out and tries again.
    inner = ScriptedModel([error, "second try"])
    model, clock, _ = retrying(inner)
    assert (await model.complete(REQUEST)).text == "second try"
    assert len(inner.requests) == 2 and len(clock.sleeps) == 1
    assert clock.sleeps[0] >= (error.retry_after or 0.0)


async def test_with_somewhere_else_to_go_a_plain_server_error_is_still_retried() -> None:
    inner = ScriptedModel([ServerError("boom", status_code=500), "ok"])
    model, _, _ = retrying(inner)
    assert (await model.complete(WITH_FALLBACK)).text == "ok"
    assert len(inner.requests) == 2


async def test_without_a_scope_attempts_are_bounded_by_the_policy_only() -> None:
    inner = ScriptedModel([ServerError("a")] * 4 + ["ok"])
    model, _, _ = retrying(inner, RetryPolicy(max_attempts=5, jitter="none"))
    assert (await model.complete(REQUEST)).text == "ok"


# --- streams -----------------------------------------------------------------------------------

StreamStep = str | BaseException


class StreamingModel:
    """Streams each call from its own script: texts become deltas, exceptions are raised in place."""

    def __init__(self, *scripts: Sequence[StreamStep]) -> None:
        self._scripts = deque(scripts)
        self.calls = 0
        self.closed = 0

    @property
    def name(self) -> str:
        return "streaming"

    async def complete(self, request: ChatRequest) -> Completion:
        text = "".join([d.text async for d in self.stream(request)])
        return Completion(text, "streaming", "p", "d", Usage())

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        self.calls += 1
        try:
            for step in self._scripts.popleft():
                if isinstance(step, BaseException):
                    raise step
                yield StreamDelta(text=step)
            yield StreamDelta(finish_reason=FinishReason.STOP, usage=Usage(1, 1))
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        self._scripts.clear()


async def collect(model: RetryingModel) -> list[str]:
    return [d.text async for d in model.stream(REQUEST)]


async def test_a_stream_failing_before_any_text_is_retried() -> None:
    inner = StreamingModel(["", ServerError("early")], ["Hel", "lo"])
    model, clock, _ = retrying(inner)
    assert "".join(await collect(model)) == "Hello"
    assert inner.calls == 2 and clock.sleeps == [0.5]


async def test_a_stream_failing_after_text_is_raised_not_retried() -> None:
    inner = StreamingModel(["Hel", UpstreamConnectionError("cut off")], ["Hello"])
    model, clock, _ = retrying(inner)
    seen: list[str] = []
    with pytest.raises(UpstreamConnectionError):
        async for delta in model.stream(REQUEST):
            seen.append(delta.text)
    assert seen == ["Hel"] and inner.calls == 1 and clock.sleeps == []


async def test_a_whitespace_only_stream_is_retried_without_sending_it() -> None:
    inner = StreamingModel([" ", "\n"], ["answer"])
    model, _, _ = retrying(inner)
    assert "".join(await collect(model)) == "answer"
    assert inner.calls == 2


async def test_an_always_empty_stream_ends_in_a_server_error() -> None:
    model, _, _ = retrying(StreamingModel([], [], []))
    with pytest.raises(ServerError, match="no text"):
        await collect(model)


async def test_abandoning_a_stream_closes_the_inner_stream() -> None:
    inner = StreamingModel(["a", "b", "c"])
    model, _, _ = retrying(inner)
    stream = model.stream(REQUEST)
    assert (await anext(stream)).text == "a"
    await stream.aclose()  # type: ignore[attr-defined]
    assert inner.closed == 1


# --- cancellation ------------------------------------------------------------------------------


async def test_a_cancelled_call_is_not_retried() -> None:
    started = asyncio.Event()

    async def never(request: ChatRequest) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    inner = FunctionModel(never)
    model, clock, _ = retrying(inner)
    task = asyncio.create_task(model.complete(REQUEST))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(inner.requests) == 1 and clock.sleeps == []


# --- through HTTP ------------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
async def adapter(upstream: FakeUpstream) -> AsyncIterator[OpenAICompatibleModel]:
    transport = HttpTransport()
    yield OpenAICompatibleModel(
        name="m", model_id="m", api_base=upstream.openai_base, api_key="k", transport=transport
    )
    await transport.aclose()


async def test_http_429_and_503_are_retried_honouring_retry_after(
    upstream: FakeUpstream, adapter: OpenAICompatibleModel
) -> None:
    upstream.script(Fault.rate_limited(retry_after=2), Fault.server_error(503), Reply("Paris"))
    model, clock, _ = retrying(adapter)
    assert (await model.complete(REQUEST)).text == "Paris"
    assert clock.sleeps == [2.0, 1.0] and len(upstream.requests) == 3


async def test_http_empty_200_and_401_are_handled_like_errors(
    upstream: FakeUpstream, adapter: OpenAICompatibleModel
) -> None:
    upstream.script(Reply(""), Reply("  "), Reply("finally"))
    model, _, _ = retrying(adapter)
    assert (await model.complete(REQUEST)).text == "finally"
    upstream.script(Fault.auth(), Reply("never"))
    with pytest.raises(AuthenticationError):
        await model.complete(REQUEST)
    assert len(upstream.requests) == 4


async def test_http_stream_truncated_before_text_is_retried(
    upstream: FakeUpstream, adapter: OpenAICompatibleModel
) -> None:
    upstream.script(Fault.truncated_stream(after_chunks=1), Reply("streamed answer"))
    model, clock, _ = retrying(adapter)
    assert "".join(await collect(model)) == "streamed answer"
    assert len(upstream.requests) == 2 and clock.sleeps == [0.5]
