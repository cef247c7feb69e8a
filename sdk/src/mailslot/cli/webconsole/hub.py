"""What the console shows, kept current from the broker's push feeds and fanned out to pages.

One :class:`Hub` per console process holds the last mailbox rows (the ``mailslot mailboxes``
data), the agents, the dead letters and a ring of recent mail and broadcast events. It listens
with the SDK's feeds (``watch_mail`` per known address, ``watch_agents``, ``subscribe(">")``)
and re-reads the lists when a feed says something changed, so pages get pushes instead of
polling. Addresses appear in ``watch_mail`` only once known: mail to an address nobody opened
and nobody mailed before is found by the periodic rescan (``rescan`` seconds) and reported
then, from what waits in it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mailslot_broker.protocol import Header

from ...errors import MailslotError
from ...tracing import trace_id_of
from ..mail import message_row, payload_out, preview
from ..mailboxes import mailbox_rows

if TYPE_CHECKING:
    from ...client import Mailslot
    from ...mailwatch import MailChange, MailWatch

#: How many waiting messages an arrival's details are looked for among.
_LOOKUP = 50
#: With more changes than this queued for one mailbox, arrivals go out without details.
_BEHIND = 20


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def dead_letter_row(d: Any) -> dict[str, Any]:
    """A dead letter for the page: its summary, thread and payload (unless the body is lost)."""
    body = {} if d.body_lost else payload_out(d.headers.get(Header.CONTENT_TYPE, ""), d.data)
    trace = trace_id_of(d.headers)
    return {**d.as_dict(), "thread_id": d.headers.get(Header.THREAD_ID), "trace_id": trace, **body}


class Hub:
    """The console's live state and its subscribers (one queue per open page)."""

    def __init__(self, ms: Mailslot, *, tail: int = 200, rescan: float = 2.0) -> None:
        self.ms = ms
        self.rescan = rescan
        self.mailboxes: list[dict[str, Any]] = []
        self.agents: list[dict[str, Any]] = []
        self.dead: list[dict[str, Any]] = []
        self.tail: deque[dict[str, Any]] = deque(maxlen=tail)
        self._pages: set[asyncio.Queue[tuple[str, Any]]] = set()
        self._watches: dict[str, MailWatch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dirty = asyncio.Event()
        self._closed = False

    # -- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._refresh(discover=False)
        agents = await self.ms.watch_agents().start()
        topics = await self.ms.subscribe(">").start()
        self._spawn(self._follow(agents, self._on_agent))
        self._spawn(self._follow(topics, self._on_broadcast))
        self._spawn(self._refresher())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for watch in self._watches.values():
            await watch.close()
        for page in self._pages:
            page.put_nowait(("bye", None))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, feed: Any, on: Callable[[Any], Awaitable[None]]) -> None:
        try:
            async for item in feed:
                await on(item)
        finally:
            await feed.close()

    # -- pages -------------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[tuple[str, Any]]:
        page: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=1000)
        self._pages.add(page)
        return page

    def unsubscribe(self, page: asyncio.Queue[tuple[str, Any]]) -> None:
        self._pages.discard(page)

    def state(self) -> dict[str, Any]:
        return {
            "mailboxes": self.mailboxes,
            "agents": self.agents,
            "dead_letters": self.dead,
            "tail": list(self.tail),
        }

    def _push(self, event: str, data: Any) -> None:
        for page in list(self._pages):
            try:
                page.put_nowait((event, data))
            except asyncio.QueueFull:  # a page that stopped reading: dropped, it reloads to catch up
                self._pages.discard(page)

    def _record(self, entry: dict[str, Any]) -> None:
        self.tail.append(entry)
        self._push("tail", entry)

    def changed(self) -> None:
        """Something may have changed: re-read the lists soon (coalesced)."""
        self._dirty.set()

    # -- reading the lists ---------------------------------------------------------------------

    async def _refresh(self, *, discover: bool = True) -> None:
        rows = await mailbox_rows(self.ms)
        agents = [c.model_dump(mode="json") for c in await self.ms.agents(include_offline=True)]
        dead = [dead_letter_row(d) for d in await self.ms.dead_letters.list(limit=500)]
        for row in rows:
            if row["address"] not in self._watches:
                await self._watch(row["address"], report_waiting=discover and row["total"] > 0)
        if rows != self.mailboxes:
            self.mailboxes = rows
            self._push("mailboxes", rows)
        if agents != self.agents:
            self.agents = agents
            self._push("agents", agents)
        if dead != self.dead:
            self.dead = dead
            self._push("dead_letters", dead)

    async def _refresher(self) -> None:
        while not self._closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.rescan)
            await asyncio.sleep(0.05)  # let a burst of changes land in one look
            self._dirty.clear()
            try:
                await self._refresh()
            except MailslotError as exc:  # the broker away for a moment: say so, try again
                self._push("problem", {"error": f"{type(exc).__name__}: {exc}", "at": _now()})

    # -- mail ----------------------------------------------------------------------------------

    async def _watch(self, address: str, *, report_waiting: bool) -> None:
        watch = await self.ms.watch_mail(address).start()
        self._watches[address] = watch
        self._spawn(self._follow(watch, self._on_change))
        if report_waiting:  # found by the rescan: its bells rang before we listened
            for m in await self.ms.inspect(address).peek(20):
                self._record(self._mail_entry("arrived", m, at=_now()))

    def _mail_entry(self, kind: str, m: Any, *, at: str) -> dict[str, Any]:
        row = message_row(m)
        return {
            "type": "mail",
            "kind": kind,
            "address": row["to"],
            "priority": row["priority"],
            "seq": row["seq"],
            "id": row["id"],
            "thread_id": row["thread_id"],
            "trace_id": trace_id_of(m.headers),
            "from": row["from"],
            "preview": preview(row, 120),
            "at": at,
        }

    async def _on_change(self, change: MailChange) -> None:
        at = change.at.isoformat()
        entry: dict[str, Any] | None = None
        watch = self._watches.get(change.address)
        behind = watch is not None and watch.pending() > _BEHIND
        if change.kind == "arrived" and not behind:  # a burst: report it bare, keep up
            with contextlib.suppress(MailslotError):
                for m in await self.ms.inspect(change.address).peek(_LOOKUP):
                    if m.seq == change.seq:
                        entry = self._mail_entry("arrived", m, at=at)
                        break
        if entry is None:
            entry = {
                "type": "mail",
                "kind": change.kind,
                "address": change.address,
                "priority": change.priority.label if change.priority is not None else None,
                "seq": change.seq,
                "id": change.id,
                "thread_id": change.thread_id,
                "reason": change.reason,
                "at": at,
            }
        self._record(entry)
        self.changed()

    # -- agents and broadcasts -------------------------------------------------------------------

    async def _on_agent(self, ev: Any) -> None:
        self._record({"type": "agent", "kind": ev.kind, "address": ev.address, "at": ev.at.isoformat()})
        if ev.address not in self._watches:
            await self._watch(ev.address, report_waiting=False)
        self.changed()

    async def _on_broadcast(self, ev: Any) -> None:
        row = payload_out(ev.content_type, ev.data)
        self._record(
            {
                "type": "broadcast",
                "topic": ev.topic,
                "id": ev.id,
                "from": ev.sender,
                "durable": ev.durable,
                "preview": preview(row, 120),
                "at": _now(),
            }
        )


__all__ = ["Hub", "dead_letter_row"]
