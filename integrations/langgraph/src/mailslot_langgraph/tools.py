"""LangChain tools bound to a mailbox: send, ask, broadcast, check inbox.

Each tool has both a sync and an async implementation, so it works with
``langchain.agents.create_agent`` and ``ToolNode`` under ``invoke`` and ``ainvoke``. Every
mailbox call runs on the mailbox's own event loop (a nats connection is bound to its loop):

- an async ``mailslot.Mailbox`` made in this loop: async tools await it directly; sync tools
  (LangGraph runs them in worker threads) submit to that loop. A sync tool called on the
  loop's own thread is refused rather than deadlocking.
- a ``mailslot.sync`` mailbox: everything runs on the sync twin's background loop, so a fully
  sync program (``graph.invoke``) works too.

Argument names are the same in the AutoGen and CrewAI tools: ``to``, ``message``,
``question``, ``topic``, ``priority``. ``message`` and ``question`` may be a string, sent as
``text/plain`` exactly as given, or a JSON object or array, sent as ``application/json`` (a
receiver reads it with ``msg.json()``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import mailslot
from langchain_core.tools import BaseTool, StructuredTool
from mailslot import tracing

from ._bridge import LoopBridge, unwrap
from .durable import request_reply, request_reply_sync
from .envelope import decode_payload, to_mail

ALL_TOOLS = ("send_message", "ask_agent", "broadcast", "check_inbox")

Payload = str | dict[str, Any] | list[Any]
"""A tool's ``message`` / ``question``: text (``text/plain``) or structured (JSON)."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


class MailboxTools:
    """The tool implementations, bound to one mailbox. Most code wants :func:`mailbox_tools`."""

    def __init__(
        self,
        mailbox: Any,
        *,
        client: Any = None,
        ask_timeout: float = 60.0,
        durable_ask: bool = False,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.mailbox, found = unwrap(mailbox)
        self.bridge = LoopBridge(loop or found)
        aio_client = getattr(client, "aio", client)
        if aio_client is not None and not isinstance(aio_client, mailslot.Mailslot):
            raise TypeError("client must be a mailslot Mailslot or SyncMailslot")
        self.client: mailslot.Mailslot | None = aio_client
        self.ask_timeout = ask_timeout
        self.durable_ask = durable_ask

    # -- send --------------------------------------------------------------------------------

    async def _send(self, to: str, message: Payload, priority: str) -> str:
        with tracing.tool("langgraph", "send_message"):
            r = await self.mailbox.send(to, message, priority=priority)
        return f"sent message {r.id} to {r.to} (priority {r.priority.label})"

    async def asend(self, to: str, message: Payload, priority: str = "normal") -> str:
        return await self.bridge.run(lambda: self._send(to, message, priority))

    def send(self, to: str, message: Payload, priority: str = "normal") -> str:
        return self.bridge.call(lambda: self._send(to, message, priority))

    # -- ask ---------------------------------------------------------------------------------

    async def _ask(self, to: str, question: Payload) -> str:
        try:
            with tracing.tool("langgraph", "ask_agent"):
                reply = await self.mailbox.ask(to, question, timeout=self.ask_timeout)
        except mailslot.Timeout:
            return f"no reply from {to} within {self.ask_timeout:g} s (it may still answer later)"
        return f"{to} replied: {_text(decode_payload(reply))}"

    async def aask(self, to: str, question: Payload) -> str:
        if self.durable_ask:
            reply = await request_reply(self.mailbox, to, question, loop=self.bridge.loop)
            return f"{to} replied: {_text(reply)}"
        return await self.bridge.run(lambda: self._ask(to, question))

    def ask(self, to: str, question: Payload) -> str:
        if self.durable_ask:
            reply = request_reply_sync(self.mailbox, to, question, loop=self.bridge.loop)
            return f"{to} replied: {_text(reply)}"
        return self.bridge.call(lambda: self._ask(to, question))

    # -- broadcast -----------------------------------------------------------------------------

    async def _broadcast(self, topic: str, message: Payload, durable: bool) -> str:
        if self.client is None:
            return "broadcast is not available: no client was given to the mailbox tools"
        pub = await self.client.publish(topic, message, durable=durable)
        return f"broadcast {pub.id} on {pub.topic}" + (" (kept in history)" if durable else "")

    async def abroadcast(self, topic: str, message: Payload, durable: bool = False) -> str:
        return await self.bridge.run(lambda: self._broadcast(topic, message, durable))

    def broadcast(self, topic: str, message: Payload, durable: bool = False) -> str:
        return self.bridge.call(lambda: self._broadcast(topic, message, durable))

    # -- inbox ---------------------------------------------------------------------------------

    async def _inbox(self, max_messages: int, wait_seconds: float) -> str:
        msgs = await self.mailbox.receive_batch(max=max(1, int(max_messages)), timeout=wait_seconds)
        mails = []
        for m in msgs:
            mails.append(to_mail(m))
            await m.ack()
        if not mails:
            return "the inbox is empty"
        return json.dumps(mails, default=str)

    async def acheck_inbox(self, max_messages: int = 10, wait_seconds: float = 0.0) -> str:
        return await self.bridge.run(lambda: self._inbox(max_messages, wait_seconds))

    def check_inbox(self, max_messages: int = 10, wait_seconds: float = 0.0) -> str:
        return self.bridge.call(lambda: self._inbox(max_messages, wait_seconds))

    # -- LangChain tools -------------------------------------------------------------------------

    def tools(self, include: Iterable[str] | None = None) -> list[BaseTool]:
        names = tuple(include) if include is not None else ALL_TOOLS
        unknown = set(names) - set(ALL_TOOLS)
        if unknown:
            raise ValueError(f"unknown mailbox tools {sorted(unknown)}; choose from {ALL_TOOLS}")
        me = self.mailbox.address
        made = {
            "send_message": lambda: StructuredTool.from_function(
                func=self.send,
                coroutine=self.asend,
                name="send_message",
                description=(
                    f"Send a message to another agent's mailbox (you are {me}). It waits there "
                    "until the agent reads it. message: text, or a JSON object for structured "
                    "data. priority: low, normal, urgent or critical."
                ),
            ),
            "ask_agent": lambda: StructuredTool.from_function(
                func=self.ask,
                coroutine=self.aask,
                name="ask_agent",
                description="Ask another agent a question by mail and wait for its reply.",
            ),
            "broadcast": lambda: StructuredTool.from_function(
                func=self.broadcast,
                coroutine=self.abroadcast,
                name="broadcast",
                description=(
                    "Publish a message on a topic (e.g. 'build.done') to every agent subscribed "
                    "to it. durable=true keeps it for agents that subscribe later."
                ),
            ),
            "check_inbox": lambda: StructuredTool.from_function(
                func=self.check_inbox,
                coroutine=self.acheck_inbox,
                name="check_inbox",
                description=(
                    "Read (and remove) up to max_messages messages from your mailbox, most urgent "
                    "first; wait_seconds > 0 waits that long for the first one."
                ),
            ),
        }
        return [made[n]() for n in names]


def mailbox_tools(
    mailbox: Any,
    *,
    client: Any = None,
    include: Iterable[str] | None = None,
    ask_timeout: float = 60.0,
    durable_ask: bool = False,
    loop: asyncio.AbstractEventLoop | None = None,
) -> list[BaseTool]:
    """LangChain tools ``send_message``, ``ask_agent``, ``broadcast`` and ``check_inbox`` for
    ``mailbox`` (async ``Mailbox`` or ``mailslot.sync`` mailbox).

    ``client`` (the ``Mailslot`` the mailbox was opened on) enables ``broadcast``. With
    ``durable_ask=True``, ``ask_agent`` pauses the whole graph with ``interrupt()`` until a
    :class:`~mailslot_langgraph.Resumer` resumes it with the reply (needs a checkpointer);
    otherwise it waits up to ``ask_timeout`` seconds in the tool call.
    """
    return MailboxTools(
        mailbox, client=client, ask_timeout=ask_timeout, durable_ask=durable_ask, loop=loop
    ).tools(include)
