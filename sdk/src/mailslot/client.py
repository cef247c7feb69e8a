"""The connection to a Mailslot broker and the operations that need no mailbox."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import random
import time
import weakref
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import nats.errors as nerr
from mailslot_broker import protocol as p
from mailslot_broker.provision import ProvisionReport
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js import errors as jserr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from ._boundary import address as check_address
from ._boundary import boundary
from ._boundary import count as check_count
from .broadcast import Published, Replay, TopicSubscription
from .broadcast import publish as _publish_topic
from .errors import (
    Disconnected,
    InvalidInput,
    NotConnected,
)
from .mailbox import AgentCard, Mailbox
from .message import Receipt
from .outgoing import Outgoing, prepare
from .registry import AgentWatch, list_agents
from .view import MailboxView

if TYPE_CHECKING:
    from .deadletters import DeadLetters

#: The keys a ``send_many`` item may have (``prepare``'s arguments; ``to`` and ``payload`` too).
_SEND_MANY_KEYS = frozenset(inspect.signature(prepare).parameters) - {"max_payload"}
#: Most acks ``send_many`` keeps outstanding.
_MAX_WINDOW = 65536

#: Errors a publish may hit while a stream leader is being elected: retried with the same
#: message id, so the server drops the duplicate if the first attempt did land.
_TRANSIENT = (nerr.NoRespondersError, jserr.NoStreamResponseError, nerr.TimeoutError)
#: ... and while the connection is being re-established (a request in flight when it dropped).
_RETRIED = (*_TRANSIENT, Disconnected)
#: How long close() waits for a graceful drain before it just closes the connection.
_CLOSE_GRACE = 5.0

log = logging.getLogger("mailslot.client")


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # marks it retrieved: no "exception was never retrieved" log


class Mailslot:
    """A connected client. Create with :func:`connect`."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        url: str,
        tenant: str | None,
        name: str | None,
        provisioned: ProvisionReport | None,
        publish_retry_for: float,
        outage_timeout: float = 5.0,
        receive_outage_timeout: float = 60.0,
    ) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self.url = url
        self.tenant = tenant
        self.name = name
        self.provisioned = provisioned
        self._publish_retry_for = publish_retry_for
        self._mailboxes: set[Mailbox] = set()
        #: Open subscriptions and agent watches, closed with the client so iterators end.
        self._streams: weakref.WeakSet[TopicSubscription | AgentWatch] = weakref.WeakSet()
        self._closed = False
        # -- connection state (see _connection_lost / _connection_back) --
        self._outage_timeout = outage_timeout
        self._receive_outage_timeout = receive_outage_timeout
        self._down_since: float | None = None
        self._up = asyncio.Event()
        self._up.set()
        self._rebinds: set[asyncio.Task[None]] = set()
        #: How often the connection dropped and came back (nats-py reconnects by itself).
        self.disconnects = 0
        self.reconnects = 0

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def nc(self) -> NatsClient:
        """The underlying nats-py client, for interop with plain NATS code."""
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        return self._js

    @property
    def server_version(self) -> str:
        v = self._nc.connected_server_version
        return f"{v.major}.{v.minor}.{v.patch}"

    @property
    def max_payload(self) -> int:
        return int(self._nc.max_payload)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed or self._nc.is_closed:
            raise NotConnected("this Mailslot client is closed")

    # -- connection state -------------------------------------------------------------------
    #
    # nats-py reconnects by itself (forever, every reconnect_time_wait). While it does, a call
    # that needs the server waits up to ``outage_timeout`` for it (connection.py wraps the
    # connection's ``request`` with ``_until_connected``), then raises Disconnected; requests
    # in flight when it dropped fail at once with Disconnected (their replies went to the old
    # socket), and a send retries them, up to the same bound.

    @property
    def connected(self) -> bool:
        """True while the connection to the broker is up (False while it reconnects)."""
        return bool(self._nc.is_connected) and not self._closed

    def _outage(self) -> float | None:
        """Seconds the connection has been down, None while it is up."""
        if self._nc.is_connected:
            return None
        now = time.monotonic()
        if self._down_since is None:  # noticed before the disconnect callback ran
            self._down_since = now
        return now - self._down_since

    def _disconnected_error(self, down: float) -> Disconnected:
        return Disconnected(
            f"the connection to {self.url} is down (for {down:.1f} s; reconnecting in the background)"
        )

    async def _until_connected(self, limit: float | None = None) -> None:
        """Return once connected; raise Disconnected if the connection is not back within
        ``limit`` (default ``outage_timeout``) seconds, NotConnected if the client closed."""
        if self._nc.is_connected:
            return
        deadline = time.monotonic() + (self._outage_timeout if limit is None else limit)
        while True:
            self._check_open()
            down = self._outage()
            if down is None:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._disconnected_error(down)
            with contextlib.suppress(asyncio.TimeoutError):
                # Polled as well: nats-py reports "connected" a moment before its callback.
                await asyncio.wait_for(self._up.wait(), min(remaining, 0.1))

    def _connection_lost(self) -> None:
        """nats-py's disconnected callback (also called once more on close)."""
        if self._closed or self._nc.is_connected:
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
        if self._up.is_set():
            self.disconnects += 1
        self._up.clear()
        # Replies to requests in flight went to the dead socket: fail them now rather than
        # after their timeout (a publish is retried with the same message id).
        err = self._disconnected_error(0.0)
        for fut in list(getattr(self._nc, "_resp_map", {}).values()):
            if not fut.done():
                fut.set_exception(Disconnected(str(err)))
        for fut in list(getattr(self._js, "_publish_async_futures", {}).values()):
            if not fut.done():
                fut.add_done_callback(_retrieve)  # nobody may be awaiting it
                fut.set_exception(Disconnected(str(err)))
        for mb in list(self._mailboxes):
            mb._connection_lost()
        for stream in list(self._streams):
            if isinstance(stream, TopicSubscription):
                stream._connection_lost()

    def _connection_back(self) -> None:
        """nats-py's reconnected callback: subscriptions were re-sent by nats-py; re-bind
        the mailboxes (their waiting pulls died with the old connection)."""
        down = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        self._down_since = None
        self.reconnects += 1
        self._up.set()
        if self._closed:
            return
        log.info("reconnected to %s after %.2f s", self.url, down)
        for mb in list(self._mailboxes):
            self._spawn(mb._rebind())
        for stream in list(self._streams):
            if isinstance(stream, TopicSubscription):
                stream._connection_back()

    def _connection_closed(self) -> None:
        """nats-py's closed callback: wake everything that waits for the connection."""
        self._up.set()
        for mb in list(self._mailboxes):
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
        if self._closed:
            return
        self._closed = True
        self._up.set()
        for task in list(self._rebinds):
            task.cancel()
        for mb in list(self._mailboxes):
            try:
                await asyncio.wait_for(mb.close(), _CLOSE_GRACE)
            except Exception as exc:  # closing must not fail: the lease runs out by itself
                log.debug("closing mailbox %s: %r", mb.address, exc)
        for stream in list(self._streams):
            try:
                await asyncio.wait_for(stream.close(), _CLOSE_GRACE)
            except Exception as exc:
                log.debug("closing %r: %r", stream, exc)
        nc = self._nc
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

    # -- sending ----------------------------------------------------------------------------

    async def _publish(self, out: Outgoing) -> Receipt:
        self._check_open()
        with boundary():
            started = time.monotonic()
            try:
                # Fast path: building a tenacity retrier costs about a third of a send's CPU
                # (see bench/), so it is only built once a first attempt hit a transient error.
                # While the connection is down the request waits for it (up to outage_timeout).
                ack = await self._js.publish(out.subject, out.data, headers=out.headers, timeout=5.0)
            except _RETRIED as exc:
                if time.monotonic() - started >= self._publish_retry_for or self._outage_exceeded():
                    self._raise_publish_error(exc)
                if not isinstance(exc, Disconnected):
                    await asyncio.sleep(min(2.0, 0.1 + random.uniform(0, 1)))  # tenacity's 1st wait
                backoff = wait_exponential_jitter(multiplier=0.1, max=2.0)

                def wait(state: RetryCallState) -> float:
                    # A dropped connection needs no backoff: the next attempt waits for it.
                    failed = state.outcome.exception() if state.outcome is not None else None
                    return 0.0 if isinstance(failed, Disconnected) else backoff(state)

                for_long = stop_after_delay(max(0.0, self._publish_retry_for - (time.monotonic() - started)))

                def stop(state: RetryCallState) -> bool:
                    # An outage is not a leader election: stop once the connection has been
                    # down longer than outage_timeout.
                    return for_long(state) or self._outage_exceeded()

                try:
                    async for attempt in AsyncRetrying(
                        retry=retry_if_exception_type(_RETRIED),
                        stop=stop,
                        wait=wait,
                        reraise=True,
                    ):
                        with attempt:
                            ack = await self._js.publish(
                                out.subject, out.data, headers=out.headers, timeout=5.0
                            )
                except _RETRIED as exc2:
                    self._raise_publish_error(exc2)
        return Receipt(
            id=out.id,
            to=out.to,
            priority=out.priority,
            seq=ack.seq,
            duplicate=bool(ack.duplicate),
            scheduled=out.scheduled,
        )

    def _outage_exceeded(self) -> bool:
        down = self._outage()
        return down is not None and down >= self._outage_timeout

    def _raise_publish_error(self, exc: BaseException) -> NoReturn:
        """What a publish that ran out of retries raises: Disconnected while the connection
        is down (a dead broker is not a slow one), else the last error as it was."""
        down = self._outage()
        if isinstance(exc, Disconnected) or down is None:
            raise exc
        raise self._disconnected_error(down) from exc

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
        """Put a message in ``to``'s mailbox; it waits there until received or expired.

        Returns once the server stored it. ``idempotency_key`` makes a retried send a no-op
        within the dedupe window (the receipt says ``duplicate=True``). With
        ``notify_undelivered=True`` the sender (``sender=`` or the sending mailbox) gets a
        bounce notice in its own mailbox if the message is reclaimed unread
        (:attr:`Message.bounce`).
        """
        self._check_open()
        out = prepare(
            to,
            payload,
            sender=sender or self.name,
            max_payload=self.max_payload,
            priority=priority,
            ttl=ttl,
            delay=delay,
            idempotency_key=idempotency_key,
            headers=headers,
            reply_to=reply_to,
            correlation_id=correlation_id,
            thread_id=thread_id,
            notify_undelivered=notify_undelivered,
        )
        return await self._publish(out)

    async def send_many(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        window: int = 512,
    ) -> list[Receipt]:
        """Pipelined send for bulk producers: every item is validated first (nothing is sent
        if one is invalid), then published with at most ``window`` acks outstanding.

        Each item is a mapping of :meth:`send`'s arguments: ``{"to": ..., "payload": ...,
        "priority": ...}``.
        """
        self._check_open()
        window = check_count(window, what="window", minimum=1, maximum=_MAX_WINDOW)
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
            raise InvalidInput(f"send_many takes an iterable of mappings, not {type(messages).__name__}")
        prepared = []
        for i, item in enumerate(messages):
            if not isinstance(item, Mapping):
                raise InvalidInput(f"send_many item {i} must be a mapping, not {type(item).__name__}")
            kw = dict(item)
            try:
                to, payload = kw.pop("to"), kw.pop("payload")
            except KeyError as exc:
                raise InvalidInput(f"send_many item {i} needs 'to' and 'payload'") from exc
            unknown = sorted(str(k) for k in kw if k not in _SEND_MANY_KEYS)
            if unknown:
                raise InvalidInput(
                    f"send_many item {i} has unknown keys {unknown}; allowed are "
                    + ", ".join(sorted(_SEND_MANY_KEYS))
                )
            kw.setdefault("sender", self.name)
            prepared.append(prepare(to, payload, max_payload=self.max_payload, **kw))
        receipts: list[Receipt] = []
        # A sliding window (oldest ack awaited once ``window`` are outstanding) rather than
        # chunks: waiting for a whole chunk to drain left the pipe empty (see bench/).
        pending: collections.deque[tuple[Outgoing, asyncio.Future[Any]]] = collections.deque()

        async def settle() -> None:
            o, fut = pending.popleft()
            try:
                ack = await fut
            except Exception:
                receipts.append(await self._publish(o))  # retried with the same id
                return
            receipts.append(
                Receipt(
                    id=o.id,
                    to=o.to,
                    priority=o.priority,
                    seq=ack.seq,
                    duplicate=bool(ack.duplicate),
                    scheduled=o.scheduled,
                )
            )

        with boundary():
            try:
                for o in prepared:
                    if pending and len(pending) >= window:
                        await settle()
                    if not self._nc.is_connected:
                        # Nothing is pipelined into a dead connection: wait (outage_timeout).
                        await self._until_connected()
                    fut = await self._js.publish_async(o.subject, o.data, headers=o.headers)
                    pending.append((o, fut))
                while pending:
                    await settle()
            finally:
                for _, fut in pending:  # only on error: nobody will await these any more
                    fut.cancel()
        return receipts

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
        :class:`InvalidInput` (:class:`InvalidTTLError` for durations). An ``open`` that fails
        or is cancelled half-way removes what it created (record, lease, consumers) and leaves
        what was there before, so a failed ``open`` of an offline mailbox loses nothing.
        """
        self._check_open()
        mb = Mailbox._create(
            self,
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
        await self._until_connected()  # bad input is refused at once, even while disconnected
        self._mailboxes.add(mb)
        try:
            await mb._start()
        except BaseException:
            self._mailboxes.discard(mb)
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
        return await _publish_topic(self, topic, payload, durable=durable, ttl=ttl, headers=headers)

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
        self._check_open()
        sub = TopicSubscription(self, pattern, queue=queue, replay=replay)
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
        return await list_agents(self, capability=capability, tag=tag, include_offline=include_offline)

    def watch_agents(self, *, initial: bool = False) -> AgentWatch:
        """Async iterator of join/update/leave events (``initial=True`` reports the agents
        already live as joins first). Await it or use ``async with`` to start it eagerly."""
        self._check_open()
        watch = AgentWatch(self, initial=initial)
        self._streams.add(watch)
        return watch

    @property
    def dead_letters(self) -> DeadLetters:
        """The dead-letter queue: ``list``, ``get``, ``requeue``, ``purge``."""
        from .deadletters import DeadLetters

        return DeadLetters(self)

    def inspect(self, address: str) -> MailboxView:
        """Read-only view of any mailbox (``peek``, ``stats``), opened or not."""
        self._check_open()
        return MailboxView(self, check_address(address))

    def _forget(self, mb: Mailbox) -> None:
        self._mailboxes.discard(mb)


__all__ = ["Mailslot"]
