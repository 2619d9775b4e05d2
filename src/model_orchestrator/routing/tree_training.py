"""Fitting the learned router's boosted trees (``routing/trees.py``) and their weight beside the n-grams.

Gradient boosting with squared loss on histogram bins: each tree is grown to a fixed depth by the split
that most reduces the squared error of the current residuals, among the features' quantile bins, with at
least ``min_leaf`` rows on each side; its leaves add ``learning_rate`` times their rows' mean residual.
It is written here rather than taken from scikit-learn because the trees must be scored without numpy
in well under a millisecond, stored in the router file, and refitted bit for bit by ``train-router`` (the
packaged file is pinned); the whole trainer is a few numpy calls per node. Its figures matched
scikit-learn's ``HistGradientBoostingRegressor`` on the dev data (docs/decisions.md).

How much the trees count beside the ridge model is chosen per task family on out-of-fold predictions,
by ``captured_gain``: the area under "gain collected against strong share", which is what APGR ranks by
and which labels without both models' scores define too; a family keeps the trees only when they beat
the ridge model alone by a margin its bootstrap resamples agree on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing.trees import TreeEnsemble

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Vector = NDArray[np.float64]

# The blend weights tried per family, in units of the two predictions' spreads.
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


@dataclass(frozen=True, slots=True)
class TreeSettings:
    """The trees' hyper-parameters (chosen on the dev data; docs/decisions.md). ``count=0``: no trees."""

    count: int = 200
    depth: int = 2
    learning_rate: float = 0.05
    min_leaf: int = 40
    bins: int = 64
    resamples: int = 50
    confidence: float = 2.0

    def __post_init__(self) -> None:
        wrong = [
            what
            for what, bad in (
                ("count must be 0 or more", self.count < 0),
                ("depth must be 1 or more", self.depth < 1),
                ("learning_rate must be above 0", not self.learning_rate > 0),
                ("min_leaf must be 1 or more", self.min_leaf < 1),
                ("bins must be 2 or more", self.bins < 2),
                ("resamples must be 1 or more", self.resamples < 1),
            )
            if bad
        ]
        if wrong:
            raise ConfigError(f"tree settings: {'; '.join(wrong)}")


def fit_trees(
    np: Any, rows: Vector, target: Vector, family_of: Sequence[int], families: int, settings: TreeSettings
) -> TreeEnsemble:
    """Boosted trees predicting ``target`` from ``rows`` (one row of counts per example), both centred
    within each example's family (``family_of``, indices below ``families``)."""
    family = np.asarray(family_of)
    means = np.zeros((families, rows.shape[1]))
    centred, goal = rows.astype(float).copy(), target.astype(float).copy()
    for index in range(families):
        members = family == index
        if members.any():
            means[index] = rows[members].mean(axis=0)
            centred[members] -= means[index]
            goal[members] -= goal[members].mean()
    edges = [
        np.unique(np.quantile(centred[:, j], np.linspace(0, 1, settings.bins + 1)[1:-1]))
        for j in range(rows.shape[1])
    ]
    binned = np.column_stack([np.searchsorted(e, centred[:, j], side="right") for j, e in enumerate(edges)])
    grower = _Grower(np, binned, edges, settings)
    base = float(goal.mean())
    prediction = np.full(len(goal), base)
    features: list[int] = []
    thresholds: list[float] = []
    leaves: list[float] = []
    for _ in range(settings.count):
        tree = grower.grow(goal - prediction)
        for members, value in tree.leaf_rows:
            prediction[members] += value
        features += tree.features
        thresholds += tree.thresholds
        leaves += tree.leaves
    return TreeEnsemble(
        depth=settings.depth,
        base=base,
        family_means=means.tolist(),
        features=features,
        thresholds=thresholds,
        leaves=leaves,
    )


@dataclass
class _Tree:
    features: list[int]
    thresholds: list[float]
    leaves: list[float]
    leaf_rows: list[tuple[Any, float]]


class _Grower:
    """Grows one complete tree at a time on the binned rows (level order, as ``TreeEnsemble`` reads)."""

    def __init__(self, np: Any, binned: Any, edges: list[Any], settings: TreeSettings) -> None:
        self.np = np
        self.binned = binned
        self.edges = edges
        self.settings = settings
        width = settings.bins + 1
        # Each feature's bins offset into a block of its own, so one bincount serves every feature.
        self.flat = binned + np.arange(binned.shape[1]) * width
        self.shape = (binned.shape[1], width)
        self.cuts = np.arange(width)[None, :] < np.array([len(e) for e in edges])[:, None]

    def grow(self, residual: Vector) -> _Tree:
        np, depth = self.np, self.settings.depth
        level = [np.arange(len(residual))]
        features: list[int] = []
        thresholds: list[float] = []
        for _ in range(depth):
            children = []
            for members in level:
                feature, cut = self._best_split(residual, members)
                if feature < 0:
                    features.append(0)
                    thresholds.append(float("inf"))
                    children += [members, members[:0]]
                    continue
                features.append(feature)
                thresholds.append(float(self.edges[feature][cut]))
                left = self.binned[members, feature] <= cut
                children += [members[left], members[~left]]
            level = children
        rate = self.settings.learning_rate
        values = [rate * float(residual[m].mean()) if len(m) else 0.0 for m in level]
        return _Tree(features, thresholds, values, list(zip(level, values, strict=True)))

    def _best_split(self, residual: Vector, members: Any) -> tuple[int, int]:
        """The (feature, bin) split that most reduces squared error, or (-1, -1) when none is allowed."""
        np, least = self.np, self.settings.min_leaf
        count = len(members)
        if count < 2 * least:
            return -1, -1
        values = residual[members]
        total = float(values.sum())
        flat = self.flat[members].ravel()
        size = self.shape[0] * self.shape[1]
        weights = np.repeat(values, self.shape[0])
        sums = np.bincount(flat, weights=weights, minlength=size).reshape(self.shape).cumsum(axis=1)
        counts = np.bincount(flat, minlength=size).reshape(self.shape).cumsum(axis=1)
        allowed = self.cuts & (counts >= least) & (count - counts >= least)
        left = np.maximum(counts, 1)
        right = np.maximum(count - counts, 1)
        gains = np.where(allowed, sums**2 / left + (total - sums) ** 2 / right, -np.inf)
        best = int(np.argmax(gains))  # the first feature, then the first cut, among equals
        if float(gains.flat[best]) - total**2 / count <= 0.0:
            return -1, -1
        feature, cut = divmod(best, self.shape[1])
        return feature, cut


def captured_gain(np: Any, scores: Vector, target: Vector) -> float:
    """Area under the gain collected when the top-scoring share of prompts goes strong, over the shares
    0, 0.1, ..., 1 (what APGR measures, up to scale, for any target)."""
    order = np.argsort(-scores, kind="stable")
    collected = np.concatenate([[0.0], np.cumsum(target[order])])
    points = collected[np.round(np.linspace(0, len(order), 11)).astype(int)]
    return float(points.sum() - (points[0] + points[-1]) / 2)


def blend_weights(
    np: Any,
    predictions: tuple[Vector, Vector],
    target: Vector,
    family_of: Sequence[int],
    families: int,
    settings: TreeSettings,
    seed: int,
) -> list[float]:
    """Per family, the factor on the trees' prediction beside the ridge gain (``predictions``: both out of
    fold) that collects the most gain, or 0 unless it beats the ridge model alone by ``confidence``
    standard errors over ``resamples`` bootstrap resamples of the family's prompts: a few hundred
    prompts pick a weight by chance, and on GSM8K that cost more than the trees brought
    (docs/decisions.md)."""
    ridge, trees = predictions
    family = np.asarray(family_of)
    spread = float(ridge.std()) / (float(trees.std()) or 1.0)
    random = np.random.default_rng(seed)
    factors = []
    for index in range(families):
        members = np.flatnonzero(family == index)
        if len(members) < 2:
            factors.append(0.0)
            continue
        samples = [random.choice(members, len(members)) for _ in range(settings.resamples)]
        collected = np.array(
            [
                [captured_gain(np, ridge[s] + w * spread * trees[s], target[s]) for s in samples]
                for w in WEIGHT_GRID
            ]
        )
        best = int(np.argmax(collected.mean(axis=1)))
        better = collected[best] - collected[0]
        sure = float(better.mean()) > settings.confidence * float(better.std())
        factors.append(WEIGHT_GRID[best] * spread if sure else 0.0)
    return factors
