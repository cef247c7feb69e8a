"""The agent registry: every live lease in ``MAILSLOT_AGENTS`` carries the agent's card.

Listing reads the bucket's current values (one batched direct get, no consumer; with an
agent credential the sidecar reads them and answers a page at a time, ``mview.<address>``
op ``agents``, :mod:`mailslot_broker.protocol.views`); watching
follows the bucket through one consumer, deleted when the watch closes. A card appears when an
agent opens its mailbox and disappears when its lease lapses (the server's limit marker
reaches watchers as a PURGE), when the mailbox is destroyed, or when the key is deleted.
Lease renewals rewrite the same card every ``ttl / 3``; the watcher turns those into nothing
(or into an ``update`` when the card changed), so a subscriber sees one ``join`` and one
``leave`` per agent life.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import pydantic
from mailslot_broker import kvscan, tenant_reads
from mailslot_broker import protocol as p
from mailslot_broker.tasks import cancel_and_wait
from nats.js.kv import KeyValue

from . import _agent_views
from ._boundary import boundary, plain_seconds
from ._events import Events
from .link import Link
from .mailbox import AgentCard


def _card(address: str, value: bytes | None) -> AgentCard:
    try:
        card = AgentCard.model_validate_json(value or b"{}")
    except pydantic.ValidationError:
        card = AgentCard(metadata={"raw": (value or b"").decode(errors="replace")})
    if card.address != address:
        card = card.model_copy(update={"address": address})
    return card


def _matches(card: AgentCard, capability: str | None, tag: str | None) -> bool:
    if capability is not None and capability not in card.capabilities and capability not in card.skills:
        return False
    return tag is None or tag in card.tags


async def _bucket(link: Link) -> KeyValue:
    with boundary():
        return await link.js.key_value(p.AGENTS_BUCKET)


async def list_agents(
    link: Link,
    *,
    capability: str | None = None,
    tag: str | None = None,
    include_offline: bool = False,
) -> list[AgentCard]:
    link.check_open()
    with boundary():
        if link.agent is not None:
            # An agent credential may not read the buckets by body: the sidecar reads them,
            # with the same tenant_reads.registry_cards.
            found = await _agent_views.registry(link, include_offline=include_offline)
        else:
            found = await tenant_reads.registry_cards(link.js, include_offline=include_offline)
    cards = [_card(key, value) for key, value, _ in found]
    # An offline agent (lease lapsed, mailbox kept) is known by its mailbox record, which holds
    # its last card; until the sidecar has noticed the lapse the card still says "online".
    cards = [
        c.model_copy(update={"status": "offline"}) if offline else c
        for c, (_, _, offline) in zip(cards, found, strict=True)
    ]
    return [c for c in cards if _matches(c, capability, tag)]


@dataclass(frozen=True)
class AgentEvent:
    """An agent joined, changed its card, or left (lease lapsed, deleted or destroyed)."""

    kind: Literal["join", "update", "leave"]
    address: str
    card: AgentCard | None
    at: datetime


class AgentWatch:
    """Async iterator of :class:`AgentEvent`. ``initial=True`` first reports every agent that
    is already live as a ``join``."""

    def __init__(self, link: Link, *, initial: bool = False) -> None:
        self._link = link
        self.initial = initial
        self._known: dict[str, AgentCard] = {}
        self._revisions: dict[str, int] = {}
        self._watcher: KeyValue.KeyWatcher | None = None
        self._out: Events[AgentEvent] = Events()
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closed = False

    async def start(self) -> AgentWatch:
        if self._task is not None:
            return self
        self._link.check_open()
        kv = await _bucket(self._link)
        with boundary():
            # A short inactive threshold and an explicit delete on close: nats-py's
            # ``KeyWatcher.stop()`` only unsubscribes, which left the consumer for 300 s.
            self._watcher = await kvscan.watch(self._link.js, kv)
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name="mailslot:watch-agents")
        await asyncio.shield(self._ready)  # the initial state is known: events from now on
        await self._catch_up()
        return self

    async def _catch_up(self) -> None:
        """nats-py can report the watch's initial state as complete before the entries that
        were already in the bucket arrive (seen under load); read the bucket once so ``known``
        is right when :meth:`start` returns. Revisions keep a late watch entry from being
        reported twice, and a newer delete from being undone."""
        with boundary():
            items = await kvscan.read_bucket(self._link.js, p.AGENTS_BUCKET)
        now = datetime.now(timezone.utc)
        for key, item in sorted(items.items()):
            if not item.value or key in self._known or self._revisions.get(key, 0) >= item.revision:
                continue
            card = _card(key, item.value)
            self._known[key] = card
            self._revisions[key] = item.revision
            if self.initial:
                self._out.put(AgentEvent("join", key, card, now))

    def __await__(self) -> Any:
        return self.start().__await__()

    async def _run(self) -> None:
        assert self._watcher is not None and self._ready is not None
        live = False
        try:
            async for entry in self._watcher:
                if entry is None:
                    live = True
                    if not self._ready.done():
                        self._ready.set_result(None)
                    continue
                now = datetime.now(timezone.utc)
                if self._revisions.get(entry.key, 0) >= (entry.revision or 0) and entry.key in self._known:
                    continue  # already seen by the catch-up read
                self._revisions[entry.key] = entry.revision or 0
                emit = live or self.initial
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    card = self._known.pop(entry.key, None)
                    if card is not None and live:
                        self._out.put(AgentEvent("leave", entry.key, card, now))
                else:
                    card = _card(entry.key, entry.value)
                    old = self._known.get(entry.key)
                    self._known[entry.key] = card
                    if old is None and emit:
                        self._out.put(AgentEvent("join", entry.key, card, now))
                    elif old is not None and old != card and live:
                        self._out.put(AgentEvent("update", entry.key, card, now))
                if not live and entry.delta == 0:
                    live = True
                    if not self._ready.done():
                        self._ready.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._out.put(exc)
        finally:
            if not self._ready.done():
                self._ready.set_result(None)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        await cancel_and_wait([self._task])
        self._out.close()
        # Last, so that a slow server cannot hold up the iterator's end.
        await kvscan.stop_watch(self._link.js, self._watcher)

    async def next(self, *, timeout: float | None = None) -> AgentEvent:
        """The next event; :class:`Timeout` after ``timeout`` s, StopAsyncIteration once closed."""
        await self.start()
        t = plain_seconds(timeout, what="timeout")
        return await self._out.next(t, nothing=lambda t: f"no agent event within {t:g} s")

    @property
    def known(self) -> dict[str, AgentCard]:
        """Live agents as this watcher currently sees them."""
        return dict(self._known)

    def __aiter__(self) -> AgentWatch:
        return self

    async def __anext__(self) -> AgentEvent:
        return await self.next()

    async def __aenter__(self) -> AgentWatch:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AgentEvent", "AgentWatch", "list_agents"]
