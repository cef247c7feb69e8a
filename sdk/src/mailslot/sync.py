"""The sync twin: the same names and signatures as the async API, for sync callers
(scripts, CrewAI tools). Every call runs on one background event-loop thread.

>>> from mailslot import sync
>>> with sync.connect() as ms:
...     ms.send("coder", {"task": 7}, priority="urgent")
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from mailslot_broker import protocol as p

from ._portal import PORTAL
from .broadcast import Published, Replay, SyncTopicSubscription
from .client import Mailslot
from .connection import open_client
from .deadletters import DeadLetter, DeadLetters
from .mailbox import AgentCard, Mailbox
from .message import Message, Receipt
from .options import DEFAULT_FAILOVER_TIMEOUT, ConnectOptions
from .registry import SyncAgentWatch
from .view import MailboxStats, MailboxView

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


class SyncMailbox(SyncMailboxView):
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
    ) -> Receipt:
        return PORTAL.call(
            self._mb.send(
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
            )
        )


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
    ) -> SyncMessage:
        return SyncMessage(
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
                )
            )
        )

    def reply_for(
        self, correlation_id: str, *, timeout: float | timedelta | None = None, keep: bool = False
    ) -> SyncMessage:
        return SyncMessage(PORTAL.call(self._mb.reply_for(correlation_id, timeout=timeout, keep=keep)))

    def close(self) -> None:
        PORTAL.call(self._mb.close())

    def destroy(self) -> None:
        PORTAL.call(self._mb.destroy())

    def __iter__(self) -> Iterator[SyncMessage]:
        from .errors import MailboxClosed

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


class SyncMailslot:
    """Blocking twin of :class:`mailslot.Mailslot`. Create with :func:`connect`."""

    def __init__(self, client: Mailslot) -> None:
        self._c = client

    @property
    def aio(self) -> Mailslot:
        """The async client underneath (its loop is the background thread's)."""
        return self._c

    @property
    def url(self) -> str:
        return self._c.url

    @property
    def name(self) -> str | None:
        return self._c.name

    @property
    def server_version(self) -> str:
        return self._c.server_version

    @property
    def connected(self) -> bool:
        return self._c.connected

    @property
    def closed(self) -> bool:
        return self._c.closed

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
    ) -> Receipt:
        return PORTAL.call(
            self._c.send(
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
            )
        )

    def send_many(self, messages: Iterable[Mapping[str, Any]], *, window: int = 512) -> list[Receipt]:
        return PORTAL.call(self._c.send_many(messages, window=window))

    def open(
        self,
        address: str | None = None,
        *,
        ttl: float | timedelta = p.DEFAULT_LEASE_TTL,
        keep: float | timedelta | None = None,
        card: AgentCard | Mapping[str, Any] | None = None,
        ack_wait: float | timedelta = 30.0,
        max_deliver: int = 5,
        backoff: Iterable[float] = (),
        prefetch: int = 1,
        heartbeat: float | timedelta | None = None,
    ) -> SyncMailbox:
        mb = PORTAL.call(
            self._c.open(
                address,
                ttl=ttl,
                keep=keep,
                card=card,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                backoff=backoff,
                prefetch=prefetch,
                heartbeat=heartbeat,
            )
        )
        return SyncMailbox(mb)

    def publish(
        self,
        topic: str,
        payload: Any,
        *,
        durable: bool = False,
        ttl: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Published:
        return PORTAL.call(self._c.publish(topic, payload, durable=durable, ttl=ttl, headers=headers))

    def subscribe(
        self, pattern: str, *, queue: str | None = None, replay: Replay = None
    ) -> SyncTopicSubscription:
        """Listening when it returns; iterate it (blocking) or call ``next(timeout=...)``."""

        async def _start() -> Any:
            return await self._c.subscribe(pattern, queue=queue, replay=replay)

        return SyncTopicSubscription(PORTAL.call(_start()))

    def agents(
        self, *, capability: str | None = None, tag: str | None = None, include_offline: bool = False
    ) -> list[AgentCard]:
        return PORTAL.call(self._c.agents(capability=capability, tag=tag, include_offline=include_offline))

    def watch_agents(self, *, initial: bool = False) -> SyncAgentWatch:
        async def _start() -> Any:
            return await self._c.watch_agents(initial=initial)

        return SyncAgentWatch(PORTAL.call(_start()))

    @property
    def dead_letters(self) -> SyncDeadLetters:
        return SyncDeadLetters(self._c.dead_letters)

    def inspect(self, address: str) -> SyncMailboxView:
        return SyncMailboxView(self._c.inspect(address))

    def close(self) -> None:
        PORTAL.call(self._c.close())

    def __enter__(self) -> SyncMailslot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    url: str | list[str] | None = None,
    *,
    credentials: str | Path | None = None,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    tenant: str | None = None,
    name: str | None = None,
    timeout: float = 5.0,
    provision_streams: bool = True,
    settings: p.StreamSettings | None = None,
    tls_ca: str | Path | None = None,
    publish_retry_for: float = 20.0,
    outage_timeout: float = 5.0,
    receive_outage_timeout: float = 60.0,
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT,
) -> SyncMailslot:
    """Blocking twin of :func:`mailslot.connect` (same reconnect and outage behaviour: a call
    waits for a dropped connection up to ``outage_timeout``, then raises
    :class:`~mailslot.Disconnected`)."""

    options = ConnectOptions(
        url=url,
        credentials=credentials,
        user=user,
        password=password,
        token=token,
        tenant=tenant,
        name=name,
        timeout=timeout,
        provision_streams=provision_streams,
        settings=settings,
        tls_ca=tls_ca,
        publish_retry_for=publish_retry_for,
        outage_timeout=outage_timeout,
        receive_outage_timeout=receive_outage_timeout,
        failover_timeout=failover_timeout,
    )
    return SyncMailslot(PORTAL.call(open_client(options)))


def event_loop() -> asyncio.AbstractEventLoop:
    """The background loop every sync client runs on. Async objects obtained through ``.aio``
    belong to it: schedule work on it with ``asyncio.run_coroutine_threadsafe``."""
    return PORTAL.loop()


__all__ = [
    "SyncDeadLetters",
    "SyncMailbox",
    "SyncMailboxView",
    "SyncMailslot",
    "SyncMessage",
    "connect",
    "event_loop",
]
