"""Resources: the agent's inbox and one thread of it, with update notifications when they
change, in each protocol era the installed mcp line serves (see _compat.py): handshake-era
``resources/subscribe`` (both lines) and 2026-07-28 ``subscriptions/listen`` (mcp 2.x).
"""

from __future__ import annotations

import json

import mailslot

from ._compat import App, ResourceError, serve_resource_updates
from .hub import Hub, Notify
from .identity import Identity
from .tools import caller
from .views import message_view

SCHEME = "mailbox://"


def _owner(uri: str) -> str:
    if not uri.startswith(SCHEME):
        raise mailslot.InvalidInput(f"not a mailbox resource: {uri}")
    return uri[len(SCHEME) :].split("/", 1)[0]


def register(app: App, hub: Hub, identity: Identity) -> None:
    async def own(agent: str) -> list[mailslot.Message]:
        me = caller(app, identity)
        try:
            if agent != me:
                raise mailslot.PermissionDenied(f"you are {me}: you can read only your own mailbox")
            state = await hub.agent(me)
            return await state.mailbox.peek(limit=100)
        except mailslot.MailslotError as exc:
            raise ResourceError(f"{type(exc).__name__}: {exc}") from None

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

    async def subscribe(uri: str, key: int, notify: Notify) -> None:
        me = caller(app, identity)
        if _owner(uri) != me:
            raise mailslot.PermissionDenied(f"you are {me}: you can subscribe only to your own mailbox")
        state = await hub.agent(me)
        await state.subscribe(uri, key, notify)

    async def unsubscribe(uri: str, key: int) -> None:
        state = await hub.agent(caller(app, identity))
        state.unsubscribe(uri, key)

    serve_resource_updates(app, subscribe, unsubscribe)
