"""Rich tables for ``orchestrator costs report`` and ``costs stats``; budget warnings on stderr.

An unknown price is shown as such (``+ ?`` after the known spend, and a note with the count), never as 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from model_orchestrator.cli.console import table_console
from model_orchestrator.core.events import BudgetWarning, Event
from model_orchestrator.core.money import usd

if TYPE_CHECKING:
    from model_orchestrator.ledger.query import CostReport, CostStats, RequestOutcomes, Totals


class BudgetWarningPrinter:
    """An event sink that prints each ``BudgetWarning`` as one line on stderr (``orchestrator run``)."""

    def handle(self, event: Event) -> None:
        if not isinstance(event, BudgetWarning):
            return
        kind = "budget" if event.unit == "usd" else "call quota"
        used = (
            f"{usd(event.used)} of {usd(event.limit)}"
            if event.unit == "usd"
            else f"{event.used:g} of {event.limit:g} calls"
        )
        click.echo(
            f"warning: {kind} {event.budget!r} for {event.period_key} at {event.fraction:.0%} ({used})",
            err=True,
        )


def _usd(totals: Totals) -> str:
    text = usd(totals.cost)
    return f"{text} + ?" if totals.unpriced else text


def _note_unpriced(totals: Totals) -> str | None:
    if not totals.unpriced:
        return None
    return (
        f"{totals.unpriced} attempt(s) used a model whose price is unknown: their cost is not in the totals "
        "(give the model a price: in config)."
    )


def show_report(report: CostReport) -> None:
    """Print ``report`` as a table, one row per period and group, then the total."""
    from rich import box
    from rich.table import Table

    query = report.query
    title = f"spend {query.period} by {query.by}" + (
        f" (category {query.category})" if query.category else ""
    )
    table = Table(title=title, header_style="bold", show_footer=True, box=box.SIMPLE_HEAD, pad_edge=False)
    total = report.total
    table.add_column("period", footer="total", no_wrap=True)
    longest = max((len(row.group) for row in report.rows), default=len(query.by))
    table.add_column(query.by, overflow="fold", min_width=min(longest, 20))
    for name, footer in (
        ("attempts", total.attempts),
        ("failed", total.failed),
        ("cancelled", total.cancelled),
        ("in tokens", total.input_tokens),
        ("out tokens", total.output_tokens),
        ("cost", _usd(total)),
    ):
        table.add_column(name, justify="right", footer=str(footer), min_width=10 if name == "cost" else None)
    for row in report.rows:
        t = row.totals
        cells = (t.attempts, t.failed, t.cancelled, t.input_tokens, t.output_tokens)
        table.add_row(row.period, row.group, *(str(c) for c in cells), _usd(t))
    console = table_console()
    console.print(table)
    note = _note_unpriced(total)
    if note:
        console.print(note)
    if not report.rows:
        console.print("no attempts recorded in this window")


def show_stats(stats: CostStats) -> None:
    """Print the summary, then budget and quota use when any are configured."""
    from rich.table import Table

    t, r = stats.totals, stats.requests
    summary = Table(title="cost ledger", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    rows = [
        (
            "requests (ok / failed / cancelled / unfinished)",
            f"{r.total} ({r.ok} / {r.failed} / {r.cancelled} / {r.unfinished})",
        ),
        ("attempts (failed / cancelled)", f"{t.attempts} ({t.failed} / {t.cancelled})"),
        ("tokens in / out", f"{t.input_tokens} / {t.output_tokens}"),
        (
            "cached in / reasoning / cache writes",
            f"{t.cached_input_tokens} / {t.reasoning_tokens} / {t.cache_write_tokens}",
        ),
        ("spend", _usd(t)),
        ("spend per request", "-" if stats.cost_per_request is None else usd(stats.cost_per_request)),
        ("latency avg / p95", _latency(stats)),
        ("usage estimated (not reported)", str(t.estimated)),
        ("top models", ", ".join(f"{m} {usd(c)}" for m, c in stats.top_models) or "-"),
        ("ledger", f"{stats.ledger.get('url')} (schema v{stats.ledger.get('schema_version')})"),
    ]
    for what, value in rows:
        summary.add_row(what, value)
    console = table_console()
    console.print(summary)
    if stats.limits:
        limits = Table(title="budgets and quotas (current UTC period)", header_style="bold")
        for column in ("limit", "period", "used", "in flight", "of", "%"):
            limits.add_column(column, justify="left" if column in ("limit", "period") else "right")
        for use in stats.limits:
            share = (use.used + use.reserved) / use.limit * 100 if use.limit else 100.0
            kind = "" if use.hard else " (warn only)"
            limits.add_row(
                use.name + kind,
                use.period_key,
                _amount(use.unit, use.used),
                _amount(use.unit, use.reserved),
                _amount(use.unit, use.limit),
                f"{share:.0f}%",
            )
        console.print(limits)
    for note in (_note_unpriced(t), _note_unfinished(stats.requests)):
        if note:
            console.print(note)


def _note_unfinished(requests: RequestOutcomes) -> str | None:
    if not requests.unfinished:
        return None
    return (
        f"{requests.unfinished} request(s) have no recorded end: still running, or their process stopped "
        "before it could write one."
    )


def _amount(unit: str, value: float) -> str:
    return usd(value) if unit == "usd" else f"{value:g}"


def _latency(stats: CostStats) -> str:
    if stats.latency_avg is None:
        return "-"
    return f"{stats.latency_avg:.2f}s / {stats.latency_p95 or 0.0:.2f}s"
