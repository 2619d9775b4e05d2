"""FallbackModel: ordered chain, context jumps, cooldown waits, budgets, confidence gate, streaming."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import pytest

from model_orchestrator.core.errors import (
    AllModelsFailedError,
    AuthenticationError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigError,
    ContextWindowExceededError,
    CoolingDownError,
    DeadlineExceededError,
    RateLimitedError,
    RateLimitExhaustedError,
    ServerError,
)
from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    Event,
    EventBus,
    FallbackTriggered,
    RecordingSink,
    RetryScheduled,
)
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.strategies.fallback import FallbackModel
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.scorers import SelfReportedScorer, Validator, ValidatorScorer
from model_orchestrator.testing import FakeClock, FunctionModel, ScriptedModel

PRICE = Price(1.0, 2.0)
REQUEST = ChatRequest.from_prompt("What is the capital of France?", request_id="req-1")


class Harness:
    """A fake clock, an event bus with a recording sink, and observed members on them."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.bus = EventBus()
        self.sink = RecordingSink()
        self.bus.subscribe(self.sink)

    def member(
        self, inner: ChatModel, name: str, *, price: Price | None = PRICE, window: int | None = None
    ) -> Member:
        observed = ObservedModel(
            inner,
            name=name,
            provider="test",
            deployment=f"{name}@test",
            price=price,
            bus=self.bus,
            clock=self.clock,
        )
        return Member(observed, ModelProfile(name=name, price=price, context_window=window))

    def raw(self, inner: ChatModel, name: str, *, price: Price | None = PRICE) -> Member:
        """A member whose errors arise outside observation, as an open circuit or a cooldown does."""
        return Member(inner, ModelProfile(name=name, price=price))

    def fallback(self, *members: Member, **options: object) -> FallbackModel:
        return FallbackModel(members, clock=self.clock, bus=self.bus, **options)  # type: ignore[arg-type]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.sink.events]

    def moves(self) -> list[FallbackTriggered]:
        return [e for e in self.sink.events if isinstance(e, FallbackTriggered)]


@pytest.fixture
def h() -> Harness:
    return Harness()


def scripted(name: str, *entries: str | Completion | BaseException) -> ScriptedModel:
    return ScriptedModel(entries, name=name)


async def collect(stream: AsyncIterator[StreamDelta]) -> list[StreamDelta]:
    return [delta async for delta in stream]


# --- moving down the chain ------------------------------------------------------------------------------


async def test_every_member_but_the_last_is_told_it_has_somewhere_else_to_go(h: Harness) -> None:
    a, b, c = scripted("a", ServerError("x")), scripted("b", ServerError("y")), scripted("c", "ok")
    members = (h.member(a, "a"), h.member(b, "b"), h.member(c, "c"))
    assert (await h.fallback(*members).complete(REQUEST)).text == "ok"
    assert [m.requests[0].has_fallback for m in (a, b, c)] == [True, True, False]
    # Nested as a non-last member itself, its last member still has somewhere else to go.
    a, b = scripted("a", ServerError("x")), scripted("b", ServerError("y"))
    inner = Member(h.fallback(h.member(a, "a"), h.member(b, "b")), ModelProfile("inner", PRICE))
    await h.fallback(inner, h.member(scripted("c", "ok"), "c")).complete(REQUEST)
    assert [m.requests[0].has_fallback for m in (a, b)] == [True, True]
    streamed = scripted("a", ServerError("x")), scripted("b", "ok")
    await collect(h.fallback(h.member(streamed[0], "a"), h.member(streamed[1], "b")).stream(REQUEST))
    assert [m.requests[0].has_fallback for m in streamed] == [True, False]


async def test_first_member_answers(h: Harness) -> None:
    first, second = scripted("a", "Paris"), scripted("b")
    completion = await h.fallback(h.member(first, "a"), h.member(second, "b")).complete(REQUEST)

    assert (completion.text, completion.model) == ("Paris", "a")
    assert second.requests == [] and h.moves() == []
    assert completion.explanation is not None
    assert completion.explanation.strategy == "fallback" and completion.explanation.chosen == "a"
    assert completion.explanation.reason == "a answered first"


async def test_fallback_after_a_500_emits_attempt_failed_then_fallback_triggered(h: Harness) -> None:
    chain = h.fallback(
        h.member(scripted("a", ServerError("upstream exploded", status_code=500)), "a"),
        h.member(scripted("b", "Paris"), "b"),
        name="safe",
    )
    completion = await chain.complete(REQUEST)

    assert h.kinds() == [
        "AttemptStarted",
        "AttemptFailed",
        "FallbackTriggered",
        "AttemptStarted",
        "AttemptSucceeded",
    ]
    failed, moved = h.sink.events[1], h.sink.events[2]
    assert isinstance(failed, AttemptFailed) and failed.status_code == 500 and failed.model == "a"
    assert isinstance(moved, FallbackTriggered)
    assert (moved.strategy, moved.from_model, moved.to_model, moved.request_id) == ("safe", "a", "b", "req-1")
    assert moved.reason == "error: upstream exploded"
    assert completion.text == "Paris" and completion.model == "b"
    explanation = completion.explanation
    assert explanation is not None
    assert [(s.model, s.outcome, s.error_type) for s in explanation.steps] == [
        ("a", "error", "ServerError"),
        ("b", "ok", None),
    ]
    assert explanation.models_tried == ("a", "b")
    assert explanation.reason == "b answered after passing over a"


async def test_each_move_is_logged_at_info(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    chain = h.fallback(h.member(scripted("a", ServerError("boom")), "a"), h.member(scripted("b", "ok"), "b"))
    with caplog.at_level(logging.INFO, logger="model_orchestrator.strategies"):
        await chain.complete(REQUEST)
    assert any(
        "moving on from a to b" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records
    )


async def test_cost_and_tokens_add_up_over_every_answer(h: Harness) -> None:
    answer = Completion("Paris", "b", "test", "b", Usage(1_000, 500))
    scope = RequestScope("req-1")
    with request_scope(scope):
        completion = await h.fallback(
            h.member(scripted("a", ServerError("boom")), "a"), h.member(scripted("b", answer), "b")
        ).complete(REQUEST)

    assert completion.usage.input_tokens == 1_000 and completion.usage.output_tokens == 500
    assert completion.cost == pytest.approx((1_000 * 1.0 + 500 * 2.0) / 1e6)
    assert scope.spent == pytest.approx(completion.cost)
    assert completion.explanation is not None and completion.explanation.steps[1].cost == completion.cost


async def test_all_failing_raises_all_models_failed_listing_every_error_in_order(h: Harness) -> None:
    chain = h.fallback(
        h.member(scripted("a", ServerError("boom")), "a"),
        h.member(scripted("b", RateLimitedError("slow down", retry_after=7.0)), "b"),
        h.member(scripted("c", AuthenticationError("bad key")), "c"),
    )
    with pytest.raises(AllModelsFailedError) as caught:
        await chain.complete(REQUEST)

    error = caught.value
    assert [type(e) for e in error.errors] == [ServerError, RateLimitedError, AuthenticationError]
    assert error.retryable and error.retry_after == 7.0
    text = str(error)
    assert text.index("boom") < text.index("slow down") < text.index("bad key")
    assert "a: error (ServerError)" in text and "c: error (AuthenticationError)" in text
    assert [(m.from_model, m.to_model) for m in h.moves()] == [("a", "b"), ("b", "c")]


async def test_programming_errors_are_not_swallowed(h: Harness) -> None:
    chain = h.fallback(h.member(scripted("a"), "a"), h.member(scripted("b", "ok"), "b"))
    with pytest.raises(RuntimeError, match="no answer left"):
        await chain.complete(REQUEST)


def test_configuration_mistakes_are_config_errors(h: Harness) -> None:
    with pytest.raises(ConfigError, match="at least one member"):
        h.fallback()
    with pytest.raises(ConfigError, match="needs a scorer"):
        h.fallback(h.member(scripted("a"), "a"), threshold=0.5)


async def test_nested_fallback_explains_itself_inside_the_outer_one(h: Harness) -> None:
    inner = h.fallback(
        h.member(scripted("a", ServerError("boom")), "a"), h.member(scripted("b", "Paris"), "b"), name="inner"
    )
    outer = h.fallback(Member(inner, ModelProfile(name="inner", price=PRICE)), h.member(scripted("c"), "c"))
    completion = await outer.complete(REQUEST)

    assert completion.model == "inner" and completion.text == "Paris"
    assert completion.explanation is not None
    nested = completion.explanation.steps[0].explanation
    assert nested is not None and nested.chosen == "b"


async def test_aclose_closes_every_member(h: Harness) -> None:
    first, second = scripted("a"), scripted("b")
    await h.fallback(h.member(first, "a"), h.member(second, "b")).aclose()
    assert first.closed and second.closed


# --- context windows ------------------------------------------------------------------------------------


async def test_context_overflow_jumps_to_a_larger_window(h: Harness) -> None:
    small = scripted("small", ContextWindowExceededError("prompt is too long"))
    same = scripted("same-size", "never asked")
    smaller = scripted("smaller", "never asked")
    unknown = scripted("unknown", ServerError("down"))
    large = scripted("large", "Paris")
    chain = h.fallback(
        h.member(small, "small", window=8_000),
        h.member(same, "same-size", window=8_000),
        h.member(smaller, "smaller", window=4_000),
        h.member(unknown, "unknown"),
        h.member(large, "large", window=128_000),
    )
    completion = await chain.complete(REQUEST)

    assert completion.model == "large"
    assert same.requests == [] and smaller.requests == []
    assert len(unknown.requests) == 1  # an unknown window might be larger: worth a try
    assert completion.explanation is not None
    steps = completion.explanation.steps
    assert [(s.model, s.outcome) for s in steps] == [
        ("small", "error"),
        ("same-size", "skipped"),
        ("smaller", "skipped"),
        ("unknown", "error"),
        ("large", "ok"),
    ]
    assert steps[1].reason == "context window 8000 is not larger than 8000, which already overflowed"
    assert completion.explanation.models_tried == ("small", "unknown", "large")


async def test_a_member_whose_window_cannot_fit_the_prompt_is_skipped_without_a_call(h: Harness) -> None:
    tiny = scripted("tiny", "never")
    request = ChatRequest.from_prompt("x" * 8_000, max_tokens=100)
    completion = await h.fallback(
        h.member(tiny, "tiny", window=1_000), h.member(scripted("big", "ok"), "big", window=100_000)
    ).complete(request)

    assert tiny.requests == [] and completion.model == "big"
    assert completion.explanation is not None
    skipped = completion.explanation.steps[0]
    assert (skipped.outcome, skipped.error_type) == ("skipped", "ContextWindowExceededError")
    assert skipped.reason == "needs about 2104 tokens, more than its context window of 1000"
    assert h.moves()[0].reason.startswith("skipped: needs about 2104 tokens")


async def test_no_member_fits_the_context(h: Harness) -> None:
    request = ChatRequest.from_prompt("x" * 8_000)
    with pytest.raises(AllModelsFailedError) as caught:
        await h.fallback(h.member(scripted("tiny"), "tiny", window=1_000)).complete(request)
    assert [type(e) for e in caught.value.errors] == [ContextWindowExceededError]
    assert not caught.value.retryable


# --- unavailable members and cooldowns --------------------------------------------------------------------


async def test_all_members_cooling_down_waits_for_the_earliest_reset_then_succeeds(h: Harness) -> None:
    first = scripted(
        "a", CoolingDownError("cooling down", retry_after=5.0), CoolingDownError("still", retry_after=3.0)
    )
    second = scripted("b", CircuitOpenError("circuit open", retry_after=2.0), "Paris")
    completion = await h.fallback(h.raw(first, "a"), h.raw(second, "b")).complete(REQUEST)

    assert h.clock.sleeps == [2.0]
    assert completion.text == "Paris" and completion.model == "b"
    assert completion.explanation is not None
    assert [(s.model, s.outcome) for s in completion.explanation.steps] == [
        ("a", "skipped"),
        ("b", "skipped"),
        ("a", "skipped"),
        ("b", "ok"),
    ]
    assert dict(completion.explanation.facts)["waited_for_cooldown"] == 2.0
    (scheduled,) = [e for e in h.sink.events if isinstance(e, RetryScheduled)]
    assert (scheduled.model, scheduled.delay, scheduled.error_type) == ("fallback", 2.0, "CircuitOpenError")


async def test_only_unavailable_members_are_tried_again_after_the_wait(h: Harness) -> None:
    broken = scripted("broken", ServerError("boom"))
    cooling = scripted("cooling", CoolingDownError("cooling", retry_after=1.5), "Paris")
    completion = await h.fallback(h.member(broken, "broken"), h.raw(cooling, "cooling")).complete(REQUEST)

    assert completion.model == "cooling" and h.clock.sleeps == [1.5]
    assert len(broken.requests) == 1


@pytest.mark.parametrize(
    ("options", "deadline_in"),
    [({"max_cooldown_wait": 1.0}, None), ({"wait_for_cooldown": False}, None), ({}, 1.0)],
    ids=["wait-too-long", "waiting-disabled", "deadline-first"],
)
async def test_no_wait_when_it_is_too_long_disabled_or_past_the_deadline(
    h: Harness, options: dict[str, object], deadline_in: float | None
) -> None:
    member = h.raw(scripted("a", CoolingDownError("cooling", retry_after=2.0)), "a")
    request = (
        REQUEST if deadline_in is None else REQUEST.with_options(deadline=h.clock.monotonic() + deadline_in)
    )
    with pytest.raises(AllModelsFailedError) as caught:
        await h.fallback(member, **options).complete(request)
    assert h.clock.sleeps == []
    assert [type(e) for e in caught.value.errors] == [CoolingDownError]
    assert caught.value.retry_after == 2.0


async def test_no_wait_without_a_known_reset_time(h: Harness) -> None:
    member = h.raw(scripted("a", RateLimitExhaustedError("local limit")), "a")
    with pytest.raises(AllModelsFailedError):
        await h.fallback(member).complete(REQUEST)
    assert h.clock.sleeps == []


async def test_still_unavailable_after_the_wait_fails_with_every_error(h: Harness) -> None:
    member = h.raw(
        scripted(
            "a", CoolingDownError("cooling", retry_after=1.0), CoolingDownError("again", retry_after=9.0)
        ),
        "a",
    )
    with pytest.raises(AllModelsFailedError) as caught:
        await h.fallback(member).complete(REQUEST)
    assert h.clock.sleeps == [1.0]
    assert [e.message for e in caught.value.errors] == ["cooling", "again"]


# --- budgets ---------------------------------------------------------------------------------------------


async def test_a_member_that_would_overspend_is_skipped_and_the_budget_holds(h: Harness) -> None:
    dear = scripted("dear", "never")
    scope = RequestScope("req-1", max_cost=0.01)
    with request_scope(scope):
        completion = await h.fallback(
            h.member(dear, "dear", price=Price(1_000.0, 1_000.0)),
            h.member(scripted("cheap", "Paris"), "cheap"),
        ).complete(REQUEST.with_options(max_cost=0.01))

    assert dear.requests == [] and completion.model == "cheap"
    assert completion.cost is not None and 0 < completion.cost <= 0.01
    assert scope.spent == pytest.approx(completion.cost)
    assert completion.explanation is not None
    skipped = completion.explanation.steps[0]
    assert skipped.outcome == "skipped" and skipped.error_type == "BudgetExceededError"
    assert skipped.reason is not None and "exceeds the remaining budget $0.01" in skipped.reason


async def test_no_affordable_member_fails_before_any_call(h: Harness) -> None:
    dear, dearer = scripted("dear", "never"), scripted("dearer", "never")
    chain = h.fallback(
        h.member(dear, "dear", price=Price(100.0, 100.0)),
        h.member(dearer, "dearer", price=Price(500.0, 500.0)),
    )
    with pytest.raises(BudgetExceededError, match=r"cheapest estimate is \$0\.05\d+ \(dear\)"):
        await chain.complete(REQUEST.with_options(max_cost=0.001))
    assert dear.requests == [] and dearer.requests == [] and h.sink.events == []


async def test_unpriced_members_are_not_called_under_a_cap(h: Harness) -> None:
    unpriced = scripted("unpriced", "never")
    with pytest.raises(BudgetExceededError, match="no member has a known price"):
        await h.fallback(h.member(unpriced, "unpriced", price=None)).complete(
            REQUEST.with_options(max_cost=1.0)
        )
    assert unpriced.requests == []


async def test_spend_so_far_stops_the_chain_before_the_budget_is_exceeded(h: Harness) -> None:
    price = Price(10.0, 10.0)
    request = REQUEST.with_options(max_cost=0.015, max_tokens=1_000)
    first = scripted("a", Completion("Lyon", "a", "test", "a", Usage(10, 1_000)))
    second = scripted("b", "never")
    low = ValidatorScorer(_fixed({"a": 0.2}))
    with request_scope(RequestScope("req-1", max_cost=0.015)) as scope:
        completion = await h.fallback(
            h.member(first, "a", price=price), h.member(second, "b", price=price), scorer=low, threshold=0.6
        ).complete(request)

    assert second.requests == [] and completion.text == "Lyon"
    assert scope.spent == pytest.approx(0.0101) and scope.spent <= 0.015
    assert completion.explanation is not None
    assert [s.outcome for s in completion.explanation.steps] == ["rejected", "skipped"]


async def test_a_cap_without_an_open_scope_still_counts_what_was_spent(h: Harness) -> None:
    price = Price(10.0, 10.0)
    request = REQUEST.with_options(max_cost=0.015, max_tokens=1_000)
    first = scripted("a", Completion("Lyon", "a", "test", "a", Usage(10, 1_000)))
    second = scripted("b", "never")
    low = ValidatorScorer(_fixed({"a": 0.2}))
    completion = await h.fallback(
        h.member(first, "a", price=price), h.member(second, "b", price=price), scorer=low, threshold=0.6
    ).complete(request)

    assert completion.text == "Lyon" and second.requests == []
    assert completion.cost == pytest.approx(0.0101)


# --- confidence gate (seed 004: "escalates if confidence < 0.6") -------------------------------------------


def _fixed(confidences: dict[str, float]) -> Validator:
    async def validator(request: ChatRequest, completion: Completion) -> float:
        return confidences[completion.model]

    return validator


async def test_low_confidence_moves_on_to_the_next_member(h: Harness) -> None:
    scorer = ValidatorScorer(_fixed({"a": 0.4, "b": 0.8}))
    completion = await h.fallback(
        h.member(scripted("a", "Lyon"), "a"),
        h.member(scripted("b", "Paris"), "b"),
        scorer=scorer,
        threshold=0.6,
    ).complete(REQUEST)

    assert completion.text == "Paris" and completion.model == "b"
    assert completion.explanation is not None
    assert (completion.explanation.confidence, completion.explanation.confidence_source) == (0.8, "validator")
    assert [(s.outcome, s.confidence) for s in completion.explanation.steps] == [
        ("rejected", 0.4),
        ("ok", 0.8),
    ]
    assert h.moves()[0].reason == "rejected: confidence 0.400 is below the threshold 0.6"
    assert completion.usage.output_tokens == 1 + 2  # both answers' tokens: Lyon and Paris


async def test_every_answer_rejected_returns_the_highest_scoring_one(h: Harness) -> None:
    scorer = ValidatorScorer(_fixed({"a": 0.5, "b": 0.3}))
    completion = await h.fallback(
        h.member(scripted("a", "Lyon"), "a"),
        h.member(scripted("b", "Nice"), "b"),
        scorer=scorer,
        threshold=0.6,
    ).complete(REQUEST)

    assert completion.text == "Lyon" and completion.model == "a"
    assert completion.explanation is not None
    assert completion.explanation.reason == (
        "every answer scored below the threshold 0.6; returning the highest-scoring one (a, confidence 0.500)"
    )
    assert dict(completion.explanation.facts)["threshold"] == 0.6


async def test_self_reported_confidence_gates_the_chain(h: Harness) -> None:
    weak = scripted("weak", "Maybe Lyon.\nConfidence: 40%")
    strong = scripted("strong", "Paris.\nConfidence: 90%")
    completion = await h.fallback(
        h.member(weak, "weak"), h.member(strong, "strong"), scorer=SelfReportedScorer(), threshold=0.6
    ).complete(REQUEST)

    assert completion.text == "Paris."
    assert completion.explanation is not None and completion.explanation.confidence == pytest.approx(0.9)
    assert all("Confidence: N%" in r.messages[-1].text for r in (*weak.requests, *strong.requests))


async def test_a_scorer_without_threshold_only_reports(h: Harness) -> None:
    scorer = ValidatorScorer(_fixed({"a": 0.1}))
    completion = await h.fallback(h.member(scripted("a", "Lyon"), "a"), scorer=scorer).complete(REQUEST)
    assert completion.text == "Lyon"
    assert completion.explanation is not None and completion.explanation.confidence == 0.1


# --- deadlines --------------------------------------------------------------------------------------------


async def test_a_passed_deadline_calls_nothing(h: Harness) -> None:
    member = scripted("a", "never")
    with pytest.raises(DeadlineExceededError, match="tried: nothing"):
        await h.fallback(h.member(member, "a")).complete(REQUEST.with_options(deadline=h.clock.monotonic()))
    assert member.requests == []


async def test_the_deadline_passing_mid_chain_stops_it_and_says_what_was_tried(h: Harness) -> None:
    slow = FunctionModel(_raise(ServerError("slow failure")), name="slow", delay=5.0, clock=h.clock)
    never = scripted("b", "never")
    chain = h.fallback(h.member(slow, "slow"), h.member(never, "b"))
    with pytest.raises(DeadlineExceededError) as caught:
        await chain.complete(REQUEST.with_options(deadline=h.clock.monotonic() + 1.0))

    assert never.requests == []
    cause = caught.value.__cause__
    assert isinstance(cause, AllModelsFailedError) and [type(e) for e in cause.errors] == [ServerError]


async def test_a_member_reporting_the_deadline_stops_the_chain(h: Harness) -> None:
    never = scripted("b", "never")
    chain = h.fallback(
        h.member(scripted("a", DeadlineExceededError("out of time")), "a"), h.member(never, "b")
    )
    with pytest.raises(DeadlineExceededError):
        await chain.complete(REQUEST)
    assert never.requests == [] and h.moves() == []


def _raise(error: Exception) -> Callable[[ChatRequest], str]:
    def answer(request: ChatRequest) -> str:
        raise error

    return answer


# --- streaming ---------------------------------------------------------------------------------------------


class TextThenError:
    """Streams some text, then fails: the fallback must not switch models after that."""

    name = "half"

    def __init__(self) -> None:
        self.closed = False

    async def complete(self, request: ChatRequest) -> Completion:
        raise ServerError("connection dropped mid-answer")

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        yield StreamDelta(text="The capital")
        raise ServerError("connection dropped mid-answer")

    async def aclose(self) -> None:
        self.closed = True


async def test_streaming_falls_through_before_the_first_token(h: Harness) -> None:
    chain = h.fallback(
        h.member(scripted("a", ServerError("boom")), "a"), h.member(scripted("b", "Hello there, world"), "b")
    )
    deltas = await collect(chain.stream(REQUEST))

    assert "".join(d.text for d in deltas) == "Hello there, world"
    last = deltas[-1]
    assert last.finish_reason is not None and last.usage is not None
    assert last.explanation is not None and last.explanation.chosen == "b"
    assert [(s.model, s.outcome) for s in last.explanation.steps] == [("a", "error"), ("b", "ok")]
    assert all(d.explanation is None for d in deltas[:-1])
    assert h.kinds()[:3] == ["AttemptStarted", "AttemptFailed", "FallbackTriggered"]


async def test_streaming_never_mixes_two_models_after_text_was_sent(h: Harness) -> None:
    backup = scripted("b", "Paris")
    chain = h.fallback(h.member(TextThenError(), "half"), h.member(backup, "b"))
    received: list[str] = []
    with pytest.raises(ServerError, match="mid-answer"):
        async for delta in chain.stream(REQUEST):
            received.append(delta.text)
    assert received == ["The capital"] and backup.requests == []


class BlankThenError:
    """Streams a role-only piece and blank text, then fails: nothing visible was sent yet."""

    name = "blank"

    def __init__(self) -> None:
        self.stream_closed = False

    async def complete(self, request: ChatRequest) -> Completion:
        raise ServerError("dropped before any text")

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        try:
            yield StreamDelta()
            yield StreamDelta(text="\n ")
            raise ServerError("dropped before any text")
        finally:
            self.stream_closed = True

    async def aclose(self) -> None:
        return None


async def test_streaming_holds_blank_pieces_so_a_failure_before_text_still_falls_through(h: Harness) -> None:
    blank = BlankThenError()
    chain = h.fallback(h.member(blank, "blank"), h.member(scripted("b", "Paris"), "b"))
    deltas = await collect(chain.stream(REQUEST))
    assert "".join(d.text for d in deltas) == "Paris"  # no blank text from the failed member
    assert blank.stream_closed
    last = deltas[-1].explanation
    assert last is not None
    assert [(s.model, s.outcome) for s in last.steps] == [("blank", "error"), ("b", "ok")]


async def test_streaming_waits_for_a_cooldown_too(h: Harness) -> None:
    member = h.raw(scripted("a", CoolingDownError("cooling", retry_after=4.0), "Paris"), "a")
    deltas = await collect(h.fallback(member).stream(REQUEST))
    assert "".join(d.text for d in deltas) == "Paris" and h.clock.sleeps == [4.0]


async def test_streaming_with_every_member_failing_raises(h: Harness) -> None:
    chain = h.fallback(
        h.member(scripted("a", ServerError("a down")), "a"),
        h.member(scripted("b", ServerError("b down")), "b"),
    )
    with pytest.raises(AllModelsFailedError) as caught:
        await collect(chain.stream(REQUEST))
    assert [e.message for e in caught.value.errors] == ["a down", "b down"]


async def test_streaming_checks_the_budget_before_any_call(h: Harness) -> None:
    dear = scripted("dear", "never")
    chain = h.fallback(h.member(dear, "dear", price=Price(1_000.0, 1_000.0)))
    with pytest.raises(BudgetExceededError):
        await collect(chain.stream(REQUEST.with_options(max_cost=0.0001)))
    assert dear.requests == []


async def test_streaming_with_a_threshold_answers_in_one_scored_piece(h: Harness) -> None:
    chain = h.fallback(
        h.member(scripted("a", "Lyon.\nConfidence: 30%"), "a"),
        h.member(scripted("b", "Paris.\nConfidence: 80%"), "b"),
        scorer=SelfReportedScorer(),
        threshold=0.6,
    )
    (delta,) = await collect(chain.stream(REQUEST))
    assert delta.text == "Paris." and delta.explanation is not None and delta.explanation.confidence == 0.8


async def test_closing_the_stream_early_closes_the_member_stream(h: Harness) -> None:
    chain = h.fallback(h.member(scripted("a", "a fairly long answer to stream"), "a"))
    deltas = chain.stream(REQUEST)
    assert isinstance(deltas, AsyncGenerator)
    async with contextlib.aclosing(deltas) as stream:
        async for _ in stream:
            break
    failed = [e for e in h.sink.events if isinstance(e, AttemptFailed)]
    assert len(failed) == 1 and failed[0].cancelled
    assert not any(isinstance(e, AttemptSucceeded) for e in h.sink.events)


def _event_types(events: list[Event]) -> list[type[Event]]:
    return [type(e) for e in events]


async def test_streamed_attempts_are_observed_like_completions(h: Harness) -> None:
    await collect(h.fallback(h.member(scripted("a", "Paris"), "a")).stream(REQUEST))
    assert _event_types(h.sink.events) == [AttemptStarted, AttemptSucceeded]


def test_a_strategys_answer_keeps_every_field_of_the_chosen_one_it_does_not_set() -> None:
    import dataclasses

    from model_orchestrator.core.explanation import Explanation
    from model_orchestrator.core.profile import ModelProfile
    from model_orchestrator.strategies.member import Member, strategy_completion
    from tests.test_observed_model import full_completion

    chosen = full_completion()
    member = Member(ScriptedModel(["x"]), ModelProfile(name="member"))
    explanation = Explanation(strategy="fallback", chosen="member")
    answer = strategy_completion(chosen, member, [chosen], explanation, latency=2.5)
    expected = dataclasses.replace(chosen, model="member", explanation=explanation, latency=2.5)
    assert answer == expected
