"""``FallbackModel``: an ordered chain of members; the first acceptable answer wins.

Owns the fallback decision: a member is skipped without a call when it cannot fit the context (after an
overflow, every member whose window is not larger is skipped too) or the remaining budget; a member that
is unavailable (open circuit, cooldown, local rate limit) or fails is passed over; with a scorer and a
threshold, an answer scoring below it is rejected and the chain moves on (seed 004's "escalates if
confidence < 0.6"). When every usable member was only unavailable, it waits for the earliest
``retry_after`` (within ``max_cooldown_wait`` and the deadline) and tries those once more. Each move
emits ``FallbackTriggered``. Retrying one deployment is not its job (resilience wrappers do that), but
it tells them whether there is somewhere else to go: every member but the last is called with
``request.has_fallback`` set, so a timeout or 429 there moves on at once instead of being retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError, OrchestratorError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import StartedStream, start_stream
from model_orchestrator.strategies.budget import budget_scope, require_affordable
from model_orchestrator.strategies.capabilities import require_capable
from model_orchestrator.strategies.chain import Candidate, ChainRun, with_fallback
from model_orchestrator.strategies.member import Member, strategy_completion, tool_call_pieces
from model_orchestrator.strategies.scorers import Score, Scorer
from model_orchestrator.strategies.tool_calls import TOOL_ARGUMENTS_SOURCE, tool_call_confidence


class FallbackModel:
    """Tries ``members`` in order until one gives an acceptable answer.

    ``scorer`` alone only reports each answer's confidence; with ``threshold`` too, answers below it are
    rejected (when all are, the highest-scoring one is returned and the explanation says so).
    Streaming falls through to the next member only before the first text; with a threshold it
    answers in one piece, since a streamed answer cannot be taken back after scoring.
    """

    def __init__(
        self,
        members: Sequence[Member],
        *,
        name: str = "fallback",
        scorer: Scorer | None = None,
        threshold: float | None = None,
        clock: Clock,
        bus: EventBus,
        wait_for_cooldown: bool = True,
        max_cooldown_wait: float = 30.0,
    ) -> None:
        if not members:
            raise ConfigError(f"fallback {name!r} needs at least one member")
        if threshold is not None and scorer is None:
            raise ConfigError(f"fallback {name!r}: a confidence threshold needs a scorer to measure it")
        self._members = tuple(members)
        self._name = name
        self._scorer = scorer
        self._threshold = threshold
        self._clock = clock
        self._bus = bus
        self._wait_for_cooldown = wait_for_cooldown
        self._max_wait = max_cooldown_wait

    def __repr__(self) -> str:
        return f"FallbackModel(name={self._name!r}, members={[m.name for m in self._members]})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def members(self) -> tuple[Member, ...]:
        """The chain, in order."""
        return self._members

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        with budget_scope(request):
            prepared = self._scorer.prepare(request) if self._scorer is not None else request
            run = ChainRun(self._name, prepared, self._clock, self._bus)
            require_capable(self._members, prepared, self._name)
            require_affordable(self._members, prepared)
            chosen = await self._pass(run, self._members)
            delay = self._cooldown(run) if chosen is None else None
            if delay is not None:
                chosen = await self._pass(run, await run.wait_for_cooldown(delay))
        if chosen is not None:
            return self._finish(run, chosen, started, _answered_reason(run, chosen.member))
        best = run.best_rejected()
        if best is None:
            raise run.failure()
        reason = (
            f"every answer scored below the threshold {self._threshold}; returning the highest-scoring "
            f"one ({best.member.name}, confidence {_fmt(best.confidence)})"
        )
        return self._finish(run, best, started, reason)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        if self._threshold is not None:  # scored answers cannot be taken back: answer in one piece
            return self._scored_stream(request)
        return self._chain_stream(request)

    async def _scored_stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        yield _single_delta(await self.complete(request))

    async def _chain_stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        run = ChainRun(self._name, request, self._clock, self._bus)
        require_capable(self._members, request, self._name)
        require_affordable(self._members, request)
        # One generator walks the chain and passes each delta on (a frame per delta, not three); a
        # second pass over the members that were unavailable follows a wait for their cooldown.
        members: Sequence[Member] = self._members
        for second_pass in (False, True):
            for position, member in enumerate(members):
                if run.deadline_passed():
                    break
                after = members[position + 1] if position + 1 < len(members) else None
                started = await self._open(run, member, after)
                if started is None:
                    if run.deadline_hit:
                        break
                    run.moved_on(member, after)
                    continue
                # The closing delta (finish reason, usage) is held back so that it can carry the
                # explanation. Leaving the block (finished, failed, or the caller stopped reading) closes
                # the member's stream.
                held: StreamDelta | None = None
                async with started:
                    async for delta in started:
                        if held is not None:  # something followed the closing delta after all: pass it on
                            previous, held = held, None
                            yield previous
                        if delta.finish_reason is None and delta.usage is None:
                            yield delta
                        else:
                            held = delta
                yield self._streamed_answer(run, member, held or StreamDelta())
                return
            delay = None if second_pass else self._cooldown(run)
            if delay is None:
                break
            members = await run.wait_for_cooldown(delay)
        raise run.failure()

    async def aclose(self) -> None:
        await asyncio.gather(*(m.model.aclose() for m in self._members))

    async def _pass(self, run: ChainRun, members: Sequence[Member]) -> Candidate | None:
        for position, member in enumerate(members):
            if run.deadline_passed():
                return None
            chosen = None
            skip = run.skip_error(member)
            if skip is not None:
                run.skip(member, skip)
            else:
                completion = await run.call(member, has_fallback=position + 1 < len(members))
                if completion is not None:
                    scorer = self._scorer
                    score = None if scorer is None else await self._score(scorer, run, member, completion)
                    chosen = self._judged(run, member, completion, score)
            if chosen is not None:
                return chosen
            if run.deadline_hit:
                return None
            run.moved_on(member, members[position + 1] if position + 1 < len(members) else None)
        return None

    async def _score(self, scorer: Scorer, run: ChainRun, member: Member, completion: Completion) -> Score:
        """How good ``member``'s answer is: tool calls are judged by their arguments
        (``strategies.tool_calls``), anything else by the scorer."""
        if self._threshold is not None:
            judged = tool_call_confidence(run.request.tools, completion, self._threshold)
            if judged is not None:
                return Score(judged[0], TOOL_ARGUMENTS_SOURCE)
        score = await scorer.score(run.request, completion, member)
        run.answered.extend(score.samples)
        return score

    def _judged(
        self, run: ChainRun, member: Member, completion: Completion, score: Score | None
    ) -> Candidate | None:
        """``member``'s answer accepted (recorded as the choice), or None when it scored below the
        threshold (recorded as rejected)."""
        position = next(i for i, m in enumerate(self._members) if m is member)  # duplicates allowed
        candidate = Candidate(member, completion, score, position)
        threshold = self._threshold
        if threshold is None or (candidate.confidence is not None and candidate.confidence >= threshold):
            run.accept(candidate)
            return candidate
        run.reject(candidate, f"confidence {_fmt(candidate.confidence)} is below the threshold {threshold}")
        return None

    def _cooldown(self, run: ChainRun) -> float | None:
        return run.cooldown_delay(self._max_wait) if self._wait_for_cooldown else None

    def _finish(self, run: ChainRun, chosen: Candidate, started: float, reason: str) -> Completion:
        score = chosen.score
        explanation = Explanation(
            strategy="fallback",
            steps=tuple(run.steps),
            chosen=chosen.member.name,
            confidence=None if score is None else score.confidence,
            confidence_source=None if score is None else score.source,
            reason=reason,
            facts=_facts(run, self._threshold),
        )
        model, explanation = self._reported(chosen.member.name, explanation)
        latency = self._clock.monotonic() - started
        return strategy_completion(
            chosen.completion,
            chosen.member,
            run.answered,
            explanation,
            text=chosen.text,
            latency=latency,
            model=model,
        )

    async def _open(self, run: ChainRun, member: Member, after: Member | None) -> StartedStream | None:
        """``member``'s stream read up to its first text or tool call; None when it was skipped or failed
        before that (recorded; its deltas up to then are held back, ``core.stream_start``)."""
        skip = run.skip_error(member)
        if skip is not None:
            run.skip(member, skip)
            return None
        try:
            return await start_stream(member.model.stream(with_fallback(run.request, after is not None)))
        except OrchestratorError as exc:
            run.fail(member, exc)
            return None

    def _streamed_answer(self, run: ChainRun, member: Member, last: StreamDelta) -> StreamDelta:
        """The closing delta of ``member``'s stream, with the explanation."""
        run.steps.append(_streamed_step(member, last))
        explanation = Explanation(
            strategy="fallback",
            steps=tuple(run.steps),
            chosen=member.name,
            reason=_answered_reason(run, member),
            facts=_facts(run, None),
        )
        model, explanation = self._reported(last.model or member.name, explanation)
        return replace(last, model=model, explanation=explanation)

    def _reported(self, model: str, explanation: Explanation) -> tuple[str, Explanation]:
        """The model name and explanation the answer is reported with (``BalancedModel``'s rotations
        report the balanced model's own)."""
        return model, explanation


def _answered_reason(run: ChainRun, member: Member) -> str:
    if len(run.steps) == 1:  # its own step alone: nothing was passed over
        return f"{member.name} answered first"
    passed = list(dict.fromkeys(s.model for s in run.steps[:-1] if s.model != member.name))
    if not passed:
        return f"{member.name} answered first"
    return f"{member.name} answered after passing over {', '.join(passed)}"


def _streamed_step(member: Member, last: StreamDelta) -> StepRecord:
    usage = last.usage
    return StepRecord(
        model=member.name,
        outcome="ok",
        input_tokens=0 if usage is None else usage.input_tokens,
        output_tokens=0 if usage is None else usage.output_tokens,
        explanation=last.explanation,
    )


def _single_delta(completion: Completion) -> StreamDelta:
    return StreamDelta(
        text=completion.text,
        finish_reason=completion.finish_reason,
        usage=completion.usage,
        model=completion.model,
        rate_limits=completion.rate_limits,
        explanation=completion.explanation,
        tool_calls=tool_call_pieces(completion.tool_calls),
    )


def _facts(run: ChainRun, threshold: float | None) -> tuple[tuple[str, object], ...]:
    facts: list[tuple[str, object]] = []
    if threshold is not None:
        facts.append(("threshold", threshold))
    if run.waited:
        facts.append(("waited_for_cooldown", run.waited))
    return tuple(facts)


def _fmt(confidence: float | None) -> str:
    return "unknown" if confidence is None else f"{confidence:.3f}"
