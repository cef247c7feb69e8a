"""Lease reaper: reclaims the mailbox of an agent whose lease lapsed.

Every replica watches the agents bucket (a lease expiry reaches watchers as a PURGE entry, a
delete as DEL); only the leader acts. Acting on an address means:

1. confirm the lease is really gone (a restarted agent may have re-created it) and the address
   owns a mailbox record (never-opened addresses keep their mail, on purpose; an address whose
   record is gone was already reclaimed);
2. publish the ``mailslot.agent.reclaimed`` event *first*, on the durable topic, with a dedupe id
   derived from the mailbox record (address + creation time): if this replica dies before the
   purge, the next leader finds the record, redoes the reclaim and its event is dropped as a
   duplicate, so subscribers see exactly one event per reclaim;
3. :func:`mailslot_broker.reclaim.reclaim_mailbox` (consumers, messages, lease, record last).

Watch events are missed while no replica leads (start-up, hand-over, NATS outage), so a leader
also sweeps with :func:`mailslot_broker.reclaim.reclaim_expired`-style logic when it is elected,
after every reconnect, and every ``sweep_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.kv import KeyValue

from .. import protocol as p
from ..reclaim import ReclaimReport, lease_alive, opened_mailboxes, reclaim_mailbox

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
        grace: float = 2.0,
        settle: float = 0.5,
    ) -> None:
        self._js = js
        self._is_leader = is_leader
        self._on_reclaimed = on_reclaimed
        self.grace = grace
        self.settle = settle
        self._pending: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None

    async def _mailbox_record(self, address: str) -> float | None:
        kv = await self._js.key_value(p.MAILBOXES_BUCKET)
        try:
            entry = await kv.get(address)
        except jserr.KeyNotFoundError:
            return None
        try:
            return float((entry.value or b"0").decode())
        except ValueError:
            return 0.0

    async def reclaim(self, address: str, *, expired_at: float | None = None) -> ReclaimEvent | None:
        """Reclaim ``address`` if its lease is gone and it owns a mailbox; idempotent."""
        async with self._lock:
            created = await self._mailbox_record(address)
            if created is None or await lease_alive(self._js, address):
                return None
            if time.time() - created < self.grace:
                return None  # open() writes the record just before the lease
            report = ReclaimReport(address)
            info = await self._js.stream_info(
                p.MAIL_STREAM, subjects_filter=p.mail_subject_all_priorities(address)
            )
            pending = sum((info.state.subjects or {}).values())
            body = {
                "address": address,
                "messages_purged": pending,
                "expired_at": expired_at,
                "reclaimed_at": time.time(),
            }
            await self._js.publish(
                p.system_event_subject(p.EVENT_AGENT_RECLAIMED),
                json.dumps(body).encode(),
                headers={p.Header.NATS_MSG_ID: f"reclaimed-{address}-{created:.3f}"},
                timeout=5.0,
            )
            report = await reclaim_mailbox(self._js, address)
            lag = None if expired_at is None else max(0.0, time.time() - expired_at)
            ev = ReclaimEvent(address, report, lag)
            log.info("reclaimed %s (%d messages)", address, report.messages_purged)
            if self._on_reclaimed is not None:
                self._on_reclaimed(ev)
            return ev

    async def sweep(self) -> list[ReclaimEvent]:
        """Reclaim every opened mailbox whose lease lapsed (e.g. while no sidecar ran)."""
        out = []
        for address in list(await opened_mailboxes(self._js)):
            if not self._is_leader():
                break
            ev = await self.reclaim(address)
            if ev is not None:
                out.append(ev)
        return out

    # -- watching ---------------------------------------------------------------------------

    def start(self) -> None:
        self._watch_task = asyncio.create_task(self._watch(), name="sidecar-reaper-watch")

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task
            self._watch_task = None

    async def restart(self) -> None:
        """A fresh watcher (after a reconnect the old one's consumer may be gone)."""
        await self.stop()
        self.start()

    async def _settled(self, address: str, expired_at: float) -> None:
        """Act on a watch event after ``settle`` seconds: ``Mailbox.destroy`` also leaves a
        PURGE entry, and by then it has removed the mailbox record itself, so a destroy is not
        announced as a lapsed lease."""
        await asyncio.sleep(self.settle)
        try:
            await self.reclaim(address, expired_at=expired_at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("reclaim of %s failed (the sweep retries): %s", address, exc)

    async def _watch(self) -> None:
        while True:
            try:
                kv: KeyValue = await self._js.key_value(p.AGENTS_BUCKET)
                watcher = await kv.watchall(meta_only=True)
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
                    with contextlib.suppress(Exception):
                        await watcher.stop()
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
