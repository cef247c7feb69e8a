"""Leader election for sidecar replicas, through a KV key with a TTL.

Several sidecars may run against one deployment; every replica *watches* everything (lease
expiries, advisories) but only the leader *acts*. The leader holds ``SIDECAR_LEADER_KEY`` in
the ``MAILSLOT_SIDECAR`` bucket: created with ``kv.create(..., msg_ttl=ttl)`` (which fails if
another replica holds it) and renewed every ``ttl / 3`` by a conditional update on the revision
it last wrote. If the leader dies the key expires after at most ``ttl`` seconds and the next
replica to try ``create`` wins. A clean shutdown purges the key so hand-over is immediate.

Leadership is a hint, not a lock: between the moment a partitioned leader loses its key and the
moment it notices (its next renewal) two replicas may act. Every action is therefore also
idempotent (reclaim is, dead-letter copies carry a dedupe id, aging deletes before it copies and
events carry a dedupe id), so the overlap cannot double an effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.kv import KeyValue

from .. import natscompat
from .. import protocol as p
from ..tasks import cancel_and_wait

log = logging.getLogger("mailslot.sidecar.leader")


class LeaderElection:
    def __init__(
        self,
        js: JetStreamContext,
        replica_id: str,
        *,
        ttl: float = 5.0,
        on_elected: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._js = js
        self.replica_id = replica_id
        self.ttl = max(1.0, float(ttl))
        self._on_elected = on_elected
        self._kv: KeyValue | None = None
        self._revision: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.elections = 0

    @property
    def is_leader(self) -> bool:
        return self._revision is not None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(p.SIDECAR_BUCKET)
        return self._kv

    async def step(self) -> bool:
        """Try to become or stay leader once; returns whether this replica leads now."""
        kv = await self._bucket()
        value = self.replica_id.encode()
        if self._revision is not None:
            try:
                self._revision = await natscompat.kv_update(
                    kv, p.SIDECAR_LEADER_KEY, value, last=self._revision, msg_ttl=self.ttl
                )
                return True
            except jserr.KeyWrongLastSequenceError:
                log.warning("replica %s lost leadership", self.replica_id)
                self._revision = None
        revision = await self._claim(kv, value)
        if revision is None:
            return False
        self._revision = revision
        self.elections += 1
        log.info("replica %s is the leader", self.replica_id)
        if self._on_elected is not None:
            await self._on_elected()
        return True

    async def _claim(self, kv: KeyValue, value: bytes) -> int | None:
        """Create the key if nobody holds it. ``kv.create`` alone is not enough: when a key
        expires the server leaves a marker (``Nats-Marker-Reason``, empty body) that nats-py's
        create does not recognise as deleted, so we update on top of the marker's revision."""
        try:
            return await kv.create(p.SIDECAR_LEADER_KEY, value, msg_ttl=self.ttl)
        except jserr.KeyWrongLastSequenceError:
            pass
        try:
            entry = await kv.get(p.SIDECAR_LEADER_KEY)
        except jserr.KeyNotFoundError:
            return None  # raced with a purge: try again next round
        except jserr.KeyDeletedError as exc:
            entry = exc.entry
        else:
            if entry.value:  # a live leader
                return None
        try:
            return await natscompat.kv_update(
                kv, p.SIDECAR_LEADER_KEY, value, last=entry.revision, msg_ttl=self.ttl
            )
        except jserr.KeyWrongLastSequenceError:
            return None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sidecar-leader")

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # disconnected: we cannot prove leadership, so we drop it
                if self._revision is not None:
                    log.warning("leader renewal failed (%s); stepping down", exc)
                self._revision = None
            await asyncio.sleep(self.ttl / 3.0)

    async def stop(self, *, resign: bool = True) -> None:
        await cancel_and_wait([self._task])
        self._task = None
        if resign and self._revision is not None:
            last, self._revision = self._revision, None
            with contextlib.suppress(Exception):  # conditional: never removes a successor's key
                kv = await self._bucket()
                await kv.delete(p.SIDECAR_LEADER_KEY, last=last)
