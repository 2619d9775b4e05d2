"""``RaceModel`` and ``HedgeModel``: the first successful answer wins and the other calls are cancelled.

A race starts every member at once (fastest answer, at the price of every member). A hedge starts the
primary alone and a backup only if the primary has not answered after a delay, fixed or the primary's
observed p95 latency (``LatencyTracker``), so it buys most of a race's tail latency for a fraction of its
cost. Failures never win; losers are cancelled and awaited at once (their connections close), recorded as
``cancelled`` steps with their estimated prompt spend, which ``ObservedModel`` also reports to the ledger.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import AllModelsFailedError, ConfigError, OrchestratorError
from model_orchestrator.core.events import EventBus, FallbackTriggered
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.strategies._parallel import (
    Outcome,
    cancel_all,
    cancelled_completion,
    cancelled_step,
    eligible,
    failure_step,
    settle,
)
from model_orchestrator.strategies.member import Member, one_delta, step_ok, strategy_completion


@dataclass(slots=True)
class _Entrant:
    """One started call: the member, its task and when it started."""

    member: Member
    task: asyncio.Task[Outcome]
    started: float


class _Field:
    """The calls of one race or hedge: starting them, picking the first success, cancelling the rest."""

    def __init__(self, request: ChatRequest, clock: Clock) -> None:
        self.request = request
        self.clock = clock
        self.entrants: list[_Entrant] = []
        self.steps: dict[int, StepRecord] = {}
        self.answered: list[Completion] = []
        self.errors: list[OrchestratorError] = []
        self.winner: _Entrant | None = None
        self.won: Completion | None = None

    def start(self, member: Member) -> None:
        task = asyncio.create_task(settle(member.model, self.request))
        self.entrants.append(_Entrant(member, task, self.clock.monotonic()))

    @property
    def running(self) -> set[asyncio.Task[Outcome]]:
        return {e.task for e in self.entrants if not e.task.done()}

    def collect(self) -> None:
        """Record every finished call not yet recorded, in start order; the first success wins."""
        for index, entrant in enumerate(self.entrants):
            if index in self.steps or not entrant.task.done() or entrant.task.cancelled():
                continue
            outcome = entrant.task.result()
            if isinstance(outcome, OrchestratorError):
                self.errors.append(outcome)
                self.steps[index] = failure_step(entrant.member, outcome)
                continue
            self.answered.append(outcome)
            if self.winner is None:
                self.winner, self.won = entrant, outcome
                self.steps[index] = step_ok(entrant.member, outcome, reason="first to answer")
            else:
                reason = f"also answered, after {self.winner.member.name}"
                self.steps[index] = step_ok(entrant.member, outcome, outcome="rejected", reason=reason)

    async def finish(self) -> None:
        """Cancel and await every call still running; record them as cancelled with their likely spend."""
        now = self.clock.monotonic()
        losers = [(i, e) for i, e in enumerate(self.entrants) if not e.task.done()]
        await cancel_all(e.task for _, e in losers)
        self.collect()  # a call may have finished while the others were being cancelled
        if self.winner is not None:
            reason = f"cancelled: {self.winner.member.name} answered first"
        else:
            reason = "cancelled with the request"
        for index, entrant in losers:
            if index in self.steps:
                continue
            spent = cancelled_completion(entrant.member, self.request)
            self.answered.append(spent)
            self.steps[index] = cancelled_step(entrant.member, spent, now - entrant.started, reason)

    def ordered_steps(self) -> list[StepRecord]:
        return [self.steps[i] for i in sorted(self.steps)]


class RaceModel:
    """Starts every member at once; the first successful answer wins, the others are cancelled at once.

    If every member fails, ``AllModelsFailedError`` carries each error. The result's usage and cost include
    the losers' estimated prompt spend. ``stream()`` yields the winning answer as one delta.
    """

    def __init__(self, members: Sequence[Member], *, name: str = "race", clock: Clock, bus: EventBus) -> None:
        if not members:
            raise ConfigError("a race needs at least one member")
        self._members = list(members)
        self._name = name
        self._clock = clock
        # Attempts, cancellations included, are reported by the members (ObservedModel); a race adds none.
        self._bus = bus

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        members, skipped = eligible(self._members, request, self._name)
        field = _Field(request, self._clock)
        for member in members:
            field.start(member)
        try:
            while field.running and field.winner is None:
                await asyncio.wait(field.running, return_when=asyncio.FIRST_COMPLETED)
                field.collect()
        finally:
            await field.finish()
        steps = [*field.ordered_steps(), *skipped]
        if field.winner is None or field.won is None:
            raise AllModelsFailedError(
                f"{self._name}: every member failed ({len(steps)} tried or skipped)", field.errors
            )
        cancelled = sum(1 for s in steps if s.outcome == "cancelled")
        reason = f"{field.winner.member.name} answered first; {cancelled} cancelled"
        facts = (("name", self._name), ("cancelled", cancelled))
        explanation = Explanation(
            "race", tuple(steps), chosen=field.winner.member.name, reason=reason, facts=facts
        )
        return _result(field.winner.member, field.won, field.answered, explanation, started, self._clock)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        async for delta in one_delta(await self.complete(request)):
            yield delta

    async def aclose(self) -> None:
        # Members are deployments shared with other strategies; whoever built them closes them.
        return None


def _result(
    winner: Member,
    chosen: Completion,
    answered: Sequence[Completion],
    explanation: Explanation,
    started: float,
    clock: Clock,
) -> Completion:
    """The winner's answer, with usage and cost summed over every call (cancelled ones estimated)."""
    completion = strategy_completion(chosen, winner, answered, explanation)
    return replace(completion, latency=clock.monotonic() - started)


class LatencyTracker:
    """The recent successful latencies of one model and a percentile of them (nearest rank).

    Until ``min_samples`` are known, ``delay()`` is ``default``. Only answers are recorded: a call
    cancelled because a backup won says nothing about how long it would have taken.
    """

    def __init__(
        self, *, percentile: float = 0.95, min_samples: int = 20, default: float = 1.0, window: int = 200
    ) -> None:
        if not 0 < percentile <= 1:
            raise ConfigError(f"percentile must be in (0, 1], not {percentile}")
        if min_samples < 1 or window < min_samples:
            raise ConfigError("min_samples must be at least 1 and no more than the window")
        self.percentile = percentile
        self.min_samples = min_samples
        self.default = default
        self._samples: deque[float] = deque(maxlen=window)

    def record(self, seconds: float) -> None:
        """Add one successful call's latency."""
        self._samples.append(seconds)

    def delay(self) -> tuple[float, str]:
        """The hedge delay and where it came from."""
        count = len(self._samples)
        if count < self.min_samples:
            return self.default, f"default ({count} of {self.min_samples} latencies observed)"
        ordered = sorted(self._samples)
        rank = max(0, math.ceil(self.percentile * count) - 1)
        return ordered[rank], f"p{round(self.percentile * 100)} of the last {count} latencies"


class HedgeModel:
    """Starts ``primary``; if no answer has come after the hedge delay, starts the next backup, and so on.

    The delay is ``delay`` when given, else the primary's observed p95 latency (``percentile``; tracked in
    this process from its successful answers, ``default_delay`` until ``min_samples`` are known). A failure
    starts the next backup at once. The first success wins and every other call is cancelled. Each backup
    started emits ``FallbackTriggered``; the explanation says whether the hedge fired and the delay used.
    """

    def __init__(
        self,
        primary: Member,
        backups: Sequence[Member],
        *,
        delay: float | None = None,
        percentile: float = 0.95,
        min_samples: int = 20,
        default_delay: float = 1.0,
        name: str = "hedge",
        clock: Clock,
        bus: EventBus,
    ) -> None:
        if not backups:
            raise ConfigError("a hedge needs at least one backup")
        if delay is not None and delay < 0:
            raise ConfigError(f"the hedge delay must not be negative, got {delay}")
        self._primary = primary
        self._backups = list(backups)
        self._delay = delay
        self._tracker = LatencyTracker(percentile=percentile, min_samples=min_samples, default=default_delay)
        self._name = name
        self._clock = clock
        self._bus = bus

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        delay, source = (self._delay, "fixed") if self._delay is not None else self._tracker.delay()
        members, skipped = eligible([self._primary, *self._backups], request, self._name)
        field = _Field(request, self._clock)
        try:
            hedges = await self._run(field, deque(members), delay)
        finally:
            await field.finish()
        self._learn(field)
        steps = [*field.ordered_steps(), *skipped]
        if field.winner is None or field.won is None:
            raise AllModelsFailedError(
                f"{self._name}: every member failed ({len(steps)} tried or skipped)", field.errors
            )
        fired = (
            f"hedged {hedges}x after {delay:.3f} s" if hedges else f"no hedge needed ({delay:.3f} s delay)"
        )
        explanation = Explanation(
            "hedge",
            tuple(steps),
            chosen=field.winner.member.name,
            reason=f"{field.winner.member.name} answered first; {fired}",
            facts=(
                ("name", self._name),
                ("hedged", hedges > 0),
                ("hedges", hedges),
                ("hedge_delay", delay),
                ("delay_source", source),
                ("started", len(field.entrants)),
            ),
        )
        return _result(field.winner.member, field.won, field.answered, explanation, started, self._clock)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        async for delta in one_delta(await self.complete(request)):
            yield delta

    async def aclose(self) -> None:
        # Members are deployments shared with other strategies; whoever built them closes them.
        return None

    async def _run(self, field: _Field, waiting: deque[Member], delay: float) -> int:
        """Start members until one answers; returns how many were started because the delay passed."""
        hedges = 0
        if waiting:
            field.start(waiting.popleft())
        while field.winner is None and (field.running or waiting):
            if not field.running:
                # Everything started so far failed: waiting longer cannot help.
                self._announce(field, waiting[0], "the previous member failed")
                field.start(waiting.popleft())
                continue
            fired = await self._wait(field, delay if waiting else None)
            field.collect()
            # A call that failed as the timer fired is handled as a failure at the top of the loop.
            if field.winner is None and fired and field.running:
                hedges += 1
                self._announce(field, waiting[0], f"hedge: no answer after {delay:.3f} s")
                field.start(waiting.popleft())
        return hedges

    async def _wait(self, field: _Field, delay: float | None) -> bool:
        """Wait for a running call to finish or, with ``delay``, for the hedge timer; True if it fired."""
        if delay is None:
            await asyncio.wait(field.running, return_when=asyncio.FIRST_COMPLETED)
            return False
        remaining = field.entrants[-1].started + delay - self._clock.monotonic()
        timer = asyncio.create_task(self._clock.sleep(max(0.0, remaining)))
        try:
            done, _ = await asyncio.wait({*field.running, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
        return timer in done

    def _announce(self, field: _Field, backup: Member, reason: str) -> None:
        last = field.entrants[-1].member.name if field.entrants else self._primary.name
        self._bus.emit(
            FallbackTriggered(
                request_id=field.request.request_id or "",
                timestamp=self._clock.wall(),
                strategy=self._name,
                from_model=last,
                to_model=backup.name,
                reason=reason,
            )
        )

    def _learn(self, field: _Field) -> None:
        """Record the primary's latency when it answered (cancelled or failed calls teach nothing)."""
        first = field.entrants[0] if field.entrants else None
        if first is None or first.member is not self._primary or first.task.cancelled():
            return
        outcome = first.task.result()
        if isinstance(outcome, Completion):
            self._tracker.record(outcome.latency)
