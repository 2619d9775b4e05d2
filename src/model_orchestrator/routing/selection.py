"""``select_model``: the cheapest healthy model of the needed tier or better that can do the task.

Given candidate models (their ``ModelProfile`` and whether their deployments are available now) and what
the task needs (a minimum tier, capabilities such as vision, tools, JSON or long context, the estimated
prompt tokens plus reserved output, the remaining budget), it keeps the models that qualify, ranks them
by estimated cost (unknown prices last, then lower tier, then name), and says why each other model was
left out. Unknown tiers count as tier 0: a model is never assumed strong. Pure: no calls, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from model_orchestrator.core.money import usd
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.usage import Usage
from model_orchestrator.routing.decision import CostEstimate, Exclusion

LONG_CONTEXT_TOKENS = 100_000


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model that could be chosen; ``unavailable`` says why its deployments cannot be called now."""

    profile: ModelProfile
    unavailable: str | None = None


@dataclass(frozen=True, slots=True)
class Requirements:
    """What the task needs. ``budget`` is the USD still available (None: no cap)."""

    min_tier: int = 0
    capabilities: frozenset[str] = frozenset()
    input_tokens: int = 0
    output_tokens: int = 512
    budget: float | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """Qualifying models, cheapest first; the models left out with reasons; each model's estimate."""

    ranked: tuple[ModelProfile, ...]
    excluded: tuple[Exclusion, ...]
    estimates: dict[str, CostEstimate]

    @property
    def chosen(self) -> ModelProfile | None:
        """The cheapest qualifying model, if any."""
        return self.ranked[0] if self.ranked else None


def estimate(profile: ModelProfile, needs: Requirements) -> CostEstimate:
    """Tokens and USD for ``profile`` to do a task of ``needs``' size."""
    usd = None
    if profile.price is not None:
        usd = profile.price.cost_of(Usage(needs.input_tokens, needs.output_tokens, estimated=True))
    return CostEstimate(profile.name, needs.input_tokens, needs.output_tokens, usd)


def exclusion_reason(candidate: Candidate, needs: Requirements, cost: CostEstimate) -> str | None:
    """Why ``candidate`` cannot take the task (every reason, joined), or None when it can."""
    profile = candidate.profile
    reasons = [f"unavailable: {candidate.unavailable}"] if candidate.unavailable else []
    tier = profile.tier if profile.tier is not None else 0
    if tier < needs.min_tier:
        reasons.append(f"tier {tier} is below the needed tier {needs.min_tier}")
    missing = sorted(needed_capabilities(needs) - profile.capabilities)
    if missing and profile.capabilities:
        reasons.append(f"lacks {', '.join(missing)}")
    needed = needs.input_tokens + needs.output_tokens
    if profile.context_window is not None and needed > profile.context_window:
        reasons.append(
            f"needs about {needed} tokens ({needs.input_tokens} prompt + {needs.output_tokens} reserved "
            f"output); its context window is {profile.context_window}"
        )
    if needs.budget is not None:
        if cost.usd is None:
            reasons.append(
                f"price unknown, so it cannot be kept under the remaining budget {usd(needs.budget)}"
            )
        elif cost.usd > needs.budget:
            reasons.append(f"estimated cost {usd(cost.usd)} exceeds the remaining budget {usd(needs.budget)}")
    return "; ".join(reasons) or None


def needed_capabilities(needs: Requirements) -> frozenset[str]:
    """The capabilities asked for, plus ``long_context`` for very long prompts."""
    if needs.input_tokens + needs.output_tokens > LONG_CONTEXT_TOKENS:
        return needs.capabilities | {"long_context"}
    return needs.capabilities


def select_model(candidates: Sequence[Candidate], needs: Requirements) -> Selection:
    """Rank the qualifying candidates by estimated cost and explain every exclusion.

    A candidate with no declared capabilities (a strategy, an unknown model) is not excluded for them:
    only declared facts exclude.
    """
    estimates = {c.profile.name: estimate(c.profile, needs) for c in candidates}
    qualifying: list[ModelProfile] = []
    excluded: list[Exclusion] = []
    for candidate in candidates:
        reason = exclusion_reason(candidate, needs, estimates[candidate.profile.name])
        if reason is None:
            qualifying.append(candidate.profile)
        else:
            excluded.append(Exclusion(candidate.profile.name, reason))

    def cost_order(profile: ModelProfile) -> tuple[int, float, int, str]:
        usd = estimates[profile.name].usd
        return (usd is None, usd or 0.0, profile.tier or 0, profile.name)

    return Selection(tuple(sorted(qualifying, key=cost_order)), tuple(excluded), estimates)
