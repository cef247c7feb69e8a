"""The lease that ties a mailbox to its agent's life.

A key in the agents bucket, created with a TTL and renewed by a conditional publish with a
fresh TTL (the KV API has no TTL on ``put``). Replicas of one agent all renew; a conflict only
means another replica renewed first.

A renewal is one request: the write is conditional on the revision this lease wrote last.
Only when that fails (another replica renewed, or the lease lapsed) is the key read first.
An idle online agent therefore costs one KV write per ``ttl / 3``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from mailslot_broker.tasks import cancel_and_wait
from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.kv import KeyValue

log = logging.getLogger("mailslot.lease")


class Lease:
    def __init__(
        self, js: JetStreamContext, address: str, ttl: float, value: bytes, *, keep: float = p.DEFAULT_KEEP
    ) -> None:
        self._js = js
        self.address = address
        self.ttl = ttl
        self.value = value
        self.keep = keep
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self.renewals = 0
        self.resumed = False
        #: The revision of our last write, for the one-request renewal.
        self._revision: int | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(p.AGENTS_BUCKET)
        return self._kv

    async def acquire(self) -> None:
        """Create the lease, or join it if it is alive (another replica, or a restart)."""
        await self._write_record()
        kv = await self._bucket()
        try:
            self._revision = await kv.create(self.address, self.value, msg_ttl=self._msg_ttl)
            return
        except jserr.KeyWrongLastSequenceError:
            pass
        try:
            entry = await kv.get(self.address)
        except jserr.KeyNotFoundError:
            entry = None
        # A lapsed lease leaves a limit marker (no value) for a while: that is not a live
        # lease to resume, and nats-py's create() does not see through it.
        self.resumed = bool(entry is not None and entry.value)
        if entry is not None and not entry.value:
            try:
                self._revision = await natscompat.kv_update(
                    kv, self.address, self.value, last=entry.revision, msg_ttl=self._msg_ttl
                )
                return
            except jserr.KeyWrongLastSequenceError:
                self.resumed = True  # someone (a replica) created it meanwhile
        await self.renew()

    @property
    def _msg_ttl(self) -> float:
        """nats-py sends ``int(ttl)`` seconds: round up so a lease never lives shorter than asked."""
        return float(math.ceil(self.ttl))

    async def _write_record(self) -> None:
        """The mailbox record, before any lease: from here on the address owns a mailbox that
        waits ``keep`` seconds for its agent after the lease lapses. Writing it clears
        ``offline_since``, so it is also rewritten whenever the lease has to be re-created
        (a stall or an outage longer than ``ttl``), or the record would keep saying offline."""
        mailboxes = await self._js.key_value(p.MAILBOXES_BUCKET)
        record = p.MailboxRecord(opened_at=time.time(), keep=self.keep, card=json.loads(self.value or b"{}"))
        await mailboxes.put(self.address, record.encode())

    async def renew(self) -> None:
        kv = await self._bucket()
        if self._revision is not None:
            try:
                self._revision = await natscompat.kv_update(
                    kv, self.address, self.value, last=self._revision, msg_ttl=self._msg_ttl
                )
                self.renewals += 1
                return
            except jserr.KeyWrongLastSequenceError:
                self._revision = None  # a replica renewed, or the lease lapsed: read it
        for _ in range(3):
            try:
                entry = await kv.get(self.address)
            except jserr.KeyNotFoundError:
                await self._write_record()
                try:
                    self._revision = await kv.create(self.address, self.value, msg_ttl=self._msg_ttl)
                    self.renewals += 1
                    return
                except jserr.KeyWrongLastSequenceError:
                    continue
            try:
                self._revision = await natscompat.kv_update(
                    kv, self.address, self.value, last=entry.revision, msg_ttl=self._msg_ttl
                )
                self.renewals += 1
                return
            except jserr.KeyWrongLastSequenceError:
                continue  # another replica renewed between our get and update

    def start(self, on_renew: object = None) -> None:
        self._task = asyncio.create_task(self._run(on_renew), name=f"lease:{self.address}")

    async def _run(self, on_renew: object) -> None:
        interval = max(self.ttl / 3.0, 0.3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
                if callable(on_renew):
                    await on_renew()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep renewing through reconnects
                log.warning("lease renewal for %s failed: %s", self.address, exc)

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
