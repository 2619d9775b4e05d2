"""Fitting the generic router (``routing/generic.py``), stored beside the learned router in its file.

A ridge regression of the gain on the family-independent counts (``features.GENERIC_NAMES``), fitted with
features and target centred within each family, so that it learns "harder than the family's usual
prompt" rather than which family is harder, plus a fixed weight on length: it is what transfers to kinds
of prompts not in the training data (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from model_orchestrator.routing.features import DENSE_NAMES, GENERIC_NAMES

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Vector = NDArray[np.float64]


def fit_generic(
    np: Any, dense: Vector, target: Vector, family_of: Sequence[int], *, l2: float, length_weight: float
) -> dict[str, Any]:
    """The generic router's weights over the raw ``GENERIC_NAMES`` counts (taken from ``dense``, one row
    of ``DENSE_NAMES`` counts per example), its offset, and its score quantiles on the training prompts."""
    columns = [DENSE_NAMES.index(n) for n in GENERIC_NAMES]
    raw = dense[:, columns]
    mean, std = raw.mean(axis=0), raw.std(axis=0) + 1e-9
    standard = (raw - mean) / std
    centred = target.copy()
    family = np.asarray(family_of)
    for index in np.unique(family):
        rows = family == index
        standard[rows] -= standard[rows].mean(axis=0)
        centred[rows] -= centred[rows].mean()
    gram = standard.T @ standard + l2 * np.eye(len(columns))
    weights = np.linalg.solve(gram, standard.T @ centred) / std
    weights[GENERIC_NAMES.index("log_chars")] += length_weight
    offset = -float(weights @ mean)
    scores = raw @ weights + offset
    return {
        "names": list(GENERIC_NAMES),
        "weights": weights.tolist(),
        "offset": offset,
        "quantiles": np.quantile(scores, np.linspace(0, 1, 101)).tolist(),
    }
