"""``orchestrator mcp``: run the MCP server over stdio (for coding agents and other MCP clients) or over
streamable HTTP with ``--http``.

Over stdio, stdout carries the protocol only; messages for people go to stderr. Over HTTP the gateway's
rules apply: off loopback ``ORCHESTRATOR_MASTER_KEY`` (32+ characters) is required and every caller presents
it or a virtual key; on loopback a key is asked for when the master key is set (docs/security.md).
"""

from __future__ import annotations

import click

from model_orchestrator.cli.browser_options import browser_guard_options


@click.command("mcp")
@click.option("--http", "use_http", is_flag=True, help="Serve streamable HTTP instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (--http).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (--http); 0 picks a free one.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Path to orchestrator.yaml (overrides the global --config).",
)
@browser_guard_options
@click.option(
    "--header-timeout",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="Seconds a connection may take to send a request's headers (--http).",
)
@click.pass_context
def mcp_command(
    ctx: click.Context,
    use_http: bool,
    host: str,
    port: int,
    config_path: str | None,
    allowed_hosts: tuple[str, ...],
    allowed_origins: tuple[str, ...],
    header_timeout: int,
) -> None:
    """Run the MCP server: tools orchestrator_route, _execute, _validate, _costs and _models.

    An MCP client starts it as the command `orchestrator mcp` (the README shows client configs).
    With --http, callers send `Authorization: Bearer KEY` (the master key or a virtual key): always off
    loopback, where ORCHESTRATOR_MASTER_KEY must be set, and on loopback whenever it is set.
    """
    import asyncio
    import contextlib
    import os

    from model_orchestrator.core.errors import ConfigError
    from model_orchestrator.orchestrator import Orchestrator
    from model_orchestrator.orchestrator.access import (
        MASTER_KEY_ENV,
        check_exposure,
        master_key_from,
        normalize_host,
    )

    try:
        from model_orchestrator.mcp import server
    except ImportError as exc:
        raise ConfigError(
            f"the MCP server needs the 'mcp' package ({exc}): pip install 'model-orchestrator[mcp]'"
        ) from exc
    settings = server.HttpSettings(
        host=normalize_host(host),
        port=port,
        master_key=master_key_from(os.environ.get(MASTER_KEY_ENV)),
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
        header_timeout=header_timeout,
    )
    if use_http:  # refused before building anything: exit 2 at once
        check_exposure(settings.host, auth=True, master_key=settings.master_key, server="the MCP server")
    # Built before serving, so a broken config fails here with exit 2 instead of inside the protocol.
    orchestrator = Orchestrator.from_config(config_path or ctx.obj["config"])
    if use_http:

        def announce(url: str) -> None:
            auth = "on" if settings.auth else f"off (loopback, no {MASTER_KEY_ENV})"
            click.echo(f"orchestrator MCP server: auth {auth}", err=True)
            click.echo(f"orchestrator MCP server: streamable HTTP at {url}", err=True)

        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stopped without waiting
            asyncio.run(server.serve_http(orchestrator, settings, announce=announce))
        click.echo("orchestrator MCP server: stopped", err=True)
    else:
        asyncio.run(server.serve_stdio(orchestrator))
