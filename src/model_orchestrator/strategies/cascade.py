"""``CascadeModel``: cheap tiers first, escalating only while a scorer finds the answer not good enough.

Owns the escalation decision (seed 000's confidence escalation, seed 001's cascade): tier by tier, the
first answer scoring at or above the threshold is accepted; the final tier answers whatever its score.
If the final tier fails, the best earlier answer is returned. Budget-aware: when the next tier would
exceed what the request may still spend, escalation stops and the best answer so far is returned.
An answer that calls tools is judged by its calls, not by the scorer (which reads text): calls that name
an offered tool with arguments valid under its JSON schema score the threshold (accepted), any problem
scores 0 (escalate; ``strategies.tool_calls``). Unavailable tiers (open circuit, cooldown) are passed
over; when every usable tier was only unavailable, it waits for the earliest ``retry_after`` once. Each
escalation emits ``FallbackTriggered``; each scored answer emits ``AnswerJudged`` (the ledger keeps it
as an outcome label for retraining routers).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import BudgetExceededError, ConfigError
from model_orchestrator.core.events import AnswerJudged, EventBus
from model_orchestrator.core.explanation import Explanation
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.strategies.budget import budget_scope, require_affordable
from model_orchestrator.strategies.capabilities import require_capable
from model_orchestrator.strategies.chain import Candidate, ChainRun
from model_orchestrator.strategies.member import Member, one_delta, strategy_completion
from model_orchestrator.strategies.scorers import Score, Scorer
from model_orchestrator.strategies.tool_calls import TOOL_ARGUMENTS_SOURCE, tool_call_confidence


class CascadeModel:
    """Escalates through ``tiers`` (cheapest first) until an answer scores ``threshold`` or more.

    ``stream`` answers in one piece: a cascade must see a whole answer before it can score it.
    """

    def __init__(
        self,
        tiers: Sequence[Member],
        *,
        scorer: Scorer,
        threshold: float = 0.7,
        name: str = "cascade",
        clock: Clock,
        bus: EventBus,
        wait_for_cooldown: bool = True,
        max_cooldown_wait: float = 30.0,
    ) -> None:
        if not tiers:
            raise ConfigError(f"cascade {name!r} needs at least one tier")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"cascade {name!r}: threshold must be between 0 and 1, not {threshold}")
        self._tiers = tuple(tiers)
        self._scorer = scorer
        self._threshold = threshold
        self._name = name
        self._clock = clock
        self._bus = bus
        self._wait_for_cooldown = wait_for_cooldown
        self._max_wait = max_cooldown_wait

    def __repr__(self) -> str:
        return f"CascadeModel(name={self._name!r}, tiers={[t.name for t in self._tiers]})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def tiers(self) -> tuple[Member, ...]:
        """The tiers, cheapest first."""
        return self._tiers

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        with budget_scope(request):
            run = ChainRun(self._name, self._scorer.prepare(request), self._clock, self._bus)
            require_capable(self._tiers, run.request, self._name)
            require_affordable(self._tiers, run.request)
            chosen, reason = await self._climb(run, self._tiers)
            delay = self._cooldown(run) if chosen is None else None
            if delay is not None:
                chosen, reason = await self._climb(run, await run.wait_for_cooldown(delay))
        if chosen is None:
            chosen = run.best_rejected()
            if chosen is None:
                raise run.failure()
            reason = reason or (
                f"the final tier gave no answer; returning the best earlier one ({chosen.member.name})"
            )
        return self._finish(run, chosen, started, reason)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        async for delta in one_delta(await self.complete(request)):
            yield delta

    async def aclose(self) -> None:
        await asyncio.gather(*(t.model.aclose() for t in self._tiers))

    async def _climb(self, run: ChainRun, tiers: Sequence[Member]) -> tuple[Candidate | None, str | None]:
        """(the accepted answer, why) or (None, why escalation stopped early, if it did)."""
        for position, tier in enumerate(tiers):
            following = tiers[position + 1] if position + 1 < len(tiers) else None
            if run.deadline_passed():
                return None, "the deadline passed; returning the best answer so far"
            skip = run.skip_error(tier)
            if skip is not None:
                run.skip(tier, skip)
                if isinstance(skip, BudgetExceededError) and run.rejected:
                    return None, f"stopped escalating before {tier.name}: {skip.message}"
                run.moved_on(tier, following)
                continue
            chosen = await self._ask(run, tier, has_fallback=following is not None)
            if chosen is not None:
                return chosen, self._accepted_reason(chosen)
            if run.deadline_hit:
                return None, "the deadline passed; returning the best answer so far"
            run.moved_on(tier, following)
        return None, None

    async def _ask(self, run: ChainRun, tier: Member, *, has_fallback: bool) -> Candidate | None:
        completion = await run.call(tier, has_fallback=has_fallback)
        if completion is None:
            return None
        judged = tool_call_confidence(run.request.tools, completion, self._threshold)
        if judged is None:
            score = await self._scorer.score(run.request, completion, tier)
        else:
            score = Score(judged[0], TOOL_ARGUMENTS_SOURCE)
        run.answered.extend(score.samples)
        # By identity: the same model may sit in two tiers (e.g. a cheaper sampling setup first).
        position = next(i for i, t in enumerate(self._tiers) if t is tier)
        candidate = Candidate(tier, completion, score, position)
        confidence = candidate.confidence
        if candidate.position == len(self._tiers) - 1 or (
            confidence is not None and confidence >= self._threshold
        ):
            self._judged(run, tier, confidence, escalated=False)
            run.accept(candidate)
            return candidate
        self._judged(run, tier, confidence, escalated=True)
        shown = "unknown" if confidence is None else f"{confidence:.3f}"
        why = f"confidence {shown} is below the threshold {self._threshold}"
        if judged is not None and judged[1]:
            why = f"{why}: its tool calls fail the check ({'; '.join(judged[1][:3])})"
        run.reject(candidate, why)
        return None

    def _judged(self, run: ChainRun, tier: Member, confidence: float | None, *, escalated: bool) -> None:
        if confidence is None:
            return
        self._bus.emit(
            AnswerJudged(
                request_id=run.request.request_id or "",
                timestamp=self._clock.wall(),
                judgement_id=uuid.uuid4().hex,
                strategy=self._name,
                source="cascade",
                model=tier.name,
                score=confidence,
                escalated=escalated,
                tier=tier.profile.tier,
            )
        )

    def _accepted_reason(self, chosen: Candidate) -> str:
        confidence = chosen.confidence
        if confidence is not None and confidence >= self._threshold:
            return f"{chosen.member.name} scored {confidence:.3f} >= threshold {self._threshold}"
        return f"{chosen.member.name} is the final tier, which answers whatever its score"

    def _cooldown(self, run: ChainRun) -> float | None:
        return run.cooldown_delay(self._max_wait) if self._wait_for_cooldown else None

    def _finish(self, run: ChainRun, chosen: Candidate, started: float, reason: str | None) -> Completion:
        score = chosen.score
        facts: list[tuple[str, object]] = [
            ("threshold", self._threshold),
            ("escalations", sum(1 for s in run.steps if s.outcome == "rejected")),
        ]
        if run.waited:
            facts.append(("waited_for_cooldown", run.waited))
        explanation = Explanation(
            strategy="cascade",
            steps=tuple(run.steps),
            chosen=chosen.member.name,
            confidence=None if score is None else score.confidence,
            confidence_source=None if score is None else score.source,
            reason=reason,
            facts=tuple(facts),
        )
        completion = strategy_completion(
            chosen.completion, chosen.member, run.answered, explanation, text=chosen.text
        )
        return replace(completion, latency=self._clock.monotonic() - started)
