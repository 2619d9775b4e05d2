"""Prices and the cost of a usage. Where prices come from (genai-prices data, config) is config's job."""

from __future__ import annotations

from dataclasses import dataclass

from model_orchestrator.core.usage import Usage

_PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. Cached input, cache writes and reasoning fall back to the input/output
    rates when unset.

    ``tiers`` holds long-context rates: ``(start, price)`` pairs, ascending; when a call's input tokens
    exceed ``start`` the whole call is charged at that tier's price (how vendors price long context).
    """

    input: float
    output: float
    cached_input: float | None = None
    reasoning: float | None = None
    tiers: tuple[tuple[int, Price], ...] = ()
    cache_write: float | None = None

    @property
    def is_free(self) -> bool:
        """True for models that cost nothing per token (local models)."""
        return self.input == 0 and self.output == 0

    def for_input(self, input_tokens: int) -> Price:
        """The price that applies to a call with ``input_tokens`` of input."""
        chosen = self
        for start, tier in self.tiers:
            if input_tokens > start:
                chosen = tier
        return chosen

    def cost_of(self, usage: Usage) -> float:
        """The USD cost of ``usage`` at these prices (long-context tier included)."""
        if self.tiers:
            tier = self.for_input(usage.input_tokens)
            if tier is not self:
                return tier.cost_of(usage)
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        reasoning = min(usage.reasoning_tokens, usage.output_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = self.input if self.cache_write is None else self.cache_write
        reasoning_rate = self.output if self.reasoning is None else self.reasoning
        total = (
            (usage.input_tokens - cached - written) * self.input
            + cached * cached_rate
            + written * write_rate
            + (usage.output_tokens - reasoning) * self.output
            + reasoning * reasoning_rate
        )
        return total / _PER_MILLION


FREE = Price(0.0, 0.0)


def cost_of(usage: Usage, price: Price | None) -> float | None:
    """The cost of ``usage``, or None when the price is unknown."""
    return None if price is None else price.cost_of(usage)
