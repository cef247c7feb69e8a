"""Building and running the server: stdio for one agent, streamable HTTP for many."""

from __future__ import annotations

import os
from typing import Any

import anyio

from . import resources, tools
from ._compat import App, make_app, run_http, run_stdio
from .hub import Hub
from .identity import Identity, TokenStore

#: Hosts time tool calls out at about 60 s: a wait never blocks longer than this by default.
DEFAULT_MAX_WAIT = 50.0
#: Over HTTP, an agent quiet this long is taken as gone (longer than the default ack wait, so
#: mail it received and never settled has been redelivered by then).
DEFAULT_IDLE = 900.0

INSTRUCTIONS = (
    "Mailslot: durable mail between agents. Your identity is fixed by this connection. "
    "Call wait_for_mail to block until mail arrives; ack ids you handled."
)


def build(
    hub: Hub,
    *,
    agent: str | None = None,
    tokens: TokenStore | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> App:
    """The server for ``agent`` (stdio) or for the agents of ``tokens`` (HTTP): FastMCP on
    mcp 1.x, MCPServer (both protocol eras) on mcp 2.x."""
    if (agent is None) == (tokens is None):
        raise ValueError("give either agent (stdio) or tokens (HTTP)")
    app = make_app(name="mailslot", instructions=INSTRUCTIONS, host=host, port=port, token_verifier=tokens)
    identity = Identity(agent=agent)
    tools.register(app, hub, identity, max_wait=max_wait)
    resources.register(app, hub, identity)
    return app


def card_from_env() -> dict[str, Any]:
    """What the agent says about itself in the directory (``MAILSLOT_CAPABILITIES=a,b``,
    ``MAILSLOT_DESCRIPTION``)."""
    card: dict[str, Any] = {}
    caps = [c.strip() for c in os.environ.get("MAILSLOT_CAPABILITIES", "").split(",") if c.strip()]
    if caps:
        card["capabilities"] = caps
    if os.environ.get("MAILSLOT_DESCRIPTION"):
        card["description"] = os.environ["MAILSLOT_DESCRIPTION"]
    return card


async def serve_stdio(hub: Hub, agent: str, *, max_wait: float = DEFAULT_MAX_WAIT) -> None:
    """Serve one agent over stdio. Its mailbox opens before the first request, so the agent
    shows online (holds its lease) for as long as the host keeps the server running."""
    app = build(hub, agent=agent, max_wait=max_wait)
    try:
        await hub.agent(agent)
        await run_stdio(app)
    finally:
        await hub.stop()


async def serve_http(
    hub: Hub,
    tokens: TokenStore,
    *,
    host: str,
    port: int,
    max_wait: float = DEFAULT_MAX_WAIT,
    idle: float = DEFAULT_IDLE,
) -> None:
    """Serve the agents of ``tokens`` over streamable HTTP at ``/mcp``. An agent's mailbox
    opens on its first request and closes (its lease goes) after ``idle`` quiet seconds."""
    app = build(hub, tokens=tokens, host=host, port=port, max_wait=max_wait)
    await hub.start()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.release_idle, idle)
            await run_http(app, host=host, port=port)
            tg.cancel_scope.cancel()
    finally:
        await hub.stop()
