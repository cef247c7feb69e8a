"""A local stand-in for an agent that lives somewhere else, reachable only by mail.

:class:`MailslotRemoteAgent` is an ordinary AgentChat ``BaseChatAgent``: put it in a
``RoundRobinGroupChat`` next to local agents and its turn becomes a durable ``ask`` to the
remote agent's mailbox. The reply waits in *our* mailbox, so a remote agent that is slow, busy
or restarting still answers, within ``timeout``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import mailslot
from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import Response
from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage, MessageFactory, TextMessage
from autogen_core import CancellationToken

from .codec import AgentTask, parse_result


class RemoteAgentError(mailslot.MailslotError):
    """The remote agent answered with an error instead of a result."""


class MailslotRemoteAgent(BaseChatAgent):
    """Delegates every turn to the agent served at ``remote`` (see :class:`AgentWorker`).

    Only the messages that are new since this agent's last turn are sent; the remote side keeps
    its own context per conversation (``thread_id``, fresh after :meth:`on_reset`).
    """

    def __init__(
        self,
        name: str,
        *,
        mailbox: mailslot.Mailbox,
        remote: str,
        description: str | None = None,
        timeout: float = 300.0,
        priority: str = "normal",
    ) -> None:
        super().__init__(name=name, description=description or f"remote agent at mailbox {remote}")
        self._mailbox = mailbox
        self._remote = remote
        self._timeout = timeout
        self._priority = priority
        self._thread = uuid.uuid4().hex
        self._factory = MessageFactory()

    @property
    def remote(self) -> str:
        return self._remote

    @property
    def produced_message_types(self) -> Sequence[type[BaseChatMessage]]:
        return (TextMessage,)

    async def on_messages(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> Response:
        final: Response | None = None
        async for item in self.on_messages_stream(messages, cancellation_token):
            if isinstance(item, Response):
                final = item
        assert final is not None
        return final

    async def on_messages_stream(
        self, messages: Sequence[BaseChatMessage], cancellation_token: CancellationToken
    ) -> AsyncGenerator[BaseAgentEvent | BaseChatMessage | Response, None]:
        task = AgentTask.from_messages(messages)
        fut: asyncio.Future[Any] = asyncio.ensure_future(self._ask(task))
        cancellation_token.link_future(fut)
        result = await fut
        if result.kind == "autogen.error":
            raise RemoteAgentError(f"{self._remote} failed: {result.error}")
        inner: list[BaseAgentEvent | BaseChatMessage] = []
        for raw in result.messages[:-1]:
            try:
                inner.append(self._factory.create(raw))
            except Exception:
                continue
        yield Response(
            chat_message=TextMessage(content=result.content, source=self.name), inner_messages=inner
        )

    async def _ask(self, task: AgentTask) -> Any:
        receipt = await self._mailbox.request(
            self._remote,
            task.model_dump(mode="json"),
            priority=self._priority,
            thread_id=self._thread,
        )
        reply = await self._mailbox.reply_for(receipt.id, timeout=self._timeout)
        try:
            return parse_result(reply)
        finally:
            await reply.ack()

    async def on_reset(self, cancellation_token: CancellationToken) -> None:
        """A new conversation: the remote side sees a new thread id."""
        self._thread = uuid.uuid4().hex


__all__ = ["MailslotRemoteAgent", "RemoteAgentError"]
