"""An open mailbox: the lease, the four priority consumers and the receive loop.

Receiving follows DESIGN.md: one durable pull consumer per priority with an exact filter.
The loop pulls ``no_wait`` from the highest level that may hold mail and serves the first
non-empty one. It knows which levels may hold mail from the headers-only "bell" the stream
republishes after storing each message; an idle mailbox leaves one waiting pull per level at
the server (re-armed every ``heartbeat``), so new and redelivered mail is pushed to it. See
:mod:`mailslot._receiving`.

The lease is presence only: when it lapses the agent is offline, the sidecar releases the
consumers and the mail waits for the mailbox's retention ``keep`` (``docs/protocol.md``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mailslot_broker import protocol as p
from mailslot_broker.reclaim import reclaim_mailbox
from nats.aio.subscription import Subscription

from . import _agent_views, signing
from ._boundary import address as check_address
from ._boundary import boundary, plain_seconds
from ._mailbox_acks import ack_many
from ._mailbox_open import add_consumers, ensure_consumers, open_mailbox, rebind, unbind
from ._mailbox_settings import AgentCard, Settings, new_address
from ._receiving import Receiver
from .errors import InvalidInput, MailboxClosed, MailboxDestroyed, Timeout
from .lease import Lease
from .link import Link
from .message import Message, Receipt
from .sending import publish
from .view import MailboxView

if TYPE_CHECKING:
    from .client import Mailslot
    from .requests import Reply, ReplyBox


class Mailbox(MailboxView):
    """The mailbox of one agent. Get one from :meth:`Mailslot.open`."""

    def __init__(self, link: Link, address: str, *, client: Mailslot) -> None:
        super().__init__(link, address)
        self._client = client
        #: Dead-letter mail whose sender is not verified (``open(..., require_verified=True)``).
        self.require_verified = False
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
        self._receiver = Receiver(self, link=self._link, wrap=lambda msg: Message(msg, self))
        self._subs: list[Subscription] = []
        self._recv_lock = asyncio.Lock()
        self._reply_box: ReplyBox | None = None  # requests.py: replies to this mailbox's asks

    @classmethod
    def _create(cls, link: Link, address: str | None, *, client: Mailslot, **settings: Any) -> Mailbox:
        """A mailbox not yet opened; ``settings`` are :meth:`Mailslot.open`'s keyword options,
        every one checked here, before ``_start`` writes anything (:class:`Settings`)."""
        addr = check_address(address) if address is not None else new_address()
        if p.is_reply_address(addr):
            raise InvalidInput(f"{addr!r} is a reply sub-address; it cannot be opened as a mailbox")
        s = Settings.check(addr, named=address is not None, **settings)
        mb = cls(link, addr, client=client)
        mb.ttl, mb.keep, mb.policy, mb.card = s.ttl, s.keep, s.policy, s.card
        mb.prefetch, mb.heartbeat = s.prefetch, s.heartbeat
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
        """Subscribe, take the lease (which writes the mailbox record) and bind the consumers;
        all or nothing (:mod:`mailslot._mailbox_open`)."""
        await open_mailbox(self)

    @property
    def _inactive_threshold(self) -> float:
        """A level's consumer exists while that level may hold mail: the server removes it
        once nobody pulled it for this long and it has no delivery awaiting an ack (the
        server keeps a consumer with acks pending), so a drained level's consumer goes by
        itself; a bell brings it back. A receiving mailbox's waiting pulls, which count as
        activity, come once every ``heartbeat`` on the levels it keeps bound, so it outlasts
        that. A consumer removed under a mailbox that is not receiving is re-created on its
        next pull. The sidecar still releases all of them when the lease lapses."""
        return max(3 * self.heartbeat, p.CONSUMER_IDLE_FLOOR)

    async def _add_consumers(self, levels: Iterable[p.Priority], *, patience: float = 0.0) -> None:
        """Create (or keep) the consumers of ``levels`` with this mailbox's retry policy and
        inactivity threshold: the open, a re-ensure and the receive loop's bind share them."""
        await add_consumers(
            self._link.js,
            self.address,
            policy=self.policy,
            inactive_threshold=self._inactive_threshold,
            patience=patience,
            levels=levels,
        )

    async def _ensure_consumers(self) -> None:
        """Bring back consumers that may be gone: after a reconnect (a restarted server may
        have lost them), a renewal that re-created a lapsed lease (the sidecar released them)
        and a pull refused for want of a consumer (the receive loop): those of the levels
        holding mail (a level without mail needs none until its bell). Never on a plain
        renewal."""
        await ensure_consumers(self)

    def _check_usable(self) -> None:
        if self._destroyed:
            raise MailboxDestroyed(f"mailbox {self.address} was destroyed")
        if self._closed:
            raise MailboxClosed(f"mailbox {self.address} is closed")

    async def close(self) -> None:
        """Stop renewing the lease and receiving. When the lease lapses (``ttl`` later) the
        agent is offline: its consumers go, its mail keeps waiting for the mailbox's retention
        ``keep``, and reopening finds it (within ``ttl`` it even resumes the same lease).
        Prefetched messages that were
        never handed out are given back at once (while the broker is unreachable they cannot
        be: the server redelivers them after the ack wait). Never raises a connection error
        and returns within a few seconds."""
        if self._closed:
            return
        self._closed = True
        await unbind(self)

    async def _rebind(self) -> None:
        """After a reconnect (called by the client): the pulls left waiting at the server
        died with the old connection, and a restarted (or reaped) server may have lost the
        consumers. Forget the pulls, make sure the consumers exist, renew the lease at once
        (it may have lapsed during the outage) and look at every level again."""
        await rebind(self)

    async def destroy(self) -> None:
        """Reclaim now: every waiting message to dead letters (reason ``mailbox reclaimed``,
        bounce notices where senders asked), the consumers, the lease and the card.

        With an agent credential (its own mailbox only) the sidecar does it, the same steps
        (``mview.<address>``, :mod:`mailslot_broker.protocol.views`): :class:`Unavailable`
        if no sidecar answers (the mailbox is closed then, its mail and record stay; call
        ``destroy()`` again once one runs)."""
        await self.close()
        self._destroyed = True
        with boundary():
            if self._link.agent is not None:
                await _agent_views.destroy(self._link, self.address)
            else:
                await reclaim_mailbox(self._link.js, self.address)

    async def __aenter__(self) -> Mailbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending as this agent ------------------------------------------------------------------

    async def send(
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
        """:meth:`Mailslot.send` with this mailbox as the sender (unless ``sender`` says
        otherwise)."""
        self._check_usable()
        return await self._client.send(
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
            sender=self.address if sender is None else sender,
            notify_undelivered=notify_undelivered,
            tags=tags,
            replace_key=replace_key,
        )

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
        sender: str | None = None,
    ) -> Receipt:
        """Send a request whose reply comes back to this mailbox's reply sub-address.

        The receipt's ``correlation_id`` is what :meth:`reply_for` takes to collect the
        reply later, even from another process after a restart (the reply waits durably).
        ``sender`` names another sender than this mailbox (a bridge writing for the caller
        it carries); it verifies only where the key bucket lets this client's signer vouch
        for it (:mod:`mailslot.signing`). The reply still comes back here.
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
            sender=sender,
        )
        return await publish(self._link, out)

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
        sender: str | None = None,
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
            sender=sender,
        )
        return await signing.checked(self._link, await publish_and_collect(self, out, timeout=t))

    async def reply_for(
        self, correlation_id: str, *, timeout: float | timedelta | None = None, keep: bool = False
    ) -> Reply:
        """The reply to an earlier request (by its correlation id), waiting up to ``timeout``
        (None = as long as it takes). The reply is removed from the mailbox when returned, or,
        with ``keep=True``, only when it is acked: a consumer that crashes before finishing
        its work (e.g. a durable resume) can collect the same reply again."""
        from .requests import collect_reply

        t = plain_seconds(timeout, what="timeout")
        return await signing.checked(
            self._link, await collect_reply(self, correlation_id, timeout=t, keep=keep)
        )

    # -- receiving (mailslot._receiving) ------------------------------------------------------

    @property
    def failover_timeout(self) -> float:
        """Seconds a receive waits for a priority that does not answer (its consumer is
        electing a leader) before it raises :class:`~mailslot.Unavailable`; default 30. No
        lower priority is served meanwhile. Settable per mailbox; ``math.inf`` waits forever."""
        return self._receiver.failover.timeout

    @failover_timeout.setter
    def failover_timeout(self, seconds: float) -> None:
        self._receiver.failover.timeout = seconds

    @property
    def pull_requests(self) -> int:
        """Pull requests this mailbox sent (an idle mailbox sends none between heartbeats)."""
        return self._receiver.pulls.count

    def _settled(self, m: Message, *, redeliver_in: float | None = None) -> None:
        """Hook for :class:`Message`: ``m`` was settled (``redeliver_in``: naked, back then)."""
        self._receiver.settled(m, redeliver_in=redeliver_in)

    def _touched(self, m: Message) -> None:
        """Hook for :class:`Message`: ``m`` is in progress, the ack wait starts again."""
        self._receiver.touched(m)

    async def _dead_letter(self, m: Message, *, reason: str | None) -> None:
        """Hook for :class:`Message`: keep ``m`` in dead letters before it is termed."""
        from .deadletters import DeadLetters

        await DeadLetters(self._link)._preserve(m, reason=reason)

    def _connection_lost(self) -> None:
        """Hook for the client: the connection dropped or closed."""
        self._receiver.connection_lost()

    async def receive(self, *, timeout: float | timedelta | None = None) -> Message:
        """The next message, highest priority first; waits (without polling) until one
        arrives. Raises :class:`Timeout` after ``timeout`` seconds.

        Through a cluster failover it waits for a priority whose consumer is electing a leader
        rather than serve lower ones, up to ``failover_timeout`` (then :class:`Unavailable`)."""
        t = plain_seconds(timeout, what="timeout")
        async with self._recv_lock:
            m = await signing.next_screened(self, t, self.prefetch)
        if m is None:
            raise Timeout(f"no mail for {self.address} within {t:g} s{self._receiver.blocked_note()}")
        return m

    async def ack_many(self, messages: Iterable[Message]) -> None:
        """Acknowledge several messages with one confirmed round trip per consumer.

        The server processes the acks of one connection for one consumer in order, so when
        the last one is confirmed (a double ack) every earlier one was processed too: the same
        guarantee as awaiting ``ack()`` on each, at the cost of one request instead of N.
        Rides out a restart or a failover as ``ack()`` does: a group whose confirmation is
        lost is sent again, up to ``failover_timeout`` in all. If that fails the typed error
        is raised and the messages not confirmed are left unsettled, so they can be acked
        again (those of consumers confirmed before stay acked). Nothing is sent if one of
        them was already settled (:class:`AlreadyAcknowledged`).
        """
        await ack_many(self._link, messages, bound=self.failover_timeout, settled=self._settled)

    async def receive_batch(
        self, *, max: int = 100, timeout: float | timedelta | None = None
    ) -> list[Message]:
        """Up to ``max`` messages in priority order, waiting up to ``timeout`` for the first;
        an empty list on timeout. Strict priority holds through a failover as for
        :meth:`receive`."""
        if not isinstance(max, int) or max < 1:
            raise InvalidInput("max must be a positive int")
        t = plain_seconds(timeout, what="timeout")
        async with self._recv_lock:
            first = await signing.next_screened(self, t, max)
            if first is None:
                return []
            out = [first]
            while len(out) < max:
                m = self._receiver.pop()
                if m is None:
                    break
                out += await signing.screen(self, [m])
        return out

    async def __aiter__(self) -> AsyncIterator[Message]:
        """Every message, highest priority first, until the mailbox is closed. Rides out a
        reconnect and a cluster failover; raises :class:`~mailslot.Disconnected` or
        :class:`~mailslot.Unavailable` only beyond their bounds (``receive_outage_timeout``,
        ``failover_timeout``)."""
        while True:
            try:
                yield await self.receive()
            except MailboxClosed:
                return

    def __repr__(self) -> str:
        state = "destroyed" if self._destroyed else "closed" if self._closed else "open"
        return f"<Mailbox {self.address} {state}>"


__all__ = ["AgentCard", "Mailbox", "new_address"]
