"""The connection to a Mailslot broker and the operations that need no mailbox."""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mailslot_broker import protocol as p
from mailslot_broker.provision import ProvisionReport
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from ._agent_card import read_card
from ._agent_state import open_state
from ._boundary import address as check_address
from .audit import Audit
from .broadcast import Published, Replay, TopicSubscription
from .broadcast import publish as _publish_topic
from .claims import Claims
from .discovery import discover as _discover
from .link import Link
from .mailbox import AgentCard, Mailbox
from .mailwatch import MailWatch
from .message import Receipt
from .options import ConnectOptions
from .outgoing import prepare
from .query import keep_latest, send_many_keeping_latest
from .registry import AgentWatch, list_agents
from .sending import DEFAULT_SEND_WINDOW, publish
from .state import StateStore
from .view import MailboxView

if TYPE_CHECKING:
    from .deadletters import DeadLetters

#: How long close() waits for a graceful drain before it just closes the connection.
_CLOSE_GRACE = 5.0

log = logging.getLogger("mailslot.client")


class Mailslot:
    """A connected client. Create with :func:`connect`."""

    def __init__(
        self,
        nc: NatsClient,
        options: ConnectOptions,
        *,
        url: str,
        tenant: str | None,
        provisioned: ProvisionReport | None,
    ) -> None:
        self._link = Link(nc, options, url=url, tenant=tenant)
        self.provisioned = provisioned
        #: Open subscriptions and agent watches, closed with the client so iterators end.
        self._streams: weakref.WeakSet[TopicSubscription | AgentWatch | MailWatch] = weakref.WeakSet()
        self._rebinds: set[asyncio.Task[None]] = set()

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def nc(self) -> NatsClient:
        """The underlying nats-py client, for interop with plain NATS code."""
        return self._link.nc

    @property
    def js(self) -> JetStreamContext:
        return self._link.js

    @property
    def url(self) -> str:
        return self._link.url

    @property
    def tenant(self) -> str | None:
        return self._link.tenant

    @property
    def name(self) -> str | None:
        return self._link.name

    @property
    def server_version(self) -> str:
        v = self._link.nc.connected_server_version
        return f"{v.major}.{v.minor}.{v.patch}"

    @property
    def max_payload(self) -> int:
        return self._link.max_payload

    @property
    def closed(self) -> bool:
        return self._link.closed

    @property
    def disconnects(self) -> int:
        """How often the connection dropped (nats-py reconnects by itself)."""
        return self._link.disconnects

    @property
    def reconnects(self) -> int:
        """How often the connection came back."""
        return self._link.reconnects

    # -- connection state (the state itself is the link's: link.py) --------------------------

    @property
    def connected(self) -> bool:
        """True while the connection to the broker is up (False while it reconnects)."""
        return self._link.connected

    def _connection_lost(self) -> None:
        """nats-py's disconnected callback (also called once more on close)."""
        if not self._link.lost():
            return
        for mb in list(self._link.mailboxes):
            mb._connection_lost()
        for stream in list(self._streams):
            if isinstance(stream, TopicSubscription):
                stream._connection_lost()

    def _connection_back(self) -> None:
        """nats-py's reconnected callback: subscriptions were re-sent by nats-py; re-bind
        the mailboxes (their waiting pulls died with the old connection)."""
        down = self._link.back()
        if self._link.closed:
            return
        log.info("reconnected to %s after %.2f s", self.url, down)
        for mb in list(self._link.mailboxes):
            self._spawn(mb._rebind())
        for stream in list(self._streams):
            if isinstance(stream, (TopicSubscription, MailWatch)):
                stream._connection_back()

    def _connection_closed(self) -> None:
        """nats-py's closed callback: wake everything that waits for the connection."""
        self._link.wake()
        for mb in list(self._link.mailboxes):
            mb._connection_lost()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._rebinds.add(task)
        task.add_done_callback(self._rebinds.discard)

    async def close(self) -> None:
        """Close every mailbox opened through this client (leases keep running out), then the
        connection. Never raises a connection error and returns within a few seconds, also
        while the broker is unreachable (nothing can be given back then: the server redelivers
        unacked mail after its ack wait)."""
        if self._link.closed:
            return
        self._link.close()
        for task in list(self._rebinds):
            task.cancel()
        for mb in list(self._link.mailboxes):
            try:
                await asyncio.wait_for(mb.close(), _CLOSE_GRACE)
            except Exception as exc:  # closing must not fail: the lease runs out by itself
                log.debug("closing mailbox %s: %r", mb.address, exc)
        for stream in list(self._streams):
            try:
                await asyncio.wait_for(stream.close(), _CLOSE_GRACE)
            except Exception as exc:
                log.debug("closing %r: %r", stream, exc)
        nc = self._link.nc
        if nc.is_closed:
            return
        if nc.is_connected:
            try:
                await asyncio.wait_for(nc.drain(), _CLOSE_GRACE + 1)
            except Exception as exc:  # including a drop while draining
                log.debug("drain: %r", exc)
        if not nc.is_closed:
            try:
                # Closing while reconnecting flushes into the dead socket (ConnectionResetError).
                await asyncio.wait_for(nc.close(), _CLOSE_GRACE)
            except Exception as exc:
                log.debug("close: %r", exc)

    async def __aenter__(self) -> Mailslot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending (sending.py) -----------------------------------------------------------------

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
        """Put a message in ``to``'s mailbox; it waits there until received or expired.

        Returns once the server stored it. ``idempotency_key`` makes a retried send a no-op
        within the dedupe window (the receipt says ``duplicate=True``). With
        ``notify_undelivered=True`` the sender (``sender=`` or the sending mailbox) gets a
        bounce notice in its own mailbox if the message is reclaimed unread
        (:attr:`Message.bounce`). ``tags`` ride with the message (:attr:`Message.tags`,
        ``inspect(to).query(tags=...)``); ``replace_key`` keeps only the latest: older unread
        mail to ``to`` with the same key is removed once this one is stored.
        """
        self._link.check_open()
        out = prepare(
            to,
            payload,
            sender=sender or self.name,
            max_payload=self._link.mail_max_payload,
            priority=priority,
            ttl=ttl,
            delay=delay,
            idempotency_key=idempotency_key,
            headers=headers,
            reply_to=reply_to,
            correlation_id=correlation_id,
            thread_id=thread_id,
            notify_undelivered=notify_undelivered,
            tags=tags,
            replace_key=replace_key,
        )
        rec = await publish(self._link, out)
        if out.replace_key:
            await keep_latest(self._link, [(out.replace_key, rec)])
        return rec

    async def send_many(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        window: int = DEFAULT_SEND_WINDOW,
    ) -> list[Receipt]:
        """Pipelined send for bulk producers: every item is validated first (nothing is sent
        if one is invalid), then published with at most ``window`` acks outstanding (by
        default nats-py's own limit of async publishes in flight, 4,000: a smaller window
        left the pipe idle while the oldest ack came back).

        Each item is a mapping of :meth:`send`'s arguments: ``{"to": ..., "payload": ...,
        "priority": ...}``.
        """
        return await send_many_keeping_latest(self._link, messages, window=window)

    # -- mailboxes --------------------------------------------------------------------------

    async def open(
        self,
        address: str | None = None,
        *,
        ttl: float | timedelta = p.DEFAULT_LEASE_TTL,
        keep: float | timedelta | None = None,
        card: AgentCard | Mapping[str, Any] | None = None,
        ack_wait: float | timedelta = p.DEFAULT_ACK_WAIT,
        max_deliver: int = p.DEFAULT_MAX_DELIVER,
        backoff: Iterable[float | timedelta] = (),
        prefetch: int = 1,
        heartbeat: float | timedelta | None = None,
        require_verified: bool = False,
    ) -> Mailbox:
        """Open (or resume) the mailbox at ``address``; a fresh unguessable address when None.

        Presence: the lease lives ``ttl`` seconds past the last renewal and is renewed in the
        background while the mailbox is open; when it lapses the agent is offline, its
        consumers go and **its mail stays**. Retention: ``keep`` is how long the mailbox then
        waits for its agent (default ``DEFAULT_KEEP``, 7 days, for a named mailbox; 0 for an
        identity-on-call one, which nobody can find again). Only when it runs out (or on
        :meth:`Mailbox.destroy`) is the mailbox reclaimed, its unread mail moved to dead
        letters. Reopening within retention finds everything sent while the agent was away.

        Every argument is checked before anything is written (ranges in
        ``mailslot_broker.protocol.defaults``): ``ttl`` 1 s .. ``MAX_LEASE_TTL`` (a day),
        ``keep`` 0 .. ``MAX_KEEP``, ``ack_wait`` 1 s .. ``MAX_ACK_WAIT``, ``max_deliver`` -1
        (unlimited) or 1 .. ``MAX_DELIVER_LIMIT`` and larger than the number of ``backoff``
        steps (each 0.1 s .. ``MAX_ACK_WAIT``; the first one is the server's ack wait),
        ``prefetch`` 1 .. ``MAX_PREFETCH``, ``heartbeat`` ``MIN_HEARTBEAT`` .. ``MAX_HEARTBEAT``
        (default ``ack_wait``), a card of at most ``MAX_CARD_BYTES``. A bad one raises
        :class:`InvalidInput` (:class:`InvalidTTL` for durations). An ``open`` that fails
        or is cancelled half-way removes what it created (record, lease, consumers) and leaves
        what was there before, so a failed ``open`` of an offline mailbox loses nothing.
        ``require_verified=True`` dead-letters mail whose sender is not verified
        (:attr:`Message.sender_verified`) instead of handing it out.
        """
        self._link.check_open()
        mb = Mailbox._create(
            self._link,
            address,
            client=self,
            ttl=ttl,
            keep=keep,
            card=card,
            ack_wait=ack_wait,
            max_deliver=max_deliver,
            backoff=backoff,
            prefetch=prefetch,
            heartbeat=heartbeat,
        )
        mb.failover_timeout = self._link.options.failover_timeout  # the mailbox may change it
        mb.require_verified = bool(require_verified)  # unverified senders go to dead letters
        await self._link.until_connected()  # bad input is refused at once, even while disconnected
        self._link.mailboxes.add(mb)
        try:
            await mb._start()
        except BaseException:
            self._link.mailboxes.discard(mb)
            raise
        return mb

    # -- broadcast (broadcast.py) -------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: Any,
        *,
        durable: bool = False,
        ttl: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Published:
        """Broadcast ``payload`` on ``topic`` to every current subscriber.

        Ephemeral by default: core NATS, fire and forget; **with no subscriber listening the
        message is simply dropped**, and it can never be replayed. ``durable=True`` stores it
        in the topic history (for ``ttl`` seconds if given, else the stream's max age) before
        live subscribers get it, so late joiners can ``replay`` it; it returns once stored.
        """
        return await _publish_topic(self._link, topic, payload, durable=durable, ttl=ttl, headers=headers)

    def subscribe(
        self,
        pattern: str,
        *,
        queue: str | None = None,
        replay: Replay = None,
    ) -> TopicSubscription:
        """Messages on topics matching ``pattern`` (``*`` = one token, final ``>`` = the rest).

        ``queue``: members of the same queue group share the messages (each goes to one).
        ``replay``: ``"all"`` history, ``"last"`` message per topic, or a ``datetime`` (history
        since then) before live messages, with no gap and no duplicate at the switch. Await the
        result (or use ``async with``/``async for``); close it when done.
        """
        self._link.check_open()
        sub = TopicSubscription(self._link, pattern, queue=queue, replay=replay)
        self._streams.add(sub)
        return sub

    # -- registry (registry.py) -------------------------------------------------------------

    async def agents(
        self, *, capability: str | None = None, tag: str | None = None, include_offline: bool = False
    ) -> list[AgentCard]:
        """Cards of the agents whose lease is alive, optionally those with a capability (or
        skill) or a tag. A card leaves this list when its agent's lease lapses; with
        ``include_offline=True`` agents that are offline but whose mailbox is still kept are
        listed too, with ``status == "offline"`` (mail sent to them waits)."""
        return await list_agents(self._link, capability=capability, tag=tag, include_offline=include_offline)

    async def agent(self, address: str, *, include_offline: bool = False) -> AgentCard | None:
        """One agent's card, read by its address (no listing): the card ``agents()`` lists
        for it, or None. An agent credential may read its own card only (``_agent_card.py``)."""
        return await read_card(self._link, check_address(address), include_offline=include_offline)

    @property
    def agent_address(self) -> str | None:
        """The address of the agent credential this client connected with; None for a
        tenant credential."""
        return self._link.agent

    async def discover(
        self, text: str | None = None, *, limit: int = 20, page: int = 1, include_offline: bool = False
    ) -> list[AgentCard]:
        """Agents whose card (name, description, capabilities, skills, tags, metadata) holds
        every word of ``text``, best match first, one page of ``limit``; all agents when
        ``text`` is None. A keyword match, not a semantic one (see ``discovery.py``)."""
        self._link.check_open()
        return await _discover(self._link, text, limit=limit, page=page, include_offline=include_offline)

    def watch_agents(self, *, initial: bool = False) -> AgentWatch:
        """Async iterator of join/update/leave events (``initial=True`` reports the agents
        already live as joins first). Await it or use ``async with`` to start it eagerly."""
        self._link.check_open()
        watch = AgentWatch(self._link, initial=initial)
        self._streams.add(watch)
        return watch

    def watch_mail(self, address: str, *, removals: bool = True) -> MailWatch:
        """Async iterator of changes to ``address``'s mailbox (mail arrived, at which priority;
        acked, termed or dead-lettered), pushed by the broker: it takes no mail, holds no lease
        and needs no one to have the mailbox open. Await it or use ``async with``; close it."""
        self._link.check_open()
        watch = MailWatch(self._link, check_address(address), removals=removals)
        self._streams.add(watch)
        return watch

    @property
    def dead_letters(self) -> DeadLetters:
        """The dead-letter queue: ``list``, ``get``, ``requeue``, ``purge``."""
        from .deadletters import DeadLetters

        return DeadLetters(self._link)

    @functools.cached_property
    def audit(self) -> Audit:
        """This tenant's audit trail: ``enable``, ``disable``, ``status``, ``query``."""
        return Audit(self._link)

    @functools.cached_property
    def claims(self) -> Claims:
        """Advisory, exclusive, expiring claims on keys (paths): ``claim``, ``renew``,
        ``release``, ``list``; the holder defaults to this client's name."""
        return Claims(self._link)

    def state(self, namespace: str, *, agent: str | None = None) -> StateStore:
        """Versioned key/value state under ``namespace``: ``get``, ``put`` (conditional with
        ``expect_revision``), ``delete``, ``items``/``keys``/``purge`` by prefix, ``watch``
        (closed with the client). On an agent credential, the agent's own namespace (its
        part of the bucket, ``_agent_state.py``); ``agent=ADDRESS`` on a tenant credential
        reads and writes that agent's."""
        self._link.check_open()
        return open_state(self._link, namespace, agent=agent, watches=self._streams)

    def inspect(self, address: str) -> MailboxView:
        """Read-only view of any mailbox (``peek``, ``stats``), opened or not."""
        self._link.check_open()
        return MailboxView(self._link, check_address(address))


__all__ = ["Mailslot"]
