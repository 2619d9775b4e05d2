"""Reference routers for evaluation: random scores and prompt length.

``RandomRouter`` draws from an injected, seeded ``random.Random`` (RouteLLM's random baseline);
``LengthRouter`` scores longer prompts higher, the baseline a learned router has to beat. The fixed
policies (always weak, always strong) are single points, not score curves: ``evaluation.py`` reports
them as such. Nothing here is used to route real traffic.
"""

from __future__ import annotations

import random


class RandomRouter:
    """Uniform random scores from ``rng``."""

    name = "random"

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def strong_score(self, prompt: str) -> float:
        return self._rng.random()


class LengthRouter:
    """Longer prompts score higher: ``chars / (chars + 1000)``."""

    name = "length"

    def strong_score(self, prompt: str) -> float:
        return len(prompt) / (len(prompt) + 1000.0)
