"""``EnsembleModel``: ask every member at once, then let an aggregator combine the answers that came.

Owns running the members concurrently (never one after another), degrading gracefully (failed members
become error steps and the aggregator works with the rest, down to ``min_answers``), N samples of a single
member, and the explanation: each member's answer, votes, consensus, abstentions, confidence and its
source, per-member and total cost and tokens. How answers are combined is the aggregator's business
(``aggregators``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import AllModelsFailedError, ConfigError, OrchestratorError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.strategies._parallel import eligible, failure_step, settle
from model_orchestrator.strategies.aggregators import Aggregator, Candidate, Decision
from model_orchestrator.strategies.member import Member, one_delta, step_ok, strategy_completion

# Sampling temperature for N samples of one member when the request sets none: varied enough to
# disagree, low enough to stay on topic.
DEFAULT_SAMPLE_TEMPERATURE = 0.7


@dataclass(frozen=True, slots=True)
class _Call:
    """One concurrent call: who, with which request, and how to label it."""

    member: Member
    request: ChatRequest
    note: str | None = None


class EnsembleModel:
    """Calls every member concurrently and aggregates the answers.

    With ``samples=N`` there must be one member; it is asked N times, each with the request's temperature
    (``DEFAULT_SAMPLE_TEMPERATURE`` when it sets none) and its own ``metadata`` entries ``sample`` and
    ``seed`` (distinct seeds drawn from ``rng``), so providers that honour seeds give different answers.
    Members listed more than once (``a, b, a, b``) are sampled the same way.
    Fewer than ``min_answers`` answers raise ``AllModelsFailedError`` carrying every member's error.

    ``stream()`` waits for the aggregated answer and yields it as one delta: an ensemble cannot know its
    answer before the members have finished.
    """

    def __init__(
        self,
        members: Sequence[Member],
        *,
        aggregator: Aggregator,
        name: str = "ensemble",
        min_answers: int = 1,
        samples: int | None = None,
        clock: Clock,
        bus: EventBus,
        rng: random.Random | None = None,
    ) -> None:
        _check(members, samples, min_answers)
        self._members = list(members)
        self._aggregator = aggregator
        self._name = name
        self._min_answers = min_answers
        self._samples = samples
        self._clock = clock
        # Members report their own attempts (ObservedModel); the ensemble adds no event of its own.
        self._bus = bus
        self._rng = rng or random.Random()

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        prepared = self._aggregator.prepare(request)
        wanted = self._members * self._samples if self._samples is not None else self._members
        members, skipped = eligible(wanted, prepared, self._name)
        calls = self._calls(members, prepared)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(settle(c.member.model, c.request)) for c in calls]
        outcomes = [t.result() for t in tasks]
        candidates = [
            Candidate(c.member, o) for c, o in zip(calls, outcomes, strict=True) if isinstance(o, Completion)
        ]
        errors = [o for o in outcomes if isinstance(o, OrchestratorError)]
        if len(candidates) < self._min_answers:
            raise AllModelsFailedError(self._shortfall(len(candidates), len(calls), len(skipped)), errors)
        decision = await self._aggregator.aggregate(prepared, candidates)
        completion = self._result(calls, outcomes, candidates, decision, skipped)
        return replace(completion, latency=self._clock.monotonic() - started)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        async for delta in one_delta(await self.complete(request)):
            yield delta

    async def aclose(self) -> None:
        # Members are deployments shared with other strategies; whoever built them closes them.
        return None

    def _calls(self, members: Sequence[Member], request: ChatRequest) -> list[_Call]:
        # A member listed more than once (``--ensemble-size`` cycling a short chain) is sampled like
        # ``samples``: identical requests would give identical answers and one model would outvote the rest.
        repeated = len({m.name for m in members}) < len(members)
        if self._samples is None and not repeated:
            return [_Call(m, request) for m in members]
        temperature = DEFAULT_SAMPLE_TEMPERATURE if request.temperature is None else request.temperature
        seeds = self._rng.sample(range(2**31), len(members))
        return [
            _Call(
                member,
                request.with_options(
                    temperature=temperature,
                    metadata=(*request.metadata, ("sample", str(i)), ("seed", str(seed))),
                ),
                note=f"sample {i} of {len(members)} (seed {seed}, temperature {temperature})",
            )
            for i, (member, seed) in enumerate(zip(members, seeds, strict=True), 1)
        ]

    def _shortfall(self, answered: int, called: int, skipped: int) -> str:
        if not called:
            return f"{self._name}: no member can take this request ({skipped} skipped: context or budget)"
        return (
            f"{self._name}: {answered} of {called} members answered, {self._min_answers} needed; "
            "see each member's error below"
        )

    def _result(
        self,
        calls: Sequence[_Call],
        outcomes: Sequence[Completion | OrchestratorError],
        candidates: Sequence[Candidate],
        decision: Decision,
        skipped: Sequence[StepRecord],
    ) -> Completion:
        steps = [*_steps(calls, outcomes, decision), *skipped]
        if decision.own_step is not None:
            steps.append(decision.own_step)
        if decision.chosen is None and decision.own is not None and decision.own_member is not None:
            chosen, chosen_member = decision.own, decision.own_member
        else:
            picked = candidates[decision.chosen or 0]
            chosen, chosen_member = picked.completion, picked.member
        answered = [c.completion for c in candidates]
        answered += [*([decision.own] if decision.own is not None else []), *decision.extra]
        facts: list[tuple[str, object]] = [
            ("name", self._name),
            ("ensemble_size", len(calls) + len(skipped)),
            ("aggregator", self._aggregator.kind),
            ("answered", len(candidates)),
            ("failed", len(calls) - len(candidates)),
            *decision.facts,
        ]
        if self._samples is not None:
            facts.append(("samples", self._samples))
        explanation = Explanation(
            "ensemble",
            tuple(steps),
            chosen=chosen_member.name,
            confidence=decision.confidence,
            confidence_source=decision.confidence_source,
            reason=decision.reason,
            facts=tuple(facts),
        )
        return strategy_completion(chosen, chosen_member, answered, explanation, text=decision.text)


def _steps(
    calls: Sequence[_Call], outcomes: Sequence[Completion | OrchestratorError], decision: Decision
) -> list[StepRecord]:
    """One step per call, in member order: its answer and verdict, or its error."""
    verdicts = iter(decision.verdicts)
    steps: list[StepRecord] = []
    for call, outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, OrchestratorError):
            steps.append(failure_step(call.member, outcome))
            continue
        verdict = next(verdicts)
        reason = f"{call.note}: {verdict.reason}" if call.note else verdict.reason
        steps.append(
            step_ok(
                call.member,
                outcome,
                outcome=verdict.outcome,
                confidence=verdict.confidence,
                reason=reason,
                keep_text=True,
            )
        )
    return steps


def _check(members: Sequence[Member], samples: int | None, min_answers: int) -> None:
    if not members:
        raise ConfigError("an ensemble needs at least one member")
    if samples is not None and (len(members) != 1 or samples < 1):
        raise ConfigError("samples=N asks one member N times: give exactly one member and N >= 1")
    calls = samples if samples is not None else len(members)
    if not 1 <= min_answers <= calls:
        raise ConfigError(
            f"min_answers must be between 1 and {calls} (the number of calls), not {min_answers}"
        )
