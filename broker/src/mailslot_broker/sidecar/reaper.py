"""Lease reaper: offline agents lose their consumers, mailboxes out of retention are reclaimed.

Every replica watches the agents bucket (a lease expiry reaches watchers as a PURGE entry, a
delete as DEL); only the leader acts (:mod:`mailslot_broker.reclaim` has the rules):

1. a lapsed lease makes the agent *offline*: its consumers are first asked for exhausted mail
   (so a message that used its last delivery is dead-lettered, not reset), then released; the
   mailbox record gets ``offline_since`` (retention starts) and the card says ``offline``.
   The mail stays.
2. when ``offline_since + keep`` has passed (at once for an identity-on-call mailbox, whose
   ``keep`` is 0), the ``mailslot.agent.reclaimed`` event is published *first*, on the durable
   topic, with a dedupe id derived from the record (address + open time): if this replica dies
   before the reclaim, the next leader redoes it and its event is dropped as a duplicate. Then
   :func:`~mailslot_broker.reclaim.reclaim_mailbox` moves the unread mail to dead letters
   (bouncing where the sender asked) and removes consumers, lease and record.

Watch events are missed while no replica leads (start-up, hand-over, NATS outage), so the
leader also sweeps every mailbox record when it is elected, after every reconnect, and every
``sweep_interval`` seconds; a sweep is also what notices retention running out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from .. import kvscan
from .. import protocol as p
from ..deadletters import DeadLetterResult
from ..reclaim import (
    ReclaimReport,
    RecordEntry,
    apply_retention,
    mailbox_records,
    mailbox_subjects,
    read_record,
    reclaim_unclaimed,
    reclaimed_event,
    unread_count,
)
from ..tasks import cancel_and_wait

log = logging.getLogger("mailslot.sidecar.reaper")


@dataclass
class ReclaimEvent:
    address: str
    report: ReclaimReport
    lag: float | None


class Reaper:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        is_leader: Callable[[], bool],
        on_reclaimed: Callable[[ReclaimEvent], None] | None = None,
        on_dead: Callable[[DeadLetterResult], Awaitable[None]] | None = None,
        probe: Callable[[str], Awaitable[None]] | None = None,
        grace: float = 2.0,
        settle: float = 0.5,
        unclaimed_keep: float = p.DEFAULT_UNCLAIMED_KEEP,
        horizon: float = 30.0,
    ) -> None:
        self._js = js
        self._is_leader = is_leader
        self._on_reclaimed = on_reclaimed
        self._on_dead = on_dead
        self._probe = probe
        self.grace = grace
        self.settle = settle
        self.unclaimed_keep = unclaimed_keep
        #: Retention that runs out sooner than this (the sweep interval) gets a timer of its
        #: own, so a short ``keep`` is honoured to the second rather than to the next sweep.
        self.horizon = horizon
        self._pending: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None
        self.went_offline: list[str] = []

    async def _announce(self, entry: RecordEntry) -> None:
        body = reclaimed_event(entry, unread=await unread_count(self._js, entry.address))
        await self._js.publish(
            p.system_event_subject(p.EVENT_AGENT_RECLAIMED),
            body,
            headers={p.Header.NATS_MSG_ID: f"reclaimed-{entry.address}-{entry.record.opened_at:.3f}"},
            timeout=5.0,
        )

    async def _before_release(self, entry: RecordEntry) -> None:
        if self._probe is not None:
            await self._probe(entry.address)

    async def look_at(self, entry: RecordEntry, *, lapsed_at: float | None = None) -> ReclaimEvent | None:
        """Apply the lifecycle rules to one mailbox; idempotent."""
        async with self._lock:
            fresh = await read_record(self._js, entry.address)
            if fresh is None:
                return None  # destroyed or reclaimed meanwhile
            step = await apply_retention(
                self._js,
                fresh,
                lapsed_at=lapsed_at,
                grace=self.grace,
                before_release=self._before_release,
                before_reclaim=self._announce,
            )
            if step.went_offline:
                self.went_offline.append(fresh.address)
                log.info("%s is offline; its mail waits %.0f s", fresh.address, fresh.record.keep)
            if step.reclaimed is None:
                if step.due is not None and step.due - time.time() < self.horizon:
                    self._later(fresh.address, step.due)
                return None
            report = step.reclaimed
            for res in report.dead_lettered:
                if self._on_dead is not None:
                    await self._on_dead(res)
            lag = None if lapsed_at is None else max(0.0, time.time() - lapsed_at)
            ev = ReclaimEvent(fresh.address, report, lag)
            log.info(
                "reclaimed %s (%d messages to dead letters, %d bounces)",
                fresh.address,
                report.messages_dead_lettered,
                report.bounces,
            )
            if self._on_reclaimed is not None:
                self._on_reclaimed(ev)
            return ev

    def _later(self, address: str, due: float) -> None:
        async def run() -> None:
            await asyncio.sleep(max(0.0, due - time.time()) + 0.05)
            if self._is_leader():
                try:
                    await self.reclaim(address)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("reclaim of %s failed (the sweep retries): %s", address, exc)

        task = asyncio.create_task(run(), name=f"reclaim-at:{address}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def reclaim(self, address: str, *, expired_at: float | None = None) -> ReclaimEvent | None:
        """Act on ``address`` (after its lease lapsed, or in a sweep)."""
        entry = await read_record(self._js, address)
        if entry is None:
            return None
        return await self.look_at(entry, lapsed_at=expired_at)

    async def sweep(self) -> list[ReclaimEvent]:
        """Every opened mailbox once (offline ones found while no sidecar ran, retention that
        ran out), then mail waiting too long at addresses nobody opened."""
        out: list[ReclaimEvent] = []
        records = await mailbox_records(self._js)
        for entry in records:
            if not self._is_leader():
                return out
            ev = await self.look_at(entry)
            if ev is not None:
                out.append(ev)
        if self._is_leader():
            opened = {e.address for e in records}
            for res in await reclaim_unclaimed(self._js, keep=self.unclaimed_keep, opened=opened):
                if self._on_dead is not None:
                    await self._on_dead(res)
        return out

    # -- watching ---------------------------------------------------------------------------

    def start(self) -> None:
        self._watch_task = asyncio.create_task(self._watch(), name="sidecar-reaper-watch")

    async def stop(self) -> None:
        await cancel_and_wait([*self._pending, self._watch_task])
        self._watch_task = None

    async def restart(self) -> None:
        """A fresh watcher (after a reconnect the old one's consumer may be gone)."""
        await self.stop()
        self.start()

    async def _settled(self, address: str, expired_at: float) -> None:
        """Act on a watch event after ``settle`` seconds: ``Mailbox.destroy`` also leaves a
        PURGE entry, and by then it has removed the mailbox record itself, so a destroy is not
        taken for a lapsed lease."""
        await asyncio.sleep(self.settle)
        try:
            await self.reclaim(address, expired_at=expired_at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("lifecycle step for %s failed (the sweep retries): %s", address, exc)

    async def _watch(self) -> None:
        while True:
            try:
                kv: KeyValue = await self._js.key_value(p.AGENTS_BUCKET)
                # kvscan.watch/stop_watch: a restarted watcher must not leave its old consumer
                # behind for nats-py's 300 s inactivity threshold.
                watcher = await kvscan.watch(self._js, kv, meta_only=True)
                try:
                    async for entry in watcher:
                        if entry is None or entry.operation not in ("PURGE", "DEL"):
                            continue
                        if not self._is_leader():
                            continue
                        task = asyncio.create_task(self._settled(entry.key, _unix(entry.created)))
                        self._pending.add(task)
                        task.add_done_callback(self._pending.discard)
                finally:
                    await kvscan.stop_watch(self._js, watcher)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("agents watcher failed, restarting: %s", exc)
                await asyncio.sleep(1.0)


def _unix(created: object) -> float:
    """When the server wrote the expiry marker (watch entries carry the stored timestamp)."""
    if hasattr(created, "timestamp"):
        return float(created.timestamp())
    if isinstance(created, (int, float)) and created:
        return created / 1e9 if created > 1e12 else float(created)
    return time.time()


__all__ = ["Reaper", "ReclaimEvent", "mailbox_subjects"]
