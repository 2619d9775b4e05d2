"""The façade's operations beyond answering: deployment health, routing decisions, validation.

Functions of an ``Orchestrator`` (it delegates to them) so the façade module stays about requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.events import RoutingDecided
from model_orchestrator.core.request_scope import request_scope

if TYPE_CHECKING:
    from model_orchestrator.orchestrator.facade import Orchestrator
    from model_orchestrator.resilience.health import DeploymentHealth, HealthMonitor
    from model_orchestrator.routing.decision import RoutingDecision
    from model_orchestrator.strategies.validate import ValidationResult


async def deployment_health(orch: Orchestrator, *, probe: bool = True) -> list[DeploymentHealth]:
    """Per deployment: healthy, last latency, consecutive failures, breaker state, cooldown left.

    Builds every usable model first; ``probe`` runs each deployment's free health check (a model-list
    request) now, otherwise only the state gathered so far is reported.
    """
    monitor = health_monitor(orch)
    if probe:
        await monitor.check_all()
    return await monitor.snapshot()


def health_monitor(orch: Orchestrator) -> HealthMonitor:
    """A monitor over every usable deployment (each usable model is built first) with the config's
    ``resilience.health`` interval and timeout. Probe results go to the shared state store, so
    ``deployment_health(probe=False)`` and routing read what a started monitor found."""
    for info in orch._registry.infos():
        if info.usable and info.source != "reference":
            orch._registry.resolve(info.name)
    return _monitor(orch, **orch.config.resilience.health.model_dump(exclude_none=True))


async def route(
    orch: Orchestrator, task: str, context: Mapping[str, object] | None = None, router: str | None = None
) -> RoutingDecision:
    """Seed 003's routing decision for ``task``, without calling any model.

    ``context``: the hints ``files_count``, ``requires_tests``, ``external_apis``, ``subsystems`` (and
    ``capabilities`` such as vision or tools). ``router``: ``learned`` (the config's default),
    ``complexity`` or ``length``. The decision names the cheapest qualifying model, the 0-10
    complexity score with each factor's contribution, the reason, a confidence, the estimated cost
    and every model left out (capability, context window, tier, an open circuit or cooldown) and why.
    Candidates are the usable models of the config (every usable model when none is configured).
    """
    unavailable = await unavailable_models(orch)
    decision = orch._names.routers.decide(task, context, orch._registry.infos(), unavailable, router)
    orch.events.emit(
        RoutingDecided(
            request_id="",
            timestamp=orch._clock.wall(),
            strategy="route",
            router=decision.router,
            chosen=decision.model,
            tier=decision.tier,
            reason=decision.reason,
            strong_score=decision.strong_score,
            threshold=decision.threshold,
            candidates=decision.candidates,
        )
    )
    return decision


def _monitor(orch: Orchestrator, **settings: float) -> HealthMonitor:
    """A health monitor over every deployment built so far, reading the shared breaker/cooldown state."""
    from model_orchestrator.resilience.health import HealthMonitor

    built = list(orch._factory.deployments.values())
    return HealthMonitor(
        {d.deployment: d.probe for d in built if d.probe is not None},
        names={d.deployment: d.name for d in built},
        store=orch._factory.store,
        clock=orch._clock,
        bus=orch.events,
        **settings,
    )


async def unavailable_models(orch: Orchestrator) -> dict[str, str]:
    """Models every one of whose deployments built so far is unavailable now, with the reason."""
    if not orch._factory.deployments:
        return {}
    monitor = _monitor(orch)
    states: dict[str, list[str | None]] = {}
    for health in await monitor.snapshot():
        reason = None if health.available else _unavailable_reason(health)
        states.setdefault(health.name, []).append(reason)
    return {name: "; ".join(r for r in reasons if r) for name, reasons in states.items() if all(reasons)}


def default_judge(orch: Orchestrator) -> str | None:
    """The model ``validate`` asks: config ``validation.judge``, else the strongest usable model (the
    rule is ``config.default_models``'s), else None."""
    from model_orchestrator.config.default_models import strongest

    return orch.config.validation.judge or strongest(orch._registry.infos())


async def validate(
    orch: Orchestrator,
    task: str,
    output: str,
    *,
    judge: str | None = None,
    validators: Sequence[str] = (),
    max_cost: float | None = None,
) -> ValidationResult:
    """Check ``output`` against ``task``: seed 003's verdict (pass, up to 3 issues, confidence, escalate).

    ``validators`` (``python``, ``json``) run first; a failure is final. Then ``judge`` (default:
    ``default_judge()``) reads task and output, unless there is none and validators alone decide.
    The judge call is a request like any other: events, budget (``max_cost``) and cost.
    """
    from model_orchestrator.strategies.validate import builtin_validator, check_output

    checks = [builtin_validator(v) for v in validators]
    name = judge or default_judge(orch)
    if name is None and not checks:
        raise ConfigError(
            "no judge model is usable and no validator was given: set validation.judge in "
            "orchestrator.yaml, make a model usable, or ask for validators (python, json)"
        )
    judge_model = orch.model(name) if name else None
    request = orch.request(task, max_cost=max_cost)
    scope, requested = orch._scope(request), name or "validators"
    lifecycle = orch._lifecycle(request, requested, "validate", scope)
    lifecycle.start()
    try:
        with request_scope(scope):
            verdict, completion = await check_output(
                task,
                output,
                judge=judge_model,
                validators=checks,
                threshold=orch.config.validation.threshold or 0.7,
                base=request,
            )
    except BaseException as exc:
        lifecycle.failed(exc)
        raise
    lifecycle.succeeded(
        model_used=name if completion else None,
        cost=scope.total_cost,
        input_tokens=completion.usage.input_tokens if completion else 0,
        output_tokens=completion.usage.output_tokens if completion else 0,
        explanation=None,
        response_text=None,
    )
    return verdict


def _unavailable_reason(health: DeploymentHealth) -> str:
    """Why a deployment cannot take calls now, for routing explanations."""
    if health.breaker_state == "open":
        return f"{health.deployment}: circuit open"
    if health.cooldown_remaining is not None:
        return f"{health.deployment}: cooling down for {health.cooldown_remaining:.1f}s"
    return f"{health.deployment}: unhealthy ({health.last_error or 'failed its health check'})"
