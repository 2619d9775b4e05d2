"""The learned router's boosted trees: they learn what a linear model cannot, score the same after a
round trip through the router file, are weighed per family by what they collect out of fold, and a
router file without them (written before them, or with ``count=0``) still loads and scores."""

from __future__ import annotations

import random
from array import array
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing import artifact
from model_orchestrator.routing.dataset import load_examples
from model_orchestrator.routing.learned import LearnedRouter
from model_orchestrator.routing.training import TrainingSettings, train_router
from model_orchestrator.routing.tree_training import TreeSettings, blend_weights, captured_gain, fit_trees
from model_orchestrator.routing.trees import TreeEnsemble

FIXTURE = Path(__file__).parent / "fixtures" / "routing" / "labelled.jsonl"
SMALL = TrainingSettings(hash_size=2**12, family_hash_size=2**8, calibration_folds=3)


def _interaction(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose target is 1 only when both of the first two columns are positive (an AND: no linear
    model of the columns ranks it right), plus a noise column."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(count, 3))
    target = ((rows[:, 0] > 0) & (rows[:, 1] > 0)).astype(float)
    return rows, target


def test_trees_learn_an_interaction_a_linear_model_cannot() -> None:
    rows, target = _interaction(2000)
    trees = fit_trees(
        np, rows, target, [0] * len(rows), 1, TreeSettings(count=100, learning_rate=0.2, min_leaf=20)
    )
    held, truth = _interaction(500, seed=1)
    # The trees predict the target less its family's mean.
    predicted = np.array([trees.predict(list(r), 0) for r in held]) + target.mean()
    both = truth == 1
    assert predicted[both].min() > predicted[~both].max() - 0.2
    assert predicted[both].mean() - predicted[~both].mean() > 0.6
    design = np.column_stack([rows, np.ones(len(rows))])
    linear = np.column_stack([held, np.ones(len(held))]) @ np.linalg.lstsq(design, target, rcond=None)[0]
    assert np.mean((predicted - truth) ** 2) < 0.5 * np.mean((linear - truth) ** 2)


def test_trees_are_centred_within_each_family() -> None:
    """The same shape of prompt in a family whose counts all run higher scores the same: the trees see
    the distance from the family's usual prompt, not the raw count."""
    rows, target = _interaction(2000)
    shifted = rows + np.array([5.0, 5.0, 5.0])
    trees = fit_trees(
        np,
        np.vstack([rows, shifted]),
        np.concatenate([target, target]),
        [0] * 2000 + [1] * 2000,
        2,
        TreeSettings(),
    )
    assert trees.family_means[1] == pytest.approx((np.array(trees.family_means[0]) + 5.0).tolist())
    for row in rows[:50]:
        assert trees.predict(list(row), 0) == pytest.approx(trees.predict(list(row + 5.0), 1))


def test_a_node_without_an_allowed_split_sends_everything_left() -> None:
    rows, target = _interaction(30)  # under 2 x min_leaf: no split is allowed anywhere
    trees = fit_trees(np, rows, target, [0] * 30, 1, TreeSettings(count=3, min_leaf=40))
    header, arrays = trees.header(), trees.arrays()
    assert set(arrays["tree_thresholds"]) == {float("inf")}
    leftmost = sum(arrays["tree_leaves"][tree * 4] for tree in range(3))
    assert trees.predict([0.0, 0.0, 0.0], 0) == pytest.approx(trees.base + leftmost)
    restored = TreeEnsemble.from_file(header, arrays)
    assert restored.predict([1.0, 2.0, 3.0], 0) == trees.predict([9.0, -9.0, 0.0], 0)


def test_a_damaged_tree_block_is_refused() -> None:
    rows, target = _interaction(400)
    trees = fit_trees(np, rows, target, [0] * 400, 1, TreeSettings(count=5))
    arrays = trees.arrays()
    short = {**arrays, "tree_leaves": array("d", list(arrays["tree_leaves"])[:-1])}
    with pytest.raises(ConfigError, match="trees have the wrong size"):
        TreeEnsemble.from_file(trees.header(), short)
    with pytest.raises(ConfigError, match="tree_features"):
        TreeEnsemble.from_file(trees.header(), {k: v for k, v in arrays.items() if k != "tree_features"})


def test_captured_gain_ranks_orderings_as_apgr_does() -> None:
    target = np.array([1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    best = np.argsort(np.argsort(-target, kind="stable"))  # rank 0 = highest target
    perfect = captured_gain(np, -best.astype(float), target)
    reversed_ = captured_gain(np, best.astype(float), target)
    shuffled = [
        captured_gain(np, np.array(random.Random(s).sample(range(10), 10), float), target) for s in range(20)
    ]
    assert perfect > max(shuffled) >= min(shuffled) > reversed_
    # A target of 1 everywhere collects 0, 1, ..., 10 at the eleven shares whatever the order: the
    # trapezoid's area is 50.
    assert captured_gain(np, np.zeros(10), np.ones(10)) == pytest.approx(50.0)


def test_blend_weights_take_trees_only_where_they_collect_more() -> None:
    rng = np.random.default_rng(0)
    target = rng.normal(size=800)
    ridge = target + rng.normal(scale=2.0, size=800)
    trees = np.concatenate([target[:400] + rng.normal(scale=0.5, size=400), rng.normal(size=400)])
    factors = blend_weights(np, (ridge, trees), target, [0] * 400 + [1] * 400, 2, TreeSettings(), seed=0)
    assert factors[0] > 0
    assert factors[1] == 0.0


def test_a_trained_router_carries_trees_and_their_factors(tmp_path: Path) -> None:
    examples = load_examples(FIXTURE)
    data, summary = train_router(examples, replace(SMALL, trees=TreeSettings(count=20, min_leaf=5)))
    model = artifact.decode(data, "test")
    assert set(summary["tree_factors"]) == {"arith", "quiz"}
    assert model.header["trees"]["factors"] == list(summary["tree_factors"].values())
    assert len(model.arrays["tree_leaves"]) == 20 * 4
    path = tmp_path / "router.bin"
    path.write_bytes(data)
    router = LearnedRouter.load(path)
    prompts = [e.prompt for e in examples[:10]]
    assert [router.score(p) for p in prompts] == [LearnedRouter(model).score(p) for p in prompts]


def test_a_router_file_without_trees_still_loads_and_scores(tmp_path: Path) -> None:
    examples = load_examples(FIXTURE)
    data, summary = train_router(examples, replace(SMALL, trees=TreeSettings(count=0)))
    model = artifact.decode(data, "test")
    assert "trees" not in model.header and "tree_leaves" not in model.arrays and "tree_factors" not in summary
    router = LearnedRouter(model)
    assert all(0.0 <= router.strong_score(e.prompt) <= 1.0 for e in examples)
    broken = {**model.header, "trees": {"depth": 2, "base": 0.0, "family_means": [[0.0]], "factors": [1.0]}}
    with pytest.raises(ConfigError, match="trees do not match its families"):
        LearnedRouter(artifact.Artifact(broken, model.arrays))


def test_deeper_trees_score_the_same_after_a_round_trip() -> None:
    rows, target = _interaction(1500)
    trees = fit_trees(np, rows, target, [0] * 1500, 1, TreeSettings(count=30, depth=3, learning_rate=0.2))
    restored = TreeEnsemble.from_file(trees.header(), trees.arrays())
    held, truth = _interaction(300, seed=2)
    predicted = [restored.predict(list(r), 0) for r in held]
    assert predicted == [trees.predict(list(r), 0) for r in held]
    both = truth == 1
    assert np.mean(np.array(predicted)[both]) - np.mean(np.array(predicted)[~both]) > 0.5


def test_the_shipped_router_keeps_its_trees_for_mmlu_only() -> None:
    """What train-router decided on the dev data (docs/decisions.md): the trees pass the bootstrap test
    on MMLU and not on GSM8K, so GSM8K prompts score as they did before the trees."""
    router = LearnedRouter.load()
    factors = router.training["tree_factors"]
    assert factors["mmlu"] > 0 and factors["gsm8k"] == 0


def test_impossible_tree_settings_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="depth must be 1 or more; bins must be 2 or more"):
        TreeSettings(depth=0, bins=1)
    with pytest.raises(ConfigError, match="learning_rate must be above 0"):
        TreeSettings(learning_rate=float("nan"))
    assert TreeSettings(count=0).count == 0
