"""``RoutePolicy``: a router's verdict on a request, turned into an order of models to try.

Owns the mapping from a score to the tier a request needs, then delegates the choice within it to
``select_model`` (cheapest qualifying model of that tier or better). A learned router makes a weak/strong
call: below the threshold the cheapest qualifying model of any tier; at or above it, the cheapest of the
highest tier present. With a ``TierPlan`` (``routing.tier_shares`` or ``routing.target_cost_per_1k``) the
score picks one of all the tiers present instead, and the verdict lists every tier with its price and
value. The complexity scorer maps its 0-10 score to seed 003's tiers, and a tier that is
not configured rounds up to the next one present (or the top). Models below the needed tier stay at the
end of the order as a last resort, so a request is answered if anything can answer it. It implements
``core.routing.RoutingPolicy`` for ``strategies.route.RouteModel`` and serves ``Orchestrator.route``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.request_scope import current_scope
from model_orchestrator.core.routing import RouteChoice, Router
from model_orchestrator.core.tokens import estimate_message_tokens
from model_orchestrator.routing.complexity import ComplexityScorer, TaskContext
from model_orchestrator.routing.selection import Candidate, Requirements, Selection, select_model
from model_orchestrator.routing.tiers import TierPlan, TierRow, price_per_1k


@dataclass(frozen=True, slots=True)
class TierVerdict:
    """The tier a request needs and why; ``strong_score``/``threshold`` for score routers (with a tier
    plan, ``threshold`` is the nearest score at which the tier would change)."""

    tier: int
    reason: str
    strong_score: float | None = None
    threshold: float | None = None
    tiers: tuple[TierRow, ...] = ()


class RoutePolicy:
    """Routes with ``router``: tiers for the complexity scorer, one of all tiers with a ``plan``,
    weak/strong at ``threshold`` otherwise."""

    def __init__(self, router: Router, *, threshold: float = 0.5, plan: TierPlan | None = None) -> None:
        self.router = router
        self.threshold = threshold
        self.plan = plan

    def verdict(
        self,
        prompt: str,
        tiers: Sequence[int],
        context: TaskContext | None = None,
        prices: dict[int, float | None] | None = None,
    ) -> TierVerdict:
        """The tier (one of ``tiers``) that ``prompt`` needs; ``prices`` (USD per 1k tokens per tier)
        serve a cost plan."""
        present = sorted(set(tiers)) or [0]
        if isinstance(self.router, ComplexityScorer):
            result = self.router.score(prompt, context)
            tier = next((t for t in present if t >= result.tier), present[-1])
            moved = "" if tier == result.tier else f" (not among the models; the nearest is tier {tier})"
            reason = f"{result.explain()} -> tier {result.tier}{moved}"
            return TierVerdict(tier, reason, tiers=_rows(present, prices, tier))
        score = self.router.strong_score(prompt)
        if self.plan is not None:
            known = prices or {}
            choice = self.plan.choose(score, {t: known.get(t) for t in present})
            reason = f"{self.router.name} router: {choice.reason}"
            return TierVerdict(choice.tier, reason, score, choice.boundary, choice.rows)
        strong = score >= self.threshold
        tier = present[-1] if strong else present[0]
        relation = "at or above" if strong else "below"
        reason = (
            f"{self.router.name} router: strong score {score:.3f} is {relation} the threshold "
            f"{self.threshold:.3f} -> {'strong' if strong else 'weak'} tier {tier}"
        )
        return TierVerdict(tier, reason, score, self.threshold, _rows(present, prices, tier))

    def choose(self, request: ChatRequest, candidates: Sequence[ModelProfile]) -> RouteChoice:
        """The order in which a strategy should try ``candidates`` for ``request``."""
        tiers = [_tier(p) for p in candidates]
        verdict = self.verdict(prompt_of(request), tiers, prices=tier_prices(candidates))
        needs = requirements(request, verdict.tier)
        selection = select_model([Candidate(p) for p in candidates], needs)
        order, skipped = fallback_order(selection, candidates, needs)
        chosen = order[0] if order else "nothing"
        return RouteChoice(
            order=order,
            skipped=skipped,
            reason=f"{verdict.reason}; chose {chosen}, the cheapest qualifying member",
            router=self.router.name,
            tier=verdict.tier,
            strong_score=verdict.strong_score,
            threshold=verdict.threshold,
            facts=(("tiers", [row.to_dict() for row in verdict.tiers]),) if verdict.tiers else (),
        )


def tier_prices(profiles: Sequence[ModelProfile]) -> dict[int, float | None]:
    """Per tier, the price (USD per 1k tokens) of its cheapest priced model; None when none is priced."""
    prices: dict[int, float | None] = {}
    for profile in profiles:
        price = price_per_1k(profile.price)
        known = prices.get(_tier(profile))
        prices[_tier(profile)] = price if known is None or (price is not None and price < known) else known
    return prices


def fallback_order(
    selection: Selection, candidates: Sequence[ModelProfile], needs: Requirements
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Qualifying members cheapest first, then (as a last resort) those only below the needed tier;
    everything else skipped with its reason."""
    below = select_model([Candidate(p) for p in candidates if _tier(p) < needs.min_tier], _any_tier(needs))
    order = tuple(p.name for p in selection.ranked) + tuple(p.name for p in below.ranked)
    skipped = tuple((e.model, e.reason) for e in selection.excluded if e.model not in order)
    return order, skipped


def requirements(
    request: ChatRequest, tier: int, capabilities: Sequence[str] = (), budget: float | None = None
) -> Requirements:
    """What ``request`` needs of a model: the tier, capabilities it implies (JSON, logprobs, and tools,
    images or a JSON schema), its size, the budget left."""
    needed = set(capabilities) | request.required_capabilities
    if request.response_format is ResponseFormat.JSON:
        needed.add("json")
    if request.logprobs:
        needed.add("logprobs")
    return Requirements(
        min_tier=tier,
        capabilities=frozenset(needed),
        input_tokens=estimate_message_tokens(request.messages),
        output_tokens=request.max_tokens if request.max_tokens is not None else 512,
        budget=budget if budget is not None else remaining_budget(request),
    )


def remaining_budget(request: ChatRequest) -> float | None:
    """USD the request may still spend: ``max_cost`` and the request scope's cap, net of spend (None: no
    cap). The same rule as ``strategies.budget``, which this layer may not import."""
    scope = current_scope()
    spent = scope.spent if scope is not None else 0.0
    caps = [request.max_cost - spent] if request.max_cost is not None else []
    if scope is not None and scope.remaining_cost is not None:
        caps.append(scope.remaining_cost)
    return min(caps) if caps else None


def prompt_of(request: ChatRequest) -> str:
    """The text a router reads: the last user message (the whole conversation when there is none)."""
    users = [m.text for m in request.messages if m.role == "user"]
    return users[-1] if users else "\n".join(m.text for m in request.messages)


def _rows(present: Sequence[int], prices: dict[int, float | None] | None, chosen: int) -> tuple[TierRow, ...]:
    """Every tier present with its price, the chosen one marked (a weak/strong call has no values)."""
    return tuple(TierRow(t, (prices or {}).get(t), None, t == chosen) for t in present)


def _tier(profile: ModelProfile) -> int:
    return profile.tier if profile.tier is not None else 0


def _any_tier(needs: Requirements) -> Requirements:
    return Requirements(0, needs.capabilities, needs.input_tokens, needs.output_tokens, needs.budget)
