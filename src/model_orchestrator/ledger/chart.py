"""Drawing a cost report as a PNG: spend per period, one line per group (model by default).

matplotlib is optional (the ``chart`` extra) and imported here only, with the headless Agg backend.
"""

from __future__ import annotations

from pathlib import Path

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.ledger.query import CostReport

_UNITS = {"daily": "day", "weekly": "week", "monthly": "month"}


def draw_spend_chart(report: CostReport, path: Path) -> None:
    """Write ``report`` as a line chart of spend (USD) over its periods to ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--chart needs matplotlib: pip install 'model-orchestrator[chart]'") from None
    periods = sorted({row.period for row in report.rows})
    groups = sorted({row.group for row in report.rows})
    spend = {(row.period, row.group): row.totals.cost for row in report.rows}
    figure, axes = plt.subplots(figsize=(10, 5))
    try:
        for group in groups:
            axes.plot(periods, [spend.get((p, group), 0.0) for p in periods], marker="o", label=group)
        axes.set_title(f"spend per {_UNITS[report.query.period]} by {report.query.by}")
        axes.set_xlabel("period (UTC)")
        axes.set_ylabel("USD")
        if groups:
            axes.legend(loc="upper left", fontsize="small")
        axes.tick_params(axis="x", labelrotation=45)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=100)
    finally:
        plt.close(figure)
