"""Bookkeeping shared by the sequential strategies (fallback, cascade): one request's walk down a chain.

Owns the per-request record (steps, errors, every answer for cost totals, rejected answers, members
skipped as unavailable with their ``retry_after``), the pre-call skip checks (deadline, context window,
an overflow already seen, budget), translating a member's failure into a step, the ``FallbackTriggered``
event with its log line, the wait for the earliest cooldown, and the final error. It does not decide
whether an answer is good enough (scorers and the strategies do).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import (
    AllModelsFailedError,
    BudgetExceededError,
    ContextWindowExceededError,
    DeadlineExceededError,
    DeploymentUnavailableError,
    OrchestratorError,
)
from model_orchestrator.core.events import EventBus, FallbackTriggered, RetryScheduled
from model_orchestrator.core.explanation import StepRecord
from model_orchestrator.core.frozen import quick_init
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import current_scope
from model_orchestrator.core.response import Completion
from model_orchestrator.core.tokens import estimate_message_tokens
from model_orchestrator.strategies.budget import affordable, remaining_budget, unaffordable_reason
from model_orchestrator.strategies.capabilities import capability_skip
from model_orchestrator.strategies.member import Member, step_failed, step_ok
from model_orchestrator.strategies.scorers import Score

_log = logging.getLogger(__name__)


def with_fallback(request: ChatRequest, has_fallback: bool) -> ChatRequest:
    """``request`` marked as having somewhere else to go; unchanged (its own flag kept) when not."""
    return request.with_fallback_flag() if has_fallback else request


@quick_init
@dataclass(frozen=True, slots=True)
class Candidate:
    """A member's answer with its score (None: no scorer)."""

    member: Member
    completion: Completion
    score: Score | None
    position: int

    @property
    def confidence(self) -> float | None:
        return None if self.score is None else self.score.confidence

    @property
    def text(self) -> str:
        """The answer as the scorer left it (a self-report line stripped)."""
        if self.score is not None and self.score.text is not None:
            return self.score.text
        return self.completion.text


@dataclass(slots=True)
class ChainRun:
    """One request's progress through a chain of members (``request`` is the prepared request)."""

    strategy: str
    request: ChatRequest
    clock: Clock
    bus: EventBus
    steps: list[StepRecord] = field(default_factory=list)
    errors: list[OrchestratorError] = field(default_factory=list)
    answered: list[Completion] = field(default_factory=list)
    rejected: list[Candidate] = field(default_factory=list)
    unavailable: list[Member] = field(default_factory=list)
    retry_afters: list[float] = field(default_factory=list)
    overflowed_window: int | None = None
    deadline_hit: bool = False
    waited: float = 0.0

    def deadline_passed(self) -> bool:
        """True (and remembered) once the request's deadline has passed."""
        deadline = self.request.deadline
        if deadline is not None and self.clock.monotonic() >= deadline:
            self.deadline_hit = True
        return self.deadline_hit

    def skip_error(self, member: Member) -> OrchestratorError | None:
        """Why ``member`` must not be called (a capability it lacks, context, an overflow already seen,
        budget), or None."""
        lacking = capability_skip(member, self.request)
        if lacking is not None:
            return lacking
        profile = member.profile
        if not profile.fits(self.request):
            needed = estimate_message_tokens(self.request.messages) + profile.reserved_output(self.request)
            message = f"needs about {needed} tokens, more than its context window of {profile.context_window}"
            return ContextWindowExceededError(message, deployment=member.name)
        window, seen = profile.context_window, self.overflowed_window
        if seen is not None and window is not None and window <= seen:
            message = f"context window {window} is not larger than {seen}, which already overflowed"
            return ContextWindowExceededError(message, deployment=member.name)
        remaining = remaining_budget(self.request)
        if remaining is not None and not affordable(member, self.request, remaining):
            return BudgetExceededError(
                unaffordable_reason(member, self.request, remaining), deployment=member.name
            )
        return None

    def skip(self, member: Member, error: OrchestratorError) -> None:
        """Record that ``member`` was not called."""
        self.errors.append(error)
        self.steps.append(step_failed(member, error, outcome="skipped"))

    async def call(self, member: Member, *, has_fallback: bool = False) -> Completion | None:
        """``member``'s answer to the request, or None with the failure recorded.

        ``has_fallback``: a later member follows, so the member's deployments move on at once after a
        timeout or rate limit instead of retrying (the last member inherits the request's own flag).
        """
        request = with_fallback(self.request, has_fallback)
        try:
            completion = await member.model.complete(request)
        except OrchestratorError as exc:
            self.fail(member, exc)
            return None
        self.answered.append(completion)
        return completion

    def fail(self, member: Member, error: OrchestratorError) -> None:
        """Record a member's failure; unavailable ones are skips that may be retried after a wait."""
        self.errors.append(error)
        if isinstance(error, DeploymentUnavailableError):
            self.unavailable.append(member)
            if error.retry_after is not None:
                self.retry_afters.append(error.retry_after)
            self.steps.append(step_failed(member, error, outcome="skipped"))
            return
        if isinstance(error, ContextWindowExceededError) and member.profile.context_window is not None:
            self.overflowed_window = max(self.overflowed_window or 0, member.profile.context_window)
        if isinstance(error, DeadlineExceededError):
            self.deadline_hit = True
        self.steps.append(step_failed(member, error))

    def accept(self, candidate: Candidate) -> None:
        """Record the answer that will be returned."""
        self.steps.append(step_ok(candidate.member, candidate.completion, confidence=candidate.confidence))

    def reject(self, candidate: Candidate, reason: str) -> None:
        """Record an answer judged not good enough (kept in case nothing better comes)."""
        self.rejected.append(candidate)
        self.steps.append(
            step_ok(
                candidate.member,
                candidate.completion,
                outcome="rejected",
                confidence=candidate.confidence,
                reason=reason,
            )
        )

    def best_rejected(self) -> Candidate | None:
        """The highest-scoring rejected answer (unscored lowest; on a tie the later, stronger member)."""
        if not self.rejected:
            return None
        return max(self.rejected, key=lambda c: (-1.0 if c.confidence is None else c.confidence, c.position))

    def moved_on(self, from_member: Member, to_member: Member | None) -> None:
        """Emit ``FallbackTriggered`` (and log it) for moving past ``from_member``, if anything follows."""
        if to_member is None or not self.steps:
            return
        last = self.steps[-1]
        reason = f"{last.outcome}: {last.reason or last.error_type or 'no reason given'}"
        _log.info("%s: moving on from %s to %s (%s)", self.strategy, from_member.name, to_member.name, reason)
        self.bus.emit(
            FallbackTriggered(
                request_id=self.request.request_id or "",
                timestamp=self.clock.wall(),
                strategy=self.strategy,
                from_model=from_member.name,
                to_model=to_member.name,
                reason=reason,
            )
        )

    def cooldown_delay(self, max_wait: float) -> float | None:
        """Seconds until the earliest unavailable member may be tried again, if worth waiting for.

        Only when nothing answered, some member reported when it frees up, and that is within
        ``max_wait`` and before the deadline.
        """
        if self.answered or not self.unavailable or not self.retry_afters or self.deadline_hit:
            return None
        delay = max(0.0, min(self.retry_afters))
        deadline = self.request.deadline
        if delay > max_wait or (deadline is not None and self.clock.monotonic() + delay >= deadline):
            return None
        return delay

    async def wait_for_cooldown(self, delay: float) -> list[Member]:
        """Sleep ``delay`` on the clock; returns the members that were unavailable, to try once more."""
        retry, self.unavailable, self.retry_afters = self.unavailable, [], []
        _log.info(
            "%s: every usable member is unavailable; waiting %.3fs for %s",
            self.strategy,
            delay,
            ", ".join(m.name for m in retry),
        )
        self.bus.emit(
            RetryScheduled(
                request_id=self.request.request_id or "",
                timestamp=self.clock.wall(),
                model=self.strategy,
                attempt=2,
                max_attempts=2,
                delay=delay,
                error_type=next(
                    (
                        type(e).__name__
                        for e in reversed(self.errors)
                        if isinstance(e, DeploymentUnavailableError)
                    ),
                    "DeploymentUnavailableError",
                ),
            )
        )
        await self.clock.sleep(delay)
        self.waited += delay
        return retry

    def failure(self) -> OrchestratorError:
        """The error to raise when nothing answered: every member's error, in order."""
        tried = "; ".join(f"{s.model}: {s.outcome} ({s.error_type or s.reason})" for s in self.steps)
        scope = current_scope()
        budget = scope.budget_used_up() if scope is not None else None
        failed = AllModelsFailedError(
            f"every model in {self.strategy!r} failed or was skipped: {tried or 'no member to try'}"
            + (f"; {budget}" if budget else ""),
            self.errors,
        )
        if not self.deadline_hit:
            return failed
        deadline = DeadlineExceededError(
            f"the deadline passed before {self.strategy!r} got an answer (tried: {tried or 'nothing'})"
        )
        deadline.__cause__ = failed
        return deadline
