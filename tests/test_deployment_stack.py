"""``config.deployment_stack``: one builder puts every deployment's layers together, in one order, from
one ``DeploymentContext``."""

from __future__ import annotations

from pathlib import Path

from model_orchestrator.config.build import build_registry
from model_orchestrator.config.deployment_stack import (
    DeploymentContext,
    build_deployment_stack,
    observe,
    retry,
)
from model_orchestrator.config.loader import parse_config
from model_orchestrator.config.schema import ResilienceConfig
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.messages import Message
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.settings import LedgerSettings, sqlite_url
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.testing import FakeClock, FunctionModel

MODEL = """
models:
  - name: m
    provider: openai
    model: x
    api_base: http://127.0.0.1:9/v1
    price: {input: 1, output: 2}
    context_window: 4000
"""
LAYERS = [
    "RetryingModel",
    "HealthGatedModel",
    "CircuitBreakerModel",
    "CooldownModel",
    "RateLimitedModel",
    "ObservedModel",
    "TimeoutModel",
    "OpenAICompatibleModel",
]


def _layers(model: ChatModel) -> list[ChatModel]:
    chain = [model]
    while isinstance(model, WrapperModel):
        model = model.inner
        chain.append(model)
    return chain


def _deployment(yaml: str, tmp_path: Path) -> tuple[list[ChatModel], object]:
    config = parse_config(yaml)
    ledger = Ledger(LedgerSettings(url=sqlite_url(tmp_path / "ledger.db")))  # built, never opened
    registry, factory = build_registry(config, {}, EventBus(), FakeClock(), keeper=ledger)
    profile = registry.info("m").profile
    return _layers(factory(config.models[0], profile, None)), profile


def test_a_deployment_is_built_in_the_documented_order(tmp_path: Path) -> None:
    chain, _ = _deployment(MODEL, tmp_path)
    assert [type(m).__name__ for m in chain] == LAYERS


def test_a_budget_adds_its_guard_outermost_over_the_same_profile(tmp_path: Path) -> None:
    chain, profile = _deployment(MODEL + "budgets: {daily_usd: 1.0}\n", tmp_path)
    assert [type(m).__name__ for m in chain] == ["BudgetGuardModel", *LAYERS]
    guard, limiter = chain[0], chain[5]
    # One profile, built once by the registry, is what the guard prices and the rate limit reserves by.
    assert guard._profile is profile  # type: ignore[attr-defined]
    assert limiter._profile is profile  # type: ignore[attr-defined]


async def test_layers_are_applied_outermost_first_over_the_adapter() -> None:
    config = parse_config(MODEL)
    info_profile = build_registry(config, {}, EventBus(), FakeClock())[0].info("m").profile
    context = DeploymentContext(
        config=config.models[0],
        deployment="m@test",
        profile=info_profile,
        resilience=ResilienceConfig(),
        store=MemoryStateStore(),
        clock=FakeClock(),
        bus=EventBus(),
    )
    adapter = FunctionModel(lambda _: "ok", name="m")
    model = build_deployment_stack(adapter, context, layers=(retry, observe))
    assert [type(m).__name__ for m in _layers(model)] == ["RetryingModel", "ObservedModel", "FunctionModel"]
    answer = await model.complete(ChatRequest(messages=(Message.user("hi"),)))
    assert answer.text == "ok"
    assert answer.cost is not None  # priced by the profile's price, via the ObservedModel layer
