"""``ValidatedModel``: answer with a member, check the answer (validators, then a judge), and ask a
fallback when the check escalates (an answer that calls tools is checked against the tools' schemas, not
judged). The checking itself is ``validate``'s. Each verdict is emitted as
``AnswerJudged`` (the ledger keeps it as an outcome label for retraining routers)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import AllModelsFailedError, ConfigError, OrchestratorError
from model_orchestrator.core.events import AnswerJudged, EventBus, FallbackTriggered
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.strategies._prompts import task_text
from model_orchestrator.strategies.member import Member, one_delta, step_failed, step_ok, strategy_completion
from model_orchestrator.strategies.validate import (
    ValidationResult,
    Validator,
    check_output,
    check_tool_calls,
)


class ValidatedModel:
    """Answers with ``member``, checks the answer, and asks ``fallback`` when the check escalates
    (failed, or passed with confidence under ``threshold``) or the member raised.

    The fallback's answer is checked too (for the explanation) and returned whatever its verdict; if the
    fallback raises, the member's escalated answer is returned. Emits ``FallbackTriggered`` on moving on.
    """

    def __init__(
        self,
        member: Member,
        *,
        judge: Member | None,
        validators: Sequence[Validator] = (),
        fallback: Member | None = None,
        threshold: float = 0.7,
        name: str = "validated",
        clock: Clock,
        bus: EventBus,
    ) -> None:
        if judge is None and not validators:
            raise ConfigError(f"{name}: a validated strategy needs a judge model or at least one validator")
        self._member = member
        self._checker = _Checker(judge, tuple(validators), threshold)
        self._fallback = fallback
        self._name = name
        self._clock = clock
        self._bus = bus

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        run = _ValidatedRun(self._checker, request, self._judged)
        answer = await run.attempt(self._member)
        if self._fallback is not None and (answer is None or run.escalated):
            self._bus.emit(
                FallbackTriggered(
                    request_id=request.request_id or "",
                    timestamp=self._clock.wall(),
                    strategy=self._name,
                    from_model=self._member.name,
                    to_model=self._fallback.name,
                    reason=run.fallback_reason(),
                )
            )
            answer = await run.attempt(self._fallback) or answer
        if answer is None:
            raise run.failure(self._name)
        return replace(run.result(self._name, *answer), latency=self._clock.monotonic() - started)

    def _judged(self, request: ChatRequest, member: Member, verdict: ValidationResult) -> None:
        # ``confidence`` is how sure the verdict is, so a failed answer scores its complement.
        score = verdict.confidence if verdict.passed else 1.0 - verdict.confidence
        self._bus.emit(
            AnswerJudged(
                request_id=request.request_id or "",
                timestamp=self._clock.wall(),
                judgement_id=uuid.uuid4().hex,
                strategy=self._name,
                source="validation",
                model=member.name,
                score=score,
                escalated=verdict.escalate,
                tier=member.profile.tier,
            )
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        """Answers whole (an answer must be checked before it is shown), then yields it as one delta."""
        async for delta in one_delta(await self.complete(request)):
            yield delta

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Checker:
    """What a ``ValidatedModel`` checks answers with."""

    judge: Member | None
    validators: tuple[Validator, ...]
    threshold: float


class _ValidatedRun:
    """One request through a ``ValidatedModel``: the calls made, their verdicts, the explanation."""

    def __init__(
        self,
        checker: _Checker,
        request: ChatRequest,
        judged: Callable[[ChatRequest, Member, ValidationResult], None],
    ) -> None:
        self.checker = checker
        self.request = request
        self.judged = judged
        self.steps: list[StepRecord] = []
        self.answered: list[Completion] = []
        self.verdicts: list[tuple[str, ValidationResult]] = []
        self.errors: list[OrchestratorError] = []

    @property
    def escalated(self) -> bool:
        """True when the last checked answer escalated."""
        return bool(self.verdicts) and self.verdicts[-1][1].escalate

    async def attempt(self, member: Member) -> tuple[Member, Completion] | None:
        """Ask ``member`` and check its answer; None when it raised."""
        try:
            completion = await member.model.complete(self.request)
        except OrchestratorError as exc:
            self.errors.append(exc)
            self.steps.append(step_failed(member, exc))
            return None
        self.answered.append(completion)
        if completion.tool_calls:
            # A judge reads text; tool calls are checked against the tools' schemas instead.
            verdict, judge_step = check_tool_calls(self.request.tools, completion.tool_calls), None
        else:
            verdict, judge_step = await self._check(completion.text)
        self.verdicts.append((member.name, verdict))
        if judge_step is None or judge_step.outcome != "error":  # a judge that failed said nothing
            self.judged(self.request, member, verdict)
        self.steps.append(
            step_ok(
                member,
                completion,
                outcome="rejected" if verdict.escalate else "ok",
                confidence=verdict.confidence,
                reason="; ".join(verdict.issues) or "passed",
            )
        )
        if judge_step is not None:
            self.steps.append(judge_step)
        return member, completion

    async def _check(self, output: str) -> tuple[ValidationResult, StepRecord | None]:
        judge = self.checker.judge
        try:
            verdict, judged = await check_output(
                task_text(self.request),
                output,
                judge=None if judge is None else judge.model,
                validators=self.checker.validators,
                threshold=self.checker.threshold,
                base=self.request,
            )
        except OrchestratorError as exc:
            assert judge is not None  # only the judge call raises OrchestratorError
            failed = ValidationResult(
                False, (f"judge failed: {exc.message}",), 0.0, True, (f"judge:{judge.name}",)
            )
            return failed, step_failed(judge, exc)
        if judged is None or judge is None:
            return verdict, None
        self.answered.append(judged)
        return verdict, step_ok(judge, judged, reason="judge")

    def fallback_reason(self) -> str:
        """Why the run moves to the fallback (called after the member's attempt)."""
        if not self.verdicts:
            return f"error: {self.errors[-1].message}"
        verdict = self.verdicts[-1][1]
        if not verdict.passed:
            return "validation failed: " + "; ".join(verdict.issues)
        return f"validation confidence {verdict.confidence:.2f} under {self.checker.threshold:.2f}"

    def failure(self, strategy: str) -> OrchestratorError:
        """The error to raise when no member answered."""
        if len(self.errors) == 1:
            return self.errors[0]
        return AllModelsFailedError(f"{strategy}: neither the member nor its fallback answered", self.errors)

    def result(self, strategy: str, member: Member, completion: Completion) -> Completion:
        """The strategy's completion: ``member``'s answer, everything spent, every verdict explained."""
        verdict = dict(self.verdicts)[member.name]
        state = "escalated" if verdict.escalate else "passed"
        explanation = Explanation(
            strategy,
            tuple(self.steps),
            chosen=member.name,
            confidence=verdict.confidence,
            confidence_source=",".join(verdict.checked_by),
            reason=f"the answer from {member.name} {state} validation",
            facts=(("validations", [{"model": m, **v.to_dict()} for m, v in self.verdicts]),),
        )
        return strategy_completion(completion, member, self.answered, explanation)
