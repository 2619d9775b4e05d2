"""``orchestrator models``: the model list as a table or JSON."""

from __future__ import annotations

import json

import click


def show_models(config_path: str | None, as_json: bool) -> None:
    """Print every known model and whether it can be used now."""
    from model_orchestrator.orchestrator import Orchestrator

    infos = Orchestrator.from_config(config_path).models()
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    from rich.table import Table

    from model_orchestrator.cli.console import table_console

    table = Table(title="models", header_style="bold")
    for column in ("name", "provider", "tier", "context", "$/M in", "$/M out", "usable"):
        table.add_column(
            column, justify="right" if column in ("tier", "context", "$/M in", "$/M out") else "left"
        )
    for info in infos:
        price_in = "?" if info.price is None else f"{info.price.input:g}"
        price_out = "?" if info.price is None else f"{info.price.output:g}"
        usable = "yes" if info.usable else f"no: {info.unusable_reason}"
        table.add_row(
            info.name,
            info.provider,
            _or_dash(info.tier),
            _or_dash(info.context_window),
            price_in,
            price_out,
            usable,
        )
    table_console().print(table)


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)
