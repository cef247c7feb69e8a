"""Broadcast: publish to a topic, subscribe with wildcards, replay durable history.

Live traffic is core NATS on ``topic.<name>``. A durable publish goes to ``ptopic.<name>``;
stream ``MAILSLOT_TOPICS`` stores it and republishes it to ``topic.<name>``, so one live
subscription sees both kinds. A subscription with ``replay`` reads the stored history first
(an ordered consumer) and then switches to live without a gap or a duplicate:

1. subscribe live first and buffer what arrives;
2. note the stream's last sequence ``L``;
3. deliver history up to ``L`` (a stored message past ``L`` is left to the live side);
4. drain the buffer, dropping republished (durable) messages whose ``Nats-Sequence`` is ``<= L``
   because history already delivered them, then deliver live messages as they come.

Steps 3 and 4 switch over without an ``await`` in between, so nothing can slip through.

Across a reconnect the live subscription is re-sent by nats-py. Ephemeral messages published
while the connection was down are gone (as with no subscriber); a subscription with ``replay``
also catches up on the durable messages it missed: it buffers live traffic from the moment the
connection drops and, once it is back, reads the stored history after the last durable message
it delivered, with the same switch-over. A history read interrupted by a reconnect resumes
after the last message it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

import nats.errors as nerr
from mailslot_broker import protocol as p
from mailslot_broker.protocol import Header
from mailslot_broker.tasks import cancel_and_wait
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js.api import ConsumerConfig, DeliverPolicy

from ._boundary import boundary, plain_seconds, seconds
from .envelope import Envelope
from .errors import InvalidInput, Timeout
from .link import Link
from .message import _parse_float, _parse_time
from .outgoing import check_size, new_message_id, stamp

T = TypeVar("T")
Replay = Literal["all", "last"] | datetime | None
_NATS_STREAM = "Nats-Stream"
#: A history read that received nothing for this long has stalled.
_HISTORY_STALL = 30.0

log = logging.getLogger("mailslot.broadcast")


@dataclass(frozen=True)
class Published:
    """What :meth:`Mailslot.publish` sent. ``seq`` is the history sequence (durable only)."""

    id: str
    topic: str
    durable: bool
    seq: int | None = None
    duplicate: bool = False


class Broadcast(Envelope):
    """One message received on a topic: payload accessors like :class:`Message`, no ack."""

    __slots__ = ("_msg", "headers", "replayed", "topic")

    def __init__(self, msg: Msg, *, replayed: bool = False, seq: int | None = None) -> None:
        self._msg = msg
        self.headers: Mapping[str, str] = dict(msg.headers or {})
        if seq is not None:
            self.headers = {**self.headers, Header.NATS_SEQUENCE: str(seq)}
        try:
            self.topic = p.topic_from_subject(msg.subject)
        except ValueError:
            self.topic = msg.subject
        #: True when it came from stored history rather than live.
        self.replayed = replayed

    @property
    def durable(self) -> bool:
        """Stored in the topic history (published with ``durable=True``)."""
        return self.replayed or _NATS_STREAM in self.headers

    @property
    def seq(self) -> int | None:
        """Sequence in the topic history; None for an ephemeral message."""
        v = self.headers.get(Header.NATS_SEQUENCE)
        return int(v) if v and self.durable else None

    @property
    def id(self) -> str | None:
        return self.headers.get(Header.MSG_ID)

    @property
    def sent_at(self) -> datetime | None:
        return _parse_time(self.headers.get(Header.SENT_AT))

    @property
    def ttl(self) -> float | None:
        return _parse_float(self.headers.get(Header.TTL))

    def __repr__(self) -> str:
        kind = "durable" if self.durable else "ephemeral"
        return f"<Broadcast topic={self.topic} {kind} seq={self.seq} id={self.id}>"


# -- publishing --------------------------------------------------------------------------------


async def publish(
    link: Link,
    topic: str,
    payload: Any,
    *,
    durable: bool = False,
    ttl: float | timedelta | None = None,
    headers: Mapping[str, str] | None = None,
) -> Published:
    with boundary():
        topic = p.validate_topic(topic)
    ttl_s = seconds(ttl, what="ttl")
    if ttl_s is not None and not durable:
        raise InvalidInput("ttl only applies to durable=True: an ephemeral message is never stored")
    msg_id = new_message_id()
    data, hdrs = stamp(
        payload, headers=headers, msg_id=msg_id, sender=link.name, now=datetime.now(timezone.utc)
    )
    subject = p.durable_topic_subject(topic) if durable else p.topic_subject(topic)
    if durable:
        hdrs[Header.NATS_MSG_ID] = msg_id
        if ttl_s is not None:
            hdrs[Header.TTL] = f"{ttl_s:g}"
            hdrs[Header.NATS_TTL] = p.nats_ttl_value(ttl_s)
    check_size(subject, data, hdrs, max_payload=link.max_payload, what=f"broadcast on {topic}")
    link.check_open()
    with boundary():
        if not durable:
            if not link.nc.is_connected:  # not buffered towards a connection that may not return
                await link.until_connected()
            await link.nc.publish(subject, data, headers=hdrs)
            return Published(id=msg_id, topic=topic, durable=False)
        ack = await link.js.publish(subject, data, headers=hdrs, timeout=5.0)
    return Published(id=msg_id, topic=topic, durable=True, seq=ack.seq, duplicate=bool(ack.duplicate))


# -- subscribing -------------------------------------------------------------------------------

_CLOSED = object()


class TopicSubscription:
    """Live (and optionally replayed) messages on a topic pattern.

    Await it (``sub = await ms.subscribe(...)``) to be sure it is listening before you go on;
    ``async for`` and ``async with`` start it too. Iterating yields :class:`Broadcast` events
    until :meth:`close`.
    """

    def __init__(
        self,
        link: Link,
        pattern: str,
        *,
        queue: str | None,
        replay: Replay,
    ) -> None:
        with boundary():
            self.pattern = p.validate_topic_pattern(pattern)
        if queue is not None:
            with boundary():
                p.validate_address(queue)
        if replay is not None and not isinstance(replay, datetime) and replay not in ("all", "last"):
            raise InvalidInput(f"replay must be 'all', 'last', a datetime or None, not {replay!r}")
        if replay is not None and queue is not None:
            raise InvalidInput("replay cannot be combined with a queue group")
        if isinstance(replay, datetime) and replay.tzinfo is None:
            replay = replay.astimezone()  # naive = local time
        self._link = link
        self.queue = queue
        self.replay = replay
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._buffer: list[Msg] | None = [] if replay is not None else None
        self._threshold = 0  # live durable messages with seq <= this were replayed already
        self._seen = 0  # (with replay) the highest history sequence delivered, live or replayed
        self._hist_done = 0  # the last sequence the current history read delivered
        self._gap_after: int | None = None  # (with replay) catch up after this on reconnect
        self._sub: NatsSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        #: Counters: messages delivered from history, live duplicates of history dropped.
        self.replayed = 0
        self.skipped = 0

    # -- start / stop ------------------------------------------------------------------------

    async def start(self) -> TopicSubscription:
        async with self._start_lock:
            if self._started:
                return self
            self._link.check_open()
            nc = self._link.nc
            with boundary():
                await self._link.until_connected()
                self._sub = await nc.subscribe(
                    p.topic_subject(self.pattern), queue=self.queue or "", cb=self._on_live
                )
                await nc.flush(timeout=10)
            self._started = True
            if self.replay is not None:
                self._task = asyncio.create_task(self._replay(), name=f"replay:{self.pattern}")
        return self

    def __await__(self) -> Generator[Any, None, TopicSubscription]:
        return self.start().__await__()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait([self._task])
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        self._out.put_nowait(_CLOSED)

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> TopicSubscription:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- delivery ------------------------------------------------------------------------------

    def _fresh(self, msg: Msg) -> bool:
        """False for a republished durable message that history already delivered."""
        h = msg.headers or {}
        if self._threshold and _NATS_STREAM in h:
            with contextlib.suppress(ValueError):
                if int(h.get(Header.NATS_SEQUENCE, "0")) <= self._threshold:
                    self.skipped += 1
                    return False
        return True

    async def _on_live(self, msg: Msg) -> None:
        if self._buffer is not None:
            self._buffer.append(msg)
        else:
            self._deliver_live(msg)

    def _deliver_live(self, msg: Msg) -> None:
        if not self._fresh(msg):
            return
        if self.replay is not None and msg.headers and _NATS_STREAM in msg.headers:
            with contextlib.suppress(ValueError):
                self._seen = max(self._seen, int(msg.headers.get(Header.NATS_SEQUENCE, "0")))
        self._out.put_nowait(Broadcast(msg))

    # -- reconnects (called by the client) ----------------------------------------------------

    def _connection_lost(self) -> None:
        if self.replay is None or not self._started or self._closed or self._buffer is not None:
            return  # live only, or a history read is running (it resumes by itself)
        # Buffer what the reconnected subscription delivers until the gap is filled.
        self._gap_after = max(self._seen, self._threshold)
        self._buffer = []

    def _connection_back(self) -> None:
        if self._gap_after is None or self._closed or (self._task is not None and not self._task.done()):
            return
        after, self._gap_after = self._gap_after, None
        self._task = asyncio.create_task(self._replay(after), name=f"catch-up:{self.pattern}")

    # -- history ------------------------------------------------------------------------------

    async def _replay(self, after: int | None = None) -> None:
        """Deliver history, then switch to live. With ``after`` (a catch-up after a
        reconnect): the stored messages after that sequence."""
        threshold = self._threshold
        try:
            await self._read_history(after)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Live duplicates are dropped only up to what history did deliver.
            self._threshold = max(threshold, self._hist_done)
            if after is None:
                self._out.put_nowait(exc)
            else:
                log.warning("catching up on %s after a reconnect failed: %r", self.pattern, exc)
        finally:
            # Switch to live in one step (no await): buffered first, then the callback directly.
            if self._gap_after is None:  # (else the connection dropped again: keep buffering)
                buffered, self._buffer = self._buffer or [], None
                for msg in buffered:
                    self._deliver_live(msg)

    def _history_config(self, after: int | None) -> ConsumerConfig:
        cfg = ConsumerConfig(filter_subject=p.durable_topic_subject(self.pattern))
        if after is not None:
            cfg.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            cfg.opt_start_seq = after + 1
        elif self.replay == "all":
            cfg.deliver_policy = DeliverPolicy.ALL
        elif self.replay == "last":
            cfg.deliver_policy = DeliverPolicy.LAST_PER_SUBJECT
        else:
            assert isinstance(self.replay, datetime)
            cfg.deliver_policy = DeliverPolicy.BY_START_TIME
            cfg.opt_start_time = self.replay
        return cfg

    async def _read_history(self, after: int | None = None) -> None:
        link = self._link
        with boundary():
            info = await link.js.stream_info(p.TOPICS_STREAM)
        last = int(info.state.last_seq or 0)
        self._threshold = max(self._threshold, last)
        self._hist_done = after or 0
        if last <= self._hist_done:
            return
        cfg = self._history_config(after)
        while True:
            epoch = link.reconnects
            if await self._read_history_once(copy.copy(cfg), last, epoch):
                return
            # Interrupted by a reconnect: read again (same start), skipping what was delivered.
            with boundary():
                await link.until_connected(link.receive_outage_timeout)

    async def _read_history_once(self, cfg: ConsumerConfig, last: int, epoch: int) -> bool:
        """One ordered consumer over the history up to ``last``; False if a reconnect
        interrupted it."""
        link = self._link

        def interrupted() -> bool:
            return link.reconnects != epoch or not link.nc.is_connected

        hist: Any = None
        try:
            try:
                with boundary():
                    hist = await link.js.subscribe(
                        p.durable_topic_subject(self.pattern),
                        stream=p.TOPICS_STREAM,
                        config=cfg,
                        ordered_consumer=True,
                        inactive_threshold=30.0,
                    )
                    ci = await hist.consumer_info()
            except Exception:
                if interrupted():
                    return False
                raise
            # Nothing matched if the server has neither pending nor already pushed messages
            # (pushed ones may still sit unread in the subscription's queue).
            pushed = ci.delivered.consumer_seq if ci.delivered is not None else 0
            if not ci.num_pending and not pushed and not hist.delivered:
                return True
            stalled_at = time.monotonic() + _HISTORY_STALL
            while True:
                try:
                    # In short steps, to notice a reconnect (the ordered consumer's memory
                    # state died with a restarted server).
                    msg = await hist.next_msg(timeout=1.0)
                except nerr.TimeoutError:
                    if interrupted():
                        return False
                    if time.monotonic() < stalled_at:
                        continue
                    raise Timeout(f"replay of {self.pattern} stalled") from None
                except Exception as exc:
                    if interrupted():
                        return False
                    raise Timeout(f"replay of {self.pattern} stalled") from exc
                stalled_at = time.monotonic() + _HISTORY_STALL
                meta = msg.metadata
                seq = meta.sequence.stream
                if seq <= self._hist_done:
                    # nats-py's ordered consumer may restart from an earlier sequence after a
                    # reset (seen under load: 0, 1, 0, 1, 2, ...), and a read resumed after a
                    # reconnect starts over: never deliver twice.
                    if meta.num_pending == 0:
                        return True
                    continue
                if seq > last:
                    return True  # stored after the snapshot: the live side delivers it
                self._out.put_nowait(Broadcast(msg, replayed=True, seq=seq))
                self.replayed += 1
                self._hist_done = seq
                self._seen = max(self._seen, seq)
                if seq == last or meta.num_pending == 0:
                    return True
        finally:
            if hist is not None:
                with contextlib.suppress(Exception):
                    await hist.unsubscribe()

    async def next(self, *, timeout: float | timedelta | None = None) -> Broadcast:
        """The next event; raises :class:`Timeout` after ``timeout`` seconds and
        :class:`StopAsyncIteration` once closed."""
        await self.start()
        t = plain_seconds(timeout, what="timeout")
        try:
            item = await asyncio.wait_for(self._out.get(), t)
        except asyncio.TimeoutError:
            raise Timeout(f"nothing on {self.pattern} within {t:g} s") from None
        if item is _CLOSED:
            self._out.put_nowait(_CLOSED)
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def __aiter__(self) -> TopicSubscription:
        return self

    async def __anext__(self) -> Broadcast:
        return await self.next()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "live" if self._started else "new"
        return f"<TopicSubscription {self.pattern} {state}>"


class SyncTopicSubscription:
    """Blocking twin of :class:`TopicSubscription` (from ``mailslot.sync``): iterate it, or
    call :meth:`next` with a timeout; ``with`` closes it."""

    def __init__(self, sub: TopicSubscription) -> None:
        from ._portal import PORTAL

        self._portal = PORTAL
        self._s = sub

    @property
    def aio(self) -> TopicSubscription:
        return self._s

    @property
    def pattern(self) -> str:
        return self._s.pattern

    @property
    def closed(self) -> bool:
        return self._s.closed

    def next(self, *, timeout: float | timedelta | None = None) -> Broadcast:
        """The next event; :class:`Timeout` after ``timeout`` s, StopIteration once closed."""
        try:
            return self._portal.call(self._s.next(timeout=timeout))
        except StopAsyncIteration:
            raise StopIteration from None

    def __iter__(self) -> SyncTopicSubscription:
        return self

    def __next__(self) -> Broadcast:
        return self.next()

    def close(self) -> None:
        self._portal.call(self._s.close())

    def __enter__(self) -> SyncTopicSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Broadcast", "Published", "SyncTopicSubscription", "TopicSubscription", "publish"]
