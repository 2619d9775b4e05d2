"""``OrchestrationResult``: the explained answer every front door returns (seed 004's output format)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class OrchestrationResult:
    """The answer plus how it was obtained: which model, what it cost, what was tried.

    ``cost`` is USD, None when any priced attempt had an unknown price. ``latency`` is seconds.
    """

    response: str
    model_used: str
    cost: float | None
    latency: float
    input_tokens: int
    output_tokens: int
    strategy: str
    confidence: float | None = None
    fallback_chain: tuple[str, ...] = ()
    ensemble_models: tuple[str, ...] = ()
    metadata: dict[str, object] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, object]:
        """The seed-004 JSON shape, keys in documented order."""
        return {
            "response": self.response,
            "model_used": self.model_used,
            "cost": self.cost,
            "latency": round(self.latency, 6),
            "confidence": self.confidence,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "strategy": self.strategy,
            "fallback_chain": list(self.fallback_chain),
            "ensemble_models": list(self.ensemble_models),
            "metadata": self.metadata,
            "timestamp": self.timestamp,
        }
