"""Resources: the agent's inbox and one thread of it, with ``notifications/resources/updated``
when they change.

mcp 1.x FastMCP has no subscription API of its own: the low-level server's
``subscribe_resource`` decorator (reached through ``FastMCP._mcp_server``) registers the
``resources/subscribe`` handler, and the session captured there sends the notifications.
1.30 still advertises ``subscribe=False`` in its capabilities (hard-coded); clients that
subscribe anyway get the notifications.
"""

from __future__ import annotations

import json
from typing import Any

import mailslot
from mcp.server.fastmcp import FastMCP
from pydantic import AnyUrl

from .hub import Hub
from .identity import Identity
from .tools import caller
from .views import message_view

SCHEME = "mailbox://"


def _owner(uri: str) -> str:
    if not uri.startswith(SCHEME):
        raise mailslot.InvalidInput(f"not a mailbox resource: {uri}")
    return uri[len(SCHEME) :].split("/", 1)[0]


def register(app: FastMCP[Any], hub: Hub, identity: Identity) -> None:
    async def own(agent: str) -> list[mailslot.Message]:
        me = caller(app, identity)
        if agent != me:
            raise mailslot.PermissionDenied(f"you are {me}: you can read only your own mailbox")
        state = await hub.agent(me)
        return await state.mailbox.peek(limit=100)

    @app.resource("mailbox://{agent}/inbox", mime_type="application/json", description="Your unacked mail.")
    async def inbox(agent: str) -> str:
        return json.dumps([message_view(m) for m in await own(agent)])

    @app.resource(
        "mailbox://{agent}/thread/{thread}",
        mime_type="application/json",
        description="Unacked mail of one thread in your mailbox.",
    )
    async def thread(agent: str, thread: str) -> str:
        return json.dumps([message_view(m) for m in await own(agent) if m.thread_id == thread])

    lowlevel = app._mcp_server

    @lowlevel.subscribe_resource()
    async def subscribe(uri: AnyUrl) -> None:
        me = caller(app, identity)
        if _owner(str(uri)) != me:
            raise mailslot.PermissionDenied(f"you are {me}: you can subscribe only to your own mailbox")
        session = lowlevel.request_context.session
        state = await hub.agent(me)

        async def send(u: str) -> None:
            await session.send_resource_updated(AnyUrl(u))

        await state.subscribe(str(uri), id(session), send)

    @lowlevel.unsubscribe_resource()
    async def unsubscribe(uri: AnyUrl) -> None:
        state = await hub.agent(caller(app, identity))
        state.unsubscribe(str(uri), id(lowlevel.request_context.session))
