"""Health monitoring: periodic free probes per deployment, combined with breaker and cooldown state.

Owns ``DeploymentHealth`` (what ``orchestrator health`` shows), ``HealthMonitor``, which runs the
probes concurrently with a timeout (on demand or in a background task), keeps their results in the
shared store (``health:<deployment>``, so every reader of that store sees the last probe: ``orchestrator
serve``'s ``/health/providers``, routing decisions), emits ``HealthChecked`` and reads the breaker state
and cooldown of each deployment from the store; and ``HealthGatedModel``, which passes over a
deployment whose last probe failed when the request has somewhere else to go.
It does not build probes (adapters offer ``core.health_probe.HealthProbe``; the composition root passes
their ``probe`` methods) and it never changes breaker or cooldown state: a probe calls a different, free
endpoint (the model list), so its failure is no proof that completions fail, nor its success that they
work. A failing probe marks the deployment unhealthy, which strategies avoid while they have another
option (it is still called as the last one); only real calls open or close its circuit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import DeploymentUnavailableError
from model_orchestrator.core.events import EventBus, HealthChecked
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import DeferredStream
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.resilience.circuit_breaker import CircuitName, breaker_state
from model_orchestrator.resilience.cooldown import cooldown_until, remaining
from model_orchestrator.resilience.state_store import StateStore

_log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """One deployment's health. ``healthy`` is None until it has been probed; ``last_checked`` is wall
    time; ``cooldown_remaining`` is seconds (None: not cooling down)."""

    deployment: str
    name: str
    healthy: bool | None
    last_latency: float | None
    last_checked: float | None
    consecutive_failures: int
    last_error: str | None
    breaker_state: CircuitName
    cooldown_remaining: float | None

    @property
    def available(self) -> bool:
        """Whether calls would go out now: not known unhealthy, circuit not open, not cooling down."""
        return self.healthy is not False and self.breaker_state != "open" and self.cooldown_remaining is None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description (every field plus ``available``)."""
        return {**asdict(self), "available": self.available}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A deployment's last probe, kept in the store under ``health:<deployment>`` (``checked``: wall
    time; ``latency``: seconds)."""

    healthy: bool
    latency: float
    checked: float
    consecutive_failures: int
    error: str | None


def health_key(deployment: str) -> str:
    """The store key of ``deployment``'s last probe result."""
    return f"health:{deployment}"


async def last_probe(store: StateStore, deployment: str) -> ProbeResult | None:
    """``deployment``'s last probe result, or None when it was never probed."""
    value = await store.get(health_key(deployment))
    return value if isinstance(value, ProbeResult) else None


def _recorded(
    previous: ProbeResult | None, latency: float, checked: float, error: str | None
) -> tuple[ProbeResult, tuple[ProbeResult, ProbeResult | None]]:
    """A store change: the new result (failures counted on from ``previous``) replaces the previous one;
    both are returned."""
    failures = 0 if error is None else (previous.consecutive_failures if previous else 0) + 1
    result = ProbeResult(error is None, latency, checked, failures, error)
    return result, (result, previous)


class HealthMonitor:
    """Probes deployments (keyed by deployment id) every ``interval`` seconds once started.

    ``names`` maps a deployment to the model name users know. A probe that does not finish within
    ``timeout`` seconds (real time: a probe is real I/O) counts as failed.
    """

    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        names: Mapping[str, str],
        store: StateStore,
        clock: Clock,
        bus: EventBus,
        interval: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self._probes = dict(probes)
        self._names = dict(names)
        self._store = store
        self._clock = clock
        self._bus = bus
        self._interval = interval
        self._timeout = timeout
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"HealthMonitor(deployments={len(self._probes)}, interval={self._interval})"

    @property
    def running(self) -> bool:
        """Whether the background loop is running."""
        return self._task is not None and not self._task.done()

    async def check_all(self) -> list[DeploymentHealth]:
        """Probe every deployment now, concurrently, and return the resulting snapshot."""
        await asyncio.gather(*(self._check(deployment, probe) for deployment, probe in self._probes.items()))
        return await self.snapshot()

    async def snapshot(self) -> list[DeploymentHealth]:
        """The last probe results with each deployment's breaker state and cooldown, in probe order."""
        now = self._store.now(self._clock)
        return [await self._health(deployment, now) for deployment in self._probes]

    def start(self) -> None:
        """Start probing in the background: now, then every ``interval`` seconds (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="health-monitor")

    async def stop(self) -> None:
        """Stop the background loop and wait until it has ended (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we were cancelled ourselves, not just the loop

    async def _run(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:  # noqa: BLE001 - the store may fail; the monitor must keep going
                _log.exception("health check round failed; trying again in %.0fs", self._interval)
            await self._clock.sleep(self._interval)

    async def _check(self, deployment: str, probe: Probe) -> None:
        started = self._clock.monotonic()
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout):
                await probe()
        except TimeoutError:
            error = f"probe did not answer within {self._timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure of a probe is a finding to report
            error = str(exc) or type(exc).__name__
        result = await self._record(deployment, self._clock.monotonic() - started, error)
        self._bus.emit(
            HealthChecked(
                request_id="",
                timestamp=result.checked,
                deployment=deployment,
                healthy=result.healthy,
                latency=result.latency,
                error=error,
            )
        )

    async def _record(self, deployment: str, latency: float, error: str | None) -> ProbeResult:
        checked = self._clock.wall()
        result, previous = await self._store.update(
            health_key(deployment),
            lambda old: _recorded(old if isinstance(old, ProbeResult) else None, latency, checked, error),
        )
        if error is not None and result.consecutive_failures == 1:
            _log.warning("health probe of %s failed: %s", deployment, error)
        elif error is None and previous is not None and not previous.healthy:
            _log.info("health probe of %s succeeded again", deployment)
        return result

    async def _health(self, deployment: str, now: float) -> DeploymentHealth:
        result = await last_probe(self._store, deployment)
        breaker = await breaker_state(self._store, deployment)
        return DeploymentHealth(
            deployment=deployment,
            name=self._names.get(deployment, deployment),
            healthy=None if result is None else result.healthy,
            last_latency=None if result is None else result.latency,
            last_checked=None if result is None else result.checked,
            consecutive_failures=0 if result is None else result.consecutive_failures,
            last_error=None if result is None else result.error,
            breaker_state=breaker.state,
            cooldown_remaining=remaining(await cooldown_until(self._store, deployment), now),
        )


class HealthGatedModel(WrapperModel):
    """Passes over a deployment whose last probe failed when the request has somewhere else to go.

    The check reads the shared store (what the monitor wrote); with no alternative (``has_fallback``
    unset) the call goes ahead, since a failed model-list probe is no proof that completions fail.
    """

    def __init__(self, inner: ChatModel, *, deployment: str, store: StateStore) -> None:
        super().__init__(inner)
        self._deployment = deployment
        self._store = store

    def __repr__(self) -> str:
        return f"HealthGatedModel({self.inner!r}, deployment={self._deployment!r})"

    async def complete(self, request: ChatRequest) -> Completion:
        await self._check(request)
        return await self.inner.complete(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        return DeferredStream(partial(self._open, request))

    async def _open(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        await self._check(request)
        return self.inner.stream(request)

    async def _check(self, request: ChatRequest) -> None:
        if not request.has_fallback:
            return
        probe = await last_probe(self._store, self._deployment)
        if probe is None or probe.healthy:
            return
        raise DeploymentUnavailableError(
            f"{self._deployment} failed its last health probe ({probe.error}); passing over it while "
            "another deployment can answer",
            reason="unhealthy",
            deployment=self._deployment,
        )
