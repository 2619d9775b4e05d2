"""Plumbing shared by the strategies that call members concurrently (ensemble, race, hedge,
cross-validate): settling one call into an answer or an error, cancelling and awaiting the calls that
lost, recording what a cancelled call probably cost, choosing which members may run together (context and
budget), and the one-delta stream they all offer.

No decisions live here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from model_orchestrator.core.errors import DeploymentUnavailableError, OrchestratorError
from model_orchestrator.core.explanation import StepRecord
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion
from model_orchestrator.core.tokens import estimate_message_tokens
from model_orchestrator.core.usage import Usage
from model_orchestrator.strategies.budget import (
    affordable,
    remaining_budget,
    require_affordable,
    unaffordable_reason,
)
from model_orchestrator.strategies.capabilities import missing_reason, require_capable
from model_orchestrator.strategies.member import Member, step_failed, step_skipped

Outcome = Completion | OrchestratorError


async def settle(model: ChatModel, request: ChatRequest) -> Outcome:
    """The member's answer, or the hierarchy error it raised (anything else is a bug and propagates)."""
    try:
        return await model.complete(request)
    except OrchestratorError as exc:
        return exc


def failure_step(member: Member, error: OrchestratorError) -> StepRecord:
    """A failed member's step; a deployment skipped without a call (open circuit, cooldown) is ``skipped``."""
    outcome = "skipped" if isinstance(error, DeploymentUnavailableError) else "error"
    return step_failed(member, error, outcome=outcome)


def eligible(
    members: Sequence[Member], request: ChatRequest, strategy: str
) -> tuple[list[Member], list[StepRecord]]:
    """The members to call at once, and skipped steps for the others.

    A member is skipped when it lacks a capability the request needs (``CapabilityNotSupportedError`` is
    raised, before any call, when every member does), when its context window cannot hold the request, or
    when its estimated cost no
    longer fits the remaining budget after the members before it (they all run together, so their
    estimates add up). ``BudgetExceededError`` is raised, before any call, when no member is affordable.
    """
    require_capable(members, request, strategy)
    require_affordable(members, request)
    remaining = remaining_budget(request)
    chosen: list[Member] = []
    skipped: list[StepRecord] = []
    for member in members:
        lacking = missing_reason(member.profile, request)
        if lacking is not None:
            skipped.append(step_skipped(member, lacking))
        elif not member.profile.fits(request):
            skipped.append(step_skipped(member, "context window too small"))
        elif remaining is not None and not affordable(member, request, remaining):
            skipped.append(step_skipped(member, unaffordable_reason(member, request, remaining)))
        else:
            chosen.append(member)
            remaining = (
                None if remaining is None else remaining - (member.profile.estimate_cost(request) or 0.0)
            )
    return chosen, skipped


async def cancel_all(tasks: Iterable[asyncio.Task[Outcome]]) -> None:
    """Cancel every unfinished task and wait until each has stopped (its connection closed)."""
    unfinished = [t for t in tasks if not t.done()]
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*unfinished, return_exceptions=True)


def cancelled_completion(member: Member, request: ChatRequest) -> Completion:
    """A call cancelled mid-flight, as a ``Completion`` without text: it is assumed to have used the prompt
    (as ``ObservedModel`` records it), priced at the member's price (None when unknown)."""
    usage = Usage(input_tokens=estimate_message_tokens(request.messages), estimated=True)
    price = member.profile.price
    cost = None if price is None else price.cost_of(usage)
    return Completion("", member.name, "", "", usage, cost=cost)


def cancelled_step(member: Member, spent: Completion, elapsed: float, reason: str) -> StepRecord:
    """A loser's step, carrying the estimated spend of its cancelled call."""
    return StepRecord(
        model=member.name,
        outcome="cancelled",
        reason=reason,
        cost=spent.cost,
        input_tokens=spent.usage.input_tokens,
        latency=elapsed,
    )
