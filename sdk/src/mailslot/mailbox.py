"""An open mailbox: the lease, the four priority consumers and the receive loop.

Receiving follows DESIGN.md: one durable pull consumer per priority with an exact filter.
The loop pulls ``no_wait`` from the highest level that may hold mail and serves the first
non-empty one. It knows which levels may hold mail from the headers-only "bell" the stream
republishes after storing each message, so an idle mailbox sends no requests at all; the only
mail that rings no bell is a redelivery, which the loop schedules itself for messages it
handed out (ack wait, nak delay), plus a slow heartbeat sweep for mail left unacked by a
crashed replica of the same agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mailslot_broker import protocol as p
from mailslot_broker.reclaim import reclaim_mailbox
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, Field

from ._boundary import address as check_address
from ._boundary import boundary, plain_seconds, seconds
from ._receiving import PriorityReceiving
from .errors import InvalidInput, MailboxClosed, MailboxDestroyed, Timeout
from .lease import Lease
from .message import Message, Receipt
from .view import MailboxView

if TYPE_CHECKING:
    from .client import Mailslot
    from .requests import Reply, ReplyBox


class AgentCard(BaseModel):
    """What an agent says about itself; kept with its lease (shaped like an A2A AgentCard)."""

    name: str | None = None
    description: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: str = "online"
    address: str | None = None


def new_address() -> str:
    """An unguessable address for an agent that did not bring a name."""
    return "agent-" + secrets.token_hex(12)


class Mailbox(PriorityReceiving, MailboxView):
    """The mailbox of one agent. Get one from :meth:`Mailslot.open`."""

    def __init__(self, client: Mailslot, address: str) -> None:
        super().__init__(client, address)
        self.ttl = p.DEFAULT_LEASE_TTL
        #: Retention: seconds the mailbox waits for its agent after the lease lapsed.
        self.keep = p.DEFAULT_KEEP
        self.card = AgentCard()
        self.policy = p.RetryPolicy()
        self.prefetch = 1
        self.heartbeat = 30.0
        self._lease: Lease | None = None
        self._closed = False
        self._destroyed = False
        self._maybe = {prio: True for prio in p.PRIORITIES}
        self._gen = dict.fromkeys(p.PRIORITIES, 0)
        self._rung = dict.fromkeys(p.PRIORITIES, False)
        self._waiting: dict[p.Priority, tuple[str, float]] = {}
        self._buffer: list[tuple[int, int, int, Message]] = []
        self._tiebreak = itertools.count()
        self._wake = asyncio.Event()
        self._replies: asyncio.Queue[Msg] = asyncio.Queue()
        self._current_token: str | None = None
        self._tokens = itertools.count()
        self._inbox = ""
        self._subs: list[Subscription] = []
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._recv_lock = asyncio.Lock()
        self.pull_requests = 0
        self._reply_box: ReplyBox | None = None  # requests.py: replies to this mailbox's asks

    @classmethod
    def _create(
        cls,
        client: Mailslot,
        address: str | None,
        *,
        ttl: float | timedelta,
        keep: float | timedelta | None = None,
        card: AgentCard | Mapping[str, Any] | None,
        ack_wait: float | timedelta,
        max_deliver: int,
        backoff: Iterable[float],
        prefetch: int,
        heartbeat: float | timedelta | None,
    ) -> Mailbox:
        addr = check_address(address) if address is not None else new_address()
        if p.is_reply_address(addr):
            raise InvalidInput(f"{addr!r} is a reply sub-address; it cannot be opened as a mailbox")
        mb = cls(client, addr)
        mb.ttl = seconds(ttl, what="ttl") or p.DEFAULT_LEASE_TTL
        if keep is None:
            mb.keep = p.DEFAULT_KEEP if address is not None else p.DEFAULT_IDENTITY_KEEP
        else:
            k = plain_seconds(keep, what="keep") or 0.0
            if k > p.MAX_KEEP:
                raise InvalidInput(f"keep must be at most {p.MAX_KEEP:g} s (the mail stream's age limit)")
            mb.keep = k
        aw = plain_seconds(ack_wait, what="ack_wait") or 30.0
        if aw < 1:
            raise InvalidInput("ack_wait must be at least 1 s")
        if not isinstance(max_deliver, int) or (max_deliver < 1 and max_deliver != -1):
            raise InvalidInput("max_deliver must be a positive int (or -1 for unlimited)")
        bo = tuple(float(plain_seconds(b, what="backoff") or 0) for b in backoff)
        if bo and max_deliver != -1 and max_deliver <= len(bo):
            raise InvalidInput("max_deliver must be larger than the number of backoff steps")
        if not isinstance(prefetch, int) or prefetch < 1:
            raise InvalidInput("prefetch must be a positive int")
        mb.policy = p.RetryPolicy(ack_wait=aw, max_deliver=max_deliver, backoff=bo)
        mb.prefetch = prefetch
        mb.heartbeat = plain_seconds(heartbeat, what="heartbeat") or aw
        if card is None:
            mb.card = AgentCard(address=addr)
        elif isinstance(card, AgentCard):
            mb.card = card.model_copy(update={"address": addr})
        else:
            mb.card = AgentCard.model_validate({**dict(card), "address": addr})
        return mb

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def client(self) -> Mailslot:
        """The client this mailbox was opened through (for publish, agents, ...)."""
        return self._client

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def resumed(self) -> bool:
        """True when open() joined a lease that was still alive."""
        return bool(self._lease and self._lease.resumed)

    async def _start(self) -> None:
        nc = self._client.nc
        with boundary():
            self._inbox = nc.new_inbox()
            self._subs.append(await nc.subscribe(self._inbox + ".*", cb=self._on_pull_reply))
            self._subs.append(
                await nc.subscribe(p.bell_subject_all_priorities(self.address), cb=self._on_bell)
            )
            self._lease = Lease(
                self._client.js, self.address, self.ttl, self.card.model_dump_json().encode(), keep=self.keep
            )
            await self._lease.acquire()
            await self._ensure_consumers()
            self._lease.start(on_renew=self._ensure_consumers)

    async def _ensure_consumers(self) -> None:
        inactive = max(2 * self.ttl, 30.0)
        await asyncio.gather(
            *(
                self._client.js.add_consumer(
                    p.MAIL_STREAM,
                    p.mail_consumer_config(
                        self.address, prio, policy=self.policy, inactive_threshold=inactive
                    ),
                )
                for prio in p.PRIORITIES
            )
        )

    def _check_usable(self) -> None:
        if self._destroyed:
            raise MailboxDestroyed(f"mailbox {self.address} was destroyed")
        if self._closed:
            raise MailboxClosed(f"mailbox {self.address} is closed")

    async def close(self) -> None:
        """Stop renewing the lease and receiving. Mail keeps waiting until the lease lapses,
        so reopening within ``ttl`` resumes the same mailbox. Prefetched messages that were
        never handed out are given back at once (while the broker is unreachable they cannot
        be: the server redelivers them after the ack wait). Never raises a connection error
        and returns within a few seconds."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._abort_pull()
        nc = self._client.nc
        try:
            if self._reply_box is not None:
                with contextlib.suppress(Exception):
                    await self._reply_box.close()
            if self._lease is not None:
                await self._lease.stop()
            for t in self._timers.values():
                t.cancel()
            self._timers.clear()
            # Unsubscribing first makes the server drop our idle waiting pulls; draining hands
            # over anything already on its way, which is then given back with the buffer.
            # Draining needs a round trip: not while the connection is down.
            for sub in self._subs:
                with contextlib.suppress(Exception):
                    if nc.is_connected:
                        await asyncio.wait_for(sub.drain(), 5.0)
                    else:
                        await sub.unsubscribe()
            self._subs.clear()
            self._waiting.clear()
            buffered = [entry[3] for entry in self._buffer]
            self._buffer.clear()
            for m in buffered if nc.is_connected else ():
                with contextlib.suppress(Exception):
                    await m._msg.nak()
        finally:
            self._client._forget(self)

    async def _rebind(self) -> None:
        """After a reconnect (called by the client): the pulls left waiting at the server
        died with the old connection, and a restarted (or reaped) server may have lost the
        consumers. Forget the pulls, make sure the consumers exist, renew the lease at once
        (it may have lapsed during the outage) and look at every level again."""
        if self._closed:
            return
        self._waiting.clear()
        for prio in p.PRIORITIES:
            self._mark(prio)
        delay = 0.1
        for _ in range(10):
            if self._closed or not self._client.nc.is_connected:
                return  # closed, or dropped again: the next reconnect re-binds
            try:
                with boundary():
                    await self._ensure_consumers()
                    if self._lease is not None:
                        await self._lease.renew()
                break
            except Exception as exc:  # JetStream may still be recovering after a restart
                logging.getLogger("mailslot.mailbox").info(
                    "re-binding %s after a reconnect: %r (retrying)", self.address, exc
                )
                await asyncio.sleep(delay)
                delay = min(2 * delay, 2.0)
        if not self._closed:
            for prio in p.PRIORITIES:
                self._mark(prio)

    async def destroy(self) -> None:
        """Reclaim now: delete every message, the consumers, the lease and the card."""
        await self.close()
        self._destroyed = True
        with boundary():
            await reclaim_mailbox(self._client.js, self.address)

    async def __aenter__(self) -> Mailbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending as this agent ------------------------------------------------------------------

    async def send(self, to: str, payload: Any, **kwargs: Any) -> Receipt:
        """:meth:`Mailslot.send` with this mailbox as the sender."""
        self._check_usable()
        kwargs.setdefault("sender", self.address)
        return await self._client.send(to, payload, **kwargs)

    # -- request/reply (requests.py) -------------------------------------------------------------

    async def request(
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
        """Send a request whose reply comes back to this mailbox's reply sub-address.

        The receipt's ``correlation_id`` is what :meth:`reply_for` takes to collect the
        reply later, even from another process after a restart (the reply waits durably).
        """
        from .requests import prepare_request

        out = prepare_request(
            self,
            to,
            payload,
            priority=priority,
            thread_id=thread_id,
            idempotency_key=idempotency_key,
            ttl=ttl,
            headers=headers,
        )
        return await self._client._publish(out)

    async def ask(
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
    ) -> Reply:
        """:meth:`request` and wait for the matching reply; raises :class:`Timeout`.

        Other mail keeps flowing to :meth:`receive` meanwhile, and :meth:`receive` never gets
        replies. After a timeout the reply still lands and waits for :meth:`reply_for`. With
        ``idempotency_key`` a retried ask (e.g. after a crash) reuses the same request.
        """
        from .requests import prepare_request, publish_and_collect

        t = plain_seconds(timeout, what="timeout")
        out = prepare_request(
            self,
            to,
            payload,
            priority=priority,
            thread_id=thread_id,
            idempotency_key=idempotency_key,
            ttl=ttl,
            headers=headers,
        )
        return await publish_and_collect(self, out, timeout=t)

    async def reply_for(
        self, correlation_id: str, *, timeout: float | timedelta | None = None, keep: bool = False
    ) -> Reply:
        """The reply to an earlier request (by its correlation id), waiting up to ``timeout``
        (None = as long as it takes). The reply is removed from the mailbox when returned, or,
        with ``keep=True``, only when it is acked: a consumer that crashes before finishing
        its work (e.g. a durable resume) can collect the same reply again."""
        from .requests import collect_reply

        t = plain_seconds(timeout, what="timeout")
        return await collect_reply(self, correlation_id, timeout=t, keep=keep)

    async def receive(self, *, timeout: float | timedelta | None = None) -> Message:
        """The next message, highest priority first; waits (without polling) until one
        arrives. Raises :class:`Timeout` after ``timeout`` seconds."""
        t = plain_seconds(timeout, what="timeout")
        async with self._recv_lock:
            m = await self._next(t, self.prefetch)
        if m is None:
            raise Timeout(f"no mail for {self.address} within {t:g} s")
        return m

    async def ack_many(self, messages: Iterable[Message]) -> None:
        """Acknowledge several messages with one confirmed round trip per consumer.

        The server processes the acks of one connection for one consumer in order, so when
        the last one is confirmed (a double ack) every earlier one was processed too: the same
        guarantee as awaiting ``ack()`` on each, at the cost of one request instead of N.
        """
        groups: dict[str, list[Message]] = {}
        for m in messages:
            m._settle()
            groups.setdefault(m._msg.reply.split(".")[3], []).append(m)  # $JS.ACK.<stream>.<consumer>
        nc = self._client.nc
        with boundary():
            for group in groups.values():
                *rest, last = group
                for m in rest:
                    await nc.publish(m._msg.reply, b"+ACK")
                await last._msg.ack_sync(timeout=10)
        for group in groups.values():
            for m in group:
                self._settled(m)

    async def receive_batch(
        self, *, max: int = 100, timeout: float | timedelta | None = None
    ) -> list[Message]:
        """Up to ``max`` messages in priority order, waiting up to ``timeout`` for the first;
        an empty list on timeout."""
        if not isinstance(max, int) or max < 1:
            raise InvalidInput("max must be a positive int")
        t = plain_seconds(timeout, what="timeout")
        async with self._recv_lock:
            first = await self._next(t, max)
            if first is None:
                return []
            out = [first]
            while len(out) < max:
                m = self._pop()
                if m is None:
                    break
                out.append(m)
        return out

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.receive()
            except MailboxClosed:
                return

    def __repr__(self) -> str:
        state = "destroyed" if self._destroyed else "closed" if self._closed else "open"
        return f"<Mailbox {self.address} {state}>"


__all__ = ["AgentCard", "Mailbox", "new_address"]
