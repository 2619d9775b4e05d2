"""``LearnedRouter``: the probability that a prompt needs the strong model, from the prompt alone.

A linear model over hashed word n-grams and a few counts, plus boosted trees over the counts (their
weight per family chosen in training), predicts what calling the strong model instead of the weak one
gains on this prompt; prompts are first assigned to the nearest task family (the
model keeps family-specific weights beside the shared ones), and a logistic calibration turns the gain
into a probability. It loads from the file ``orchestrator train-router`` writes (the package ships one,
trained on the RouteLLM-derived dev data), offline, in milliseconds; scoring one prompt takes well
under a millisecond in pure Python. It does not pick models: a routing policy compares its score with a
threshold, which ``threshold_for_share`` derives from the share of prompts that should go strong.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing import artifact
from model_orchestrator.routing.features import (
    DENSE_NAMES,
    PromptFeatures,
    family_bucket,
    family_salt,
    featurise,
    fingerprint,
    nearest_family,
)
from model_orchestrator.routing.generic import GenericRouter
from model_orchestrator.routing.trees import TreeEnsemble

PACKAGED_FILE = "learned_router.bin"


@dataclass(frozen=True, slots=True)
class LearnedScore:
    """One prompt's verdict: the probability, the predicted gain behind it, and the family used."""

    strong_score: float
    gain: float
    family: str


class LearnedRouter:
    """Scores prompts with a trained router file (see the module docstring)."""

    name = "learned"

    def __init__(self, model: artifact.Artifact, *, source: str = "memory") -> None:
        header = model.header
        if tuple(header.get("dense_names", ())) != DENSE_NAMES:
            raise ConfigError(f"{source} was trained with other features; retrain it with train-router")
        self.source = source
        self.header = header
        self._size = int(header["hash_size"])
        self._family_size = int(header["family_hash_size"])
        self._families: list[str] = list(header["families"])
        self._salts = [family_salt(f) for f in self._families]
        self._scale = float(header["weight_scale"])
        self._weights = model.arrays["weights"]
        self._centroids = _rows(model.arrays["centroids"], len(self._families), self._family_size)
        self._fingerprints = model.arrays["fingerprints"]
        self._bias = float(header["bias"])
        self._mean = [float(x) for x in header["dense_mean"]]
        self._std = [float(x) for x in header["dense_std"]]
        self._shared_dense = [float(x) for x in header["dense_weights"]]
        self._family_dense = [[float(x) for x in row] for row in header["family_dense_weights"]]
        self._family_bias = [float(x) for x in header["family_bias"]]
        self._slope, self._intercept = (float(x) for x in header["calibration"])
        self._quantiles = [float(x) for x in header["quantiles"]]
        self._trees, self._tree_factors = _trees(header, model, len(self._families))

    @classmethod
    def load(cls, path: str | Path | None = None) -> LearnedRouter:
        """The router in ``path``, else the one shipped in the package."""
        if path is not None:
            return cls(artifact.read(path), source=str(path))
        try:
            data = resources.files("model_orchestrator.routing").joinpath(PACKAGED_FILE).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"the package's learned router ({PACKAGED_FILE}) is missing: reinstall model-orchestrator, "
                "or train one with `orchestrator train-router` and set routing.learned_router"
            ) from exc
        return cls(artifact.decode(data, PACKAGED_FILE), source=f"package:{PACKAGED_FILE}")

    def generic(self) -> GenericRouter:
        """The generic router stored in the same file (for traffic unlike the training data)."""
        return GenericRouter(self.header.get("generic"), source=self.source)

    @property
    def families(self) -> tuple[str, ...]:
        """The task families the router knows (e.g. the benchmarks it was trained on)."""
        return tuple(self._families)

    @property
    def training(self) -> Mapping[str, Any]:
        """What the file says about its training data and settings."""
        info: Mapping[str, Any] = self.header.get("training", {})
        return info

    def strong_score(self, prompt: str) -> float:
        """Probability in [0, 1] that the strong model is needed for ``prompt``."""
        return self.score(prompt).strong_score

    def score(self, prompt: str) -> LearnedScore:
        """The probability with the predicted gain and family behind it."""
        features = featurise(prompt)
        family = nearest_family(features.unigram_hashes, self._centroids, self._family_size)
        gain = self._gain(features, family)
        z = self._slope * gain + self._intercept
        probability = 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0
        return LearnedScore(probability, gain, self._families[family])

    @property
    def score_quantiles(self) -> tuple[float, ...]:
        """The training prompts' out-of-fold score distribution (101 quantiles)."""
        return tuple(self._quantiles)

    def threshold_for_share(self, share: float) -> float:
        """The score threshold that sends about ``share`` of prompts (as in training) to the strong model."""
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"strong share must be between 0 and 1, not {share}")
        quantiles = self._quantiles
        position = (1.0 - share) * (len(quantiles) - 1)
        low = math.floor(position)
        high = min(low + 1, len(quantiles) - 1)
        return quantiles[low] + (quantiles[high] - quantiles[low]) * (position - low)

    def share_above(self, threshold: float) -> float:
        """About what share of prompts (as in training) score at or above ``threshold``."""
        index = bisect.bisect_left(self._quantiles, threshold)
        return max(0.0, 1.0 - index / (len(self._quantiles) - 1))

    def seen_in_training(self, prompt: str) -> bool:
        """Whether ``prompt`` was among the training prompts (evaluating on those would flatter it)."""
        target = fingerprint(prompt)
        index = bisect.bisect_left(self._fingerprints, target)
        return index < len(self._fingerprints) and self._fingerprints[index] == target

    def _gain(self, features: PromptFeatures, family: int) -> float:
        weights, size, salt = self._weights, self._size, self._salts[family]
        total = 0
        for hashed in features.hashes:
            total += weights[hashed % size] + weights[family_bucket(hashed, salt, size)]
        gain = self._bias + self._family_bias[family] + total * self._scale * features.key_weight
        own = self._family_dense[family]
        for index, value in enumerate(features.dense):
            standard = (value - self._mean[index]) / self._std[index]
            gain += standard * (self._shared_dense[index] + own[index])
        if self._trees is not None and self._tree_factors[family]:
            gain += self._tree_factors[family] * self._trees.predict(features.dense, family)
        return gain


def _trees(
    header: Mapping[str, Any], model: artifact.Artifact, families: int
) -> tuple[TreeEnsemble | None, list[float]]:
    """The file's boosted trees and their factor per family (files written before the trees have none)."""
    block = header.get("trees")
    if block is None:
        return None, [0.0] * families
    factors = [float(x) for x in block["factors"]]
    if len(factors) != families or len(block["family_means"]) != families:
        raise ConfigError(
            "router file is damaged: its trees do not match its families; retrain it with train-router"
        )
    return TreeEnsemble.from_file(block, model.arrays), factors


def _rows(values: array[Any], count: int, width: int) -> Sequence[Sequence[float]]:
    if len(values) != count * width:
        raise ConfigError("router file is damaged: family centroids have the wrong size")
    return [values[i * width : (i + 1) * width] for i in range(count)]
