"""``RoutingDecision``: which model a task should go to and why, in seed 003's shape.

Owns the value objects a routing decision is made of (factor scores, exclusions, the cost estimate) and
their JSON form: ``model, complexity_score, complexity_factors, reason, confidence, estimated_cost``, plus
the router that decided, its score and threshold, the tier, every model left out with the reason, and
(with a tier plan) every tier considered with its price and value.
It does not decide anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_orchestrator.routing.tiers import TierRow


@dataclass(frozen=True, slots=True)
class FactorScore:
    """One complexity factor: raw points on the seed's scale, their weight, and what they add (0-10)."""

    name: str
    points: float
    max_points: float
    weight: float
    contribution: float
    detail: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "points": round(self.points, 3),
            "max_points": self.max_points,
            "weight": self.weight,
            "contribution": round(self.contribution, 3),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A model the selection left out, and why (capability, context, budget, health, tier)."""

    model: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {"model": self.model, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Estimated tokens and USD of sending the task to one model (USD None: price unknown)."""

    model: str
    input_tokens: int
    output_tokens: int
    usd: float | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "usd": self.usd,
        }


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """The recommended model (None when nothing qualifies) and everything that led to it."""

    model: str | None
    complexity_score: float
    complexity_factors: tuple[FactorScore, ...]
    reason: str
    confidence: float
    estimated_cost: CostEstimate | None
    tier: int
    router: str
    strong_score: float | None = None
    threshold: float | None = None
    excluded: tuple[Exclusion, ...] = ()
    candidates: tuple[str, ...] = ()
    tiers: tuple[TierRow, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Seed 003's JSON shape first, then the details."""
        return {
            "model": self.model,
            "complexity_score": round(self.complexity_score, 2),
            "complexity_factors": {f.name: f.to_dict() for f in self.complexity_factors},
            "reason": self.reason,
            "confidence": round(self.confidence, 3),
            "estimated_cost": self.estimated_cost.to_dict() if self.estimated_cost else None,
            "tier": self.tier,
            "router": self.router,
            "strong_score": None if self.strong_score is None else round(self.strong_score, 4),
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "excluded": [e.to_dict() for e in self.excluded],
            "candidates": list(self.candidates),
            "tiers": [row.to_dict() for row in self.tiers],
        }
