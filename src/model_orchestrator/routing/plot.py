"""The quality vs strong-call-share curves of ``eval-router --plot``, one panel per benchmark (a PNG).

matplotlib is imported here only (the ``routing`` extra), with the non-interactive Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing.evaluation import BenchmarkReport


def plot_reports(reports: Sequence[BenchmarkReport], path: str | Path) -> Path:
    """Draw every router's curve (and the weak and strong levels) per benchmark; returns the file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ConfigError("--plot needs matplotlib: pip install 'model-orchestrator[routing]'") from exc
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
