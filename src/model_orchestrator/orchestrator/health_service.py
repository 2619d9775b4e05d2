"""``HealthService``: the health of every deployment, probed now or read from what was gathered
(``orch.deployments``).

An admin service beside the answering API. Probing and the state it reads are
``resilience.health.HealthMonitor``'s; this builds monitors over the deployments built so far (building
every usable model first when asked for all of them) with the config's ``resilience.health`` settings,
and says which models are unavailable now (routing explains its choices with it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.events import EventBus

if TYPE_CHECKING:
    from model_orchestrator.config.build import ModelFactory
    from model_orchestrator.config.registry import ModelRegistry
    from model_orchestrator.config.schema import HealthConfig
    from model_orchestrator.resilience.health import DeploymentHealth, HealthMonitor


class HealthService:
    """Health of the deployments ``factory`` built for ``registry``'s models."""

    def __init__(
        self,
        registry: ModelRegistry,
        factory: ModelFactory,
        settings: HealthConfig,
        *,
        clock: Clock,
        events: EventBus,
    ) -> None:
        self._registry = registry
        self._factory = factory
        self._settings = settings
        self._clock = clock
        self._events = events

    async def check(self, *, probe: bool = True) -> list[DeploymentHealth]:
        """Per deployment: healthy, last latency, consecutive failures, breaker state, cooldown left.

        Builds every usable model first; ``probe`` runs each deployment's free health check (a model-list
        request) now, otherwise only the state gathered so far is reported.
        """
        monitor = self.monitor()
        if probe:
            await monitor.check_all()
        return await monitor.snapshot()

    def monitor(self) -> HealthMonitor:
        """A background prober of every usable deployment (each usable model is built first), every
        ``resilience.health.interval`` seconds once ``start()``ed (``await stop()`` ends it). Results go to
        the shared state store, so ``check(probe=False)`` and routing read what a started monitor found,
        and strategies pass over a deployment whose last probe failed while they have another option."""
        for info in self._registry.infos():
            if info.usable and info.source != "reference":
                self._registry.resolve(info.name)
        return self._monitor(**self._settings.model_dump(exclude_none=True))

    async def unavailable_models(self) -> dict[str, str]:
        """Models every one of whose deployments built so far is unavailable now, with the reason."""
        if not self._factory.deployments:
            return {}
        states: dict[str, list[str | None]] = {}
        for health in await self._monitor().snapshot():
            reason = None if health.available else _unavailable_reason(health)
            states.setdefault(health.name, []).append(reason)
        return {name: "; ".join(r for r in reasons if r) for name, reasons in states.items() if all(reasons)}

    def _monitor(self, **settings: float) -> HealthMonitor:
        """A monitor over every deployment built so far, reading the shared breaker/cooldown state."""
        from model_orchestrator.resilience.health import HealthMonitor

        built = list(self._factory.deployments.values())
        return HealthMonitor(
            {d.deployment: d.probe for d in built if d.probe is not None},
            names={d.deployment: d.name for d in built},
            store=self._factory.store,
            clock=self._clock,
            bus=self._events,
            **settings,
        )


def _unavailable_reason(health: DeploymentHealth) -> str:
    """Why a deployment cannot take calls now, for routing explanations."""
    if health.breaker_state == "open":
        return f"{health.deployment}: circuit open"
    if health.cooldown_remaining is not None:
        return f"{health.deployment}: cooling down for {health.cooldown_remaining:.1f}s"
    return f"{health.deployment}: unhealthy ({health.last_error or 'failed its health check'})"
