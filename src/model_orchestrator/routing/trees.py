"""``TreeEnsemble``: boosted regression trees over a prompt's counts, scored in pure Python.

The learned router's ridge model reads which words a prompt holds; the trees read its shape (length,
numbers, option lines, negations, ...) with interactions a linear model cannot form, and they are what
moved in-domain MMLU routing most (docs/decisions.md, "Boosted trees beside the n-grams"). Each tree is
complete and of one depth, stored in level order: node ``i`` has children ``2i + 1`` and ``2i + 2``, a
row goes left when its feature is below the node's threshold, and a node that did not split has an
infinite threshold (everything goes left). Features are centred on the mean of the prompt's task family
first, so the trees learn "harder than this family's usual prompt". ``routing/tree_training.py`` fits
them (with numpy); scoring needs nothing beyond the standard library.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from model_orchestrator.core.errors import ConfigError

ARRAY_NAMES = ("tree_features", "tree_thresholds", "tree_leaves")


class TreeEnsemble:
    """A sum of complete regression trees of one depth, plus a base value and per-family centring."""

    def __init__(
        self,
        *,
        depth: int,
        base: float,
        family_means: Sequence[Sequence[float]],
        features: Sequence[int],
        thresholds: Sequence[float],
        leaves: Sequence[float],
    ) -> None:
        inner, outer = 2**depth - 1, 2**depth
        count = len(leaves) // outer if outer else 0
        if (
            depth < 1
            or len(leaves) != count * outer
            or len(features) != count * inner
            or len(thresholds) != count * inner
        ):
            raise ConfigError(
                "router file is damaged: its trees have the wrong size; retrain it with train-router"
            )
        self.depth = depth
        self.base = base
        self.family_means = [list(row) for row in family_means]
        self._features = features
        self._thresholds = thresholds
        self._leaves = leaves
        self._count = count
        self._trees = self._tree_nodes()

    @property
    def count(self) -> int:
        """How many trees the ensemble holds."""
        return self._count

    def predict(self, values: Sequence[float], family: int) -> float:
        """The trees' sum for one prompt's counts, centred on ``family``'s mean (centred exactly as in
        training: a count often equals a threshold, so folding the mean into it could move prompts)."""
        row = [v - m for v, m in zip(values, self.family_means[family], strict=True)]
        total = self.base
        if self.depth == 2:  # the shipped depth, unrolled: every routed prompt takes this path
            for f0, t0, f1, t1, f2, t2, l0, l1, l2, l3 in self._trees:
                if row[f0] < t0:
                    total += l0 if row[f1] < t1 else l1
                else:
                    total += l2 if row[f2] < t2 else l3
            return total
        inner = 2**self.depth - 1
        for tree in self._trees:
            node = 0
            for _ in range(self.depth):
                node = 2 * node + (1 if row[tree[2 * node]] < tree[2 * node + 1] else 2)
            total += tree[inner + node]  # the leaves follow the 2 x inner node entries
        return total

    def _tree_nodes(self) -> list[tuple[Any, ...]]:
        """Each tree as a flat tuple: (feature, threshold) per inner node in level order, then its leaves."""
        inner, outer = 2**self.depth - 1, 2**self.depth
        trees = []
        for tree in range(self._count):
            nodes: list[Any] = []
            for at in range(tree * inner, (tree + 1) * inner):
                nodes += [self._features[at], self._thresholds[at]]
            trees.append((*nodes, *self._leaves[tree * outer : (tree + 1) * outer]))
        return trees

    def header(self) -> dict[str, Any]:
        """What the router file's header keeps of the ensemble (the arrays go beside it)."""
        return {"depth": self.depth, "base": self.base, "family_means": self.family_means}

    def arrays(self) -> dict[str, array[Any]]:
        """The node arrays, by their names in the router file (thresholds stay doubles: a count's
        threshold is often one of its own values, and rounding it would move prompts across it)."""
        return {
            "tree_features": array("H", self._features),
            "tree_thresholds": array("d", self._thresholds),
            "tree_leaves": array("d", self._leaves),
        }

    @classmethod
    def from_file(cls, header: Mapping[str, Any], arrays: Mapping[str, array[Any]]) -> TreeEnsemble:
        """The ensemble a router file holds (``header`` is its ``trees`` block)."""
        missing = [name for name in ARRAY_NAMES if name not in arrays]
        if missing:
            raise ConfigError(f"router file is damaged: it has trees but not {', '.join(missing)}")
        return cls(
            depth=int(header["depth"]),
            base=float(header["base"]),
            family_means=header["family_means"],
            features=arrays["tree_features"],
            thresholds=arrays["tree_thresholds"],
            leaves=arrays["tree_leaves"],
        )
