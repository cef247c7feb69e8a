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
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from mailslot_broker.reclaim import LEAVE_MARKER_TTL, reclaim_mailbox
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import errors as jserr
from pydantic import BaseModel, Field, ValidationError

from ._boundary import address as check_address
from ._boundary import boundary, plain_seconds, retry_policy, seconds
from ._boundary import count as check_count
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


class Mailbox(MailboxView):
    """The mailbox of one agent. Get one from :meth:`Mailslot.open`."""

    def __init__(self, link: Link, address: str, *, client: Mailslot) -> None:
        super().__init__(link, address)
        self._client = client
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
    def _create(
        cls,
        link: Link,
        address: str | None,
        *,
        client: Mailslot,
        ttl: float | timedelta | None,
        keep: float | timedelta | None = None,
        card: AgentCard | Mapping[str, Any] | None,
        ack_wait: float | timedelta | None,
        max_deliver: int | None,
        backoff: Iterable[float | timedelta] | None,
        prefetch: int,
        heartbeat: float | timedelta | None,
    ) -> Mailbox:
        addr = check_address(address) if address is not None else new_address()
        if p.is_reply_address(addr):
            raise InvalidInput(f"{addr!r} is a reply sub-address; it cannot be opened as a mailbox")
        mb = cls(link, addr, client=client)
        # Every number is checked here, before _start writes anything (protocol.values).
        if ttl is not None:
            mb.ttl = float(seconds(ttl, what="ttl", minimum=p.MIN_LEASE_TTL, maximum=p.MAX_LEASE_TTL) or 0)
        if keep is None:
            mb.keep = p.DEFAULT_KEEP if address is not None else p.DEFAULT_IDENTITY_KEEP
        else:
            mb.keep = float(plain_seconds(keep, what="keep", maximum=p.MAX_KEEP) or 0)
        mb.policy = retry_policy(
            p.DEFAULT_ACK_WAIT if ack_wait is None else ack_wait,
            p.DEFAULT_MAX_DELIVER if max_deliver is None else max_deliver,
            backoff,
        )
        mb.prefetch = check_count(prefetch, what="prefetch", minimum=1, maximum=p.MAX_PREFETCH)
        if heartbeat is None:
            mb.heartbeat = min(max(mb.policy.ack_wait, p.MIN_HEARTBEAT), p.MAX_HEARTBEAT)
        else:
            mb.heartbeat = float(
                plain_seconds(heartbeat, what="heartbeat", minimum=p.MIN_HEARTBEAT, maximum=p.MAX_HEARTBEAT)
                or 0
            )
        try:
            if card is None:
                mb.card = AgentCard(address=addr)
            elif isinstance(card, AgentCard):
                mb.card = AgentCard.model_validate({**card.model_dump(), "address": addr})
            elif isinstance(card, Mapping):
                mb.card = AgentCard.model_validate({**dict(card), "address": addr})
            else:
                raise InvalidInput(f"card must be an AgentCard or a mapping, not {type(card).__name__}")
            size = len(mb.card.model_dump_json().encode())
        except (ValidationError, ValueError, TypeError, RecursionError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"card is not a valid agent card: {exc}") from exc
        if size > p.MAX_CARD_BYTES:
            raise InvalidInput(f"card is {size} bytes as JSON; the limit is {p.MAX_CARD_BYTES}")
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
        """Subscribe, take the lease (which writes the mailbox record) and bind the consumers.

        All or nothing: what existed before is noted first; if anything fails, or the call is
        cancelled, the writes in flight are let finish (so nothing lands after the undo) and
        :meth:`_undo_start` removes what this call created, and puts back a record it
        overwrote, before the error (or the cancellation) propagates."""
        progress = _Progress()
        work = asyncio.ensure_future(self._start_steps(progress))
        try:
            with boundary():
                await asyncio.shield(work)
        except BaseException as exc:
            again = await _finish(self._undo_start(work, progress), what=f"undoing open({self.address})")
            if again and not isinstance(exc, asyncio.CancelledError):
                raise asyncio.CancelledError from exc
            raise

    async def _start_steps(self, progress: _Progress) -> None:
        nc, js = self._link.nc, self._link.js
        looking = asyncio.ensure_future(_Before.read(js, self.address))
        try:
            pulls = self._receiver.pulls
            pulls.inbox = nc.new_inbox()
            self._subs.append(await nc.subscribe(pulls.inbox + ".*", cb=pulls.on_reply))
            self._subs.append(
                await nc.subscribe(p.bell_subject_all_priorities(self.address), cb=self._receiver.on_bell)
            )
        except BaseException:
            looking.cancel()
            looking.add_done_callback(_retrieve)
            raise
        progress.before = await looking  # nothing is written before this is known
        self._lease = Lease(js, self.address, self.ttl, self.card.model_dump_json().encode(), keep=self.keep)
        await self._lease.acquire()
        # What acquire wrote, read while the consumers are created: the undo only removes
        # entries still at these revisions, never a concurrent opener's.
        written = asyncio.ensure_future(_Written.read(js, self.address))
        # The consumers of _ensure_consumers, but every creation is waited for, also when one
        # fails: none may land after the undo.
        inactive = self._inactive_threshold
        results = await asyncio.gather(
            *(
                js.add_consumer(
                    p.MAIL_STREAM,
                    p.mail_consumer_config(
                        self.address, prio, policy=self.policy, inactive_threshold=inactive
                    ),
                )
                for prio in p.PRIORITIES
            ),
            return_exceptions=True,
        )
        progress.written = await written
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self._lease.start(on_renew=self._ensure_consumers)

    async def _undo_start(self, work: asyncio.Future[None], progress: _Progress) -> None:
        """Undo a failed :meth:`_start`: only what it created, never what existed before."""
        self._closed = True  # a failed open leaves a dead Mailbox: nothing may re-bind it
        if not work.done():  # cancelled: let the requests in flight finish first
            await asyncio.wait([work], timeout=_UNDO_TIMEOUT)
            work.cancel()
        if work.done():
            _retrieve(work)  # the caller raises its own error
        if self._lease is not None:
            await self._lease.stop()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        before = progress.before
        if before is None:
            return  # failed before anything was written
        js = self._link.js
        revs = progress.written or _Written()
        # 1. The lease, unless it was alive before (a replica, or this agent restarting) or
        #    somebody else holds it now. A self-expiring purge marker, as destroy() leaves, so
        #    registry watchers see the agent that never opened leave again.
        lease_held = before.lease_live
        if not before.lease_live:
            now = await _kv_entry(js, p.AGENTS_BUCKET, self.address)
            if now is not None and now.live:
                if revs.lease is not None and now.seq != revs.lease:
                    lease_held = True  # rewritten since (a concurrent open): theirs now
                else:
                    lease_held = not await _kv_write(
                        js,
                        p.AGENTS_BUCKET,
                        self.address,
                        b"",
                        last=now.seq,
                        headers={"KV-Operation": "PURGE", "Nats-Rollup": "sub"},
                        ttl=LEAVE_MARKER_TTL,
                    )
        # 2. The consumers this call created, unless a live lease owns them.
        if not lease_held:

            async def drop(prio: p.Priority) -> None:
                with contextlib.suppress(jserr.NotFoundError):
                    await js.delete_consumer(p.MAIL_STREAM, p.consumer_name(self.address, prio))

            await asyncio.gather(*(drop(prio) for prio in p.PRIORITIES if prio not in before.consumers))
        # 3. The record: put back the one acquire overwrote (an offline mailbox's, with its
        #    retention clock), or remove the one it created; only if it is still ours.
        now = await _kv_entry(js, p.MAILBOXES_BUCKET, self.address)
        if now is None or not now.live:
            return
        if before.record is not None and now.seq == before.record.seq:
            return  # never written
        if revs.record is not None and now.seq != revs.record:
            return  # rewritten since (a concurrent open): theirs now
        if before.record is not None and before.record.live:
            await _kv_write(js, p.MAILBOXES_BUCKET, self.address, before.record.data, last=now.seq)
        else:
            # Up to and including our write only: a later one (someone else's) stays.
            await js.purge_stream(
                _kv_stream(p.MAILBOXES_BUCKET),
                subject=_kv_key(p.MAILBOXES_BUCKET, self.address),
                seq=now.seq + 1,
            )

    @property
    def _inactive_threshold(self) -> float:
        """Consumers belong to presence: the sidecar releases them when the lease lapses. The
        server's inactivity threshold is only the backstop for a deployment without a sidecar;
        it must outlast an online agent that simply is not receiving (re-adding a consumer with
        the same config does not reset the server's inactivity clock)."""
        return max(3 * self.ttl, 300.0)

    async def _ensure_consumers(self) -> None:
        inactive = self._inactive_threshold
        await asyncio.gather(
            *(
                self._link.js.add_consumer(
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
        self._receiver.stop()
        nc = self._link.nc
        try:
            if self._reply_box is not None:
                with contextlib.suppress(Exception):
                    await self._reply_box.close()
            if self._lease is not None:
                await self._lease.stop()
            self._receiver.redeliveries.cancel_all()
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
            buffered = self._receiver.take_buffered()
            for m in buffered if nc.is_connected else ():
                with contextlib.suppress(Exception):
                    await m._msg.nak()
        finally:
            self._link.mailboxes.discard(self)

    async def _rebind(self) -> None:
        """After a reconnect (called by the client): the pulls left waiting at the server
        died with the old connection, and a restarted (or reaped) server may have lost the
        consumers. Forget the pulls, make sure the consumers exist, renew the lease at once
        (it may have lapsed during the outage) and look at every level again."""
        if self._closed:
            return
        self._receiver.forget_pulls()
        delay = 0.1
        for _ in range(10):
            if self._closed or not self._link.nc.is_connected:
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
            self._receiver.look_everywhere()

    async def destroy(self) -> None:
        """Reclaim now: delete every message, the consumers, the lease and the card."""
        await self.close()
        self._destroyed = True
        with boundary():
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

    @property
    def _maybe(self) -> Mapping[p.Priority, bool]:
        return self._receiver.levels.maybe  # which levels may hold mail (for tests)

    @property
    def _waiting(self) -> Mapping[p.Priority, tuple[str, float]]:
        return self._receiver.pulls.waiting  # the idle pulls at the server (for tests)

    def _settled(self, m: Message, *, redeliver_in: float | None = None) -> None:
        """Hook for :class:`Message`: ``m`` was settled (``redeliver_in``: naked, back then)."""
        self._receiver.settled(m, redeliver_in=redeliver_in)

    def _touched(self, m: Message) -> None:
        """Hook for :class:`Message`: ``m`` is in progress, the ack wait starts again."""
        self._receiver.touched(m)

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
            m = await self._receiver.next(t, self.prefetch)
        if m is None:
            raise Timeout(f"no mail for {self.address} within {t:g} s{self._receiver.blocked_note()}")
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
            groups.setdefault(natscompat.parse_ack_reply(m._msg.reply).consumer, []).append(m)
        nc = self._link.nc
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
        an empty list on timeout. Strict priority holds through a failover as for
        :meth:`receive`."""
        if not isinstance(max, int) or max < 1:
            raise InvalidInput("max must be a positive int")
        t = plain_seconds(timeout, what="timeout")
        async with self._recv_lock:
            first = await self._receiver.next(t, max)
            if first is None:
                return []
            out = [first]
            while len(out) < max:
                m = self._receiver.pop()
                if m is None:
                    break
                out.append(m)
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


# -- what an open() found and wrote (for Mailbox._start and _undo_start) -------------------------

#: How long a failed open() waits for its writes in flight, and then for removing what it
#: created, before giving up (a lease left behind lapses by itself after its TTL).
_UNDO_TIMEOUT = 10.0


def _kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def _kv_key(bucket: str, key: str) -> str:
    return f"$KV.{bucket}.{key}"


@dataclass(frozen=True)
class _KVEntry:
    seq: int
    data: bytes
    #: False for a delete/purge marker or a lapsed lease's limit marker (no value).
    live: bool


async def _kv_entry(js: JetStreamContext, bucket: str, key: str) -> _KVEntry | None:
    """The latest entry of a key by direct get (no bucket lookup, markers included)."""
    try:
        raw = await js.get_msg(_kv_stream(bucket), subject=_kv_key(bucket, key), direct=True)
    except jserr.NotFoundError:
        return None
    op = (raw.headers or {}).get("KV-Operation")
    data = raw.data or b""
    return _KVEntry(seq=int(raw.seq or 0), data=data, live=bool(data) and op is None)


async def _kv_write(
    js: JetStreamContext,
    bucket: str,
    key: str,
    data: bytes,
    *,
    last: int,
    headers: dict[str, str] | None = None,
    ttl: float | None = None,
) -> bool:
    """Write ``key`` only if its latest revision is still ``last``; False if it is not."""
    hdrs = dict(headers or {})
    hdrs[p.Header.NATS_EXPECTED_LAST_SUBJECT_SEQ] = str(last)
    try:
        await js.publish(_kv_key(bucket, key), data, headers=hdrs, msg_ttl=ttl, timeout=5.0)
    except jserr.APIError as exc:
        if p.jsapi.is_wrong_last_sequence(exc):  # somebody wrote it since
            return False
        raise
    return True


@dataclass(frozen=True)
class _Before:
    """What existed at an address before open() wrote anything."""

    record: _KVEntry | None
    lease_live: bool
    consumers: frozenset[p.Priority]

    @classmethod
    async def read(cls, js: JetStreamContext, address: str) -> _Before:
        async def exists(prio: p.Priority) -> bool:
            try:
                await js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))
            except jserr.NotFoundError:
                return False
            return True

        record, lease, *found = await asyncio.gather(
            _kv_entry(js, p.MAILBOXES_BUCKET, address),
            _kv_entry(js, p.AGENTS_BUCKET, address),
            *(exists(prio) for prio in p.PRIORITIES),
        )
        assert record is None or isinstance(record, _KVEntry)
        assert lease is None or isinstance(lease, _KVEntry)
        return cls(
            record=record,
            lease_live=bool(lease is not None and lease.live),
            consumers=frozenset(prio for prio, there in zip(p.PRIORITIES, found, strict=True) if there),
        )


@dataclass
class _Progress:
    """How far an open() got: what it found, then what it wrote."""

    before: _Before | None = None
    written: _Written | None = None


@dataclass(frozen=True)
class _Written:
    """Revisions of the record and the lease just after open() wrote them (None: unknown)."""

    record: int | None = None
    lease: int | None = None

    @classmethod
    async def read(cls, js: JetStreamContext, address: str) -> _Written:
        record, lease = await asyncio.gather(
            _kv_entry(js, p.MAILBOXES_BUCKET, address), _kv_entry(js, p.AGENTS_BUCKET, address)
        )
        return cls(
            record=record.seq if record is not None else None,
            lease=lease.seq if lease is not None else None,
        )


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # nobody awaits it any more: no "exception never retrieved" log


async def _finish(undo: Coroutine[Any, Any, None], *, what: str) -> bool:
    """Run ``undo`` to the end even if the caller is cancelled meanwhile (bounded by
    ``_UNDO_TIMEOUT``); True if a cancellation arrived while it ran. Its own errors are only
    logged: the caller raises the error that made it undo."""
    task = asyncio.ensure_future(asyncio.wait_for(undo, 2 * _UNDO_TIMEOUT))
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("mailslot.mailbox").warning(
            "%s failed (its lease lapses by itself): %r", what, task.exception()
        )
    return cancelled


__all__ = ["AgentCard", "Mailbox", "new_address"]
