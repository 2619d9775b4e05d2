"""Budget checks a strategy makes before calling a member: what is left, and whether a call fits in it.

Owns reading the remaining USD of a request (the current ``RequestScope`` and ``request.max_cost``) and
the pre-call verdict from a member's estimated cost (prompt estimate + reserved output, times its price).
It does not charge anything: ``core.observed.ObservedModel`` charges actual, reported cost to the scope,
so estimates decide before a call and reported usage is the truth after it.

Unknown price: under a cost cap, a member whose price is unknown is NOT affordable, because nothing
could keep the cap honest. The composition root should therefore give a nested strategy a profile
priced like its most expensive member (a conservative estimate); free local models are priced 0 and
always fit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager

from model_orchestrator.core.errors import BudgetExceededError
from model_orchestrator.core.money import usd
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, current_scope, request_scope
from model_orchestrator.strategies.member import Member


def remaining_budget(request: ChatRequest, scope: RequestScope | None = None) -> float | None:
    """USD the request may still spend (None: no cap).

    The tighter of the scope's own cap and ``request.max_cost``, both net of what the scope has
    already been charged. ``scope`` defaults to the current one.
    """
    scope = scope if scope is not None else current_scope()
    spent = scope.spent if scope is not None else 0.0
    caps = [request.max_cost - spent] if request.max_cost is not None else []
    if scope is not None and scope.remaining_cost is not None:
        caps.append(scope.remaining_cost)
    return min(caps) if caps else None


def affordable(member: Member, request: ChatRequest, remaining: float | None = None) -> bool:
    """Whether calling ``member`` with ``request`` fits the remaining budget (see the module docstring).

    ``remaining`` defaults to ``remaining_budget(request)``; pass it when checking many members at once.
    """
    if remaining is None:
        remaining = remaining_budget(request)
        if remaining is None:
            return True
    estimate = member.profile.estimate_cost(request)
    return estimate is not None and estimate <= max(remaining, 0.0)


def unaffordable_reason(member: Member, request: ChatRequest, remaining: float) -> str:
    """Why ``member`` was skipped for budget, for explanations and logs."""
    estimate = member.profile.estimate_cost(request)
    if estimate is None:
        return f"price unknown, so it cannot be kept under the remaining budget {usd(remaining)}"
    return f"estimated cost {usd(estimate)} exceeds the remaining budget {usd(max(remaining, 0.0))}"


def require_affordable(members: Sequence[Member], request: ChatRequest) -> None:
    """Raise ``BudgetExceededError`` before any call when no member fits the remaining budget."""
    remaining = remaining_budget(request)
    if remaining is None or any(affordable(m, request, remaining) for m in members):
        return
    priced = [(m.profile.estimate_cost(request), m.name) for m in members]
    known = sorted((cost, name) for cost, name in priced if cost is not None)
    if known:
        cheapest, name = known[0]
        detail = f"the cheapest estimate is {usd(cheapest)} ({name})"
    else:
        detail = "no member has a known price"
    raise BudgetExceededError(
        f"no model fits the remaining budget of {usd(max(remaining, 0.0))}: {detail}; nothing was sent. "
        "Raise max_cost, lower max_tokens or shorten the prompt, or add a cheaper model."
    )


def budget_scope(request: ChatRequest) -> AbstractContextManager[RequestScope]:
    """The current request scope, or a new one carrying ``request.max_cost`` when none is open.

    Lets a strategy used outside the façade still see what its members (through ``ObservedModel``)
    have spent. Not for async generators: a context variable set there can leak across yields.
    """
    scope = current_scope()
    if scope is not None:
        return contextlib.nullcontext(scope)
    return request_scope(RequestScope(request_id=request.request_id or "", max_cost=request.max_cost))
