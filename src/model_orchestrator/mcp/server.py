"""Builds the MCP server around one ``Orchestrator`` and runs it over stdio or streamable HTTP.

Owns the transports and the lifecycle: one orchestrator for the server's life, closed when the client goes
away (stdio) or the server stops (HTTP). The tools themselves live in ``tools``. Over stdio nothing but the
protocol reaches stdout: the SDK diverts file descriptor 1 to stderr while it serves, so stray prints and
native-library output cannot corrupt the stream, and logs go to stderr.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from model_orchestrator import __version__
from model_orchestrator.mcp.tools import OrchestratorTools
from model_orchestrator.orchestrator import Orchestrator

SERVER_NAME = "model-orchestrator"
HTTP_PATH = "/mcp"
INSTRUCTIONS = (
    "Sends LLM work to the right model. Call orchestrator_route to learn which model a task needs and what "
    "it would cost, orchestrator_execute to run a prompt on a model or a strategy (fallback, cascade, "
    "ensemble, ...), orchestrator_validate to check an output, orchestrator_costs for spending, and "
    "orchestrator_models for the names you can use."
)
# Hints for clients: reading tools change nothing; the others call models, which costs money.
_READS = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_CALLS_MODELS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)


def build_server(orchestrator: Orchestrator) -> MCPServer[Any]:
    """The MCP server exposing ``orchestrator``'s tools; the caller owns (and closes) the orchestrator."""
    tools = OrchestratorTools(orchestrator)
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME, version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    server.add_tool(tools.orchestrator_route, title="Route a task", annotations=_READS)
    server.add_tool(tools.orchestrator_execute, title="Run a prompt", annotations=_CALLS_MODELS)
    server.add_tool(tools.orchestrator_validate, title="Validate an output", annotations=_CALLS_MODELS)
    server.add_tool(tools.orchestrator_costs, title="Report costs", annotations=_READS)
    server.add_tool(tools.orchestrator_models, title="List models", annotations=_READS)
    return server


async def serve_stdio(orchestrator: Orchestrator) -> None:
    """Serve over stdin/stdout until the client closes the stream."""
    async with orchestrator:
        await build_server(orchestrator).run_stdio_async()


async def serve_http(
    orchestrator: Orchestrator, host: str, port: int, *, announce: Callable[[str], None]
) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` until stopped; ``announce`` gets the URL once the
    socket is bound (port 0 picks a free port)."""
    import uvicorn

    app = build_server(orchestrator).streamable_http_app(streamable_http_path=HTTP_PATH, host=host)
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    bound = sock.getsockname()[1]
    announce(f"http://{_url_host(host)}:{bound}{HTTP_PATH}")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    async with orchestrator:
        await uvicorn.Server(config).serve(sockets=[sock])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
