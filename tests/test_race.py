"""RaceModel and HedgeModel: the first success wins (wall time ~ fastest member, through real HTTP), losers'
connections close and their cancelled attempts are recorded; a hedge fires only after its delay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from model_orchestrator.core.errors import AllModelsFailedError, ConfigError, RequestTimeoutError, ServerError
from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    EventBus,
    FallbackTriggered,
    RecordingSink,
)
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.race import HedgeModel, LatencyTracker, RaceModel
from model_orchestrator.testing import FakeClock, FakeUpstream, FunctionModel, Reply, ScriptedModel

PRICE = Price(input=1.0, output=2.0)
QUESTION = ChatRequest.from_prompt("What is the capital of Australia?", request_id="req-7")


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    transport = HttpTransport()
    yield transport
    await transport.aclose()


def http_member(up: FakeUpstream, transport: HttpTransport, name: str, bus: EventBus) -> Member:
    adapter = OpenAICompatibleModel(
        name=name, model_id="gpt-4o-mini", api_base=up.openai_base, api_key="k", transport=transport
    )
    observed = ObservedModel(
        adapter, name=name, provider="openai", deployment=adapter.deployment, price=PRICE, bus=bus
    )
    return Member(observed, ModelProfile(name, price=PRICE))


def scripted(name: str, *answers: str | BaseException | Completion) -> Member:
    return Member(ScriptedModel(answers, name=name), ModelProfile(name, price=PRICE))


def hanging(name: str) -> Member:
    """A member that never answers until cancelled."""

    async def wait_forever(request: ChatRequest) -> str:
        await asyncio.Event().wait()
        return "never"

    return Member(FunctionModel(wait_forever, name=name), ModelProfile(name, price=PRICE))


# --- race through real HTTP --------------------------------------------------------------------------


async def test_race_returns_the_fastest_and_closes_the_losers_connections(transport: HttpTransport) -> None:
    # The losers would answer only after 10 and 20 s: the race returns without them, so their calls are
    # cut (the upstream sees the client leave) and counted as cancelled attempts, never as answers.
    latencies = {"fast": 0.2, "medium": 10.0, "slow": 20.0}
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    async with FakeUpstream() as a, FakeUpstream() as b, FakeUpstream() as c:
        ups = dict(zip(latencies, (a, b, c), strict=True))
        for name, up in ups.items():
            up.script(Reply(f"Canberra from {name}", latency=latencies[name], usage=(20, 4)))
        members = [http_member(ups[n], transport, n, bus) for n in latencies]
        race = RaceModel(members, clock=FakeClock(), bus=bus)

        completion = await race.complete(QUESTION)
        finished = {name: (await up.await_finished(1))[0] for name, up in ups.items()}

    assert completion.text == "Canberra from fast" and completion.model == "fast"
    assert [finished[n].disconnected for n in latencies] == [False, True, True]
    assert [e.model for e in sink.of_type(AttemptSucceeded)] == ["fast"]
    cancelled = [e for e in sink.of_type(AttemptFailed) if isinstance(e, AttemptFailed) and e.cancelled]
    assert sorted(e.model for e in cancelled) == ["medium", "slow"]
    assert all(e.request_id == "req-7" and e.usage.input_tokens > 0 for e in cancelled)
    explanation = completion.explanation
    assert explanation is not None and explanation.strategy == "race"
    assert [(s.model, s.outcome) for s in explanation.steps] == [
        ("fast", "ok"),
        ("medium", "cancelled"),
        ("slow", "cancelled"),
    ]
    losers_cost = sum(s.cost or 0.0 for s in explanation.steps[1:])
    assert losers_cost > 0  # their estimated prompt spend is part of the total
    assert completion.cost == pytest.approx((20 * 1.0 + 4 * 2.0) / 1e6 + losers_cost)
    assert completion.usage.estimated and completion.usage.output_tokens == 4


# --- race decisions ----------------------------------------------------------------------------------


async def test_a_failure_never_wins_the_race() -> None:
    answered = asyncio.Event()

    async def slower(request: ChatRequest) -> str:
        await asyncio.sleep(0)  # lets the failing member finish first
        answered.set()
        return "Canberra"

    failing = scripted("broken", ServerError("boom", status_code=500))
    steady = Member(FunctionModel(slower, name="steady"), ModelProfile("steady"))

    completion = await RaceModel([failing, steady], clock=FakeClock(), bus=EventBus()).complete(QUESTION)

    assert completion.text == "Canberra" and answered.is_set()
    explanation = completion.explanation
    assert explanation is not None
    assert [(s.model, s.outcome) for s in explanation.steps] == [("broken", "error"), ("steady", "ok")]


async def test_when_every_member_fails_the_error_lists_each() -> None:
    members = [scripted("a", ServerError("a down")), scripted("b", RequestTimeoutError("b slow"))]

    with pytest.raises(AllModelsFailedError) as caught:
        await RaceModel(members, clock=FakeClock(), bus=EventBus()).complete(QUESTION)

    assert [type(e).__name__ for e in caught.value.errors] == ["ServerError", "RequestTimeoutError"]
    assert "every member failed" in str(caught.value) and "b slow" in str(caught.value)


async def test_losers_are_cancelled_and_the_race_streams_one_delta() -> None:
    slow = hanging("slow")
    race = RaceModel([slow, scripted("quick", "Canberra")], clock=FakeClock(), bus=EventBus())

    deltas = [d async for d in race.stream(QUESTION)]

    assert [d.text for d in deltas] == ["Canberra"]
    explanation = deltas[0].explanation
    assert explanation is not None
    assert [(s.model, s.outcome) for s in explanation.steps] == [("slow", "cancelled"), ("quick", "ok")]
    assert explanation.steps[0].reason == "cancelled: quick answered first"
    with pytest.raises(ConfigError):
        RaceModel([], clock=FakeClock(), bus=EventBus())


async def test_cancelling_the_race_cancels_every_member() -> None:
    members = [hanging("a"), hanging("b")]
    task = asyncio.create_task(RaceModel(members, clock=FakeClock(), bus=EventBus()).complete(QUESTION))
    await asyncio.sleep(0.01)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task


# --- hedge -------------------------------------------------------------------------------------------


def hedge(
    primary: Member, *backups: Member, clock: FakeClock, bus: EventBus, **options: object
) -> HedgeModel:
    return HedgeModel(primary, backups, clock=clock, bus=bus, **options)  # type: ignore[arg-type]


async def test_hedge_fires_after_the_delay_when_the_primary_is_slow() -> None:
    clock, bus, sink = FakeClock(), EventBus(), RecordingSink()
    bus.subscribe(sink)
    backup = scripted("backup", "Canberra")

    completion = await hedge(hanging("primary"), backup, clock=clock, bus=bus, delay=0.25).complete(QUESTION)

    assert clock.sleeps == [0.25]
    assert completion.text == "Canberra" and completion.model == "backup"
    explanation = completion.explanation
    assert explanation is not None and explanation.strategy == "hedge"
    facts = dict(explanation.facts)
    assert (facts["hedged"], facts["hedge_delay"], facts["delay_source"]) == (True, 0.25, "fixed")
    assert [(s.model, s.outcome) for s in explanation.steps] == [("primary", "cancelled"), ("backup", "ok")]
    [moved] = sink.of_type(FallbackTriggered)
    assert isinstance(moved, FallbackTriggered)
    assert (moved.from_model, moved.to_model, moved.reason) == (
        "primary",
        "backup",
        "hedge: no answer after 0.250 s",
    )


async def test_hedge_does_not_fire_when_the_primary_answers_in_time() -> None:
    clock, bus, sink = FakeClock(), EventBus(), RecordingSink()
    bus.subscribe(sink)
    backup = scripted("backup", "never used")

    completion = await hedge(
        scripted("primary", "Canberra"), backup, clock=clock, bus=bus, delay=0.25
    ).complete(QUESTION)

    assert completion.text == "Canberra"
    assert isinstance(backup.model, ScriptedModel) and backup.model.requests == []
    explanation = completion.explanation
    assert explanation is not None
    assert dict(explanation.facts)["hedged"] is False
    assert [s.model for s in explanation.steps] == ["primary"]
    assert sink.of_type(FallbackTriggered) == []


async def test_a_failed_primary_starts_the_backup_at_once() -> None:
    clock, bus, sink = FakeClock(), EventBus(), RecordingSink()
    bus.subscribe(sink)
    primary = scripted("primary", ServerError("down"))

    completion = await hedge(
        primary, scripted("backup", "Canberra"), clock=clock, bus=bus, delay=5.0
    ).complete(QUESTION)

    assert completion.text == "Canberra"
    explanation = completion.explanation
    assert explanation is not None and dict(explanation.facts)["hedged"] is False
    [moved] = sink.of_type(FallbackTriggered)
    assert isinstance(moved, FallbackTriggered) and moved.reason == "the previous member failed"


async def test_hedge_delay_follows_the_primarys_observed_p95_latency() -> None:
    latencies = iter([0.1, 0.2, 0.3, 0.4, 0.5])

    def timed(request: ChatRequest) -> Completion:
        return Completion("Canberra", "p", "p", "p", Usage(5, 1), latency=next(latencies))

    primary = Member(FunctionModel(timed, name="primary"), ModelProfile("primary"))
    clock, bus = FakeClock(), EventBus()
    model = hedge(primary, scripted("backup", "B"), clock=clock, bus=bus, min_samples=5, default_delay=2.0)

    first = await model.complete(QUESTION)
    for _ in range(4):
        await model.complete(QUESTION)
    primary_after = Member(hanging("primary").model, ModelProfile("primary"))
    model._primary = primary_after  # the same tracker, now with a primary that hangs
    hedged = await model.complete(QUESTION)

    assert first.explanation is not None
    assert dict(first.explanation.facts)["delay_source"] == "default (0 of 5 latencies observed)"
    assert hedged.explanation is not None
    facts = dict(hedged.explanation.facts)
    assert facts["hedge_delay"] == 0.5 and facts["delay_source"] == "p95 of the last 5 latencies"
    assert facts["hedged"] is True and clock.sleeps[-1] == 0.5


class _TimerAfterArrival(FakeClock):
    """Virtual time whose sleeps end only once ``upstream`` has received its first request, so the hedge
    fires while the primary's call is certainly in flight (no real waiting, no race with the network)."""

    def __init__(self, upstream: FakeUpstream) -> None:
        super().__init__()
        self._upstream = upstream

    async def sleep(self, seconds: float) -> None:
        await self._upstream.await_started(1)
        await super().sleep(seconds)


async def test_hedge_through_http_buys_tail_latency_and_closes_the_slow_call(
    transport: HttpTransport,
) -> None:
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    async with FakeUpstream() as slow_up, FakeUpstream() as backup_up:
        slow_up.script(Reply("slow answer", latency=20.0))
        backup_up.script(Reply("backup answer"))
        clock = _TimerAfterArrival(slow_up)
        model = HedgeModel(
            http_member(slow_up, transport, "primary", bus),
            [http_member(backup_up, transport, "backup", bus)],
            delay=0.05,
            clock=clock,
            bus=bus,
        )

        completion = await model.complete(QUESTION)
        [primary_call] = await slow_up.await_finished(1)

    assert completion.text == "backup answer"
    assert clock.sleeps == [0.05]  # the backup started after the hedge delay, not after the primary
    assert primary_call.disconnected  # the slow call was cut, not waited for
    assert [e.model for e in sink.of_type(AttemptSucceeded)] == ["backup"]
    [cut] = sink.of_type(AttemptFailed)
    assert isinstance(cut, AttemptFailed) and cut.cancelled and cut.model == "primary"


def test_hedge_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        HedgeModel(scripted("p"), [], clock=FakeClock(), bus=EventBus())
    with pytest.raises(ConfigError):
        HedgeModel(scripted("p"), [scripted("b")], delay=-1, clock=FakeClock(), bus=EventBus())


# --- the latency tracker (pure) --------------------------------------------------------------------


def test_latency_tracker_uses_the_default_until_enough_samples_then_nearest_rank() -> None:
    tracker = LatencyTracker(percentile=0.95, min_samples=3, default=1.5, window=20)

    assert tracker.delay() == (1.5, "default (0 of 3 latencies observed)")
    for seconds in (0.3, 0.1, 0.2):
        tracker.record(seconds)
    assert tracker.delay() == (0.3, "p95 of the last 3 latencies")
    for seconds in [0.1] * 19:
        tracker.record(seconds)
    assert tracker.delay()[0] == 0.1  # the window forgot the slow one
    median = LatencyTracker(percentile=0.5, min_samples=1)
    for seconds in (4.0, 1.0, 3.0, 2.0):
        median.record(seconds)
    assert median.delay()[0] == 2.0
    with pytest.raises(ConfigError):
        LatencyTracker(percentile=0)
    with pytest.raises(ConfigError):
        LatencyTracker(min_samples=10, window=5)
