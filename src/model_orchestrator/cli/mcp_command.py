"""``orchestrator mcp``: run the MCP server over stdio (for coding agents and other MCP clients) or over
streamable HTTP with ``--http``.

Over stdio, stdout carries the protocol only; messages for people go to stderr.
"""

from __future__ import annotations

import click


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
@click.pass_context
def mcp_command(ctx: click.Context, use_http: bool, host: str, port: int, config_path: str | None) -> None:
    """Run the MCP server: tools orchestrator_route, _execute, _validate, _costs and _models.

    An MCP client starts it as the command `orchestrator mcp` (the README shows client configs).
    """
    import asyncio

    from model_orchestrator.core.errors import ConfigError
    from model_orchestrator.orchestrator import Orchestrator

    try:
        from model_orchestrator.mcp import server
    except ImportError as exc:
        raise ConfigError(
            f"the MCP server needs the 'mcp' package ({exc}): pip install 'model-orchestrator[mcp]'"
        ) from exc
    # Built before serving, so a broken config fails here with exit 2 instead of inside the protocol.
    orchestrator = Orchestrator.from_config(config_path or ctx.obj["config"])
    if use_http:

        def announce(url: str) -> None:
            click.echo(f"orchestrator MCP server: streamable HTTP at {url}", err=True)

        try:
            asyncio.run(server.serve_http(orchestrator, host, port, announce=announce))
        except KeyboardInterrupt:
            # Ctrl-C is how a foreground server is stopped; the server has shut down cleanly by now.
            click.echo("orchestrator MCP server: stopped", err=True)
    else:
        asyncio.run(server.serve_stdio(orchestrator))
