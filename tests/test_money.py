"""Money shown to people keeps its significant digits: a $0.001 budget never reads "$0.00"."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.budget import BudgetLimit
from model_orchestrator.core.clock import SystemClock
from model_orchestrator.core.errors import BudgetExceededError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.money import usd, usd_or_unknown
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.ledger.guard import BudgetGuardModel
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.limits import BudgetRules, PeriodLimits
from model_orchestrator.ledger.settings import LedgerSettings, sqlite_url
from model_orchestrator.testing import FakeUpstream, FunctionModel


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (0.0, "$0.00"),
        (0.001, "$0.001"),
        (0.0041, "$0.0041"),
        (0.000123456, "$0.0001235"),
        (5e-06, "$0.000005"),
        (0.1, "$0.10"),
        (5.0, "$5.00"),
        (1.23456, "$1.235"),
        (1234.5, "$1,234.50"),
        (-0.25, "-$0.25"),
        (1e-12, "$0.000000000001"),
    ],
)
def test_usd_keeps_four_significant_digits_and_at_least_cents(amount: float, shown: str) -> None:
    assert usd(amount) == shown


def test_unknown_amounts_say_so() -> None:
    assert usd_or_unknown(None) == "unknown" and usd_or_unknown(0.002) == "$0.002"
    assert usd(math.inf) == "$inf"


async def test_the_budget_error_shows_a_tenth_of_a_cent(tmp_path: Path) -> None:
    ledger = Ledger(LedgerSettings(sqlite_url(tmp_path / "ledger.sqlite3")))
    try:
        with pytest.raises(BudgetExceededError) as caught:
            await ledger.reserve([BudgetLimit("global", "usd", "day", 0.001)], usd=0.0042, calls=1)
    finally:
        await ledger.aclose()
    message = str(caught.value)
    assert "of $0.001 would be exceeded" in message and "$0.00 " not in message
    assert "spent $0.00, in flight $0.00, this call needs about $0.0042" in message


async def test_a_single_models_cap_names_both_amounts_with_their_digits() -> None:
    with FakeUpstream() as up:
        config = parse_config(
            f"models: [{{name: dear, provider: openai, model: m, api_base: '{up.openai_base}', "
            "api_key_env: K, price: {input: 1000, output: 1000}}]\nledger: {enabled: false}\n"
        )
        async with Orchestrator(config, env={"K": "k"}) as orch:
            with pytest.raises(BudgetExceededError) as caught:
                await orch.complete("hi", model="dear", max_cost=0.0015, max_tokens=10)
        assert up.requests == []
    message = str(caught.value)
    assert "over max_cost $0.0015;" in message
    assert re.search(r"would cost about \$0\.0[1-9]\d{0,3} for this request", message), message


async def test_the_budget_warning_log_writes_small_amounts_as_decimals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(LedgerSettings(sqlite_url(tmp_path / "ledger.sqlite3")))
    price = Price(2.0, 0.0)  # "hi" is 5 prompt tokens: $0.00001 a call
    bus = EventBus()
    guard = BudgetGuardModel(
        ObservedModel(
            FunctionModel(lambda r: "ok"), name="m", provider="p", deployment="d", price=price, bus=bus
        ),
        keeper=ledger,
        rules=BudgetRules(overall=PeriodLimits(daily=0.000012), warn_at=0.8),
        profile=ModelProfile("m", price),
        provider="p",
        deployment="d",
        bus=bus,
        clock=SystemClock(),
    )
    try:
        await guard.complete(ChatRequest.from_prompt("hi", max_tokens=1))
    finally:
        await ledger.aclose()
    [warning] = [r.getMessage() for r in caplog.records if "used or in flight" in r.getMessage()]
    assert "$0.00001 of $0.000012 used or in flight" in warning, warning
