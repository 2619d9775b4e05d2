"""``orchestrator health``: per-deployment state as a table or JSON; exit 1 when any is unhealthy."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

import click


def show_health(config_path: str | None, *, as_json: bool, probe: bool) -> bool:
    """Print the health of every usable deployment; True when all are healthy."""
    from model_orchestrator.orchestrator import Orchestrator

    async def gather() -> list[Any]:
        async with Orchestrator.from_config(config_path) as orch:
            return await orch.health(probe=probe)

    states = asyncio.run(gather())
    if as_json:
        click.echo(json.dumps([asdict(s) for s in states], indent=2, default=str))
    else:
        _table(states)
    return all(s.healthy is not False for s in states)


def _table(states: list[Any]) -> None:
    from rich.table import Table

    from model_orchestrator.cli.console import table_console

    table = Table(title="deployments", header_style="bold")
    for column in ("deployment", "healthy", "latency", "failures", "breaker", "cooldown", "last error"):
        table.add_column(column)
    for s in states:
        healthy = "?" if s.healthy is None else ("yes" if s.healthy else "NO")
        latency = "-" if s.last_latency is None else f"{s.last_latency * 1000:.0f} ms"
        cooldown = f"{s.cooldown_remaining:.1f}s" if s.cooldown_remaining else "-"
        table.add_row(
            s.deployment,
            healthy,
            latency,
            str(s.consecutive_failures),
            str(s.breaker_state),
            cooldown,
            (s.last_error or "")[:60],
        )
    table_console().print(table)
