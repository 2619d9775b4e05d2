"""``RequestScope`` as the one per-request state: child tallies for guarded calls, cooldown pauses read by
retry (no error is changed to carry them), and retry policies shared by concurrent calls."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from model_orchestrator.core.budget import BudgetLimit, Reservation
from model_orchestrator.core.errors import RateLimitedError, ServerError
from model_orchestrator.core.events import EventBus, RecordingSink, RetryScheduled
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, current_scope, request_scope
from model_orchestrator.ledger.guard import BudgetGuardModel
from model_orchestrator.ledger.limits import BudgetRules, PeriodLimits
from model_orchestrator.resilience.cooldown import CooldownModel, CooldownPolicy
from model_orchestrator.resilience.retry import RetryingModel, RetryPolicy
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.testing import FakeClock, FunctionModel, ScriptedModel

REQUEST = ChatRequest.from_prompt("hello", request_id="req-1")


def test_a_child_keeps_its_own_tally_and_counts_toward_the_request() -> None:
    request = RequestScope("r", attempt_budget=2, max_cost=1.0)
    first, second = request.child(), request.child()
    first.record_attempt()
    first.record_cost("a", 0.25)
    second.record_attempt()
    second.record_cost("b", None)
    second.record_failure("b@host", "ServerError")
    assert (first.spent, first.attempts, first.total_cost) == (0.25, 1, 0.25)
    assert (second.spent, second.attempts, second.total_cost) == (0.0, 1, None)
    assert (request.spent, request.attempts, request.total_cost) == (0.25, 2, None)
    assert request.attempt_costs == [("a", 0.25), ("b", None)]
    # Budget questions are the request's, whichever part asks.
    assert first.remaining_cost == 0.75
    first.record_failure("a@host", "ServerError")
    assert not second.may_retry()
    assert request.retries_refused == 1
    assert "2 failed attempts" in (first.budget_used_up() or "")


def test_the_later_pause_wins_and_ends() -> None:
    scope = RequestScope("r")
    scope.child().pause("d", 10.0)
    scope.pause("d", 4.0)
    assert scope.paused_for("d", 3.0) == 7.0
    assert scope.paused_for("d", 10.0) is None
    assert scope.paused_for("other", 0.0) is None


def _cooling(inner: ScriptedModel, clock: FakeClock, policy: RetryPolicy) -> RetryingModel:
    bus = EventBus()
    cooldown = CooldownModel(
        inner,
        deployment="d",
        policy=CooldownPolicy(default_seconds=2.0),
        store=MemoryStateStore(),
        clock=clock,
        bus=bus,
    )
    return RetryingModel(cooldown, deployment="d", policy=policy, clock=clock, bus=bus)


async def test_retry_waits_out_the_cooldown_and_the_error_is_left_as_the_provider_sent_it() -> None:
    clock = FakeClock()
    error = RateLimitedError("429 without a retry-after")
    inner = ScriptedModel([error, "ok"])
    model = _cooling(inner, clock, RetryPolicy(base_delay=0.01, jitter="none"))
    assert (await model.complete(REQUEST)).text == "ok"
    assert clock.sleeps == [2.0]  # the cooldown's 2 s, not the 0.01 s backoff (which would hit it)
    assert error.retry_after is None  # before: the cooldown wrote 2.0 into the provider's error


async def test_a_cooldown_longer_than_retry_waits_is_raised_at_once_unchanged() -> None:
    clock = FakeClock()
    error = RateLimitedError("429 without a retry-after")
    inner = ScriptedModel([error, "never"])
    model = _cooling(inner, clock, RetryPolicy(max_retry_after=1.0))
    with request_scope(RequestScope("req-1")):
        try:
            await model.complete(REQUEST)
        except RateLimitedError as caught:
            assert caught is error and caught.retry_after is None
        else:
            raise AssertionError("the 429 was retried into its own cooldown")
    assert clock.sleeps == [] and inner.remaining == 1


async def test_concurrent_calls_share_the_retry_policies_but_not_their_state() -> None:
    clock = FakeClock()
    failures = {"a": [ServerError("a1")], "b": [ServerError("b1"), ServerError("b2")]}

    async def answer(request: ChatRequest) -> str:
        await asyncio.sleep(0)  # interleave the two calls
        pending = failures[request.messages[-1].text]
        if pending:
            raise pending.pop(0)
        return "ok"

    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    model = RetryingModel(FunctionModel(answer), deployment="d", clock=clock, bus=bus)
    results = await asyncio.gather(
        model.complete(ChatRequest.from_prompt("a", request_id="ra")),
        model.complete(ChatRequest.from_prompt("b", request_id="rb")),
    )
    assert [r.text for r in results] == ["ok", "ok"]
    attempts = {(e.request_id, e.attempt) for e in sink.of_type(RetryScheduled)}  # type: ignore[attr-defined]
    assert attempts == {("ra", 1), ("rb", 1), ("rb", 2)}


class _RecordingKeeper:
    """A ``BudgetKeeper`` with room for everything that records what each reservation was settled with."""

    def __init__(self) -> None:
        self.settled: dict[str, tuple[float, int]] = {}
        self._next = 0

    async def reserve(self, limits: Sequence[BudgetLimit], *, usd: float, calls: int) -> Reservation:
        self._next += 1
        return Reservation(str(self._next), tuple(limits), ("day",) * len(limits), usd, calls)

    async def settle(self, reservation: Reservation, *, usd: float, calls: int) -> None:
        self.settled[reservation.id] = (usd, calls)

    async def release(self, reservation: Reservation) -> None:
        self.settled[reservation.id] = (0.0, 0)


async def test_concurrent_guarded_calls_of_one_request_each_settle_their_own_spend() -> None:
    keeper, bus, clock = _RecordingKeeper(), EventBus(), FakeClock()
    both_started = asyncio.Barrier(2)

    async def answer(_: ChatRequest) -> str:
        await both_started.wait()  # both calls are in flight in the same request at once
        return "answer"

    def guarded(name: str, price: Price) -> BudgetGuardModel:
        observed = ObservedModel(
            FunctionModel(answer, name=name), name=name, provider="p", deployment=name, price=price, bus=bus
        )
        return BudgetGuardModel(
            observed,
            keeper=keeper,
            rules=BudgetRules(overall=PeriodLimits(daily=100.0)),
            profile=ModelProfile(name, price),
            provider="p",
            deployment=name,
            bus=bus,
            clock=clock,
        )

    cheap, dear = guarded("cheap", Price(1.0, 1.0)), guarded("dear", Price(100.0, 100.0))
    with request_scope(RequestScope("req-1")) as scope:
        first, second = await asyncio.gather(cheap.complete(REQUEST), dear.complete(REQUEST))
        assert current_scope() is scope
    assert keeper.settled == {"1": (first.cost, 1), "2": (second.cost, 1)}
    assert first.cost is not None and second.cost is not None and first.cost < second.cost
    assert scope.spent == first.cost + second.cost and scope.attempts == 2
