"""CrewAI tools that let an agent use its mailbox: send, ask, broadcast, check inbox.

CrewAI calls a tool's ``_run`` synchronously (and ``_arun`` under ``akickoff``), from
whatever thread the crew runs on, so every tool talks to Mailslot through the sync twin
(``mailslot.sync``), whose calls run on its own background loop. ``_arun`` moves the
blocking call to a worker thread so a crew running on an event loop (a worker, a
notebook) keeps that loop free while an ``ask`` waits for its answer.

Tools report failures (unknown priority, no reply in time, ...) as text instead of
raising: the agent reads the result and can decide what to do next.

Argument names are the same in the LangGraph and AutoGen tools: ``to``, ``message``,
``question``, ``topic``, ``priority``. ``message`` and ``question`` may be a string, sent as
``text/plain`` exactly as given, or a JSON object or array, sent as ``application/json`` (a
receiver reads it with ``msg.json()``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import mailslot
from crewai.tools import BaseTool
from mailslot import tracing
from mailslot.sync import SyncMailbox, SyncMailslot, SyncMessage
from pydantic import BaseModel, ConfigDict, Field

PriorityName = Literal["low", "normal", "urgent", "critical"]

Payload = str | dict[str, Any] | list[Any]
"""A tool's ``message`` / ``question``: text (``text/plain``) or structured (JSON)."""


def _as_text(payload: Any) -> str:
    return payload if isinstance(payload, str) else json.dumps(payload, default=str)


def message_text(msg: SyncMessage | mailslot.Message) -> str:
    """The payload as an agent should read it: text when it decodes, JSON otherwise."""
    try:
        return msg.text()
    except mailslot.DecodeError:
        return repr(msg.data)


class _MailTool(BaseTool):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    async def _arun(self, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._run, *args, **kwargs)


# -- send ----------------------------------------------------------------------------------


class SendArgs(BaseModel):
    to: str = Field(..., description="address of the agent's mailbox, e.g. 'reviewer'")
    message: Payload = Field(..., description="the message: text, or a JSON object for structured data")
    priority: PriorityName = Field("normal", description="low, normal, urgent or critical")
    thread_id: str | None = Field(None, description="conversation id to keep related mail together")


class SendMessageTool(_MailTool):
    """Fire-and-forget mail: returns once the broker stored it, whether or not the
    receiver is online."""

    name: str = "send_message"
    description: str = (
        "Send a message to another agent's mailbox. It waits there until the agent reads it, "
        "even if that agent is offline now. Does not wait for an answer."
    )
    args_schema: type[BaseModel] = SendArgs
    mailbox: SyncMailbox | SyncMailslot = Field(exclude=True)
    ttl: float | None = None

    def _run(self, to: str, message: Payload, priority: str = "normal", thread_id: str | None = None) -> str:
        try:
            with tracing.tool("crewai", "send_message"):
                r = self.mailbox.send(to, message, priority=priority, thread_id=thread_id, ttl=self.ttl)
        except mailslot.MailslotError as exc:
            return f"could not send to {to}: {exc}"
        return f"sent message {r.id} to {to} ({r.priority.label})"


# -- ask -----------------------------------------------------------------------------------


class AskArgs(BaseModel):
    to: str = Field(..., description="address of the agent to ask")
    question: Payload = Field(..., description="the question or task: text, or a JSON object")
    priority: PriorityName = Field("normal", description="low, normal, urgent or critical")


class AskAgentTool(_MailTool):
    """Durable request/reply: the question carries this agent's mailbox as reply-to, and
    the answer waits in that mailbox (even across a restart) until it is read."""

    name: str = "ask_agent"
    description: str = (
        "Ask another agent a question through its mailbox and wait for its answer. Returns the answer text."
    )
    args_schema: type[BaseModel] = AskArgs
    mailbox: SyncMailbox = Field(exclude=True)
    timeout: float = 60.0

    def _run(self, to: str, question: Payload, priority: str = "normal") -> str:
        try:
            with tracing.tool("crewai", "ask_agent"):
                reply = self.mailbox.ask(to, question, timeout=self.timeout, priority=priority)
        except mailslot.Timeout:
            return f"no answer from {to} within {self.timeout:g} s; the answer will wait in the mailbox"
        except mailslot.MailslotError as exc:
            return f"could not ask {to}: {exc}"
        text = message_text(reply)
        reply.ack()
        return text


# -- broadcast -------------------------------------------------------------------------------


class BroadcastArgs(BaseModel):
    topic: str = Field(..., description="dot-separated topic, e.g. 'build.done'")
    message: Payload = Field(..., description="the announcement: text, or a JSON object")


class BroadcastTool(_MailTool):
    """Publish to everyone subscribed to a topic; nobody has to be known by address."""

    name: str = "broadcast"
    description: str = (
        "Announce something to every agent subscribed to a topic (dot-separated, e.g. "
        "'research.findings'). Does not wait for answers."
    )
    args_schema: type[BaseModel] = BroadcastArgs
    client: SyncMailslot = Field(exclude=True)
    durable: bool = False
    topic_prefix: str | None = None

    def _run(self, topic: str, message: Payload) -> str:
        full = f"{self.topic_prefix}.{topic}" if self.topic_prefix else topic
        try:
            self.client.publish(full, message, durable=self.durable)
        except mailslot.MailslotError as exc:
            return f"could not broadcast on {full}: {exc}"
        return f"broadcast on {full}"


# -- check inbox --------------------------------------------------------------------------------


class InboxArgs(BaseModel):
    max_messages: int = Field(10, ge=1, le=100, description="read at most this many messages")


class CheckInboxTool(_MailTool):
    """Reads (and acks) what is waiting, most urgent first. Acked after formatting, so a
    message is consumed once the agent has been shown it."""

    name: str = "check_inbox"
    description: str = (
        "Read the messages waiting in your mailbox, most urgent first. Each line shows "
        "priority, sender, message id and text. Messages are removed once read."
    )
    args_schema: type[BaseModel] = InboxArgs
    mailbox: SyncMailbox = Field(exclude=True)
    wait: float = 1.0

    def _run(self, max_messages: int = 10) -> str:
        try:
            # A batch comes from one priority level; keep going down the levels without
            # waiting until ``max_messages`` or an empty mailbox.
            msgs = self.mailbox.receive_batch(max=max_messages, timeout=self.wait)
            while msgs and len(msgs) < max_messages:
                more = self.mailbox.receive_batch(max=max_messages - len(msgs), timeout=0)
                if not more:
                    break
                msgs.extend(more)
        except mailslot.MailslotError as exc:
            return f"could not read the mailbox: {exc}"
        if not msgs:
            return "no messages"
        lines = []
        for m in msgs:
            head = f"[{m.priority.label}] from {m.sender or 'unknown'} (id {m.id}"
            if m.thread_id:
                head += f", thread {m.thread_id}"
            lines.append(f"{head}): {message_text(m)}")
            m.ack()
        return "\n".join(lines)


def mailbox_tools(
    client: SyncMailslot,
    mailbox: SyncMailbox,
    *,
    ask_timeout: float = 60.0,
    durable_broadcast: bool = False,
    topic_prefix: str | None = None,
) -> list[BaseTool]:
    """The four tools for an agent whose mailbox is ``mailbox``."""
    return [
        SendMessageTool(mailbox=mailbox),
        AskAgentTool(mailbox=mailbox, timeout=ask_timeout),
        BroadcastTool(client=client, durable=durable_broadcast, topic_prefix=topic_prefix),
        CheckInboxTool(mailbox=mailbox),
    ]


__all__ = [
    "AskAgentTool",
    "BroadcastTool",
    "CheckInboxTool",
    "Payload",
    "SendMessageTool",
    "mailbox_tools",
    "message_text",
]
