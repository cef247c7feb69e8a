"""AutoGen ``FunctionTool``s that let a tool-calling agent use its own mailbox.

The tools are closures over one :class:`mailslot.Mailbox`, so the model never chooses *who*
it is: it only picks recipients, priorities and topics. Results are short strings, because
that is what goes back into the model's context.

Argument names are the same in the LangGraph and CrewAI tools: ``to``, ``message``,
``question``, ``topic``, ``priority``. ``message`` and ``question`` may be a string, sent as
``text/plain`` exactly as given, or a JSON object or array, sent as ``application/json`` (a
receiver reads it with ``msg.json()``). ``body``, the name these tools used before, is still
accepted for ``message`` (a replayed or stored tool call keeps working); the schema shows
``message`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mailslot
from autogen_core import CancellationToken
from autogen_core.tools import FunctionTool
from mailslot import tracing

TOOL_NAMES = ("send_message", "ask_agent", "broadcast", "check_inbox")

Payload = str | dict[str, Any] | list[Any]
"""A tool's ``message`` / ``question``: text (``text/plain``) or structured (JSON)."""


class _MailTool(FunctionTool):
    """A ``FunctionTool`` that also takes ``body``, the old name of ``message``."""

    async def run_json(
        self, args: Mapping[str, Any], cancellation_token: CancellationToken, call_id: str | None = None
    ) -> Any:
        if "body" in args and "message" not in args:
            args = {("message" if k == "body" else k): v for k, v in args.items()}
        return await super().run_json(args, cancellation_token, call_id)


def _describe(msg: mailslot.Message) -> str:
    try:
        body = msg.text()
    except mailslot.DecodeError:
        body = f"<{len(msg.data)} bytes>"
    return f"[{msg.priority.label}] from {msg.sender or 'unknown'} (id {msg.id}): {body}"


def mailbox_tools(
    mailbox: mailslot.Mailbox,
    *,
    client: mailslot.Mailslot | None = None,
    ask_timeout: float = 60.0,
    inbox_wait: float = 0.5,
    include: Sequence[str] = TOOL_NAMES,
) -> list[FunctionTool]:
    """Tools bound to ``mailbox``: send, ask (durable request/reply), broadcast, check inbox.

    ``client`` is the connection used for ``broadcast`` (publishing needs no mailbox); by
    default the one that opened ``mailbox``. ``include`` picks a subset by name.
    """
    unknown = set(include) - set(TOOL_NAMES)
    if unknown:
        raise ValueError(f"unknown mailbox tools {sorted(unknown)}; choose from {TOOL_NAMES}")
    conn = client or mailbox._client  # the mailbox's own connection

    async def send_message(to: str, message: Payload, priority: str = "normal") -> str:
        """Send a message to another agent's mailbox. It waits there until that agent reads it,
        even if it is offline now. message: text, or a JSON object for structured data.
        priority: low, normal, urgent or critical."""
        with tracing.tool("autogen", "send_message"):
            receipt = await mailbox.send(to, message, priority=priority)
        return f"sent to {to} (id {receipt.id}, priority {receipt.priority.label})"

    async def ask_agent(to: str, question: Payload, priority: str = "normal") -> str:
        """Ask another agent a question and wait for its answer (the answer arrives in this
        agent's own mailbox)."""
        try:
            with tracing.tool("autogen", "ask_agent"):
                answer = await mailbox.ask(to, question, timeout=ask_timeout, priority=priority)
        except mailslot.Timeout:
            return f"no answer from {to} within {ask_timeout:g} s; it may answer later"
        try:
            text = answer.text()
        finally:
            await answer.ack()
        return text

    async def broadcast(topic: str, message: Payload) -> str:
        """Broadcast a message on a topic to every agent listening to it."""
        await conn.publish(topic, message)
        return f"published on {topic}"

    async def check_inbox(max_messages: int = 10) -> str:
        """Read (and acknowledge) up to max_messages new messages from this agent's mailbox,
        most urgent first."""
        limit = max(1, int(max_messages))
        got = await mailbox.receive_batch(max=limit, timeout=inbox_wait)
        while got and len(got) < limit:  # a batch comes from one priority level: go on below
            more = await mailbox.receive_batch(max=limit - len(got), timeout=0.05)
            if not more:
                break
            got.extend(more)
        if not got:
            return "no new messages"
        lines = []
        for m in got:
            lines.append(_describe(m))
            await m.ack()
        return "\n".join(lines)

    funcs: dict[str, tuple[Callable[..., Any], str]] = {
        "send_message": (send_message, "Send a message to another agent's mailbox."),
        "ask_agent": (ask_agent, "Ask another agent a question and wait for its reply."),
        "broadcast": (broadcast, "Broadcast a message on a topic."),
        "check_inbox": (check_inbox, "Read new messages from this agent's mailbox."),
    }
    tools: list[FunctionTool] = [
        _MailTool(funcs[n][0], description=funcs[n][1], name=n) for n in TOOL_NAMES if n in include
    ]
    return tools


__all__ = ["TOOL_NAMES", "Payload", "mailbox_tools"]
