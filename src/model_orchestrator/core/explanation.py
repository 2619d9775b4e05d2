"""How an answer was reached: the attempts a strategy made and why it chose what it chose.

Strategies attach an ``Explanation`` to the ``Completion`` they return; front doors render it (seed 004's
``fallback_chain``, ``ensemble_models``, ``confidence``, ``metadata``). Nested strategies nest
explanations through ``StepRecord.explanation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model_orchestrator.core.frozen import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class StepRecord:
    """One model a strategy tried or consulted.

    ``outcome``: ``ok`` (answer used or usable), ``error`` (raised), ``skipped`` (not called: open circuit,
    cooldown, over budget, context too small), ``rejected`` (answered, but below the confidence threshold
    or outvoted), ``cancelled`` (a race loser).
    """

    model: str
    outcome: str
    error_type: str | None = None
    reason: str | None = None
    text: str | None = None
    confidence: float | None = None
    cost: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency: float | None = None
    explanation: Explanation | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready; absent values are left out."""
        data: dict[str, object] = {"model": self.model, "outcome": self.outcome}
        for key in ("error_type", "reason", "text", "confidence", "cost", "latency"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.input_tokens or self.output_tokens:
            data["input_tokens"], data["output_tokens"] = self.input_tokens, self.output_tokens
        if self.explanation is not None:
            data["explanation"] = self.explanation.to_dict()
        return data


@quick_init
@dataclass(frozen=True, slots=True)
class Explanation:
    """A strategy's account of one request: what it tried, what it chose, how sure it is."""

    strategy: str
    steps: tuple[StepRecord, ...] = ()
    chosen: str | None = None
    confidence: float | None = None
    confidence_source: str | None = None
    reason: str | None = None
    facts: tuple[tuple[str, object], ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        data: dict[str, object] = {
            "strategy": self.strategy,
            "chosen": self.chosen,
            "steps": [s.to_dict() for s in self.steps],
        }
        if self.confidence is not None:
            data["confidence"] = self.confidence
            data["confidence_source"] = self.confidence_source
        if self.reason:
            data["reason"] = self.reason
        data.update(dict(self.facts))
        return data

    @property
    def models_tried(self) -> tuple[str, ...]:
        """Models that were called, in order (skipped ones left out)."""
        return tuple(s.model for s in self.steps if s.outcome != "skipped")
