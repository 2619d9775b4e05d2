"""The quality vs strong-call-share curves of ``eval-router --plot``, one panel per benchmark (a PNG).

matplotlib is imported here only (the ``routing`` extra), with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing.evaluation import BenchmarkReport
from model_orchestrator.routing.learning_curve import CurvePoint


def plot_reports(reports: Sequence[BenchmarkReport], path: str | Path) -> Path:
    """Draw every router's curve (and the weak and strong levels) per benchmark; returns the file."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(reports), figsize=(6 * len(reports), 4.5), squeeze=False)
    for axis, report in zip(axes[0], reports, strict=True):
        for metrics in report.metrics:
            shares = [100 * p.strong_share for p in metrics.curve]
            axis.plot(shares, [p.quality for p in metrics.curve], marker=".", label=metrics.router)
        axis.axhline(report.weak_quality, color="grey", linestyle="--", label="weak model")
        axis.axhline(report.strong_quality, color="red", linestyle="--", label="strong model")
        axis.set_title(f"{report.benchmark} ({report.count} prompts)")
        axis.set_xlabel("strong model calls (%)")
        axis.set_ylabel("quality")
        axis.legend(fontsize="small")
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target


def plot_learning_curve(points: Sequence[CurvePoint], path: str | Path) -> Path:
    """APGR against labelled prompts (log scale), per benchmark and router, with random's 0.5."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for benchmark in dict.fromkeys(p.benchmark for p in points):
        mine = [p for p in points if p.benchmark == benchmark]
        counts = [p.labelled for p in mine]
        axis.plot(counts, [p.learned_apgr for p in mine], marker="o", label=f"{benchmark}: learned")
        axis.plot(
            counts, [p.generic_apgr for p in mine], marker=".", linestyle=":", label=f"{benchmark}: generic"
        )
    axis.axhline(0.5, color="grey", linestyle="--", label="random")
    axis.set_xscale("log")
    axis.set_xlabel("labelled prompts of that benchmark")
    axis.set_ylabel("APGR (held out)")
    axis.legend(fontsize="small")
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, dpi=100)
    plt.close(figure)
    return target


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ConfigError("--plot needs matplotlib: pip install 'model-orchestrator[routing]'") from exc
    return plt
