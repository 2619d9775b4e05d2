"""``orchestrator serve``: the Chat Completions gateway over every configured model and strategy.

Auth is on unless ``--no-auth`` on a loopback address; the master key comes from ``ORCHESTRATOR_MASTER_KEY``
(needed off loopback). SIGTERM or Ctrl-C stops it gracefully: requests in flight finish, the ledger is
flushed. Heavy imports happen inside the command.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from model_orchestrator.gateway.settings import GatewaySettings


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=4000, show_default=True, help="0: any free.")
@click.option("--no-auth", is_flag=True, help="Accept requests without a key (loopback addresses only).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Path to orchestrator.yaml (overrides the global --config).",
)
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=4 * 1024 * 1024, show_default=True)
@click.option("--max-messages", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option(
    "--max-tokens-ceiling",
    type=click.IntRange(min=1),
    default=32768,
    show_default=True,
    help="Refuse requests asking for more output tokens than this.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0.001),
    default=600.0,
    show_default=True,
    help="Deadline of one whole request (seconds), every attempt and fallback included.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0.0),
    default=30.0,
    show_default=True,
    help="How long a graceful stop waits for requests in flight (seconds).",
)
@click.pass_context
def serve_command(
    ctx: click.Context,
    host: str,
    port: int,
    no_auth: bool,
    config_path: str | None,
    max_body_bytes: int,
    max_messages: int,
    max_tokens_ceiling: int,
    request_timeout: float,
    shutdown_timeout: float,
) -> None:
    """Serve POST /v1/chat/completions (streaming too), /v1/models, /health, /health/providers, /metrics.

    `model` may be any model, a configured strategy, or an inline strategy such as fallback:a,b.
    Callers send `Authorization: Bearer KEY`: the master key or a key from `orchestrator keys create`.
    """
    from model_orchestrator.gateway.settings import MASTER_KEY_ENV, GatewaySettings, Limits, check_auth_rule

    settings = GatewaySettings(
        host=host,
        port=port,
        auth=not no_auth,
        master_key=os.environ.get(MASTER_KEY_ENV) or None,
        limits=Limits(max_body_bytes, max_messages, max_tokens_ceiling, request_timeout),
        shutdown_timeout=shutdown_timeout,
    )
    check_auth_rule(settings)  # before building anything: a refused setting exits 2 at once
    _serve(config_path or ctx.obj["config"], settings)


def _serve(config_path: str | None, settings: GatewaySettings) -> None:
    from model_orchestrator.gateway.server import Gateway, run
    from model_orchestrator.orchestrator import Orchestrator

    # Built before serving, so a broken config fails here with exit 2.
    orch = Orchestrator.from_config(config_path)

    def announce(url: str) -> None:
        auth = "on" if settings.auth else "OFF (loopback only)"
        click.echo(f"orchestrator gateway: {url}/v1 (auth {auth}); Ctrl-C or SIGTERM stops it", err=True)
        if settings.auth and not settings.master_key:
            click.echo(
                "no ORCHESTRATOR_MASTER_KEY: only virtual keys work and admin routes are closed", err=True
            )

    run(lambda: Gateway(orch, settings), announce=announce)
