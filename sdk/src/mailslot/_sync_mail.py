"""Sync twins of a mailbox and what it hands out: messages, replies, the stored view and the
dead letters. Part of :mod:`mailslot.sync` (import them from there)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from mailslot_broker import protocol as p

from ._portal import PORTAL
from .deadletters import DeadLetter, DeadLetters
from .errors import MailboxClosed
from .mailbox import AgentCard, Mailbox
from .message import Message, Receipt
from .requests import Reply
from .view import MailboxStats, MailboxView

if TYPE_CHECKING:
    from .client import Mailslot

T = TypeVar("T")


class SyncMessage:
    """Blocking twin of :class:`mailslot.Message`."""

    def __init__(self, message: Message) -> None:
        self._m = message

    @property
    def aio(self) -> Message:
        return self._m

    def __getattr__(self, name: str) -> Any:  # metadata and payload accessors are sync already
        return getattr(self._m, name)

    def json(self) -> Any:
        return self._m.json()

    def model(self, model: type[T]) -> T:
        return self._m.model(model)

    def ack(self) -> None:
        PORTAL.call(self._m.ack())

    def nak(self, *, delay: float | None = None) -> None:
        PORTAL.call(self._m.nak(delay=delay))

    def term(self, *, reason: str | None = None) -> None:
        PORTAL.call(self._m.term(reason=reason))

    def in_progress(self) -> None:
        PORTAL.call(self._m.in_progress())

    def reply(
        self,
        payload: Any,
        *,
        priority: p.Priority | str | int | None = None,
        headers: Mapping[str, str] | None = None,
        ttl: float | None = None,
    ) -> Receipt:
        return PORTAL.call(self._m.reply(payload, priority=priority, headers=headers, ttl=ttl))

    def __repr__(self) -> str:
        return repr(self._m)


class SyncReply(SyncMessage):
    """Blocking twin of :class:`mailslot.Reply`, what ``ask`` and ``reply_for`` return: ``ack``
    deletes a reply kept with ``keep=True`` (else it is a no-op), ``nak`` and ``term`` refuse."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply)
        self._r = reply

    @property
    def aio(self) -> Reply:
        return self._r


class SyncMailboxView:
    def __init__(self, view: MailboxView) -> None:
        self._v = view

    @property
    def address(self) -> str:
        return self._v.address

    def peek(self, limit: int = 10) -> list[SyncMessage]:
        return [SyncMessage(m) for m in PORTAL.call(self._v.peek(limit))]

    def stats(self) -> MailboxStats:
        return PORTAL.call(self._v.stats())

    def query(
        self,
        *,
        tags: Iterable[str] | None = None,
        key: str | None = None,
        since: datetime | float | None = None,
        priority: p.Priority | str | int | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[SyncMessage]:
        found = PORTAL.call(
            self._v.query(tags=tags, key=key, since=since, priority=priority, after=after, limit=limit)
        )
        return [SyncMessage(m) for m in found]

    def last_seq(self) -> int:
        return PORTAL.call(self._v.last_seq())

    def delete(self, message: int | str | SyncMessage | Message) -> None:
        PORTAL.call(self._v.delete(message.aio if isinstance(message, SyncMessage) else message))


class _SyncSends:
    """``send`` for the twins that have one (the client and a mailbox), spelled out once: the
    twin test compares its keyword arguments with the async ones."""

    def _sends_with(self) -> Mailbox | Mailslot:
        raise NotImplementedError

    def send(
        self,
        to: str,
        payload: Any,
        *,
        priority: p.Priority | str | int = "normal",
        ttl: float | timedelta | None = None,
        delay: float | timedelta | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        thread_id: str | None = None,
        sender: str | None = None,
        notify_undelivered: bool = False,
        tags: Iterable[str] | None = None,
        replace_key: str | None = None,
    ) -> Receipt:
        return PORTAL.call(
            self._sends_with().send(
                to,
                payload,
                priority=priority,
                ttl=ttl,
                delay=delay,
                idempotency_key=idempotency_key,
                headers=headers,
                reply_to=reply_to,
                correlation_id=correlation_id,
                thread_id=thread_id,
                sender=sender,
                notify_undelivered=notify_undelivered,
                tags=tags,
                replace_key=replace_key,
            )
        )


class SyncMailbox(SyncMailboxView, _SyncSends):
    """Blocking twin of :class:`mailslot.Mailbox`."""

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__(mailbox)
        self._mb = mailbox

    @property
    def aio(self) -> Mailbox:
        return self._mb

    @property
    def closed(self) -> bool:
        return self._mb.closed

    @property
    def resumed(self) -> bool:
        return self._mb.resumed

    @property
    def card(self) -> AgentCard:
        return self._mb.card

    def _sends_with(self) -> Mailbox:
        return self._mb

    def receive(self, *, timeout: float | timedelta | None = None) -> SyncMessage:
        return SyncMessage(PORTAL.call(self._mb.receive(timeout=timeout)))

    def ack_many(self, messages: Iterable[SyncMessage]) -> None:
        PORTAL.call(self._mb.ack_many([m.aio for m in messages]))

    def receive_batch(self, *, max: int = 100, timeout: float | timedelta | None = None) -> list[SyncMessage]:
        return [SyncMessage(m) for m in PORTAL.call(self._mb.receive_batch(max=max, timeout=timeout))]

    def request(
        self,
        to: str,
        payload: Any,
        *,
        priority: p.Priority | str | int = "normal",
        thread_id: str | None = None,
        idempotency_key: str | None = None,
        ttl: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        sender: str | None = None,
    ) -> Receipt:
        return PORTAL.call(
            self._mb.request(
                to,
                payload,
                priority=priority,
                thread_id=thread_id,
                idempotency_key=idempotency_key,
                ttl=ttl,
                headers=headers,
                sender=sender,
            )
        )

    def ask(
        self,
        to: str,
        payload: Any,
        *,
        timeout: float | timedelta,
        priority: p.Priority | str | int = "normal",
        thread_id: str | None = None,
        idempotency_key: str | None = None,
        ttl: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        sender: str | None = None,
    ) -> SyncReply:
        return SyncReply(
            PORTAL.call(
                self._mb.ask(
                    to,
                    payload,
                    timeout=timeout,
                    priority=priority,
                    thread_id=thread_id,
                    idempotency_key=idempotency_key,
                    ttl=ttl,
                    headers=headers,
                    sender=sender,
                )
            )
        )

    def reply_for(
        self, correlation_id: str, *, timeout: float | timedelta | None = None, keep: bool = False
    ) -> SyncReply:
        return SyncReply(PORTAL.call(self._mb.reply_for(correlation_id, timeout=timeout, keep=keep)))

    def close(self) -> None:
        PORTAL.call(self._mb.close())

    def destroy(self) -> None:
        PORTAL.call(self._mb.destroy())

    def __iter__(self) -> Iterator[SyncMessage]:
        while True:
            try:
                yield self.receive()
            except MailboxClosed:
                return

    def __enter__(self) -> SyncMailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._mb)


class SyncDeadLetters:
    """Blocking twin of :class:`mailslot.deadletters.DeadLetters`."""

    def __init__(self, dl: DeadLetters) -> None:
        self._dl = dl

    def list(self, address: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        return PORTAL.call(self._dl.list(address, limit=limit))

    def get(self, ref: str | int) -> DeadLetter:
        return PORTAL.call(self._dl.get(ref))

    def requeue(self, ref: str | int | DeadLetter) -> Receipt | None:
        return PORTAL.call(self._dl.requeue(ref))

    def purge(self, address: str | None = None) -> int:
        return PORTAL.call(self._dl.purge(address))

    def count(self, address: str | None = None) -> int:
        return PORTAL.call(self._dl.count(address))

    def term(self, message: SyncMessage | Message, *, reason: str | None = None) -> None:
        m = message.aio if isinstance(message, SyncMessage) else message
        PORTAL.call(self._dl.term(m, reason=reason))


__all__ = ["SyncDeadLetters", "SyncMailbox", "SyncMailboxView", "SyncMessage", "SyncReply"]
