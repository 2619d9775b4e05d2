"""Budgets: reserve-then-settle against real SQLite and PostgreSQL; no overspend under concurrency, no
phantom reservations after cancellations and failures, warnings at 80%, clear errors before any call."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.budget import BudgetLimit
from model_orchestrator.core.clock import SystemClock
from model_orchestrator.core.errors import BudgetExceededError, ServerError
from model_orchestrator.core.events import BudgetWarning, EventBus, RecordingSink
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.ledger.guard import BudgetGuardModel
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.limits import BudgetRules, PeriodLimits
from model_orchestrator.ledger.settings import LedgerSettings
from model_orchestrator.testing import FakeClock, FakeUpstream, FunctionModel, Reply
from tests.ledger_db import DATABASES, url_for

DAY = BudgetLimit("global", "usd", "day", 1.0)


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


async def test_reserve_settle_release_keep_spent_and_reserved_exact(url: str) -> None:
    ledger = Ledger(LedgerSettings(url))
    try:
        first = await ledger.reserve([DAY], usd=0.6, calls=1)
        assert await ledger.reserved_total() == pytest.approx(0.6)
        with pytest.raises(BudgetExceededError, match="daily budget 'global'"):
            await ledger.reserve([DAY], usd=0.5, calls=1)  # 0.6 held + 0.5 > 1.0: nothing held
        assert await ledger.reserved_total() == pytest.approx(0.6)
        await ledger.settle(first, usd=0.25, calls=1)
        second = await ledger.reserve([DAY], usd=0.7, calls=1)  # 0.25 spent + 0.7 fits
        await ledger.release(second)
        [status] = await ledger.budget_usage([DAY])
        assert (status.spent, status.reserved) == (pytest.approx(0.25), 0.0)
        assert await ledger.reserved_total() == 0.0
    finally:
        await ledger.aclose()


async def test_a_reservation_left_by_a_dead_process_expires(url: str) -> None:
    clock = FakeClock()
    dead = Ledger(LedgerSettings(url, reservation_ttl=60), clock=clock)
    await dead.reserve([DAY], usd=0.9, calls=1)
    await dead.aclose()  # never settled, as if killed
    alive = Ledger(LedgerSettings(url, reservation_ttl=60), clock=clock)
    try:
        with pytest.raises(BudgetExceededError):
            await alive.reserve([DAY], usd=0.5, calls=1)
        clock.advance(61)
        await alive.release(await alive.reserve([DAY], usd=0.5, calls=1))
        assert await alive.reserved_total() == 0.0
    finally:
        await alive.aclose()


def _config(up: FakeUpstream, budget: float, url: str) -> str:
    return f"""
models:
  - {{name: fast, provider: openai, model: m-fast, api_base: "{up.openai_base}", api_key_env: K,
     price: {{input: 100, output: 100}}}}
budgets: {{daily_usd: {budget}}}
ledger: {{url: "{url}", flush_interval: 0.05}}
"""


# 40 characters: estimated at 10 + 4 (message overhead) = 14 prompt tokens; 10 output tokens reserved.
PROMPT = "Summarise the ledger in one short phrase."[:40]
CALL_COST = (14 * 100 + 10 * 100) / 1e6


@pytest.mark.slow
async def test_200_concurrent_requests_never_overspend_the_daily_budget(url: str) -> None:
    budget = 50 * CALL_COST + CALL_COST / 2  # room for exactly 50 calls
    async with FakeUpstream(default_reply=Reply("ok", usage=(14, 10), latency=0.02)) as up:
        config = parse_config(_config(up, budget, url))
        # Four orchestrators = four independent ledgers (as four processes would be) on one database.
        orchestrators = [Orchestrator(config, env={"K": "k"}) for _ in range(4)]
        try:
            calls = [
                orch.complete(PROMPT, model="fast", max_tokens=10)
                for orch in orchestrators
                for _ in range(50)
            ]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            for orch in orchestrators:
                await orch.ledger.flush()
            report = await orchestrators[0].costs_report()
            held = await orchestrators[0].ledger.reserved_total()
        finally:
            for orch in orchestrators:
                await orch.aclose()
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert len(answered) + len(refused) == 200, [o for o in outcomes if isinstance(o, BaseException)][:3]
    assert len(answered) == 50
    assert len(up.requests) == 50, "a refused request must not reach the upstream"
    assert report.total.cost <= budget + CALL_COST
    assert report.total.cost == pytest.approx(50 * CALL_COST)
    assert held == 0.0
    assert "daily budget 'global'" in str(refused[0]) and "nothing was sent" in str(refused[0])


def _guarded(ledger: Ledger, inner: FunctionModel, bus: EventBus) -> BudgetGuardModel:
    price = Price(1.0, 2.0)
    observed = ObservedModel(inner, name="m", provider="p", deployment="m@p", price=price, bus=bus)
    return BudgetGuardModel(
        observed,
        keeper=ledger,
        rules=BudgetRules(overall=PeriodLimits(daily=100.0), calls_per_day={"p": 1_000_000}),
        profile=ModelProfile("m", price),
        provider="p",
        deployment="m@p",
        bus=bus,
        clock=SystemClock(),
    )


@pytest.mark.slow
async def test_1000_cancelled_or_failed_requests_leave_nothing_reserved(url: str) -> None:
    rng = random.Random(7)

    async def answer(request: ChatRequest) -> str:
        for _ in range(rng.randrange(4)):
            await asyncio.sleep(0)
        if rng.random() < 0.3:
            raise ServerError("boom")
        return "fine"

    ledger = Ledger(LedgerSettings(url))
    model = _guarded(ledger, FunctionModel(answer), EventBus())
    request = ChatRequest.from_prompt("hello there", max_tokens=5)

    async def one(i: int) -> None:
        task = asyncio.ensure_future(model.complete(request))
        for _ in range(rng.randrange(12)):
            await asyncio.sleep(0)
        if i % 3 != 0:
            task.cancel()  # lands anywhere: before, during or after the reservation, or the call
        with contextlib.suppress(asyncio.CancelledError, TimeoutError, ServerError):
            await asyncio.wait_for(task, timeout=0.05 if i % 5 == 0 else None)

    try:
        for start in range(0, 1000, 100):
            await asyncio.gather(*(one(i) for i in range(start, start + 100)))
        await ledger.aclose()  # waits for settlements still running in the background
        assert await ledger.reserved_total() == 0.0
    finally:
        await ledger.aclose()


async def test_streams_settle_too_even_when_abandoned(url: str) -> None:
    ledger = Ledger(LedgerSettings(url))
    model = _guarded(ledger, FunctionModel(lambda r: "a streamed answer in pieces"), EventBus())
    try:
        request = ChatRequest.from_prompt("hi", max_tokens=50)
        assert "".join([d.text async for d in model.stream(request)]) == "a streamed answer in pieces"
        abandoned = model.stream(request)
        await anext(abandoned)
        await abandoned.aclose()  # type: ignore[attr-defined]
        assert await ledger.reserved_total() == 0.0
        [day, calls] = await ledger.budget_usage(
            [BudgetLimit("global", "usd", "day", 100.0), BudgetLimit("provider:p", "calls", "day", 1e6)]
        )
        assert calls.spent == 2 and day.spent > 0
    finally:
        await ledger.aclose()


async def test_warning_at_80_percent_once_then_refusal_and_unknown_price_refused(tmp_path: Path) -> None:
    ledger = Ledger(LedgerSettings(url_for("sqlite", tmp_path)))
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    price = Price(200_000.0, 0.0)  # "hi" is 5 prompt tokens: exactly $1 a call, estimated and actual
    inner = FunctionModel(lambda r: "ok")
    observed = ObservedModel(inner, name="m", provider="p", deployment="d", price=price, bus=bus)
    rules = BudgetRules(overall=PeriodLimits(daily=10.0), warn_at=0.8)
    guard = BudgetGuardModel(
        observed,
        keeper=ledger,
        rules=rules,
        profile=ModelProfile("m", price),
        provider="p",
        deployment="d",
        bus=bus,
        clock=SystemClock(),
    )
    unpriced_inner = FunctionModel(lambda r: "ok")
    unpriced = BudgetGuardModel(
        unpriced_inner,
        keeper=ledger,
        rules=rules,
        profile=ModelProfile("u", None),
        provider="p",
        deployment="u",
        bus=bus,
        clock=SystemClock(),
    )
    request = ChatRequest.from_prompt("hi", max_tokens=1)
    try:
        for call in range(1, 11):
            await guard.complete(request)
            assert len(sink.of_type(BudgetWarning)) == (0 if call < 8 else 1), call
        with pytest.raises(BudgetExceededError, match="nothing was sent"):
            await guard.complete(request)
        assert len(inner.requests) == 10
        with pytest.raises(BudgetExceededError, match="price of 'u' is unknown"):
            await unpriced.complete(request)
        assert unpriced_inner.requests == []
        [warning] = sink.of_type(BudgetWarning)
        assert isinstance(warning, BudgetWarning)
        assert (warning.budget, warning.unit, warning.limit) == ("global", "usd", 10.0)
        assert warning.fraction == pytest.approx(0.8)
        assert await ledger.reserved_total() == 0.0
    finally:
        await ledger.aclose()


async def test_category_and_key_budgets_apply_only_to_their_requests(tmp_path: Path) -> None:
    ledger = Ledger(LedgerSettings(url_for("sqlite", tmp_path)))
    price = Price(200_000.0, 0.0)
    bus = EventBus()
    observed = ObservedModel(
        FunctionModel(lambda r: "ok"), name="m", provider="p", deployment="d", price=price, bus=bus
    )
    rules = BudgetRules(
        categories={"batch": PeriodLimits(daily=1.0)}, api_keys={"*": PeriodLimits(monthly=2.0)}
    )
    guard = BudgetGuardModel(
        observed,
        keeper=ledger,
        rules=rules,
        profile=ModelProfile("m", price),
        provider="p",
        deployment="d",
        bus=bus,
        clock=SystemClock(),
    )
    hi = ChatRequest.from_prompt("hi", max_tokens=1)
    try:
        await guard.complete(hi.with_options(category="batch"))
        with pytest.raises(BudgetExceededError, match="category:batch"):
            await guard.complete(hi.with_options(category="batch"))
        await guard.complete(hi.with_options(category="other"))  # no budget for this category
        await guard.complete(hi.with_options(api_key_id="team-a"))
        await guard.complete(hi.with_options(api_key_id="team-a"))
        with pytest.raises(BudgetExceededError, match="monthly budget 'key:team-a'"):
            await guard.complete(hi.with_options(api_key_id="team-a"))
        await guard.complete(hi.with_options(api_key_id="team-b"))  # "*": every key has its own budget
    finally:
        await ledger.aclose()
