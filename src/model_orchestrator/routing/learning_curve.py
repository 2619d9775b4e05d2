"""The learning curve of ``eval-router --learning-curve``: APGR against the number of labelled prompts.

For each benchmark (family) with enough prompts, K-fold: a router is trained on ``n`` prompts drawn from
the other folds of that benchmark alone (one kind of traffic, as a user's own labels would be), and every
held-out prompt is scored by it; APGR is computed on the pooled held-out scores, for the learned router
and the generic one. It answers "how many labelled requests are enough?". It does not draw (``plot.py``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing import artifact
from model_orchestrator.routing.dataset import RoutingExample, families
from model_orchestrator.routing.features import featurise
from model_orchestrator.routing.learned import LearnedRouter
from model_orchestrator.routing.metrics import evaluate_scores
from model_orchestrator.routing.training import TrainingSettings, train_router

SIZES = (50, 100, 200, 500, 1000, 2000, 5000)
MIN_PROMPTS = 100


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """APGR of both routers trained on ``labelled`` prompts of ``benchmark`` (held-out, K-fold)."""

    benchmark: str
    labelled: int
    learned_apgr: float | None
    generic_apgr: float | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "benchmark": self.benchmark,
            "labelled": self.labelled,
            "learned_apgr": self.learned_apgr,
            "generic_apgr": self.generic_apgr,
        }


def learning_curve(
    examples: Sequence[RoutingExample],
    *,
    folds: int = 5,
    seed: int = 0,
    sizes: Sequence[int] = SIZES,
    settings: TrainingSettings | None = None,
) -> list[CurvePoint]:
    """The curve for every benchmark with at least ``MIN_PROMPTS`` scored prompts (see the docstring)."""
    settings = settings or TrainingSettings()
    scored = [e for e in examples if e.scored]
    points: list[CurvePoint] = []
    for benchmark in families(scored):
        subset = [e for e in scored if e.family == benchmark]
        if len(subset) >= MIN_PROMPTS:
            points.extend(_benchmark_curve(benchmark, subset, folds, seed, sizes, settings))
    if not points:
        raise ConfigError(f"a learning curve needs a benchmark with at least {MIN_PROMPTS} scored prompts")
    return points


def _benchmark_curve(
    benchmark: str,
    subset: Sequence[RoutingExample],
    folds: int,
    seed: int,
    sizes: Sequence[int],
    settings: TrainingSettings,
) -> list[CurvePoint]:
    rng = random.Random(seed)
    order = list(range(len(subset)))
    rng.shuffle(order)
    held_out = [order[fold::folds] for fold in range(folds)]
    largest = len(subset) - max(len(h) for h in held_out)
    counts = sorted({n for n in sizes if n < largest} | {largest})
    weak = [float(e.weak_score or 0.0) for e in subset]
    strong = [float(e.strong_score or 0.0) for e in subset]
    features = [featurise(e.prompt) for e in subset]
    points = []
    for count in counts:
        learned, generic = [0.0] * len(subset), [0.0] * len(subset)
        for held in held_out:
            held_set = set(held)
            pool = [i for i in order if i not in held_set]
            chosen = rng.sample(pool, count) if count < len(pool) else pool
            data, _summary = train_router(
                [subset[i] for i in chosen], settings, features=[features[i] for i in chosen]
            )
            router = LearnedRouter(artifact.decode(data, "learning curve"), source="learning curve")
            generic_router = router.generic()
            for i in held:
                learned[i] = router.score(subset[i].prompt).gain
                generic[i] = generic_router.gain(subset[i].prompt)
        points.append(
            CurvePoint(
                benchmark,
                count,
                evaluate_scores("learned", benchmark, learned, weak, strong).apgr,
                evaluate_scores("generic", benchmark, generic, weak, strong).apgr,
            )
        )
    return points
