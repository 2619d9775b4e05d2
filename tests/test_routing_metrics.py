"""RouteLLM's metrics on hand-computed cases: the decile curve, PGR, CPT by interpolation, APGR."""

from __future__ import annotations

import random

import pytest

from model_orchestrator.routing.metrics import evaluate_scores, routing_curve

# Four prompts: only the last two gain from the strong model (weak wrong, strong right).
WEAK = [1.0, 1.0, 0.0, 0.0]
STRONG = [1.0, 1.0, 1.0, 1.0]


def test_a_perfect_router_recovers_the_gap_with_half_the_strong_calls() -> None:
    metrics = evaluate_scores("oracle", "toy", [0.1, 0.2, 0.8, 0.9], WEAK, STRONG)

    # Deciles of [0.1, 0.2, 0.8, 0.9] (linear): 0.1, 0.13, 0.16, 0.19, 0.38, 0.5, 0.62, 0.8, 0.83, 0.86, 0.9.
    shares = [p.strong_share for p in metrics.curve]
    assert shares == [0.0, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 1.0]
    qualities = [p.quality for p in metrics.curve]
    assert qualities == [0.5, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert (metrics.weak_quality, metrics.strong_quality) == (0.5, 1.0)
    # PGR 0 -> 0.5 over the first quarter, 0.5 -> 1 over the second, then 1: area 0.0625+0.1875+0.5.
    assert metrics.apgr == pytest.approx(0.75)
    # np.interp over (quality -> share) with duplicate qualities: the first points that reach 0.75 / 0.9.
    assert metrics.cpt50 == pytest.approx(0.25)
    assert metrics.cpt80 == pytest.approx(0.4)


def test_the_last_threshold_sends_nobody_strong_and_the_first_everybody() -> None:
    curve = routing_curve([3.0, 1.0, 2.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert (curve[0].strong_share, curve[0].threshold) == (0.0, 3.0)
    assert (curve[-1].strong_share, curve[-1].threshold) == (1.0, 1.0)


def test_a_constant_score_traces_the_straight_line() -> None:
    metrics = evaluate_scores("flat", "toy", [0.5] * 4, WEAK, STRONG)
    assert metrics.apgr == pytest.approx(0.5)
    assert (metrics.cpt50, metrics.cpt80) == (pytest.approx(0.5), pytest.approx(0.8))


def test_a_reversed_router_is_worse_than_random() -> None:
    metrics = evaluate_scores("reversed", "toy", [0.9, 0.8, 0.2, 0.1], WEAK, STRONG)
    assert metrics.apgr is not None and metrics.apgr < 0.5


def test_random_scores_average_about_one_half() -> None:
    rng = random.Random(0)
    weak = [float(rng.random() < 0.6) for _ in range(2000)]
    strong = [max(w, float(rng.random() < 0.8)) for w in weak]
    runs = [evaluate_scores("random", "toy", [rng.random() for _ in weak], weak, strong) for _ in range(10)]
    mean = sum(r.apgr or 0.0 for r in runs) / len(runs)
    assert mean == pytest.approx(0.5, abs=0.03)
    assert sum(r.cpt50 or 0.0 for r in runs) / len(runs) == pytest.approx(0.5, abs=0.05)


def test_no_gap_means_no_pgr() -> None:
    metrics = evaluate_scores("any", "toy", [0.1, 0.2], [1.0, 1.0], [1.0, 1.0])
    assert (metrics.apgr, metrics.cpt50, metrics.cpt80) == (None, None, None)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        routing_curve([0.1], [1.0, 0.0], [1.0, 1.0])
