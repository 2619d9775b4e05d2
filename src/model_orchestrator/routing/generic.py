"""``GenericRouter``: how much harder than usual a prompt looks, from counts that mean the same in any
task family (length, numbers, reasoning and negation cues), for traffic unlike the training data.

The learned router's n-gram weights are specific to the kinds of prompts it was trained on; trained
without a benchmark, it routes that benchmark worse than prompt length does. This router reads only
``features.GENERIC_NAMES`` with one linear model (``generic_training.fit_generic`` fits it, centred
within each family; the trainer stores it in the same router file), so it cannot recognise a family,
and it transfers: in leave-one-benchmark-out on the dev data it is above prompt length on all three
benchmarks (docs/decisions.md). Its score is the share of training prompts that scored lower (0-1), so
a strong share maps to a threshold directly. It does not pick models.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing.features import DENSE_NAMES, GENERIC_NAMES, dense_features, normalise, tokens


class GenericRouter:
    """Scores prompts with the generic block of a router file (see the module docstring)."""

    name = "generic"

    def __init__(self, block: Mapping[str, Any] | None, *, source: str) -> None:
        if block is None or tuple(block.get("names", ())) != GENERIC_NAMES:
            raise ConfigError(
                f"{source} has no generic router for these features; retrain it with train-router"
            )
        self.source = source
        self._columns = [DENSE_NAMES.index(n) for n in GENERIC_NAMES]
        self._weights = [float(w) for w in block["weights"]]
        self._offset = float(block["offset"])
        self._quantiles = [float(q) for q in block["quantiles"]]

    def gain(self, prompt: str) -> float:
        """The predicted gain of the strong model, relative to an ordinary prompt (0)."""
        text = normalise(prompt)
        dense = dense_features(text, tokens(text))
        return self._offset + sum(w * dense[c] for w, c in zip(self._weights, self._columns, strict=True))

    def strong_score(self, prompt: str) -> float:
        """The share of training prompts whose gain was lower than this prompt's (0-1)."""
        gain = self.gain(prompt)
        quantiles = self._quantiles
        index = bisect.bisect_right(quantiles, gain)
        if index == 0:
            return 0.0
        if index == len(quantiles):
            return 1.0
        low, high = quantiles[index - 1], quantiles[index]
        within = (gain - low) / (high - low) if high > low else 0.0
        return (index - 1 + within) / (len(quantiles) - 1)

    @property
    def score_quantiles(self) -> tuple[float, ...]:
        """The training prompts' score distribution (101 quantiles): uniform, by construction."""
        return tuple(i / 100 for i in range(101))

    def threshold_for_share(self, share: float) -> float:
        """The score threshold that sends about ``share`` of prompts (as in training) to the strong model."""
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"strong share must be between 0 and 1, not {share}")
        return 1.0 - share

    def share_above(self, threshold: float) -> float:
        """About what share of prompts (as in training) score at or above ``threshold``."""
        return min(1.0, max(0.0, 1.0 - threshold))
