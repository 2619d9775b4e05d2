"""What a strategy may know about routing: a ``Router`` scores prompts, a ``RoutingPolicy`` orders members.

These protocols live in core so that ``strategies`` (which call a policy) and ``routing`` (which
implements them) never import each other; the composition root hands a policy to the strategy.
``RouteChoice`` is the policy's answer: the members to try, in order, those left out and why, and the
facts that explain the choice (they end up in the result's ``metadata.explanation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest


class Router(Protocol):
    """Scores how much a prompt needs the strong model: higher means more (in [0, 1])."""

    @property
    def name(self) -> str:
        """The router's name (``learned``, ``complexity``, ...)."""
        ...

    def strong_score(self, prompt: str) -> float:
        """The score of ``prompt``."""
        ...


@dataclass(frozen=True, slots=True)
class RouteChoice:
    """Members to try (names, best first), members left out with the reason, and the explanation."""

    order: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    reason: str
    router: str
    tier: int
    strong_score: float | None = None
    threshold: float | None = None
    facts: tuple[tuple[str, object], ...] = ()


class RoutingPolicy(Protocol):
    """Decides which of a strategy's members should answer a request."""

    def choose(self, request: ChatRequest, candidates: Sequence[ModelProfile]) -> RouteChoice:
        """The choice among ``candidates`` (profiles carry price, window, tier, capabilities)."""
        ...
