"""The MCP server behind ``orchestrator mcp``: routing, execution, validation, costs and the model list
as Model Context Protocol tools, over stdio or streamable HTTP, for coding agents or any MCP client.

``tools`` holds the tools (each a thin call into the façade); ``server`` builds the server and runs a
transport. Importing this package loads nothing; its modules import the ``mcp`` SDK (the ``mcp`` extra).
"""
