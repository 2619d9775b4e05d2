"""Wrapping one deployment's adapter in its resilience layers, from config (part of the composition root).

Outermost first: ``RetryingModel(HealthGatedModel(CircuitBreakerModel(CooldownModel(RateLimitedModel(
ObservedModel(TimeoutModel(adapter)))))))``: every upstream attempt takes a rate-limit token, counts toward
the breaker and is observed; an open circuit, a cooldown or (with somewhere else to go) a failed last
health probe is not retried but goes straight to the strategy above.
Unset config fields keep each policy's documented default (defined once, in the policy class).
"""

from __future__ import annotations

import random
from typing import Any

from model_orchestrator.config.schema import ModelConfig, ResilienceConfig, _Options
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.resilience.circuit_breaker import BreakerPolicy, CircuitBreakerModel
from model_orchestrator.resilience.cooldown import CooldownModel, CooldownPolicy
from model_orchestrator.resilience.health import HealthGatedModel
from model_orchestrator.resilience.rate_limiter import RateLimitedModel, RateLimitPolicy
from model_orchestrator.resilience.retry import RetryingModel, RetryPolicy
from model_orchestrator.resilience.state_store import StateStore
from model_orchestrator.resilience.timeout import TimeoutModel


def _set(*blocks: _Options | None) -> dict[str, Any]:
    """Fields set in any block, later blocks winning."""
    merged: dict[str, Any] = {}
    for block in blocks:
        if block is not None:
            merged.update(block.model_dump(exclude_none=True))
    return merged


def wrap_deployment(
    adapter: ChatModel,
    cfg: ModelConfig,
    deployment: str,
    price: Price | None,
    profile: ModelProfile,
    resilience: ResilienceConfig,
    *,
    store: StateStore,
    clock: Clock,
    bus: EventBus,
    rng: random.Random | None = None,
) -> ChatModel:
    """The adapter inside its timeout, observation, rate limit, cooldown, breaker, health and retry
    layers."""
    model: ChatModel = TimeoutModel(
        adapter, deployment=deployment, timeout=cfg.timeout or resilience.request_timeout, clock=clock
    )
    model = ObservedModel(
        model, name=cfg.name, provider=cfg.provider, deployment=deployment, price=price, bus=bus, clock=clock
    )
    # Always wrapped: without rpm/tpm it still paces by the provider's remaining-request headers.
    policy = RateLimitPolicy(rpm=cfg.rpm, tpm=cfg.tpm, **_set(resilience.rate_limit))
    model = RateLimitedModel(
        model, deployment=deployment, policy=policy, store=store, clock=clock, profile=profile
    )
    model = CooldownModel(
        model,
        deployment=deployment,
        policy=CooldownPolicy(**_set(resilience.cooldown)),
        store=store,
        clock=clock,
        bus=bus,
    )
    # One rule for empty answers (resilience.empty_answer): the breaker counts them as failures exactly
    # when retry tries them again.
    retry_policy = RetryPolicy(**_set(resilience.retry, cfg.retry))
    model = CircuitBreakerModel(
        model,
        deployment=deployment,
        policy=BreakerPolicy(**_set(resilience.breaker, cfg.breaker)),
        store=store,
        clock=clock,
        bus=bus,
        provider=cfg.provider,
        empty_is_failure=retry_policy.retry_on_empty,
    )
    model = HealthGatedModel(model, deployment=deployment, store=store)
    return RetryingModel(
        model,
        deployment=deployment,
        policy=retry_policy,
        clock=clock,
        bus=bus,
        rng=rng,
    )
