"""Broadcast: publish to a topic, subscribe with wildcards, replay durable history.

Live traffic is core NATS on ``topic.<name>``. A durable publish goes to ``ptopic.<name>``;
stream ``MAILSLOT_TOPICS`` stores it and republishes it to ``topic.<name>``, so one live
subscription sees both kinds. A subscription with ``replay`` reads the stored history first
(an ordered consumer) and then switches to live without a gap or a duplicate, also after a
reconnect: ``_replay.py`` says how.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from mailslot_broker import protocol as p
from mailslot_broker.protocol import Header
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from ._boundary import boundary, plain_seconds, seconds
from ._events import Events
from ._replay import NATS_STREAM, History, Replay
from .envelope import Envelope
from .errors import InvalidInput
from .link import Link
from .message import _parse_float, _parse_time
from .outgoing import check_size, new_message_id, stamp

T = TypeVar("T")


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
        return self.replayed or NATS_STREAM in self.headers

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
        self._out: Events[Broadcast] = Events()
        self._history = (
            None
            if replay is None
            else History(link, self.pattern, replay, deliver=self._deliver, fail=self._out.put)
        )
        self._sub: NatsSubscription | None = None
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()

    @property
    def replayed(self) -> int:
        """How many messages came from the stored history."""
        return 0 if self._history is None else self._history.replayed

    @property
    def skipped(self) -> int:
        """How many live duplicates of replayed messages were dropped."""
        return 0 if self._history is None else self._history.skipped

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
            if self._history is not None:
                self._history.start()
        return self

    def __await__(self) -> Generator[Any, None, TopicSubscription]:
        return self.start().__await__()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._history is not None:
            await self._history.close()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        self._out.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> TopicSubscription:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- delivery ------------------------------------------------------------------------------

    async def _on_live(self, msg: Msg) -> None:
        if self._history is not None:
            self._history.on_live(msg)  # held back while history is read, duplicates dropped
        else:
            self._out.put(Broadcast(msg))

    def _deliver(self, msg: Msg, seq: int | None) -> None:
        self._out.put(Broadcast(msg, replayed=seq is not None, seq=seq))

    # -- reconnects (called by the client) ----------------------------------------------------

    def _connection_lost(self) -> None:
        if self._history is not None and self._started and not self._closed:
            self._history.connection_lost()

    def _connection_back(self) -> None:
        if self._history is not None and not self._closed:
            self._history.connection_back()

    # -- reading -------------------------------------------------------------------------------

    async def next(self, *, timeout: float | timedelta | None = None) -> Broadcast:
        """The next event; raises :class:`Timeout` after ``timeout`` seconds and
        :class:`StopAsyncIteration` once closed."""
        await self.start()
        t = plain_seconds(timeout, what="timeout")
        return await self._out.next(t, nothing=lambda t: f"nothing on {self.pattern} within {t:g} s")

    def __aiter__(self) -> TopicSubscription:
        return self

    async def __anext__(self) -> Broadcast:
        return await self.next()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "live" if self._started else "new"
        return f"<TopicSubscription {self.pattern} {state}>"


__all__ = ["Broadcast", "Published", "TopicSubscription", "publish"]
