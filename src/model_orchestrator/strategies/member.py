"""``Member``: a model a strategy can call, with its profile; and the bookkeeping every strategy shares.

Owns turning member outcomes into ``StepRecord``s and a strategy's final ``Completion`` (summed usage and
cost, the chosen member's text, the explanation). It does not decide anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from model_orchestrator.core.errors import OrchestratorError
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.tools import ToolCall, ToolCallDelta
from model_orchestrator.core.usage import Usage


@dataclass(frozen=True, slots=True)
class Member:
    """A model a strategy may call, and what is known about it without calling it."""

    model: ChatModel
    profile: ModelProfile

    @property
    def name(self) -> str:
        """The member's user-facing name."""
        return self.profile.name


def step_ok(
    member: Member,
    completion: Completion,
    *,
    outcome: str = "ok",
    confidence: float | None = None,
    reason: str | None = None,
    keep_text: bool = False,
) -> StepRecord:
    """A step for a member that answered."""
    return StepRecord(
        model=member.name,
        outcome=outcome,
        reason=reason,
        text=completion.text if keep_text else None,
        confidence=confidence,
        cost=completion.cost,
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        latency=completion.latency,
        explanation=completion.explanation,
    )


def step_failed(member: Member, error: BaseException, *, outcome: str = "error") -> StepRecord:
    """A step for a member that raised, was skipped or was cancelled."""
    reason = error.message if isinstance(error, OrchestratorError) else (str(error) or type(error).__name__)
    return StepRecord(model=member.name, outcome=outcome, error_type=type(error).__name__, reason=reason)


def step_skipped(member: Member, reason: str) -> StepRecord:
    """A step for a member that was not called."""
    return StepRecord(model=member.name, outcome="skipped", reason=reason)


def total_usage(completions: Iterable[Completion]) -> Usage:
    """Usage summed over every member that answered."""
    total: Usage | None = None
    for completion in completions:
        total = completion.usage if total is None else total + completion.usage
    return Usage() if total is None else total


def total_cost(completions: Iterable[Completion]) -> float | None:
    """Cost summed over members that answered; None when any of them had an unknown price."""
    total: float = 0
    for completion in completions:
        if completion.cost is None:
            return None
        total += completion.cost
    return total


def strategy_completion(
    chosen: Completion,
    chosen_member: Member,
    answered: Sequence[Completion],
    explanation: Explanation,
    *,
    text: str | None = None,
    latency: float | None = None,
    model: str | None = None,
) -> Completion:
    """The strategy's answer: the chosen text, usage and cost summed over ``answered``, the explanation.

    ``model`` is the chosen member's user-facing name unless given; ``latency`` is the chosen answer's
    unless given.
    """
    # Built whole rather than with ``replace`` (twice as fast; every strategy answer makes one): every
    # field of ``Completion`` is listed, as the test of this function checks.
    return Completion(
        text=chosen.text if text is None else text,
        model=chosen_member.name if model is None else model,
        provider=chosen.provider,
        deployment=chosen.deployment,
        usage=total_usage(answered),
        cost=total_cost(answered),
        latency=chosen.latency if latency is None else latency,
        finish_reason=chosen.finish_reason,
        logprobs=chosen.logprobs,
        response_id=chosen.response_id,
        rate_limits=chosen.rate_limits,
        details=chosen.details,
        explanation=explanation,
        tool_calls=chosen.tool_calls,
    )


async def one_delta(completion: Completion) -> AsyncIterator[StreamDelta]:
    """The whole answer as a single final delta (usage, finish reason and explanation included).

    For strategies that must see a whole answer before choosing it (vote, score, review, validate).
    Tool calls go along whole, one piece each.
    """
    yield StreamDelta(
        text=completion.text,
        finish_reason=completion.finish_reason,
        usage=completion.usage,
        model=completion.model,
        rate_limits=completion.rate_limits,
        explanation=completion.explanation,
        tool_calls=tool_call_pieces(completion.tool_calls),
    )


def tool_call_pieces(calls: Sequence[ToolCall]) -> tuple[ToolCallDelta, ...]:
    """Whole tool calls as stream pieces, one per call (``assemble_tool_calls`` gives them back)."""
    return tuple(ToolCallDelta(i, call.id, call.name, call.arguments) for i, call in enumerate(calls))
