"""``decide``: seed 003's routing decision for a task, without calling any model.

With context hints (files, tests, external APIs, subsystems) the complexity scorer decides: it is the
only router that reads them. Without, the policy's router (the learned one by default) makes its
weak/strong call on the task text, and the complexity tier still counts when it is higher. Then
``select_model`` picks the cheapest healthy qualifying model (or the model configured for that tier when
it qualifies), and the decision lists every model left out with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from model_orchestrator.core.money import usd
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.routing.complexity import ComplexityResult, ComplexityScorer, TaskContext
from model_orchestrator.routing.decision import RoutingDecision
from model_orchestrator.routing.policy import RoutePolicy, TierVerdict, requirements, tier_prices
from model_orchestrator.routing.selection import Candidate, Selection, select_model


def decide(
    task: str,
    context: TaskContext,
    candidates: Sequence[Candidate],
    *,
    policy: RoutePolicy,
    complexity: ComplexityScorer,
    tier_models: Mapping[int, str] | None = None,
    budget: float | None = None,
) -> RoutingDecision:
    """The recommended model for ``task`` among ``candidates`` (see the module docstring)."""
    tiers = sorted({c.profile.tier or 0 for c in candidates}) or [0]
    scored = complexity.score(task, context)
    prices = tier_prices([c.profile for c in candidates])
    by_complexity = RoutePolicy(complexity).verdict(task, tiers, context, prices)
    hinted = bool(
        context.files_count or context.requires_tests or context.external_apis or context.subsystems
    )
    learned = None if policy.router is complexity or hinted else policy.verdict(task, tiers, prices=prices)
    verdict = by_complexity if learned is None or by_complexity.tier > learned.tier else learned
    needs = requirements(ChatRequest.from_prompt(task), verdict.tier, context.capabilities, budget)
    selection = select_model(candidates, needs)
    chosen = _chosen(selection, (tier_models or {}).get(verdict.tier))
    return RoutingDecision(
        model=chosen,
        complexity_score=scored.score,
        complexity_factors=scored.factors,
        reason=_reason(scored, by_complexity, learned, verdict, chosen, selection),
        confidence=_confidence(verdict, complexity, scored),
        estimated_cost=selection.estimates.get(chosen) if chosen else None,
        tier=verdict.tier,
        router=policy.router.name if learned is not None else complexity.name,
        strong_score=learned.strong_score if learned else None,
        threshold=learned.threshold if learned else None,
        excluded=selection.excluded,
        candidates=tuple(p.name for p in selection.ranked),
        tiers=verdict.tiers,
    )


def _chosen(selection: Selection, configured: str | None) -> str | None:
    names = [p.name for p in selection.ranked]
    if configured is not None and configured in names:
        return configured
    return names[0] if names else None


def _confidence(verdict: TierVerdict, complexity: ComplexityScorer, scored: ComplexityResult) -> float:
    """How far the deciding score is from its boundary: 0.5 on it, 1 far from it."""
    if verdict.strong_score is None or verdict.threshold is None:
        return complexity.confidence(scored.score)
    distance = abs(verdict.strong_score - verdict.threshold)
    return 0.5 + 0.5 * min(1.0, distance / 0.25)


def _reason(
    scored: ComplexityResult,
    by_complexity: TierVerdict,
    learned: TierVerdict | None,
    verdict: TierVerdict,
    chosen: str | None,
    selection: Selection,
) -> str:
    parts = [f"Task {by_complexity.reason}"]
    if learned is not None:
        decider = "the complexity tier is higher" if verdict is by_complexity else "the router's verdict"
        parts.append(f"{learned.reason}; needs tier {verdict.tier} ({decider})")
    if chosen is None:
        parts.append(
            "no configured model qualifies: "
            + "; ".join(f"{e.model}: {e.reason}" for e in selection.excluded)
        )
        return ". ".join(parts)
    cost = selection.estimates[chosen].usd
    shown = "price unknown" if cost is None else f"estimated {usd(cost)}"
    parts.append(
        f"Recommended: {chosen} (cheapest qualifying model of tier {verdict.tier} or better, {shown})"
    )
    return ". ".join(parts)
