"""The ``routing:`` section of ``orchestrator.yaml``: which router decides, how many prompts go strong,
the complexity scorer's weights and tier thresholds, and which model serves each tier.

Owns shape and validation only; ``routers.py`` builds the routers and policies from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_orchestrator.routing.complexity import FACTORS

RouterName = Literal["learned", "generic", "complexity", "length"]


class ComplexityConfig(BaseModel):
    """Seed 003's scorer: per-factor weights (default 1), tier thresholds, the top-tier floor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float] = Field(default_factory=dict)
    thresholds: tuple[float, float, float] = (2.5, 5.5, 8.0)
    critical_floor: float = Field(default=8.5, ge=0, le=10)

    @field_validator("weights")
    @classmethod
    def _known_factors(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(FACTORS))
        if unknown:
            raise ValueError(f"unknown factors {', '.join(unknown)}; the factors are: {', '.join(FACTORS)}")
        if any(w < 0 for w in value.values()):
            raise ValueError("weights must not be negative")
        return value

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if list(value) != sorted(value) or not all(0 <= t <= 10 for t in value):
            raise ValueError("thresholds must be ascending scores between 0 and 10, e.g. [2.5, 5.5, 8.0]")
        return value


class RoutingConfig(BaseModel):
    """How ``cheapest``, ``route`` strategies and ``orchestrator route`` decide.

    ``router``: ``learned`` (default; the shipped file, or ``learned_router``, one made by
    ``orchestrator train-router``), ``generic`` (the same file's family-independent router, for traffic
    unlike its training data), ``complexity`` or ``length``. ``strong_share``: the share of prompts
    that should go to the strong tier (the threshold is that quantile of the router's scores);
    ``threshold`` sets the score directly instead. ``tiers`` names the model for a tier (0-3) in decisions.
    With more than two tiers, ``tier_shares`` (the share of prompts per tier) or ``target_cost_per_1k``
    (the average USD per 1,000 tokens to spend, input and output price averaged) routes among all of them
    (``routing/tiers.py``); a strategy's own ``strong_share`` or ``threshold`` keeps the weak/strong call.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    router: RouterName = "learned"
    learned_router: str | None = None
    strong_share: float = Field(default=0.3, ge=0, le=1)
    threshold: float | None = Field(default=None, ge=0, le=1)
    complexity: ComplexityConfig = ComplexityConfig()
    tiers: dict[int, str] = Field(default_factory=dict)
    tier_shares: dict[int, float] | None = None
    target_cost_per_1k: float | None = Field(default=None, gt=0)

    @field_validator("tier_shares")
    @classmethod
    def _shares(cls, value: dict[int, float] | None) -> dict[int, float] | None:
        if value is not None and (any(v < 0 for v in value.values()) or sum(value.values()) <= 0):
            raise ValueError("tier_shares are shares of prompts per tier, e.g. {0: 0.6, 1: 0.3, 3: 0.1}")
        return value

    @model_validator(mode="after")
    def _one_plan(self) -> RoutingConfig:
        if self.tier_shares is not None and self.target_cost_per_1k is not None:
            raise ValueError("set tier_shares or target_cost_per_1k, not both")
        return self
