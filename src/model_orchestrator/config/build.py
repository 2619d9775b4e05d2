"""The composition root: turns validated config into a ``ModelRegistry`` of resilient deployments.

Each deployment is its provider's adapter (built by ``providers.deployments``) inside the layers of
``config.deployment_stack``, applied by ``ModelFactory`` from one ``DeploymentContext``. The pooled HTTP
transport is made on first need, so a local-only run never imports the HTTP client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from model_orchestrator.config.deployment_stack import DeploymentContext, build_deployment_stack
from model_orchestrator.config.ledger import BudgetGuards, budget_guards, budget_rules
from model_orchestrator.config.redaction import excerpt
from model_orchestrator.config.registry import ModelRegistry, deployment_id
from model_orchestrator.config.schema import ModelConfig, OrchestratorConfig, ResilienceConfig
from model_orchestrator.config.state import StateConfig, check_state_url
from model_orchestrator.core.budget import BudgetKeeper
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.providers.cli_agent.presets import agent_command
from model_orchestrator.providers.deployments import (
    DeploymentSpec,
    create_adapter,
    local_unavailable_reason,
    provider_table,
)
from model_orchestrator.resilience.shared_state import FailoverStateStore
from model_orchestrator.resilience.state_store import MemoryStateStore, StateStore
from model_orchestrator.strategies.member import Member

if TYPE_CHECKING:
    from model_orchestrator.providers.http import HttpTransport


@dataclass(frozen=True, slots=True)
class BuiltDeployment:
    """What the health monitor needs to know about a deployment that has been built."""

    name: str
    deployment: str
    probe: Callable[[], Awaitable[None]] | None


class ModelFactory:
    """Builds one deployment's model with its resilience wrappers; owns the shared HTTP transport and
    the state store behind every breaker, cooldown and rate limit."""

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        resilience: ResilienceConfig,
        guards: BudgetGuards | None = None,
        store: StateStore | None = None,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._resilience = resilience
        self._guards = guards
        self._transport: HttpTransport | None = None
        self.store: StateStore = store or MemoryStateStore()
        self.deployments: dict[str, BuiltDeployment] = {}

    def __call__(
        self, cfg: ModelConfig, profile: ModelProfile, api_key: str | None, deployment: str | None = None
    ) -> ChatModel:
        spec = deployment_spec(cfg, api_key, deployment)
        adapter = create_adapter(spec, self._http)
        probe = getattr(adapter, "probe", None)
        self.deployments[spec.deployment] = BuiltDeployment(cfg.name, spec.deployment, probe)
        context = DeploymentContext(
            config=cfg,
            deployment=spec.deployment,
            profile=profile,
            resilience=self._resilience,
            store=self.store,
            clock=self._clock,
            bus=self._bus,
            guards=self._guards,
        )
        return build_deployment_stack(adapter, context)

    def balanced(self, name: str, deployments: Sequence[Member]) -> ChatModel:
        """One model served by several deployments: round-robin, falling back through the others."""
        from model_orchestrator.strategies.balanced import BalancedModel

        return BalancedModel(deployments, name=name, clock=self._clock, bus=self._bus)

    def forget(self, name: str) -> None:
        """Stop tracking (health, probes) the deployments of a model the registry dropped."""
        for key in [k for k, built in self.deployments.items() if built.name == name]:
            del self.deployments[key]

    async def aclose(self) -> None:
        """Close the shared HTTP transport (after the models that use it) and the state store's
        connections."""
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
        if isinstance(self.store, FailoverStateStore):
            await self.store.aclose()
        if self._guards is not None and self._guards.close is not None:
            await self._guards.close()

    def _http(self) -> HttpTransport:
        if self._transport is None:
            from model_orchestrator.providers.http import HttpTransport

            self._transport = HttpTransport(clock=self._clock)
        return self._transport


def build_registry(
    config: OrchestratorConfig,
    env: Mapping[str, str],
    bus: EventBus,
    clock: Clock,
    *,
    keeper: BudgetKeeper | None = None,
) -> tuple[ModelRegistry, ModelFactory]:
    """The registry of every usable name, and the factory whose transport must be closed last.

    With a ``keeper`` (the ledger) and budgets or quotas in config, deployments get budget guards.
    """
    table = provider_table()
    for model in config.models:
        if model.provider not in table:
            raise ConfigError(
                f"model {model.name!r}: unknown provider {excerpt(model.provider)}; "
                f"expected one of: {', '.join(sorted(table))}"
            )
    store = build_state_store(config.state, env, clock, bus)  # first: it says when redis is missing
    guards = None
    if keeper is not None and budget_rules(config).active:
        guards = budget_guards(config, state_url(config.state, env), keeper, clock)
    factory = ModelFactory(bus, clock, config.resilience, guards, store)
    registry = ModelRegistry(
        config,
        env,
        factory,
        providers=table,
        local_available=local_unavailable_reason,
    )
    return registry, factory


def build_state_store(config: StateConfig, env: Mapping[str, str], clock: Clock, bus: EventBus) -> StateStore:
    """The store behind every breaker, cooldown, rate limit, health result and key limit: in-process
    without ``state.url``, else Redis behind the ``state.on_unavailable`` policy. Connects lazily."""
    url = state_url(config, env)
    if url is None:
        return MemoryStateStore()
    try:
        from model_orchestrator.resilience.redis_state import RedisStateStore, state_client
    except ImportError:
        raise ConfigError(
            "state.url needs the redis package: pip install 'model-orchestrator[redis]'"
        ) from None
    try:
        client = state_client(url)
    except ValueError:  # never quote the URL: it may hold a password
        raise ConfigError("state: the Redis URL is malformed; expected redis://host:port/db") from None
    shared = RedisStateStore(client, prefix=config.prefix, cache_ttl=config.cache_ttl)
    return FailoverStateStore(
        shared,
        clock=clock,
        bus=bus,
        on_unavailable=config.on_unavailable,
        replicas=config.replicas,
        timeout=config.timeout,
        retry_interval=config.retry_interval,
    )


def state_url(config: StateConfig, env: Mapping[str, str]) -> str | None:
    """The shared store's URL (``state.url`` or the variable ``state.url_env`` names); None without one."""
    if config.url_env is not None:
        return _state_url_from(config.url_env, env)
    return config.url


def _state_url_from(variable: str, env: Mapping[str, str]) -> str:
    url = env.get(variable)
    if not url:
        raise ConfigError(
            f"state.url_env names {variable}, which is not set; set it to the Redis URL "
            "(redis://host:port/db) or remove the state section to keep state in this process"
        )
    try:
        check_state_url(url)
    except ValueError as exc:
        raise ConfigError(f"{variable} (state.url_env) {exc}") from None
    return url


def deployment_spec(cfg: ModelConfig, api_key: str | None, deployment: str | None = None) -> DeploymentSpec:
    """The adapter-level description of one configured model at one endpoint."""
    command, output_format = agent_command(cfg.preset, cfg.command, cfg.output_format)
    return DeploymentSpec(
        name=cfg.name,
        provider=cfg.provider,
        model_id=cfg.model or cfg.name,
        deployment=deployment or deployment_id(cfg),
        api_base=cfg.api_base,
        api_key=api_key,
        api_version=cfg.api_version,
        headers=cfg.headers,
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.timeout,
        stall_timeout=cfg.stall_timeout,
        command=command,
        output_format=output_format,
    )
