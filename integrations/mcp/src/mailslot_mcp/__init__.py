"""Mailslot over MCP: a mailbox per coding agent, blocking waits instead of polling, identity
bound to the connection. Run ``mailslot-mcp`` (stdio) or ``mailslot-mcp --http HOST:PORT``."""

from .hub import AgentState, Hub
from .identity import Identity, TokenStore
from .server import build, serve_http, serve_stdio

__all__ = ["AgentState", "Hub", "Identity", "TokenStore", "build", "serve_http", "serve_stdio"]
