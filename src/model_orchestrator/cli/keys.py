"""``orchestrator keys create|list|revoke``: the gateway's virtual keys, kept (hashed) in the ledger database.

The secret is printed once, by ``create``, and never stored or shown again; listings show ids. Heavy
imports happen inside the commands.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import click

from model_orchestrator.cli.params import FiniteFloat
from model_orchestrator.core.money import usd

if TYPE_CHECKING:
    from model_orchestrator.ledger.keys import VirtualKey, VirtualKeyStore

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_expiry(text: str, now: float) -> float:
    """Epoch seconds from ``30d``/``12h``/``90m``/``3600s``/``2w`` (from now) or an ISO date or time (UTC
    unless it says otherwise)."""
    match = _DURATION.match(text.strip().lower())
    if match:
        return now + float(match.group(1)) * _SECONDS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use a duration such as 30d, 12h, 90m, or a date such as 2026-12-31"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _with_store(ctx: click.Context, work: Callable[[VirtualKeyStore], Awaitable[T]]) -> T:
    import asyncio

    from model_orchestrator.core.errors import ConfigError
    from model_orchestrator.orchestrator import Orchestrator

    async def run() -> T:
        orch = Orchestrator.from_config(ctx.obj["config"])
        try:
            store = await orch.virtual_keys()
            if store is None:
                raise ConfigError("virtual keys are kept in the ledger: set ledger.enabled: true in config")
            return await work(store)
        finally:
            await orch.aclose()

    return asyncio.run(run())


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _show(keys: list[VirtualKey], now: float) -> None:
    """The keys as a table: fitted to a terminal, every cell whole when piped."""
    from rich import box
    from rich.table import Table

    from model_orchestrator.cli.console import table_console

    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    for column in ("id", "state", "name", "models", "budget", "rpm", "expires"):
        table.add_column(column, justify="right" if column == "rpm" else "left")
    for key in keys:
        budget = f"{usd(key.budget_usd)}/{key.budget_period}" if key.budget_usd is not None else "-"
        table.add_row(
            key.id,
            key.state(now),
            key.name or "-",
            ",".join(key.models) or "*",
            budget,
            str(key.rpm or "-"),
            _when(key.expires_at),
        )
    table_console().print(table)


@click.group("keys")
def keys_group() -> None:
    """Virtual keys for `orchestrator serve`: per-key budget, allowed models, rate limit, expiry."""


@keys_group.command("create")
@click.option("--name", help="A label for people (listed; not secret).")
@click.option("--models", help="Comma-separated model or strategy names the key may use (default: any).")
@click.option("--budget", type=FiniteFloat(min=0.0), help="USD the key may spend per budget period.")
@click.option("--budget-period", type=click.Choice(["month", "day"]), default="month", show_default=True)
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute the key may make.")
@click.option("--expires", help="When the key stops working: 30d, 12h, 90m, or a date such as 2026-12-31.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the key included) instead of text.")
@click.pass_context
def create_command(
    ctx: click.Context,
    name: str | None,
    models: str | None,
    budget: float | None,
    budget_period: str,
    rpm: int | None,
    expires: str | None,
    as_json: bool,
) -> None:
    """Create a key and print it ONCE (only a salted hash is stored)."""
    now = time.time()
    expires_at = parse_expiry(expires, now) if expires else None
    allowed = tuple(m.strip() for m in (models or "").split(",") if m.strip())

    async def create(store: VirtualKeyStore) -> tuple[VirtualKey, str]:
        return await store.create(
            name=name,
            models=allowed,
            budget_usd=budget,
            budget_period=budget_period,
            rpm=rpm,
            expires_at=expires_at,
        )

    key, secret = _with_store(ctx, create)
    if as_json:
        click.echo(json.dumps({**key.to_dict(now), "key": secret}))
        return
    click.echo(secret)
    click.echo(
        f"key id {key.id}: shown once, store it now (only its hash is kept). "
        "Send it as 'Authorization: Bearer <key>'.",
        err=True,
    )


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List keys: id, state, name, models, budget, rpm, expiry (never secrets)."""

    async def listing(store: VirtualKeyStore) -> list[VirtualKey]:
        return await store.list()

    keys = _with_store(ctx, listing)
    now = time.time()
    if as_json:
        click.echo(json.dumps([k.to_dict(now) for k in keys]))
        return
    _show(keys, now)


@keys_group.command("revoke")
@click.argument("key_id")
@click.pass_context
def revoke_command(ctx: click.Context, key_id: str) -> None:
    """Revoke a key by id. A running gateway stops accepting it within its key cache time (5 s)."""

    async def revoke(store: VirtualKeyStore) -> VirtualKey:
        return await store.revoke(key_id)

    key = _with_store(ctx, revoke)
    click.echo(f"revoked {key.id}")
