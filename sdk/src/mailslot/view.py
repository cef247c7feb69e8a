"""Looking into a mailbox without consuming anything."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from mailslot_broker import protocol as p

from . import _agent_views
from ._boundary import boundary
from ._stored import as_msg, next_stored
from .link import Link
from .message import Message
from .query import _stored_run
from .query import delete as _delete
from .query import last_seq as _last_seq
from .query import query as _query


@dataclass
class MailboxStats:
    address: str
    counts: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class MailboxView:
    """Read-only access to one address: counts per priority and the oldest messages."""

    def __init__(self, link: Link, address: str) -> None:
        self._link = link
        self.address = address

    async def _first(self, prio: p.Priority, after: int) -> Message | None:
        subject = p.mail_subject(prio, self.address)
        raw = await next_stored(self._link.js, subject, after)
        return None if raw is None else Message(as_msg(self._link.nc, raw, subject=subject), None)

    async def peek(self, limit: int = 10) -> list[Message]:
        """Up to ``limit`` waiting messages in delivery order (priority, then age). Messages
        delivered but not yet acked are included: they are still in the mailbox. With an
        agent credential the sidecar reads them (its own mailbox only; ``limit`` at most
        10 000, as for :meth:`query`)."""
        if self._link.agent is not None:
            return await _query(self._link, self.address, limit=limit) if limit > 0 else []
        out: list[Message] = []
        with boundary():
            for prio in p.PRIORITIES:
                seq = 1
                while len(out) < limit:
                    m = await self._first(prio, seq)
                    if m is None:
                        break
                    out.append(m)
                    seq = m.seq + 1
                if len(out) >= limit:
                    break
        return out

    async def stats(self) -> MailboxStats:
        if self._link.agent is not None:
            return await self._agent_stats()
        with boundary():
            info = await self._link.js.stream_info(
                p.MAIL_STREAM, subjects_filter=p.mail_subject_all_priorities(self.address)
            )
            subjects = info.state.subjects or {}
            stats = MailboxStats(self.address)
            for prio in p.PRIORITIES:
                n = subjects.get(p.mail_subject(prio, self.address), 0)
                stats.counts[prio.label] = n
                first = await self._first(prio, 1) if n else None
                stats.oldest[prio.label] = first.sent_at if first else None
        return stats

    async def _agent_stats(self) -> MailboxStats:
        """:meth:`stats` asked of the sidecar (an agent credential may not read by body)."""
        stats = MailboxStats(self.address)
        with boundary():
            counts = await _agent_views.counts(self._link, self.address)
            for prio in p.PRIORITIES:
                stats.counts[prio.label] = counts[prio]
                first = await _stored_run(self._link, self.address, prio, 0, 1) if counts[prio] else []
                stats.oldest[prio.label] = first[0].sent_at if first else None
        return stats

    async def query(
        self,
        *,
        tags: Iterable[str] | None = None,
        key: str | None = None,
        since: datetime | float | None = None,
        priority: p.Priority | str | int | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[Message]:
        """Waiting messages with every tag in ``tags``, the keep-latest ``key``, sent at or
        after ``since`` (a datetime or unix seconds), at ``priority`` (any if None) and with a
        ``seq`` above ``after``, in delivery order, none taken."""
        return await _query(
            self._link,
            self.address,
            tags=tags,
            key=key,
            since=since,
            priority=priority,
            after=after,
            limit=limit,
        )

    async def last_seq(self) -> int:
        """The highest ``seq`` of mail waiting here (0 if none): ``query(after=...)`` with it
        finds only mail stored later."""
        return await _last_seq(self._link, self.address)

    async def delete(self, message: int | str | Message) -> None:
        """Remove one waiting message, named by its ``seq``, its ``id`` or itself; raises
        :class:`MessageNotFound` when this mailbox has no such message."""
        await _delete(self._link, self.address, message)
