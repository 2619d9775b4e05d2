"""``orchestrator serve``: the Chat Completions gateway over every configured model and strategy.

Auth is on unless ``--no-auth`` on a loopback address; the master key comes from ``ORCHESTRATOR_MASTER_KEY``
(needed off loopback, at least 32 characters there). Browser defences (Host, Origin, JSON bodies) and
slow-client limits are flags here; docs/security.md explains them. SIGTERM or Ctrl-C stops it gracefully:
requests in flight finish, the ledger is flushed. ``--workers N`` serves the port from N processes under
a supervisor (``gateway.workers``); more than one needs shared state (``state.url``) or
``--allow-per-process-state``. Heavy imports happen inside the command.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

import click

from model_orchestrator.cli.browser_options import browser_guard_options
from model_orchestrator.cli.params import FiniteFloat

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
    type=FiniteFloat(min=0.001),
    default=600.0,
    show_default=True,
    help="Deadline of one whole request (seconds), every attempt and fallback included.",
)
@click.option(
    "--shutdown-timeout",
    type=FiniteFloat(min=0.0),
    default=30.0,
    show_default=True,
    help="How long a graceful stop waits for requests in flight (seconds).",
)
@browser_guard_options
@click.option(
    "--header-timeout",
    type=FiniteFloat(min=0.001),
    default=15.0,
    show_default=True,
    help="Seconds a connection may take to send a request's headers.",
)
@click.option(
    "--body-timeout",
    type=FiniteFloat(min=0.001),
    default=30.0,
    show_default=True,
    help="Seconds a request body may take to arrive (then 408).",
)
@click.option(
    "--max-pending-connections",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Connections that may be open at once before presenting a valid key (more get 503).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Gateway processes sharing the port (SO_REUSEPORT, under a supervisor that restarts one that "
    "dies). More than 1 needs shared state (state.url) or --allow-per-process-state.",
)
@click.option(
    "--allow-per-process-state",
    is_flag=True,
    help="Run several --workers without shared state: every rate limit, cooldown and breaker is then "
    "per process (N workers let N times the rpm through).",
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
    allowed_hosts: tuple[str, ...],
    allowed_origins: tuple[str, ...],
    header_timeout: float,
    body_timeout: float,
    max_pending_connections: int,
    workers: int,
    allow_per_process_state: bool,
) -> None:
    """Serve POST /v1/chat/completions (streaming too), /v1/models, /health, /health/providers, /metrics.

    `model` may be any model, a configured strategy, or an inline strategy such as fallback:a,b.
    Callers send `Authorization: Bearer KEY`: the master key or a key from `orchestrator keys create`.
    """
    from model_orchestrator.gateway.settings import MASTER_KEY_ENV, GatewaySettings, Limits, check_auth_rule
    from model_orchestrator.orchestrator.access import master_key_from, normalize_host

    limits = Limits(
        max_body_bytes,
        max_messages,
        max_tokens_ceiling,
        request_timeout,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_pending_connections=max_pending_connections,
    )
    settings = GatewaySettings(
        host=normalize_host(host),
        port=port,
        auth=not no_auth,
        master_key=master_key_from(os.environ.get(MASTER_KEY_ENV)),
        limits=limits,
        shutdown_timeout=shutdown_timeout,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
    )
    check_auth_rule(settings)  # before building anything: a refused setting exits 2 at once
    _log_errors_to_stderr()
    path = config_path or ctx.obj["config"]
    if workers == 1:
        _serve(path, settings)
        return
    _check_shared_state(path, workers, allow_per_process_state)
    _serve_workers(path, settings, workers)


def _serve(
    config_path: str | None, settings: GatewaySettings, announce: Callable[[str], None] | None = None
) -> None:
    from model_orchestrator.gateway.server import Gateway, run
    from model_orchestrator.orchestrator import Orchestrator

    # Built before serving, so a broken config fails here with exit 2.
    orch = Orchestrator.from_config(config_path)
    run(lambda: Gateway(orch, settings), announce=announce or _announcer(settings))


class _StderrErrors(logging.StreamHandler[TextIO]):
    """ERROR records, with their tracebacks, on whatever ``sys.stderr`` is when one arrives."""

    def __init__(self) -> None:
        logging.Handler.__init__(self, logging.ERROR)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def _log_errors_to_stderr() -> None:
    """Without -v or --log-json the package logs nowhere, but a server must show its operator what
    failed: the exception behind a 500, a ledger write that failed. -v/--log-json already log them."""
    logger = logging.getLogger("model_orchestrator")
    if logging.getLogger().handlers or any(isinstance(h, _StderrErrors) for h in logger.handlers):
        return
    logger.addHandler(_StderrErrors())


def _announcer(settings: GatewaySettings, workers: int = 1) -> Callable[[str], None]:
    def announce(url: str) -> None:
        auth = "on" if settings.auth else "OFF (loopback only)"
        processes = f", {workers} workers" if workers > 1 else ""
        click.echo(
            f"orchestrator gateway: {url}/v1 (auth {auth}{processes}); Ctrl-C or SIGTERM stops it", err=True
        )
        if settings.auth and not settings.master_key:
            click.echo(
                "no ORCHESTRATOR_MASTER_KEY: only virtual keys work and admin routes are closed", err=True
            )

    return announce


def _check_shared_state(config_path: str | None, workers: int, allowed: bool) -> None:
    """Refuse N workers over per-process state: each would apply every limit on its own."""
    from model_orchestrator.config.loader import load_config
    from model_orchestrator.core.errors import ConfigError

    config, _ = load_config(config_path)  # a broken config fails here, once, with exit 2
    if allowed or config.state.shared:
        return
    raise ConfigError(
        f"--workers {workers} with in-memory state would apply every rate limit, cooldown, circuit "
        f"breaker and key rpm per process ({workers} workers let {workers} times the rpm through); set "
        "state.url (Redis or Valkey) in orchestrator.yaml, or pass --allow-per-process-state to accept that"
    )


def _serve_workers(config_path: str | None, settings: GatewaySettings, workers: int) -> None:
    from model_orchestrator.gateway.workers import supervise

    code = supervise(
        workers,
        settings,
        lambda shared, ready: _serve(config_path, shared, ready),
        announce=_announcer(settings, workers),
    )
    if code:
        raise SystemExit(code)
