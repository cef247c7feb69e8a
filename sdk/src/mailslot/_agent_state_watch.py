"""The watch of an agent's state and the consumers behind it and behind its listings
(:mod:`mailslot._agent_state` says why they are push consumers of the state bucket, named
by the client, with the filter in the ``CONSUMER.CREATE`` subject)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mailslot_broker import protocol as p
from mailslot_broker.kvscan import WATCH_INACTIVE_THRESHOLD
from mailslot_broker.protocol import state as pstate
from mailslot_broker.tasks import cancel_and_wait
from nats import errors as nerr
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import errors as jserr
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP, KV_PURGE

from ._boundary import boundary, translate
from ._state_types import StateChange
from .errors import Disconnected, Timeout, Unavailable
from .link import Link
from .state import StateWatch

if TYPE_CHECKING:
    from ._agent_state import AgentStateStore

_AW = p.agent_writes
_BUCKET_STREAM = p.kv_stream(p.STATE_BUCKET)
#: A watch consumer's idle heartbeat (s), and how many a watch may miss before it makes the
#: consumer again.
HEARTBEAT = 5.0
WATCH_SILENCE = 3

#: Failures to make a watch consumer again that a moment may cure: unanswered (a leader
#: election, or the connection dropping), no responders (no stream or consumer leader yet).
_TRANSIENT = (nerr.TimeoutError, asyncio.TimeoutError, nerr.NoRespondersError, Timeout, Disconnected)


def transient(exc: BaseException) -> bool:
    """Whether making a watch's consumer again may work if asked again: an unanswered or
    refused request (as :mod:`mailslot._ride_out` and the receive loop's failover count
    them), not a refusal that no waiting cures (permissions, the stream's consumer limit,
    JetStream off, a closed client)."""
    if isinstance(exc, jserr.APIError):
        # 503 without JetStream off: nobody leads the stream (yet).
        return exc.code == 503 and not p.jsapi.is_jetstream_disabled(exc)
    return isinstance(exc, _TRANSIENT)


class Reopening:
    """When a watch stops making its consumer again, sans I/O: a failure that is not
    :func:`transient` ends the watch at once, a transient one once failures have gone on for
    ``patience`` seconds (the client's ``failover_timeout``). Time the connection is down does
    not count: a watch waits out an outage, as a tenant's (nats-py's ordered consumer) does."""

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self.failing_since: float | None = None

    def succeeded(self) -> None:
        self.failing_since = None

    def failed(self, exc: BaseException, *, now: float, connected: bool) -> BaseException | None:
        """The error that ends the watch (typed, with ``exc`` as its cause), or None: try again."""
        if not transient(exc):
            return translate(exc)
        if not connected:
            self.failing_since = None
            return None
        if self.failing_since is None:
            self.failing_since = now
        failing = now - self.failing_since
        if failing < self.patience:
            return None
        err = Unavailable(
            f"a state watch could not make its consumer again for {failing:.1f} s "
            f"(failover_timeout {self.patience:g} s): {translate(exc)}"
        )
        err.__cause__ = exc
        return err


def _operation(headers: Mapping[str, str] | None) -> str | None:
    h = headers or {}
    if h.get(KV_OP):
        return h[KV_OP]
    reason = h.get(KV_MARKER_REASON)
    if reason is None:
        return None
    return KV_DEL if reason == "Remove" else KV_PURGE


def _revision(msg: Msg) -> int:
    """The writes stream's revision of a bucket message (0: the bucket's own marker)."""
    found = _AW.written_revision(msg.headers)
    if found is not None:
        return found
    return 0 if _operation(msg.headers) else int(msg.metadata.sequence.stream)


class _Feed:
    """One push consumer of the state bucket, filtered on ``pattern`` (a KV key pattern in
    the agent's scope), delivered to this connection's inbox; ``initial`` messages were in
    the bucket when it was made."""

    def __init__(self, link: Link, pattern: str) -> None:
        self.link = link
        self.pattern = pattern
        self.name = f"ast{uuid.uuid4().hex}"
        self.sub: Subscription | None = None
        self.initial = 0
        #: Set once the consumer is made (and :attr:`initial` known): deliveries wait for it.
        self.ready = asyncio.Event()
        #: The last consumer and stream sequences delivered (a watch resumes after them).
        self.consumer_seq = 0
        self.stream_seq = 0
        self.heard = 0.0

    async def open(
        self, on_msg: Any, *, existing: bool, after: int | None = None, heartbeat: float | None = None
    ) -> _Feed:
        """Deliver the last value of each key (``existing``), what is stored after stream
        sequence ``after``, or only what comes next; ``heartbeat``: an idle heartbeat."""
        nc, js = self.link.nc, self.link.js
        inbox = nc.new_inbox()
        self.sub = await nc.subscribe(inbox, cb=on_msg)
        if after is not None:
            policy, start = DeliverPolicy.BY_START_SEQUENCE, after + 1
        else:
            policy, start = (DeliverPolicy.LAST_PER_SUBJECT if existing else DeliverPolicy.NEW), None
        config = ConsumerConfig(
            name=self.name,
            filter_subject=p.kv_subject(p.STATE_BUCKET, self.pattern),
            deliver_subject=inbox,
            deliver_policy=policy,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            idle_heartbeat=heartbeat,
            inactive_threshold=WATCH_INACTIVE_THRESHOLD,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            info = await js.add_consumer(_BUCKET_STREAM, config)
            self.initial = int(info.num_pending or 0) if policy == DeliverPolicy.LAST_PER_SUBJECT else 0
            delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
            self.stream_seq = after if after is not None else delivered
            self.heard = asyncio.get_running_loop().time()
        finally:
            self.ready.set()
        return self

    async def close(self) -> None:
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
        with contextlib.suppress(Exception):
            await self.link.js.delete_consumer(_BUCKET_STREAM, self.name)


class AgentStateWatch(StateWatch):
    """:class:`~mailslot.state.StateWatch` of an agent's state: a push consumer of the bucket
    per filter (see the module); each change once, in order per key.

    Its consumers deliver without acks, so what the server sent while the connection was
    down is lost, and a consumer left without interest past its inactive threshold is gone.
    The watch notices either (a consumer sequence that skips, or no message nor idle
    heartbeat for :data:`WATCH_SILENCE` heartbeats) and makes the consumer again, from the
    stream sequence after the last one it delivered (a key's change it has reported already
    is not reported twice), as nats-py's ordered consumer does for a tenant's watch."""

    _store: AgentStateStore

    def __init__(self, store: AgentStateStore, filters: list[str], *, include_existing: bool) -> None:
        super().__init__(store, filters, include_existing=include_existing)
        self._feeds: list[_Feed] = []
        self._stale: asyncio.Queue[_Feed] = asyncio.Queue()

    async def _open(self) -> None:
        store = self._store
        await store._caught_up()  # writes acknowledged before the watch are not news
        with boundary():
            for pattern in self._filters:
                feed = _Feed(store._link, pattern)
                self._feeds.append(feed)
                await feed.open(self._on_msg(feed), existing=self.include_existing, heartbeat=HEARTBEAT)
        self._tasks.append(asyncio.create_task(self._keep(), name="mailslot:agent-state-watch"))

    async def _keep(self) -> None:
        """Make a feed's consumer again when it skipped or fell silent (see the class); a
        failure that asking again will not cure ends the watch with it (:class:`Reopening`)."""
        loop = asyncio.get_running_loop()
        link = self._store._link
        policy = Reopening(link.options.failover_timeout)
        while True:
            try:
                feed = await asyncio.wait_for(self._stale.get(), HEARTBEAT)
            except asyncio.TimeoutError:
                silent = [f for f in self._feeds if loop.time() - f.heard > WATCH_SILENCE * HEARTBEAT]
                if not silent:
                    continue
                feed = silent[0]
            if feed not in self._feeds:
                continue  # replaced already
            try:
                await self._reopen(feed)
            except Exception as exc:
                err = policy.failed(exc, now=loop.time(), connected=link.connected)
                if err is None:
                    continue  # tried again at the next tick
                if err is not exc and err.__cause__ is None:
                    err.__cause__ = exc  # as `raise ... from exc` at the boundary
                self._out.put(err)
                self._out.close()  # what came before is read first; then the iteration ends
                return
            policy.succeeded()

    async def _reopen(self, old: _Feed) -> None:
        new = _Feed(old.link, old.pattern)
        new.stream_seq = old.stream_seq
        new.heard = asyncio.get_running_loop().time()
        self._feeds[self._feeds.index(old)] = new
        await old.close()
        # Values the old feed had not delivered yet are read again by the last of each key.
        unfinished = old.initial and old.consumer_seq < old.initial
        after = None if unfinished else old.stream_seq
        try:
            await new.open(self._on_msg(new), existing=True, after=after, heartbeat=HEARTBEAT)
        except BaseException:
            new.heard = 0.0  # silent: tried again
            raise

    def _on_msg(self, feed: _Feed) -> Any:
        store = self._store
        head = p.kv_subject(p.STATE_BUCKET, "")

        async def on_msg(msg: Msg) -> None:
            await feed.ready.wait()  # nats-py runs one subscription's callbacks in order
            feed.heard = asyncio.get_running_loop().time()
            if msg.headers and msg.headers.get("Status") == "100":  # an idle heartbeat
                last = int(msg.headers.get("Nats-Last-Consumer", "0") or 0)
                if last > feed.consumer_seq:  # it delivered what never came
                    self._stale.put_nowait(feed)
                return
            if feed not in self._feeds:
                return  # replaced
            kv_key = msg.subject[len(head) :]
            key = pstate.state_key_of(store.namespace, kv_key, scope=store._scope)
            meta = msg.metadata
            seq = int(meta.sequence.stream)
            if int(meta.sequence.consumer) != feed.consumer_seq + 1:  # some went missing
                self._stale.put_nowait(feed)
                return
            feed.consumer_seq = int(meta.sequence.consumer)
            feed.stream_seq = max(feed.stream_seq, seq)
            if key is None or self._seen.get(kv_key, 0) >= seq:
                return
            self._seen[kv_key] = seq
            deleted = _operation(msg.headers) is not None
            if int(meta.sequence.consumer) <= feed.initial and deleted:
                return  # an old delete is not news
            self._out.put(StateChange(key, None if deleted else (msg.data or b""), _revision(msg)))

        return on_msg

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait(self._tasks)
        for feed in self._feeds:
            await feed.close()
        self._out.close()


__all__ = ["HEARTBEAT", "WATCH_SILENCE", "AgentStateWatch", "Reopening", "transient"]
