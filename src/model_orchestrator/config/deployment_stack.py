"""One deployment's stack (part of the composition root): the ``DeploymentContext`` and the ordered layers.

Owns the only place a deployment's wrappers are put together (starlette's ``build_middleware_stack``):
``DEPLOYMENT_LAYERS`` lists the layers outermost first, each a function ``(inner, context) -> model``, and
``build_deployment_stack`` applies them from the innermost out over the adapter::

    BudgetGuardModel           one reservation per call and all its retries (only when a budget applies)
    RetryingModel              retries retryable failures; an open circuit or cooldown is not retried
    HealthGatedModel           passes over a deployment whose last probe failed (with somewhere else to go)
    CircuitBreakerModel        skips an open circuit; counts every outcome
    CooldownModel              skips a deployment cooling down after a 429 or overload
    RateLimitedModel           every upstream attempt takes a rate-limit token
    ObservedModel              prices usage, emits the attempt events
    TimeoutModel               per-attempt, first-token and idle limits
    adapter

It does not build the adapter (``providers.deployments``) or choose between deployments (strategies).
Unset config fields keep each policy's documented default (defined once, in the policy class).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from model_orchestrator.config.ledger import BudgetGuards
from model_orchestrator.config.schema import ModelConfig, ResilienceConfig, _Options
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.ledger.guard import BudgetGuardModel
from model_orchestrator.resilience.circuit_breaker import BreakerPolicy, CircuitBreakerModel
from model_orchestrator.resilience.cooldown import CooldownModel, CooldownPolicy
from model_orchestrator.resilience.health import HealthGatedModel
from model_orchestrator.resilience.rate_limiter import RateLimitedModel, RateLimitPolicy
from model_orchestrator.resilience.retry import RetryingModel, RetryPolicy
from model_orchestrator.resilience.state_store import StateStore
from model_orchestrator.resilience.timeout import TimeoutModel


@dataclass(frozen=True, slots=True)
class DeploymentContext:
    """Everything a layer may need about one deployment, gathered once by the composition root.

    ``profile`` is the model's (built once, by the registry): its price is the deployment's price.
    ``guards`` is None when no budget or quota is kept (no ledger, or none configured).
    """

    config: ModelConfig
    deployment: str
    profile: ModelProfile
    resilience: ResilienceConfig
    store: StateStore
    clock: Clock
    bus: EventBus
    rng: random.Random | None = None
    guards: BudgetGuards | None = None

    @property
    def price(self) -> Price | None:
        """USD per million tokens of this deployment (None: unknown)."""
        return self.profile.price

    @property
    def retry_policy(self) -> RetryPolicy:
        """The model's retry block over the global one (also read by the breaker: one empty-answer rule)."""
        return RetryPolicy(**_set(self.resilience.retry, self.config.retry))


Layer = Callable[[ChatModel, DeploymentContext], ChatModel]


def _set(*blocks: _Options | None) -> dict[str, Any]:
    """Fields set in any block, later blocks winning."""
    merged: dict[str, Any] = {}
    for block in blocks:
        if block is not None:
            merged.update(block.model_dump(exclude_none=True))
    return merged


def budget_guard(inner: ChatModel, context: DeploymentContext) -> ChatModel:
    """Outside the retries, so one reservation covers a call and all its retries."""
    guards = context.guards
    if guards is None or not guards.rules.guards(context.config.provider):
        return inner
    return BudgetGuardModel(
        inner,
        keeper=guards.keeper,
        rules=guards.rules,
        profile=context.profile,
        provider=context.config.provider,
        deployment=context.deployment,
        bus=context.bus,
        clock=context.clock,
    )


def retry(inner: ChatModel, context: DeploymentContext) -> ChatModel:
    return RetryingModel(
        inner,
        deployment=context.deployment,
        policy=context.retry_policy,
        clock=context.clock,
        bus=context.bus,
        rng=context.rng,
    )


def health_gate(inner: ChatModel, context: DeploymentContext) -> ChatModel:
    return HealthGatedModel(inner, deployment=context.deployment, store=context.store)


def circuit_breaker(inner: ChatModel, context: DeploymentContext) -> ChatModel:
    # One rule for empty answers: the breaker counts them as failures exactly when retry tries them again.
    return CircuitBreakerModel(
        inner,
        deployment=context.deployment,
        policy=BreakerPolicy(**_set(context.resilience.breaker, context.config.breaker)),
        store=context.store,
        clock=context.clock,
        bus=context.bus,
        provider=context.config.provider,
        empty_is_failure=context.retry_policy.retry_on_empty,
    )


def cooldown(inner: ChatModel, context: DeploymentContext) -> ChatModel:
    return CooldownModel(
        inner,
        deployment=context.deployment,
        policy=CooldownPolicy(**_set(context.resilience.cooldown)),
        store=context.store,
        clock=context.clock,
        bus=context.bus,
    )


def rate_limit(inner: ChatModel, context: DeploymentContext) -> ChatModel:
    # Always wrapped: without rpm/tpm it still paces by the provider's remaining-request headers.
    cfg = context.config
    policy = RateLimitPolicy(rpm=cfg.rpm, tpm=cfg.tpm, **_set(context.resilience.rate_limit))
    return RateLimitedModel(
        inner,
        deployment=context.deployment,
        policy=policy,
        store=context.store,
        clock=context.clock,
        profile=context.profile,
    )


def observe(inner: ChatModel, context: DeploymentContext) -> ChatModel:
    cfg = context.config
    return ObservedModel(
        inner,
        name=cfg.name,
        provider=cfg.provider,
        deployment=context.deployment,
        price=context.price,
        bus=context.bus,
        clock=context.clock,
    )


def timeout(inner: ChatModel, context: DeploymentContext) -> ChatModel:
    seconds = context.config.timeout or context.resilience.request_timeout
    return TimeoutModel(inner, deployment=context.deployment, timeout=seconds, clock=context.clock)


DEPLOYMENT_LAYERS: tuple[Layer, ...] = (
    budget_guard,
    retry,
    health_gate,
    circuit_breaker,
    cooldown,
    rate_limit,
    observe,
    timeout,
)


def build_deployment_stack(
    adapter: ChatModel, context: DeploymentContext, layers: Sequence[Layer] = DEPLOYMENT_LAYERS
) -> ChatModel:
    """``adapter`` inside ``layers`` (listed outermost first), each given ``context``."""
    model = adapter
    for layer in reversed(layers):
        model = layer(model, context)
    return model
