"""Core value types: pricing (tiers, cached and reasoning rates), usage sums, errors, messages, events."""

from __future__ import annotations

import dataclasses

import pytest

from model_orchestrator.core.errors import (
    AllModelsFailedError,
    AuthenticationError,
    ContextWindowExceededError,
    RateLimitedError,
    ServerError,
)
from model_orchestrator.core.events import AttemptStarted, EventBus, RecordingSink
from model_orchestrator.core.messages import Message, Role
from model_orchestrator.core.pricing import FREE, Price, cost_of
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tokens import estimate_text_tokens
from model_orchestrator.core.tools import ToolDefinition
from model_orchestrator.core.usage import Usage


def test_cost_uses_cached_and_reasoning_rates() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5, reasoning=10.0)
    usage = Usage(
        input_tokens=1_000_000, output_tokens=1_000_000, cached_input_tokens=400_000, reasoning_tokens=250_000
    )
    expected = 0.6 * 2.0 + 0.4 * 0.5 + 0.75 * 8.0 + 0.25 * 10.0
    assert price.cost_of(usage) == pytest.approx(expected)


def test_cached_tokens_default_to_input_rate() -> None:
    price = Price(input=1.0, output=1.0)
    assert price.cost_of(Usage(1_000_000, 0, cached_input_tokens=500_000)) == pytest.approx(1.0)


def test_long_context_tier_charges_whole_call_at_tier_rate() -> None:
    price = Price(3.0, 15.0, tiers=((200_000, Price(6.0, 22.5)),))
    assert price.cost_of(Usage(200_000, 0)) == pytest.approx(0.6)
    assert price.cost_of(Usage(300_000, 1_000_000)) == pytest.approx(1.8 + 22.5)


def test_unknown_price_gives_unknown_cost_never_zero() -> None:
    assert cost_of(Usage(10, 10), None) is None
    assert cost_of(Usage(10, 10), FREE) == 0.0


def test_usage_adds_and_keeps_estimated_flag() -> None:
    total = Usage(1, 2, 0, 0) + Usage(3, 4, 1, 1, estimated=True)
    assert (total.input_tokens, total.output_tokens, total.total_tokens, total.estimated) == (4, 6, 10, True)


def test_error_defaults_and_overrides() -> None:
    err = RateLimitedError("slow down", retry_after=2.5, provider="openai", deployment="fast@x")
    assert (err.status_code, err.retryable, err.retry_after) == (429, True, 2.5)
    assert str(err) == "[fast@x] slow down"
    assert not AuthenticationError("no").retryable
    ctx = ContextWindowExceededError("too long")
    assert ctx.status_code == 400 and not ctx.retryable


def test_all_models_failed_aggregates_attempts() -> None:
    errors = [
        ServerError("boom", provider="a"),
        RateLimitedError("wait", retry_after=3.0, provider="b"),
        RateLimitedError("wait", retry_after=1.0, provider="c"),
    ]
    agg = AllModelsFailedError("all 3 models failed", errors)
    assert agg.retryable and agg.retry_after == 1.0
    assert len(agg.to_dict()["errors"]) == 3  # type: ignore[arg-type]
    assert "ServerError" in str(agg) and "RateLimitedError" in str(agg)


def test_message_and_request_helpers() -> None:
    request = ChatRequest.from_prompt("hi", system="be brief", max_tokens=5)
    assert [m.role for m in request.messages] == [Role.SYSTEM, Role.USER]
    assert request.system_text == "be brief" and request.max_tokens == 5
    assert Message.of("assistant", "x").text == "x"
    assert estimate_text_tokens("") == 0 and estimate_text_tokens("abcdefgh") == 2


def test_required_capabilities_are_read_once_and_a_copy_reads_its_own() -> None:
    request = ChatRequest.from_prompt("hi")
    assert request.required_capabilities == frozenset()
    with_tools = request.with_options(tools=(ToolDefinition("lookup"),))
    assert with_tools.required_capabilities == {"tools"}
    assert request.required_capabilities == frozenset()
    assert with_tools == ChatRequest.from_prompt("hi", tools=(ToolDefinition("lookup"),))
    assert "capabilities" not in repr(with_tools)


def test_a_request_flagged_as_having_a_fallback_equals_its_replaced_copy() -> None:
    request = ChatRequest.from_prompt("hi", max_cost=0.5, request_id="r", tools=(ToolDefinition("lookup"),))
    flagged = request.with_fallback_flag()
    assert flagged == dataclasses.replace(request, has_fallback=True) and flagged.has_fallback
    assert not request.has_fallback and flagged.with_fallback_flag() is flagged
    assert flagged.required_capabilities == {"tools"}


def test_event_bus_isolates_failing_sinks() -> None:
    class Broken:
        def handle(self, event: object) -> None:
            raise RuntimeError("sink bug")

    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(Broken())
    unsubscribe = bus.subscribe(sink)
    event = AttemptStarted("r", 0.0, "a", "m", "p", "d")
    bus.emit(event)
    unsubscribe()
    bus.emit(event)
    assert sink.events == [event]


def test_hot_events_keep_the_dataclass_init_behaviour() -> None:
    # RequestStarted, RequestFinished and the attempt events get a quicker __init__ (core.events): the
    # same signature, defaults and frozen, comparable instances as the dataclass's own.
    from model_orchestrator.core.events import RequestFinished, RequestStarted

    positional = AttemptStarted("r", 1.0, "a", "m", "p", "d")
    by_name = AttemptStarted(
        request_id="r", timestamp=1.0, attempt_id="a", model="m", provider="p", deployment="d"
    )
    assert positional == by_name and positional.estimated_input_tokens == 0
    assert dataclasses.replace(positional, model="z").model == "z"
    with pytest.raises(dataclasses.FrozenInstanceError):
        positional.model = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        AttemptStarted("r", 1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        AttemptStarted("r", 1.0, "a", "m", "p", "d", unknown=1)  # type: ignore[call-arg]
    started = RequestStarted("r", 1.0, "safe", "fallback")
    assert (started.tags, started.messages, started.prompt) == ((), None, None)
    finished = RequestFinished("r", 1.0, "safe", "fallback", True, 0.5, cost=0.25)
    assert [getattr(finished, f.name) for f in dataclasses.fields(finished)] == [
        "r",
        1.0,
        "safe",
        "fallback",
        True,
        0.5,
        None,
        0.25,
        0,
        0,
        0,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def test_quick_init_keeps_factories_init_false_defaults_and_post_init() -> None:
    from model_orchestrator.core.frozen import quick_init

    @quick_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Listed:
        items: list[int] = dataclasses.field(default_factory=list)

    first, second = Listed(), Listed()
    assert first.items == [] and first.items is not second.items  # a new list each time
    assert Listed([1]).items == [1] and repr(Listed()).endswith("Listed(items=[])")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Unset:
        value: int = dataclasses.field(init=False)

    with pytest.raises(TypeError, match="needs a default"):
        quick_init(Unset)

    @quick_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        value: int
        doubled: int = dataclasses.field(default=0, init=False)

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")
            object.__setattr__(self, "doubled", self.value * 2)

    assert Checked(3).doubled == 6
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)
