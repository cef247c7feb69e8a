"""How :class:`~mailslot_autogen.MailslotAgentRuntime` turns mail into handler calls and back:
the wire format (AutoGen's serializers, routing in ``Autogen-*`` headers), the receive loops of
the agent-type mailboxes and the live topics, replies and errors, and the retry policy. Kept
apart from the runtime's public surface (lifecycle, sending, registration)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any

import mailslot
from autogen_core import (
    JSON_DATA_CONTENT_TYPE,
    AgentId,
    CancellationToken,
    MessageContext,
    MessageHandlerContext,
    TopicId,
    try_get_known_serializers_for_type,
)
from autogen_core._runtime_impl_helpers import SubscriptionManager
from autogen_core._serialization import UnknownPayload

from . import addressing as a
from ._host import AgentHostMixin
from .addressing import H

log = logging.getLogger("mailslot_autogen.runtime")

#: Delay before a message whose state save met another replica's newer state runs again.
_CONFLICT_RETRY = 0.2


class MailHandling(AgentHostMixin):
    """The receiving half of the runtime; the runtime sets these attributes up."""

    _client: mailslot.Mailslot
    _ns: str
    _box_opts: dict[str, Any]
    _backoff: tuple[float, ...]
    _sem: asyncio.Semaphore
    _live_topics: bool
    _subs: SubscriptionManager
    _boxes: dict[str, mailslot.Mailbox]
    _topic_subs: list[Any]
    _loops: list[asyncio.Task[None]]
    _inflight: set[asyncio.Task[None]]
    _stopped: bool

    async def _started(self) -> mailslot.Mailbox:
        raise NotImplementedError

    # -- wire ---------------------------------------------------------------------------------

    def _encode(self, message: Any) -> tuple[bytes, dict[str, str]]:
        type_name = self._ser.type_name(message)
        if not self._ser.is_registered(type_name, JSON_DATA_CONTENT_TYPE):
            self._ser.add_serializer(try_get_known_serializers_for_type(type(message)))
        data = self._ser.serialize(message, type_name=type_name, data_content_type=JSON_DATA_CONTENT_TYPE)
        return data, {H.TYPE_NAME: type_name, H.CONTENT_TYPE: JSON_DATA_CONTENT_TYPE}

    def _decode(self, data: bytes, headers: Mapping[str, str]) -> Any:
        type_name = headers.get(H.TYPE_NAME, "")
        content_type = headers.get(H.CONTENT_TYPE, JSON_DATA_CONTENT_TYPE)
        return self._ser.deserialize(data, type_name=type_name, data_content_type=content_type)

    @staticmethod
    def _route(
        kind: str, sender: AgentId | None, message_id: str | None, topic: TopicId | None = None
    ) -> dict[str, str]:
        h = {H.KIND: kind, H.MESSAGE_ID: message_id or uuid.uuid4().hex}
        if sender is not None:
            h[H.SENDER] = a.enc(str(sender))
        if topic is not None:
            h[H.TOPIC_TYPE], h[H.TOPIC_SOURCE] = a.enc(topic.type), a.enc(topic.source)
        return h

    @staticmethod
    def _context(h: Mapping[str, str], *, is_rpc: bool) -> MessageContext:
        sender = AgentId.from_str(a.dec(h[H.SENDER])) if h.get(H.SENDER) else None
        topic = (
            TopicId(a.dec(h[H.TOPIC_TYPE]), a.dec(h.get(H.TOPIC_SOURCE, ""))) if h.get(H.TOPIC_TYPE) else None
        )
        return MessageContext(
            sender=sender,
            topic_id=topic,
            is_rpc=is_rpc,
            cancellation_token=CancellationToken(),
            message_id=h.get(H.MESSAGE_ID, ""),
        )

    # -- receiving ----------------------------------------------------------------------------

    async def _host(self, agent_type: str) -> None:
        """Open the type's mailbox and its broadcast queue subscription, once."""
        if agent_type in self._boxes or self._stopped:
            return
        await self._started()
        box = await self._client.open(a.type_address(self._ns, agent_type), **self._box_opts)
        self._boxes[agent_type] = box
        self._loops.append(asyncio.create_task(self._mail_loop(box), name=f"autogen-rt:{agent_type}"))
        if self._live_topics:
            sub = await self._client.subscribe(
                a.topic_pattern(self._ns), queue=a.queue_group(self._ns, agent_type)
            )
            self._topic_subs.append(sub)
            self._loops.append(asyncio.create_task(self._topic_loop(sub, agent_type)))

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:  # settling failed (connection lost?): the server redelivers
                log.exception("mailslot runtime: message handling failed")

        task: asyncio.Task[None] = asyncio.ensure_future(guarded())
        self._inflight.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._inflight.discard(t)
            self._sem.release()

        task.add_done_callback(done)

    async def _mail_loop(self, box: mailslot.Mailbox) -> None:
        # Handlers run concurrently: one that sends to another agent here must not block it.
        while True:
            try:
                msg = await box.receive()
            except mailslot.MailboxClosed:
                return
            except mailslot.MailslotError:
                log.exception("mailslot runtime: receive on %s failed; retrying", box.address)
                await asyncio.sleep(1.0)
                continue
            await self._sem.acquire()
            self._spawn(self._handle_mail(box, msg))

    async def _handle_mail(self, box: mailslot.Mailbox, msg: mailslot.Message) -> None:
        h = msg.headers
        is_rpc = h.get(H.KIND) == "rpc"
        try:
            rid = AgentId(a.dec(h[H.RECIPIENT_TYPE]), a.dec(h[H.RECIPIENT_KEY]))
            message = self._decode(msg.data, h)
            if isinstance(message, UnknownPayload):
                raise TypeError(f"no serializer for message type {message.type_name!r} in this runtime")
            result = await self._deliver(rid, message, self._context(h, is_rpc=is_rpc))
        except mailslot.StateConflict:  # another replica moved the agent on: run on its state
            await msg.nak(delay=_CONFLICT_RETRY)
            log.info("state of %s changed elsewhere; %s runs again on it", h.get(H.RECIPIENT_KEY), msg.id)
            return
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if is_rpc:  # the caller gets the error, like a local send_message would raise it
                await self._reply(box, msg, None, error=reason)
                await msg.ack()
            elif msg.delivery_count >= int(self._box_opts["max_deliver"]):
                await msg.term(reason=reason[:200])
            else:
                delay = self._backoff[min(msg.delivery_count - 1, len(self._backoff) - 1)]
                await msg.nak(delay=delay)
            log.warning("handler for %s failed: %s", msg.id, reason)
            return
        if is_rpc:
            await self._reply(box, msg, result)
        await msg.ack()

    async def _reply(
        self, box: mailslot.Mailbox, msg: mailslot.Message, result: Any, *, error: str | None = None
    ) -> None:
        if not msg.reply_to:
            return
        if error is not None:
            data, h = error.encode(), {H.KIND: "error", H.ERROR: a.enc(error)}
        elif result is None:
            data, h = b"", {H.KIND: "result"}
        else:
            data, h = self._encode(result)
            h[H.KIND] = "result"
        # Through the client, not the mailbox: a handler finishing during stop() (mailbox
        # already closed to new mail) still answers.
        await self._client.send(
            msg.reply_to,
            data,
            sender=box.address,
            priority=msg.priority,
            headers=h,
            correlation_id=msg.correlation_id or msg.id,
            idempotency_key=f"{msg.id}.reply",
        )

    async def _topic_loop(self, sub: Any, agent_type: str) -> None:
        async for ev in sub:
            await self._sem.acquire()
            self._spawn(self._handle_broadcast(ev, agent_type))

    async def _handle_broadcast(self, ev: Any, agent_type: str) -> None:
        h = ev.headers
        covered = {a.dec(t) for t in h.get(H.COVERED, "").split(",") if t}
        if agent_type in covered or not h.get(H.TOPIC_TYPE):
            return
        ctx = self._context(h, is_rpc=False)
        assert ctx.topic_id is not None
        recipients = [
            r for r in await self._subs.get_subscribed_recipients(ctx.topic_id) if r.type == agent_type
        ]
        if not recipients:
            return
        message = self._decode(ev.data, h)
        for rid in recipients:
            if ctx.sender is not None and rid == ctx.sender:
                continue
            try:
                await self._deliver(rid, message, self._context(h, is_rpc=False))
            except Exception:
                log.exception("event handler of %s failed", rid)

    async def _deliver(self, rid: AgentId, message: Any, ctx: MessageContext) -> Any:
        agent = await self._get_agent(rid)
        with MessageHandlerContext.populate_context(agent.id):
            result = await agent.on_message(message, ctx=ctx)
        await self._autosave(agent)  # before the ack: a crash after it re-runs the message
        return result


__all__ = ["MailHandling"]
