"""``CrossValidateModel`` (seed 000's cross-model validation): two models answer the same question at once;
if their extracted answers agree the answer is validated, otherwise a third model breaks the tie.

Owns that protocol and its explanation: both answers, whether they agreed, what the tiebreaker was asked
and whom it sided with, the confidence (the share of answers that agree) and the cost of all three.
Comparing answers is the extractor's business (``extractors``); running calls together is ``_parallel``'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import (
    AllModelsFailedError,
    CapabilityNotSupportedError,
    OrchestratorError,
)
from model_orchestrator.core.events import EventBus, FallbackTriggered
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.strategies._parallel import failure_step, settle
from model_orchestrator.strategies._prompts import auxiliary_request, task_text
from model_orchestrator.strategies.capabilities import capability_skip, refuse_capabilities
from model_orchestrator.strategies.extractors import Extractor, describe, short_text
from model_orchestrator.strategies.member import Member, one_delta, step_ok, strategy_completion

TIEBREAK_SYSTEM = "You settle disagreements between two assistants. Be brief and exact."


@dataclass(frozen=True, slots=True)
class Answer:
    """One model's answer and what the extractor read from it."""

    member: Member
    completion: Completion
    extracted: str | None


@dataclass(frozen=True, slots=True)
class Judgement:
    """The pure outcome of comparing answers: which one is returned, how sure, and why."""

    chosen: int
    confidence: float | None
    agreed: bool
    reason: str


def agree(a: str | None, b: str | None) -> bool:
    """Two extracted answers agree when both were read and are equal."""
    return a is not None and a == b


def judge(pair: Sequence[Answer], tiebreak: Answer | None) -> Judgement:
    """Decide from the pair's answers and, after a disagreement, the tiebreaker's (index 2 when present).

    Agreement returns the first answer with confidence 1.0. A tiebreaker siding with one of the pair is
    returned with 2/3 (two of three answers agree); siding with neither, with 1/3. Without a tiebreaker
    answer the first answer is returned with 1/2.
    """
    first, second = pair
    if agree(first.extracted, second.extracted):
        return Judgement(0, 1.0, True, f"both answered {first.extracted!r}")
    if tiebreak is None:
        return Judgement(0, 0.5, False, "the two answers disagree and no tiebreaker answered; first kept")
    sided = [a.member.name for a in pair if agree(a.extracted, tiebreak.extracted)]
    if sided:
        return Judgement(2, 2 / 3, False, f"answers disagreed; the tiebreaker sided with {sided[0]}")
    return Judgement(2, 1 / 3, False, "answers disagreed; the tiebreaker agreed with neither")


class CrossValidateModel:
    """Asks ``first`` and ``second`` concurrently; agreement returns, disagreement asks ``tiebreaker``.

    The tiebreaker sees the question and both answers ("Model A says ..., model B says ... Which is
    correct?") and its answer is returned. If one of the pair fails, the tiebreaker is asked the original
    question in its place and the two answers are compared; if both fail, ``AllModelsFailedError``.
    Confidence is the share of answers agreeing with the result (source ``agreement``); an answer nobody
    could check (one failed, the tiebreaker too) has none.
    ``stream()`` yields the validated answer as one delta.
    """

    def __init__(
        self,
        first: Member,
        second: Member,
        tiebreaker: Member,
        *,
        extractor: Extractor | None = None,
        name: str = "cross-validate",
        clock: Clock,
        bus: EventBus,
    ) -> None:
        self._pair = (first, second)
        self._tiebreaker = tiebreaker
        self._extractor = extractor or short_text()
        self._name = name
        self._clock = clock
        self._bus = bus

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        self._check_capabilities(request)
        outcomes = await asyncio.gather(*(settle(m.model, request) for m in self._pair))
        pairs = list(zip(self._pair, outcomes, strict=True))
        steps = [failure_step(m, o) for m, o in pairs if isinstance(o, OrchestratorError)]
        answers = [Answer(m, o, self._extractor(o.text)) for m, o in pairs if isinstance(o, Completion)]
        errors = [o for o in outcomes if isinstance(o, OrchestratorError)]
        if not answers:
            raise AllModelsFailedError(f"{self._name}: both models failed; nothing to validate", errors)
        tiebreak = await self._tiebreak(request, answers, steps)
        if len(answers) == 1 and tiebreak is not None:
            # The tiebreaker stood in for the failed member: compare it as the second answer.
            answers, tiebreak = [answers[0], tiebreak], None
        judgement = judge(answers, tiebreak) if len(answers) == 2 else _unvalidated()
        everyone = [*answers, *([tiebreak] if tiebreak is not None else [])]
        completion = self._result(everyone, steps, judgement)
        return replace(completion, latency=self._clock.monotonic() - started)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        async for delta in one_delta(await self.complete(request)):
            yield delta

    async def aclose(self) -> None:
        # Members are deployments shared with other strategies; whoever built them closes them.
        return None

    async def _tiebreak(
        self, request: ChatRequest, answers: Sequence[Answer], steps: list[StepRecord]
    ) -> Answer | None:
        """Ask the tiebreaker when the pair disagreed (to judge) or one failed (to answer in its place)."""
        if len(answers) == 2 and agree(answers[0].extracted, answers[1].extracted):
            return None
        if len(answers) == 2:
            reason, asked = "the two answers disagree", self.tiebreak_request(request, answers)
        else:
            reason, asked = "one of the pair failed", request
        self._bus.emit(
            FallbackTriggered(
                request_id=request.request_id or "",
                timestamp=self._clock.wall(),
                strategy=self._name,
                from_model=answers[-1].member.name,
                to_model=self._tiebreaker.name,
                reason=reason,
            )
        )
        outcome = await settle(self._tiebreaker.model, asked)
        if isinstance(outcome, OrchestratorError):
            steps.append(failure_step(self._tiebreaker, outcome))
            return None
        return Answer(self._tiebreaker, outcome, self._extractor(outcome.text))

    def tiebreak_request(self, request: ChatRequest, answers: Sequence[Answer]) -> ChatRequest:
        """The tiebreaker's request: the question, both answers, and "which is correct?"."""
        a, b = (answer.completion.text.strip() for answer in answers)
        user = (
            f"Question:\n{task_text(request)}\n\nModel A says:\n{a}\n\nModel B says:\n{b}\n\n"
            "Which is correct? Answer with the correct answer to the question, in the same form."
        )
        return auxiliary_request(request, system=TIEBREAK_SYSTEM, user=user).with_options(
            max_tokens=request.max_tokens, json_schema=request.json_schema
        )

    def _check_capabilities(self, request: ChatRequest) -> None:
        """Refuse, before any call, what cross-validation cannot honour or a member cannot serve."""
        refuse_capabilities(
            request,
            self._name,
            frozenset({"tools", "vision"}),
            "answers are compared as text and the tiebreaker reads only the question's text",
        )
        for member in (*self._pair, self._tiebreaker):
            lacking = capability_skip(member, request)
            if lacking is not None:
                raise CapabilityNotSupportedError(
                    f"{self._name!r}: {member.name} {lacking.message}; every model of a cross-validation "
                    "must have what the request needs",
                    capability=lacking.capability,
                )

    def _result(
        self, answers: Sequence[Answer], failed: Sequence[StepRecord], judgement: Judgement
    ) -> Completion:
        chosen = answers[judgement.chosen]
        steps = [_step(a, i, judgement, chosen) for i, a in enumerate(answers)]
        facts: tuple[tuple[str, object], ...] = (
            ("name", self._name),
            ("extractor", describe(self._extractor)),
            ("agreed", judgement.agreed),
            ("answers", {a.member.name: a.extracted for a in answers}),
            ("tiebreaker_used", any(a.member is self._tiebreaker for a in answers)),
        )
        explanation = Explanation(
            "cross-validate",
            (*steps, *failed),
            chosen=chosen.member.name,
            confidence=judgement.confidence,
            confidence_source=None if judgement.confidence is None else "agreement",
            reason=judgement.reason,
            facts=facts,
        )
        spent = [a.completion for a in answers]
        return strategy_completion(chosen.completion, chosen.member, spent, explanation)


def _unvalidated() -> Judgement:
    return Judgement(0, None, False, "one model failed and the tiebreaker could not stand in: unvalidated")


def _step(answer: Answer, index: int, judgement: Judgement, chosen: Answer) -> StepRecord:
    agrees = agree(answer.extracted, chosen.extracted) or index == judgement.chosen
    reason = f"answered {answer.extracted!r}" if answer.extracted is not None else "no answer could be read"
    return step_ok(
        answer.member,
        answer.completion,
        outcome="ok" if agrees else "rejected",
        reason=reason,
        keep_text=True,
    )
