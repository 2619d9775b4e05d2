"""Training the learned router (``orchestrator train-router``): ridge regression on hashed n-grams.

The target is what the strong model gains over the weak one on each prompt (``strong - weak``, scaled
per family to [-1, 1]): routing by expected gain ranks better than routing by "the weak model fails",
which also sends prompts that neither model answers. Features are ``features.featurise``'s, each
n-gram both shared and copied per task family (so one file serves several kinds of traffic without
one drowning the others), plus standardised counts, solved by ``sparse_ridge.py``. Out-of-fold
predictions calibrate the probability (a logistic fit of "the strong model did better"), weigh the
trees, and give the score quantiles that turn a wanted strong-call share into a threshold.

Beside the n-grams, boosted trees over the same counts (``routing/trees.py``) learn the prompt's shape;
how much they count is chosen per family on the out-of-fold predictions. The file also carries the
generic router (``routing/generic_training.py``), which is what transfers to kinds of prompts not in the
data.

numpy is imported here only (the ``routing`` extra); scoring (``learned.py``) never needs it.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing import artifact
from model_orchestrator.routing.dataset import RoutingExample, families
from model_orchestrator.routing.features import (
    DENSE_NAMES,
    PromptFeatures,
    family_bucket,
    family_salt,
    featurise,
    fingerprint,
    nearest_family,
)
from model_orchestrator.routing.generic_training import fit_generic
from model_orchestrator.routing.sparse_ridge import Design, conjugate_gradients, design_product
from model_orchestrator.routing.tree_training import TreeSettings, blend_weights, fit_trees
from model_orchestrator.routing.trees import TreeEnsemble

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Vector = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    """Hyper-parameters (chosen by cross-validation on the dev data; see docs/decisions.md)."""

    hash_size: int = 2**17
    family_hash_size: int = 2**12
    l2: float = 6.0
    trees: TreeSettings = field(default_factory=TreeSettings)
    calibration_folds: int = 3
    max_iterations: int = 200
    family_balance: float = 0.0
    seed: int = 0
    generic_l2: float = 1000.0
    generic_length_weight: float = 0.05
    min_family_share: float = 0.02
    min_family_size: int = 50


def numpy_module() -> Any:
    """numpy, or a clear error naming the extra that provides it."""
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ConfigError(
            "training and evaluating routers needs numpy: pip install 'model-orchestrator[routing]'"
        ) from exc
    return numpy


class _Fitted:
    """Weights of one fit: hashed weights, dense weights (shared, per family, family bias), intercept."""

    def __init__(self, weights: Vector, dense: Vector, intercept: float) -> None:
        self.weights = weights
        self.dense = dense
        self.intercept = intercept


class _Trainer:
    """Featurises once; fits, predicts and calibrates (one instance per training run)."""

    def __init__(
        self,
        examples: Sequence[RoutingExample],
        settings: TrainingSettings,
        features: Sequence[PromptFeatures] | None = None,
    ) -> None:
        self.np = numpy_module()
        self.settings = settings
        self.examples = list(examples)
        self.origins = families(self.examples)
        self.origin_index = [self.origins.index(e.family) for e in self.examples]
        self.families = _kept_families(self.examples, self.origins, settings)
        home = {f: f if f in self.families else self.families[0] for f in self.origins}
        self.family_index = [self.families.index(home[e.family]) for e in self.examples]
        self.salts = [family_salt(f) for f in self.families]
        self._cache: dict[tuple[int, int], Any] = {}
        scales = _family_scales(self.examples, self.origins)
        self.target = self.np.array([e.gain(scales[e.family]) for e in self.examples])
        self.features = list(features) if features is not None else [featurise(e.prompt) for e in examples]
        self.raw = self.np.array([f.dense for f in self.features], dtype=float)
        self.mean = self.raw.mean(axis=0)
        self.std = self.raw.std(axis=0) + 1e-9
        self.standard = (self.raw - self.mean) / self.std

    def design(self, indices: Sequence[int], family_of: Sequence[int]) -> Design:
        np = self.np
        parts = [self._columns(index, family) for index, family in zip(indices, family_of, strict=True)]
        lengths = [len(p) for p in parts]
        rows = np.repeat(np.arange(len(indices)), lengths)
        weights = np.repeat([self.features[i].key_weight for i in indices], lengths)
        columns = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        dense = self._dense_block([self.standard[i] for i in indices], family_of)
        return Design(rows, columns, weights, dense, len(indices))

    def _columns(self, index: int, family: int) -> Any:
        """The buckets of one prompt's n-grams: shared, then ``family``'s copies (cached per pair)."""
        key = (index, family)
        if key not in self._cache:
            size, salt = self.settings.hash_size, self.salts[family]
            hashes = self.features[index].hashes
            shared = [h % size for h in hashes]
            own = [family_bucket(h, salt, size) for h in hashes]
            self._cache[key] = self.np.array(shared + own, dtype=self.np.int64)
        return self._cache[key]

    def _dense_block(self, standard: Sequence[Vector], family_of: Sequence[int]) -> Vector:
        np, width, count = self.np, len(DENSE_NAMES), len(self.families)
        block = np.zeros((len(standard), width * (1 + count) + count))
        for row, (values, family) in enumerate(zip(standard, family_of, strict=True)):
            block[row, :width] = values
            block[row, width * (1 + family) : width * (2 + family)] = values
            block[row, width * (1 + count) + family] = 1.0
        result: Vector = block
        return result

    def fit(self, indices: Sequence[int]) -> _Fitted:
        """Weighted ridge regression of the gain on the rows ``indices`` (their own families)."""
        family_of = [self.family_index[i] for i in indices]
        design = self.design(indices, family_of)
        y = self.target[list(indices)]
        weights = self._sample_weights(family_of)
        intercept = float(self.np.average(y, weights=weights))
        hashed, dense = conjugate_gradients(
            self.np,
            design,
            y - intercept,
            weights,
            size=self.settings.hash_size,
            l2=self.settings.l2,
            iterations=self.settings.max_iterations,
        )
        return _Fitted(hashed, dense, intercept)

    def _sample_weights(self, family_of: Sequence[int]) -> Vector:
        """Per row, ``(largest family size / own family size) ** family_balance`` (1: no balancing)."""
        np = self.np
        counts = np.bincount(family_of, minlength=len(self.families)).astype(float)
        factors = (counts.max() / np.maximum(counts, 1.0)) ** self.settings.family_balance
        result: Vector = factors[np.asarray(family_of)]
        return result

    def predict(self, fitted: _Fitted, indices: Sequence[int], family_of: Sequence[int]) -> Vector:
        design = self.design(indices, family_of)
        return design_product(self.np, design, fitted.weights, fitted.dense) + fitted.intercept

    def fit_trees(self, indices: Sequence[int]) -> TreeEnsemble | None:
        """Boosted trees of the gain on the counts of the rows ``indices`` (None when turned off)."""
        if self.settings.trees.count <= 0:
            return None
        rows = list(indices)
        family_of = [self.family_index[i] for i in rows]
        return fit_trees(
            self.np, self.raw[rows], self.target[rows], family_of, len(self.families), self.settings.trees
        )

    def predict_trees(
        self, trees: TreeEnsemble | None, indices: Sequence[int], family_of: Sequence[int]
    ) -> Vector:
        """The trees' gains for the rows ``indices`` as members of ``family_of`` (zeros without trees)."""
        values = [0.0] * len(indices)
        if trees is not None:
            values = [
                trees.predict(self.features[i].dense, f) for i, f in zip(indices, family_of, strict=True)
            ]
        result: Vector = self.np.array(values)
        return result

    def centroids(self, indices: Sequence[int]) -> Vector:
        """Per family, the normalised mean of its prompts' normalised hashed unigram vectors."""
        np, size = self.np, self.settings.family_hash_size
        sums = np.zeros((len(self.families), size))
        for index in indices:
            hashes = self.features[index].unigram_hashes
            if hashes:
                row = np.bincount([h % size for h in hashes], minlength=size).astype(float)
                sums[self.family_index[index]] += row / np.linalg.norm(row)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        result: Vector = sums / np.where(norms > 0, norms, 1.0)
        return result

    def nearest_family(self, centroids: Vector, indices: Sequence[int]) -> list[int]:
        rows, size = centroids.tolist(), self.settings.family_hash_size
        return [nearest_family(self.features[i].unigram_hashes, rows, size) for i in indices]


def _kept_families(
    examples: Sequence[RoutingExample], names: Sequence[str], settings: TrainingSettings
) -> list[str]:
    """The families that get weights of their own, largest first. A family both under
    ``min_family_size`` examples and under ``min_family_share`` of them is pooled with the largest: 37
    MT-Bench prompts among 7,695 made a family whose bias sent every short, unfamiliar prompt ("What is
    2+2?") to the strong model. (A user's few hundred labels beside a large prior keep their own.)"""
    sizes = {name: sum(1 for e in examples if e.family == name) for name in names}
    ordered = sorted(names, key=lambda name: -sizes[name])
    floor = min(settings.min_family_size, settings.min_family_share * len(examples))
    return [name for name in ordered if sizes[name] >= floor] or ordered[:1]


def _family_scales(examples: Sequence[RoutingExample], names: Sequence[str]) -> dict[str, float]:
    """Per family, the score range (1 for right/wrong scores, 9 for 1-10 judge scores)."""
    scales: dict[str, float] = {}
    for name in names:
        scores = [
            s for e in examples if e.family == name for s in (e.weak_score, e.strong_score) if s is not None
        ]
        scales[name] = max(1.0, max(scores) - min(scores)) if scores else 1.0
    return scales


@dataclass(frozen=True, slots=True)
class OutOfFold:
    """Every example's predictions from models that did not see it: the ridge gain, the trees' gain,
    the family it was recognised as, and how often that family was the right one."""

    ridge: Vector
    trees: Vector
    guessed: list[int]
    family_accuracy: float


def out_of_fold(trainer: _Trainer, folds: int, seed: int) -> OutOfFold:
    """Predictions for every example from the ``folds`` models that did not see it."""
    np = trainer.np
    order = list(range(len(trainer.examples)))
    random.Random(seed).shuffle(order)
    ridge, trees = np.zeros(len(order)), np.zeros(len(order))
    guessed = [0] * len(order)
    for fold in range(folds):
        held = sorted(order[fold::folds])
        held_set = set(held)
        kept = [i for i in range(len(order)) if i not in held_set]
        families = trainer.nearest_family(trainer.centroids(kept), held)
        ridge[held] = trainer.predict(trainer.fit(kept), held, families)
        trees[held] = trainer.predict_trees(trainer.fit_trees(kept), held, families)
        for index, family in zip(held, families, strict=True):
            guessed[index] = family
    correct = sum(g == f for g, f in zip(guessed, trainer.family_index, strict=True))
    return OutOfFold(ridge, trees, guessed, correct / len(order))


def calibrate(np: Any, gains: Vector, better: Vector) -> tuple[float, float]:
    """Logistic fit P(strong did better) = sigmoid(a * gain + c), by Newton's method (two parameters)."""
    x = np.stack([gains, np.ones_like(gains)], axis=1)
    theta = np.zeros(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        gradient = x.T @ (p - better) + 1e-6 * theta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        theta = theta - step
        if float(np.abs(step).max()) < 1e-9:
            break
    return float(theta[0]), float(theta[1])


def train_router(
    examples: Sequence[RoutingExample],
    settings: TrainingSettings | None = None,
    *,
    features: Sequence[PromptFeatures] | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Train on ``examples``; returns the router file's bytes and a summary of the training run.
    ``features`` (``featurise`` of each prompt, in order) saves featurising again when one caller
    trains many routers on subsets of the same prompts (cross-validation)."""
    settings = settings or TrainingSettings()
    if len(examples) < 4 * max(settings.calibration_folds, 2):
        raise ConfigError(f"training a router needs more examples: got {len(examples)}")
    trainer = _Trainer(examples, settings, features)
    np = trainer.np
    every = list(range(len(examples)))
    fitted = trainer.fit(every)
    if settings.calibration_folds >= 2:
        held_out = out_of_fold(trainer, settings.calibration_folds, settings.seed)
        trees = trainer.fit_trees(every)
        factors = (
            blend_weights(
                np,
                (held_out.ridge, held_out.trees),
                trainer.target,
                held_out.guessed,
                len(trainer.families),
                settings.trees,
                settings.seed,
            )
            if trees is not None
            else [0.0] * len(trainer.families)
        )
        gains = held_out.ridge + np.asarray(factors)[held_out.guessed] * held_out.trees
        family_accuracy: float | None = held_out.family_accuracy
    else:  # no held-out predictions to weigh the trees with: the ridge model alone
        trees, factors, family_accuracy = None, [], None
        gains = trainer.predict(fitted, every, trainer.family_index)
    slope, intercept = calibrate(np, gains, (trainer.target > 0).astype(float))
    probabilities = 1.0 / (1.0 + np.exp(-(slope * gains + intercept)))
    summary = {
        "examples": len(examples),
        "families": {name: trainer.origin_index.count(i) for i, name in enumerate(trainer.origins)},
        "pooled": {name: trainer.families[0] for name in trainer.origins if name not in trainer.families},
        "family_recognised": family_accuracy,
        "settings": asdict(settings),
    }
    centroids = trainer.centroids(every)
    generic = fit_generic(
        np,
        trainer.raw,
        trainer.target,
        trainer.origin_index,
        l2=settings.generic_l2,
        length_weight=settings.generic_length_weight,
    )
    if trees is not None:
        summary["tree_factors"] = dict(zip(trainer.families, factors, strict=True))
    blended = (trees, factors) if trees is not None else None
    data = _encode(trainer, fitted, centroids, (slope, intercept), probabilities, generic, summary, blended)
    return data, summary


def _encode(
    trainer: _Trainer,
    fitted: _Fitted,
    centroids: Vector,
    calibration: tuple[float, float],
    probabilities: Vector,
    generic: dict[str, Any],
    summary: dict[str, Any],
    blended: tuple[TreeEnsemble, list[float]] | None,
) -> bytes:
    np, settings = trainer.np, trainer.settings
    width, count = len(DENSE_NAMES), len(trainer.families)
    peak = float(np.abs(fitted.weights).max()) or 1.0
    scale = peak / 32767.0
    quantised = np.round(fitted.weights / scale).astype("<i2")
    dense = fitted.dense
    header = {
        "hash_size": settings.hash_size,
        "family_hash_size": settings.family_hash_size,
        "families": trainer.families,
        "dense_names": list(DENSE_NAMES),
        "dense_mean": trainer.mean.tolist(),
        "dense_std": trainer.std.tolist(),
        "dense_weights": dense[:width].tolist(),
        "family_dense_weights": [dense[width * (1 + f) : width * (2 + f)].tolist() for f in range(count)],
        "family_bias": dense[width * (1 + count) :].tolist(),
        "bias": fitted.intercept,
        "weight_scale": scale,
        "calibration": list(calibration),
        "quantiles": np.quantile(probabilities, np.linspace(0, 1, 101)).tolist(),
        "generic": generic,
        "training": summary,
    }
    arrays = {
        "weights": array("h", quantised.tobytes()),
        "centroids": array("f", centroids.astype("<f4").tobytes()),
        "fingerprints": array("I", sorted({fingerprint(e.prompt) for e in trainer.examples})),
    }
    if blended is not None:
        trees, factors = blended
        header["trees"] = {**trees.header(), "factors": factors}
        arrays.update(trees.arrays())
    return artifact.encode(header, arrays)
