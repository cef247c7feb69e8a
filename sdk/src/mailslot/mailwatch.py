"""A push feed of "this mailbox's contents changed", for observers that must not receive.

A resource view, a dashboard or an MCP server wants to know *when* to look again at a mailbox
(``peek``/``stats``) without taking its mail, without holding its lease and without polling.
Everything it needs is already on the wire as core NATS traffic, so watching costs a handful of
subscriptions and nothing per second while the mailbox is quiet:

- **arrival**: the bell ``bell.<p>.<address>`` the mail stream republishes after storing each
  message (new mail, a delayed message firing, a requeue, priority aging's copy one level up);
- **ack and term**: ``$JS.ACK.MAILSLOT_MAIL.<consumer>.>`` of the mailbox's four consumers,
  i.e. what a receiver sends when it settles a delivery (seen as it is sent, so a look a
  moment later may still find the message);
- **dead letters**: ``dlq.*.<address>``, written before the original is deleted (exhausted,
  termed with its body kept, reclaimed or destroyed mailboxes).

Not observable without polling, so not reported: expiry by TTL (the mail stream keeps no
delete markers) and the delete half of priority aging. Bells sent while the connection was down
are lost: after a reconnect the feed reports a ``resync`` so the observer looks again.
A removal is reported once per stream sequence (a term that kept its body writes a dead letter
and sends ``+TERM``). Changes are hints to re-read, not a replica of the mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from mailslot_broker import protocol as p
from mailslot_broker.protocol import Header, Priority
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ._boundary import boundary, plain_seconds
from ._events import Events
from .link import Link

ChangeKind = Literal["arrived", "acked", "termed", "dead", "resync"]

#: How many removed stream sequences a feed remembers to report each removal once.
_REMEMBER = 4096


@dataclass(frozen=True)
class MailChange:
    """One change of a watched mailbox. ``priority`` and ``seq`` (its sequence in the mail
    stream) are None only for ``resync``; ``id`` and ``thread_id`` are known for arrivals and
    dead letters, ``reason`` for dead letters."""

    kind: ChangeKind
    address: str
    priority: Priority | None = None
    seq: int | None = None
    id: str | None = None
    thread_id: str | None = None
    reason: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def removed(self) -> bool:
        """The message left the mailbox (or is about to: see the module docstring)."""
        return self.kind in ("acked", "termed", "dead")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class MailWatch:
    """Async iterator of :class:`MailChange` for one address, opened or not, by anyone.

    Await it (or use ``async with``) to be sure it listens before you go on; close it when
    done. ``removals=False`` watches arrivals only (the bell), for credentials that may
    subscribe to ``bell.>`` but not to ``$JS.ACK.>`` and ``dlq.>``.
    """

    def __init__(self, link: Link, address: str, *, removals: bool = True) -> None:
        self._link = link
        self.address = address
        self.removals = removals
        self._out: Events[MailChange] = Events()
        self._subs: list[Subscription] = []
        self._seen: deque[int] = deque(maxlen=_REMEMBER)
        self._seen_set: set[int] = set()
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()

    # -- start / stop ------------------------------------------------------------------------

    async def start(self) -> MailWatch:
        async with self._start_lock:
            if self._started:
                return self
            self._link.check_open()
            wanted: list[tuple[str, Callable[[Msg], Awaitable[None]]]] = [
                (p.bell_subject_all_priorities(self.address), self._on_bell)
            ]
            if self.removals:
                wanted.append((p.dlq_subject_all_priorities(self.address), self._on_dead))
                for prio in p.PRIORITIES:
                    consumer = p.consumer_name(self.address, prio)
                    wanted.append((p.ack_subject_consumer(consumer), self._on_ack_of(prio)))
            nc = self._link.nc
            try:
                with boundary():
                    await self._link.until_connected()
                    for subject, cb in wanted:
                        self._subs.append(await nc.subscribe(subject, cb=cb))
                    await nc.flush(timeout=10)
            except BaseException:
                await self._unsubscribe()
                raise
            self._started = True
        return self

    def __await__(self) -> Generator[Any, None, MailWatch]:
        return self.start().__await__()

    async def _unsubscribe(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._unsubscribe()
        self._out.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> MailWatch:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- what the subscriptions see ----------------------------------------------------------

    def _emit(self, change: MailChange) -> None:
        if self._closed:
            return
        if change.removed and change.seq is not None:
            if change.seq in self._seen_set:
                return
            if len(self._seen) == self._seen.maxlen:
                self._seen_set.discard(self._seen[0])
            self._seen.append(change.seq)
            self._seen_set.add(change.seq)
        self._out.put(change)

    def _stored(self, kind: ChangeKind, msg: Msg, seq_header: str) -> None:
        """A message was stored on ``bell.<p>.<address>`` or ``dlq.<p>.<address>``."""
        h = msg.headers or {}
        try:
            prio, _ = p.parse_mail_subject(msg.subject)
        except ValueError:
            return
        self._emit(
            MailChange(
                kind,
                self.address,
                prio,
                seq=_int(h.get(seq_header)),
                id=h.get(Header.MSG_ID) or (h.get(Header.NATS_MSG_ID) if kind == "arrived" else None),
                thread_id=h.get(Header.THREAD_ID),
                reason=h.get(Header.DEAD_REASON) if kind == "dead" else None,
            )
        )

    async def _on_bell(self, msg: Msg) -> None:
        self._stored("arrived", msg, Header.NATS_SEQUENCE)

    async def _on_dead(self, msg: Msg) -> None:
        self._stored("dead", msg, Header.DEAD_SEQ)

    def _on_ack_of(self, prio: Priority) -> Callable[[Msg], Awaitable[None]]:
        async def on_ack(msg: Msg) -> None:
            parsed = p.parse_ack(msg.subject, msg.data or b"")
            if parsed is not None:
                kind, seq = parsed
                self._emit(MailChange(kind, self.address, prio, seq=seq))  # type: ignore[arg-type]

        return on_ack

    # -- reconnects (called by the client) ----------------------------------------------------

    def _connection_back(self) -> None:
        """Bells and acks sent while the connection was down were lost: look again."""
        if self._started:
            self._emit(MailChange("resync", self.address))

    # -- reading -------------------------------------------------------------------------------

    async def next(self, *, timeout: float | timedelta | None = None) -> MailChange:
        """The next change; raises :class:`Timeout` after ``timeout`` seconds and
        :class:`StopAsyncIteration` once closed."""
        await self.start()
        t = plain_seconds(timeout, what="timeout")
        return await self._out.next(
            t, nothing=lambda t: f"no change of mailbox {self.address} within {t:g} s"
        )

    def pending(self) -> int:
        """Changes reported but not read yet (an observer may coalesce them into one look)."""
        return self._out.pending()

    def __aiter__(self) -> MailWatch:
        return self

    async def __anext__(self) -> MailChange:
        return await self.next()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "live" if self._started else "new"
        return f"<MailWatch {self.address} {state}>"


__all__ = ["ChangeKind", "MailChange", "MailWatch"]
