"""``orchestrator costs report|stats|export``: what the cost ledger holds, for people and for scripts.

Tables on a terminal (rich), ``--json`` for scripts, CSV/JSON export for spreadsheets, ``--chart`` for a
PNG of spend over time. Everything goes through the façade; heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from model_orchestrator.orchestrator import Orchestrator

T = TypeVar("T")
_PERIODS = ("daily", "weekly", "monthly")
_DIMENSIONS = ("model", "provider", "deployment", "strategy", "category", "key")


def _window(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--category/--since/--until`` options every costs command takes."""
    command = click.option(
        "--until", help="Up to this UTC date or time (ISO; a date includes that whole day)."
    )(command)
    command = click.option("--since", help="From this UTC date or time (ISO, e.g. 2026-11-01).")(command)
    return click.option("--category", help="Only requests of this category.")(command)


def _run(ctx: click.Context, work: Callable[[Orchestrator], Awaitable[T]]) -> T:
    import asyncio

    from model_orchestrator.orchestrator import Orchestrator

    async def run() -> T:
        orch = Orchestrator.from_config(ctx.obj["config"])
        try:
            return await work(orch)
        finally:
            await orch.aclose()

    return asyncio.run(run())


@click.group("costs")
def costs_group() -> None:
    """Spend recorded in the cost ledger: reports, statistics, export."""


@costs_group.command("report")
@click.option("--period", type=click.Choice(_PERIODS), default="daily", show_default=True)
@click.option(
    "--by", "by", type=click.Choice(_DIMENSIONS), default="model", show_default=True, help="Group rows by."
)
@_window
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False),
    help="Also draw spend over time to this PNG (needs matplotlib).",
)
@click.pass_context
def report_command(
    ctx: click.Context,
    period: str,
    by: str,
    category: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    chart: str | None,
) -> None:
    """Spend per day, week or month, by model, provider, deployment, strategy, category or key."""
    report = _run(
        ctx,
        lambda orch: orch.costs_report(period=period, by=by, category=category, since=since, until=until),
    )
    if chart:
        from model_orchestrator.ledger.chart import draw_spend_chart

        draw_spend_chart(report, Path(chart))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    from model_orchestrator.cli.costs_view import show_report

    show_report(report)
    if chart:
        click.echo(f"chart written to {chart}", err=True)


@costs_group.command("stats")
@click.option(
    "--period",
    type=click.Choice(_PERIODS),
    help="Only the current UTC day, ISO week or month (default: everything recorded).",
)
@_window
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def stats_command(
    ctx: click.Context,
    period: str | None,
    category: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Totals, success rate, latency, top models, budget and quota use, ledger state."""
    stats = _run(
        ctx, lambda orch: orch.costs_stats(period=period, category=category, since=since, until=until)
    )
    if as_json:
        click.echo(json.dumps(stats.to_dict(), indent=2))
        return
    from model_orchestrator.cli.costs_view import show_stats

    show_stats(stats)


@costs_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), required=True, help="File to write ('-' for stdout)."
)
@_window
@click.pass_context
def export_command(
    ctx: click.Context, fmt: str, output: str, category: str | None, since: str | None, until: str | None
) -> None:
    """Every attempt, one row each: times in ISO UTC, tokens, cost (empty when the price is unknown)."""
    path = None if output == "-" else output
    count = _run(
        ctx,
        lambda orch: orch.costs_export(path, fmt=fmt, category=category, since=since, until=until),
    )
    if path is not None:
        click.echo(f"{count} attempts written to {path}", err=True)
