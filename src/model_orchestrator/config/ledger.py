"""The ledger from config (part of the composition root): settings, budget rules, budget guards.

Owns choosing the database (``ledger.url``, the variable named by ``ledger.url_env``, else the default
SQLite file), turning ``budgets:`` and ``quotas:`` into ``BudgetRules``, and the ``BudgetGuards`` the
deployment stack (``config.deployment_stack``) guards deployments with. Building a ``Ledger`` does no I/O.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from model_orchestrator.config.schema import OrchestratorConfig, PeriodBudgetConfig
from model_orchestrator.core.budget import BudgetKeeper, BudgetLimit
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError, MissingCredentialsError
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.limits import BudgetRules, PeriodLimits
from model_orchestrator.ledger.settings import LedgerSettings, async_url, default_path, sqlite_url


def budget_rules(config: OrchestratorConfig) -> BudgetRules:
    """Every budget and quota in ``config`` (empty rules when there are none)."""
    budgets, quotas = config.budgets, config.quotas
    rules = BudgetRules()
    if budgets is not None:
        rules = BudgetRules(
            overall=PeriodLimits(budgets.daily_usd, budgets.monthly_usd),
            categories={name: _period(b) for name, b in budgets.categories.items()},
            api_keys={name: _period(b) for name, b in budgets.api_keys.items()},
            warn_at=budgets.warn_at,
        )
    if quotas is not None:
        rules = BudgetRules(
            overall=rules.overall,
            categories=rules.categories,
            api_keys=rules.api_keys,
            warn_at=rules.warn_at,
            calls_per_day=dict(quotas.calls_per_day),
            quota_warn_at=quotas.warn_at,
            hard_stop=quotas.hard_stop,
        )
    return rules


def _period(config: PeriodBudgetConfig) -> PeriodLimits:
    return PeriodLimits(config.daily_usd, config.monthly_usd)


def ledger_url(config: OrchestratorConfig, env: Mapping[str, str]) -> str:
    """The ledger database URL from config, its ``url_env`` variable, or the default SQLite file."""
    block = config.ledger
    if block.url_env is not None:
        url = env.get(block.url_env)
        if not url:
            raise MissingCredentialsError(
                f"ledger.url_env names {block.url_env}, which is not set; set it to the database URL"
            )
    else:
        url = block.url or sqlite_url(default_path(env))
    try:
        async_url(url)
    except ValueError as exc:
        raise ConfigError(f"ledger.url: {exc}") from None
    return url


def build_ledger(config: OrchestratorConfig, env: Mapping[str, str], clock: Clock) -> Ledger | None:
    """The ledger (unopened), or None when ``ledger.enabled`` is false (refused if budgets need it)."""
    rules = budget_rules(config)
    if not config.ledger.enabled:
        if rules.active:
            raise ConfigError("budgets and quotas are kept in the ledger: set ledger.enabled: true")
        return None
    options = config.ledger.model_dump(exclude_none=True, exclude={"enabled", "url", "url_env"})
    try:
        settings = LedgerSettings(url=ledger_url(config, env), **options)
    except ValueError as exc:
        raise ConfigError(f"ledger: {exc}") from None
    return Ledger(settings, rules=rules, clock=clock)


@dataclass(frozen=True, slots=True)
class BudgetGuards:
    """What a deployment's ``BudgetGuardModel`` checks against: the keeper holding the counters and the
    rules (the deployment stack adds the guard when ``rules.guards`` its provider); ``close``: what closes
    a keeper of the guards' own (the shared one), None when the keeper is the ledger."""

    keeper: BudgetKeeper
    rules: BudgetRules
    close: Callable[[], Awaitable[None]] | None = None


def budget_guards(
    config: OrchestratorConfig, state_url: str | None, keeper: BudgetKeeper, clock: Clock
) -> BudgetGuards:
    """The guards' keeper: the ledger itself, except for a SQLite ledger (one per host, not shared) when
    shared state is configured: then ``SharedBudgetKeeper`` keeps the tally in Redis (``state_url``), with
    the ledger as the ``state.on_unavailable: local`` fallback. PostgreSQL is shared: it stays the keeper."""
    rules = budget_rules(config)
    if state_url is None or not isinstance(keeper, Ledger) or keeper.settings.dialect != "sqlite":
        return BudgetGuards(keeper, rules)
    from model_orchestrator.ledger.shared_budget import SharedBudgetKeeper, recorded_spend
    from model_orchestrator.resilience.redis_state import redis_client

    ledger = keeper

    async def seed(limit: BudgetLimit, period_key: str) -> float:
        await ledger.flush()  # recorded attempts still queued count too
        return await recorded_spend(await ledger.store(), limit, period_key)

    state = config.state
    # A host and its ledger file: processes sharing one SQLite file add its spend to a tally once.
    identity = hashlib.sha256(f"{socket.gethostname()}|{ledger.settings.url}".encode()).hexdigest()[:16]
    shared = SharedBudgetKeeper(
        redis_client(state_url),
        fallback=ledger,
        seed=seed,
        ledger_id=identity,
        clock=clock,
        ttl=ledger.settings.reservation_ttl,
        prefix=state.prefix,
        on_unavailable=state.on_unavailable,
        replicas=state.replicas,
        timeout=state.timeout,
        retry_interval=state.retry_interval,
    )
    return BudgetGuards(shared, rules, shared.aclose)
