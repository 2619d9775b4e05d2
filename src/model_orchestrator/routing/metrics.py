"""RouteLLM's routing metrics, computed the way its evaluation code does (``routellm/evals``).

For a router's scores on a benchmark: the 11 decile edges of the scores (``pandas.qcut(scores, 10)``:
linear-interpolated quantiles, duplicates kept) are the thresholds; at each, prompts scoring at or above
it go to the strong model (at the last, the maximum, only those above it: nobody), giving one point of
(strong-call share, quality), quality being the mean of the strong model's score where routed strong and
the weak model's elsewhere. PGR (performance gap recovered) = (quality - weak) / (strong - weak).
CPT(x%) = ``numpy.interp`` of the quality x% of the way from weak to strong along the points sorted by
share; APGR = the trapezoid area under quality over share, normalised the same way. numpy does the
quantiles and the interpolation so ties and non-monotonic curves behave exactly as in RouteLLM.
It does not produce scores: routers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from model_orchestrator.routing.training import numpy_module

DECILES = 10


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One threshold: the share of prompts sent to the strong model (0-1) and the quality reached."""

    threshold: float
    strong_share: float
    quality: float


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    """A router's figures on one benchmark. CPTs are strong-call shares (0-1); None when undefined."""

    router: str
    benchmark: str
    count: int
    weak_quality: float
    strong_quality: float
    apgr: float | None
    cpt20: float | None
    cpt50: float | None
    cpt80: float | None
    curve: tuple[CurvePoint, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (curve included)."""
        return {
            "router": self.router,
            "benchmark": self.benchmark,
            "count": self.count,
            "weak_quality": self.weak_quality,
            "strong_quality": self.strong_quality,
            "apgr": self.apgr,
            "cpt20": self.cpt20,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "curve": [
                {"threshold": p.threshold, "strong_share": p.strong_share, "quality": p.quality}
                for p in self.curve
            ],
        }


def routing_curve(
    scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]
) -> tuple[CurvePoint, ...]:
    """The 11 points of the quality/strong-share curve, sorted by strong-call share."""
    np = numpy_module()
    values = np.asarray(scores, dtype=float)
    weak_scores, strong_scores = np.asarray(weak, dtype=float), np.asarray(strong, dtype=float)
    if not (len(values) == len(weak_scores) == len(strong_scores)) or len(values) == 0:
        raise ValueError("scores, weak and strong scores must be non-empty and of the same length")
    thresholds = np.percentile(values, np.linspace(0, 1, DECILES + 1) * 100)
    points = []
    for index, threshold in enumerate(thresholds):
        chosen = values >= threshold if index != len(thresholds) - 1 else values > threshold
        quality = float(np.where(chosen, strong_scores, weak_scores).mean())
        points.append(CurvePoint(float(threshold), float(chosen.mean()), quality))
    return tuple(sorted(points, key=lambda p: p.strong_share))


def evaluate_scores(
    router: str,
    benchmark: str,
    scores: Sequence[float],
    weak: Sequence[float],
    strong: Sequence[float],
) -> RouterMetrics:
    """A router's metrics on one benchmark from its scores and both models' per-prompt scores."""
    np = numpy_module()
    curve = routing_curve(scores, weak, strong)
    weak_quality, strong_quality = float(np.mean(weak)), float(np.mean(strong))
    gap = strong_quality - weak_quality
    shares = [p.strong_share for p in curve]
    qualities = [p.quality for p in curve]

    def cpt(fraction: float) -> float | None:
        if gap == 0:
            return None
        return float(np.interp(weak_quality + fraction * gap, qualities, shares))

    return RouterMetrics(
        router=router,
        benchmark=benchmark,
        count=len(scores),
        weak_quality=weak_quality,
        strong_quality=strong_quality,
        apgr=_apgr(shares, qualities, weak_quality, strong_quality),
        cpt20=cpt(0.2),
        cpt50=cpt(0.5),
        cpt80=cpt(0.8),
        curve=curve,
    )


def _apgr(shares: list[float], qualities: list[float], weak: float, strong: float) -> float | None:
    """(AUC - weak AUC) / (strong AUC - weak AUC), each a trapezoid over the curve's shares."""
    area = _trapezoid(qualities, shares)
    weak_area = _trapezoid([weak] * len(shares), shares)
    strong_area = _trapezoid([strong] * len(shares), shares)
    if strong_area == weak_area:
        return None
    return (area - weak_area) / (strong_area - weak_area)


def _trapezoid(y: Sequence[float], x: Sequence[float]) -> float:
    """``numpy.trapz(y, x)``: the same sum, written out (numpy 2 renamed the function)."""
    return float(sum((x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2.0 for i in range(len(x) - 1)))
