"""The lease that ties a mailbox to its agent's life.

A key in the agents bucket, created with a TTL and renewed by a conditional publish with a
fresh TTL (the KV API has no TTL on ``put``). Replicas of one agent all renew; a conflict only
means another replica renewed first.

A renewal is one request: the write is conditional on the revision this lease wrote last.
Only when that fails (another replica renewed, or the lease lapsed) is the key read first.
An idle online agent therefore costs one KV write per ``ttl / 3``, and no JetStream API
request: the mailbox re-ensures its consumers only when a renewal had to re-create a lapsed
lease (the sidecar released them then).

An agent credential writes the lease and the record through ``MAILSLOT_AGENT_WRITES``
(``protocol.agent_writes``), which the buckets source: the same KV operations on a stream
that refuses rollup headers, whose revisions are the ones its conditional writes compare.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from mailslot_broker.tasks import cancel_and_wait
from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.kv import KeyValue

log = logging.getLogger("mailslot.lease")


class Lease:
    def __init__(
        self,
        js: JetStreamContext,
        address: str,
        ttl: float,
        value: bytes,
        *,
        keep: float = p.DEFAULT_KEEP,
        agent: bool = False,
    ) -> None:
        self._js = js
        #: Written through the agent writes stream (an agent credential), not the buckets.
        self.agent = agent
        self.address = address
        self.ttl = ttl
        self.value = value
        self.keep = keep
        self._kv: KeyValue | None = None
        self._records: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self.renewals = 0
        self.resumed = False
        #: The revision of our last write, for the one-request renewal.
        self._revision: int | None = None
        #: The revision of our last write of the mailbox record (from its ack).
        self.record_revision: int | None = None
        #: The create found the key taken (a live lease, or a lapsed one's marker): a
        #: lease this acquire has not written is not its own to undo.
        self.create_refused = False

    @property
    def revision(self) -> int | None:
        """The revision of this lease's last write of the lease (from its ack), if known."""
        return self._revision

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = self._open(p.AGENTS_BUCKET)
        return self._kv

    def _open(self, bucket: str) -> KeyValue:
        """A handle on ``bucket`` without ``js.key_value()``'s ``STREAM.INFO`` lookup (a round
        trip per call): provisioning creates both buckets with ``allow_direct``."""
        if not self.agent:
            return natscompat.kv_handle(
                self._js, bucket=bucket, stream=p.kv_stream(bucket), prefix=p.kv_subject(bucket, "")
            )
        aw = p.agent_writes
        return natscompat.kv_handle(
            self._js, bucket=bucket, stream=aw.AGENT_WRITES_STREAM, prefix=aw.agent_write_prefix(bucket)
        )

    async def acquire(self) -> None:
        """Create the lease, or join it if it is alive (another replica, or a restart).

        The record put and the lease create go out together (one round trip, not two). Both
        are waited for, also when one fails, so neither lands after an undo; their revisions
        (:attr:`record_revision`, :attr:`revision`) come from the acks."""
        kv = await self._bucket()
        record, lease = await asyncio.gather(
            self._write_record(),
            kv.create(self.address, self.value, msg_ttl=self._msg_ttl),
            return_exceptions=True,
        )
        if not isinstance(lease, BaseException):
            self._revision = lease
        self.create_refused = isinstance(lease, jserr.KeyWrongLastSequenceError)
        if isinstance(record, BaseException):
            raise record
        if not isinstance(lease, BaseException):
            return
        if not isinstance(lease, jserr.KeyWrongLastSequenceError):
            raise lease
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
        """The mailbox record: from then on the address owns a mailbox that waits ``keep``
        seconds for its agent after the lease lapses. Writing it clears
        ``offline_since``, so it is also rewritten whenever the lease has to be re-created
        (a stall or an outage longer than ``ttl``), or the record would keep saying offline.
        ``open()`` writes it beside the lease create: a lease whose record is still on its way
        is one the sidecar does not act on (it works from records, and gives a record written
        less than a grace period ago time for its lease)."""
        if self._records is None:
            self._records = self._open(p.MAILBOXES_BUCKET)
        record = p.MailboxRecord(opened_at=time.time(), keep=self.keep, card=json.loads(self.value or b"{}"))
        self.record_revision = await self._records.put(self.address, record.encode())

    async def renew(self) -> bool:
        """Renew the lease; True if it had to be re-created because it had lapsed (the
        sidecar then released the consumers: the caller brings them back), False if it was
        alive (ours, or a replica renewed it first)."""
        kv = await self._bucket()
        if self._revision is not None:
            try:
                self._revision = await natscompat.kv_update(
                    kv, self.address, self.value, last=self._revision, msg_ttl=self._msg_ttl
                )
                self.renewals += 1
                return False
            except jserr.KeyWrongLastSequenceError:
                self._revision = None  # a replica renewed, or the lease lapsed: read it
        for _ in range(3):
            try:
                entry = await kv.get(self.address)
            except jserr.KeyNotFoundError:  # gone, or a delete marker
                await self._write_record()
                try:
                    self._revision = await kv.create(self.address, self.value, msg_ttl=self._msg_ttl)
                    self.renewals += 1
                    return True
                except jserr.KeyWrongLastSequenceError:
                    continue
            try:
                self._revision = await natscompat.kv_update(
                    kv, self.address, self.value, last=entry.revision, msg_ttl=self._msg_ttl
                )
                self.renewals += 1
                return not entry.value  # over a lapsed lease's limit marker: re-created
            except jserr.KeyWrongLastSequenceError:
                continue  # another replica renewed between our get and update
        return False

    def start(self, on_recreated: Callable[[], Awaitable[None]] | None = None) -> None:
        """Renew every ``ttl / 3`` in the background; ``on_recreated`` runs after a renewal
        that had to re-create a lapsed lease (and again at the next one if it failed). A
        renewal of a live lease costs the one conditional write, nothing else."""
        self._task = asyncio.create_task(self._run(on_recreated), name=f"lease:{self.address}")

    async def _run(self, on_recreated: Callable[[], Awaitable[None]] | None) -> None:
        interval = max(self.ttl / 3.0, 0.3)
        due = False
        while True:
            await asyncio.sleep(interval)
            try:
                due = await self.renew() or due
                if due and on_recreated is not None:
                    await on_recreated()
                due = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep renewing through reconnects
                log.warning("lease renewal for %s failed: %s", self.address, exc)

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
