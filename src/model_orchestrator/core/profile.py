"""``ModelProfile``: what a strategy may know about a member without calling it (price, window, tier,
capabilities).

The composition root builds one per configured model; strategies use them to skip members that cannot
fit the context or the remaining budget, or lack a capability the request needs, before any call.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_orchestrator.core.pricing import Price
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tokens import estimate_message_tokens
from model_orchestrator.core.usage import Usage

DEFAULT_OUTPUT_ESTIMATE = 512


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """Static facts about one model (or strategy). Unknown facts are None, never guessed."""

    name: str
    price: Price | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    tier: int | None = None
    capabilities: frozenset[str] = frozenset()

    def missing_capabilities(self, request: ChatRequest) -> frozenset[str]:
        """What ``request`` needs (``tools``, ``vision``, ``json_schema``) that this model lacks.

        Empty capabilities mean unknown (a strategy used as a member checks its own members), so nothing
        is missing.
        """
        if not self.capabilities:
            return frozenset()
        return request.required_capabilities - self.capabilities

    def reserved_output(self, request: ChatRequest) -> int:
        """Output tokens to plan for: the request's cap, else the model's, else a default."""
        if request.max_tokens is not None:
            return request.max_tokens
        if self.max_output_tokens is not None:
            return min(self.max_output_tokens, DEFAULT_OUTPUT_ESTIMATE)
        return DEFAULT_OUTPUT_ESTIMATE

    def fits(self, request: ChatRequest) -> bool:
        """True when the estimated prompt plus reserved output fits the context window (or it is unknown)."""
        if self.context_window is None:
            return True
        needed = estimate_message_tokens(request.messages) + self.reserved_output(request)
        return needed <= self.context_window

    def estimate_cost(self, request: ChatRequest) -> float | None:
        """Estimated USD cost of ``request`` (prompt estimate + reserved output); None if unknown."""
        if self.price is None:
            return None
        usage = Usage(
            estimate_message_tokens(request.messages), self.reserved_output(request), estimated=True
        )
        return self.price.cost_of(usage)
