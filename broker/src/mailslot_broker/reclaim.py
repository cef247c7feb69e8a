"""Presence and retention: what happens to a mailbox while, and after, its agent is away.

Two clocks (``docs/protocol.md``, "Lifecycle"):

* **Presence** is the lease in ``MAILSLOT_AGENTS``. When it lapses the agent is *offline*: its
  consumers are released (they are the cost of an online agent), the mailbox record notes
  ``offline_since``, and **the mail stays**.
* **Retention** is the record's ``keep``: how long the mailbox waits for its agent after it was
  last present. Only when it runs out, or on ``destroy()``, is the mailbox *reclaimed*: its
  consumers, record and messages go, and every unread message is moved to dead letters with
  reason ``mailbox reclaimed`` (bouncing to senders that asked). Nothing is removed without a
  trace. Mail to an address that was never opened has no record; it waits
  ``DEFAULT_UNCLAIMED_KEEP`` from when it was stored, then is dead-lettered the same way.

Everything here is idempotent: a sidecar that dies half-way is followed by one that redoes the
same steps, and the dedupe ids make the dead letters and bounce notices appear once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js import errors as jserr

from . import kvscan
from . import protocol as p
from .deadletters import DeadLetterResult, move_to_dead_letters, next_stored
from .protocol import principals


@dataclass
class ReclaimReport:
    address: str
    dead_lettered: list[DeadLetterResult] = field(default_factory=list)
    consumers_deleted: list[str] = field(default_factory=list)

    @property
    def messages_dead_lettered(self) -> int:
        return len(self.dead_lettered)

    @property
    def bounces(self) -> int:
        return sum(1 for d in self.dead_lettered if d.bounced_to)


#: Seconds the purge marker of a destroyed agent's card stays visible to registry watchers.
LEAVE_MARKER_TTL = 5.0
#: Moves to dead letters in flight on one subject while the reclaim reads ahead.
_MOVE_WINDOW = 32


kv_subject = p.kv_subject  # re-exported: the CLI imports it from here


async def _purge_key(js: JetStreamContext, bucket: str, key: str) -> None:
    """Remove every trace of a key, markers included (a plain KV purge leaves a marker)."""
    with contextlib.suppress(jserr.NotFoundError):
        await js.purge_stream(p.kv_stream(bucket), subject=p.kv_subject(bucket, key))


def mailbox_subjects(address: str) -> list[str]:
    """Every subject holding mail of ``address``: its four levels, its scheduled mail, and the
    replies to its requests (on its reply sub-address)."""
    return [
        p.mail_subject_all_priorities(address),
        p.schedule_subject_all(address),
        p.mail_subject_all_priorities(p.reply_address(address)),
    ]


async def release_consumers(js: JetStreamContext, address: str) -> list[str]:
    """Delete the four consumers of an offline mailbox. Its mail stays on its subjects."""
    deleted: list[str] = []

    async def delete(name: str) -> None:
        with contextlib.suppress(jserr.NotFoundError):
            await js.delete_consumer(p.MAIL_STREAM, name)
            deleted.append(name)

    await asyncio.gather(*(delete(p.consumer_name(address, prio)) for prio in p.PRIORITIES))
    return deleted


async def dead_letter_subjects(
    js: JetStreamContext,
    subjects: Iterable[str],
    *,
    reason: str = p.REASON_RECLAIMED,
    stored_before: float | None = None,
) -> list[DeadLetterResult]:
    """Move every message on ``subjects`` (optionally only those stored before a unix time)
    to dead letters, oldest first on each subject. The subjects are walked concurrently (they
    are disjoint): an empty mailbox costs one round trip, not one per subject."""

    async def walk(subject: str) -> list[DeadLetterResult]:
        # The reads are a chain (each starts after the sequence the previous one found);
        # each move (copy, then delete) only needs its own message. So the walk reads ahead
        # while up to _MOVE_WINDOW moves are in flight: one round trip a message instead of
        # three (bench/README.md). Each move keeps its own order (the copy is stored before
        # the original is deleted), and the copies are published in the order read.
        out: list[DeadLetterResult] = []
        moves: collections.deque[asyncio.Future[DeadLetterResult | None]] = collections.deque()

        async def settle_oldest() -> None:
            res = await moves.popleft()
            if res is not None:
                out.append(res)

        try:
            raw = await next_stored(js, subject, 0)
            while raw is not None and raw.seq is not None:
                if (
                    stored_before is not None
                    and raw.time is not None
                    and raw.time.timestamp() >= stored_before
                ):
                    break  # stored in order: the rest is younger
                moves.append(
                    asyncio.ensure_future(move_to_dead_letters(js, raw, reason=reason, deliveries=0))
                )
                if len(moves) >= _MOVE_WINDOW:
                    await settle_oldest()
                raw = await next_stored(js, subject, raw.seq + 1)
            while moves:
                await settle_oldest()
        finally:
            # A failed read or move: let the moves already started finish (or fail) rather
            # than leave them running; a copy without its delete is redone by the next
            # reclaim and dropped by the dead-letter dedupe (deadletters.py).
            if moves:
                await asyncio.gather(*moves, return_exceptions=True)
        return out

    walks = await asyncio.gather(*(walk(subject) for subject in subjects))
    return [res for walked in walks for res in walked]


async def _delete_reply_consumer(js: JetStreamContext, address: str) -> list[str]:
    """The consumer an agent credential collects its replies through
    (:func:`~.protocol.principals.reply_consumer_name`), if it made one."""
    name = principals.reply_consumer_name(address)
    try:
        await js.delete_consumer(p.MAIL_STREAM, name)
    except jserr.NotFoundError:
        return []
    return [name]


async def forget_agent_writes(js: JetStreamContext, address: str) -> None:
    """Remove what an agent credential wrote for ``address`` in ``MAILSLOT_AGENT_WRITES``
    (``kvup.<bucket>.<address>``: its lease and its record). The buckets hold their own
    copies (purged beside this); without this the writes stream kept the record for good and
    a live lease until its TTL, so a gone agent left a trace, and its next open found its old
    lease there and read as resumed. A tenant without agent credentials has no such stream:
    nothing to do."""

    async def purge(bucket: str) -> None:
        with contextlib.suppress(jserr.NotFoundError):
            await js.purge_stream(
                p.agent_writes.AGENT_WRITES_STREAM,
                subject=p.agent_writes.agent_write_subject(bucket, address),
            )

    await asyncio.gather(*(purge(bucket) for bucket in p.agent_writes.UPLINKED_BUCKETS))


async def reclaim_mailbox(js: JetStreamContext, address: str) -> ReclaimReport:
    """Reclaim now: consumers, then every message to dead letters (reason ``mailbox
    reclaimed``, bounces where asked), then the lease and the record (last, so a crash half-way
    is finished by the next sweep).

    Three round trips for an empty mailbox: the consumer deletes (the four levels' and an
    agent credential's reply consumer) with the lease read beside them (a direct get, no
    bucket lookup); the dead-letter walks of its subjects (concurrent); the lease's purge (or
    purge marker) beside the record's purge and the purge of the agent's own writes of both
    (:func:`forget_agent_writes`). The lease and the record go together: a replica that still
    renews the lease writes the record again either way (``Lease.renew``), so their order
    bought nothing."""
    p.validate_address(address)
    report = ReclaimReport(address)
    levels, replies, alive = await asyncio.gather(
        release_consumers(js, address), _delete_reply_consumer(js, address), lease_alive(js, address)
    )
    report.consumers_deleted = [*levels, *replies]
    report.dead_lettered = await dead_letter_subjects(js, mailbox_subjects(address))
    await asyncio.gather(
        _leave(js, address, alive=alive),
        _purge_key(js, p.MAILBOXES_BUCKET, address),
        forget_agent_writes(js, address),
    )
    return report


async def _leave(js: JetStreamContext, address: str, *, alive: bool) -> None:
    """Remove the lease of a reclaimed mailbox."""
    if alive:
        # A live lease (destroy): leave a self-expiring purge marker instead of erasing the
        # key, so registry watchers see the agent leave; the marker removes itself. What
        # KeyValue.purge(key, msg_ttl=...) publishes, without its STREAM.INFO bucket lookup.
        await js.publish(
            p.kv_subject(p.AGENTS_BUCKET, address),
            headers={"KV-Operation": "PURGE", "Nats-Rollup": "sub"},
            msg_ttl=LEAVE_MARKER_TTL,
        )
    else:
        await _purge_key(js, p.AGENTS_BUCKET, address)


async def lease_alive(js: JetStreamContext, address: str) -> bool:
    """Whether ``address`` holds a live lease: one last-by-subject direct get (what
    ``KeyValue.get`` reads, without the ``js.key_value()`` STREAM.INFO lookup before it)."""
    subject = p.kv_subject(p.AGENTS_BUCKET, address)
    try:
        raw = await js.get_msg(p.kv_stream(p.AGENTS_BUCKET), subject=subject, direct=True)
    except jserr.NotFoundError:
        return False
    headers = raw.headers or {}
    if raw.subject != subject or not raw.data or "Nats-Marker-Reason" in headers:
        return False  # a lapsed lease leaves the server's marker: no data, no KV-Operation
    return headers.get("KV-Operation") not in ("DEL", "PURGE")


async def lease_lapsed_at(js: JetStreamContext, address: str) -> float | None:
    """When the server wrote the lapsed lease's marker, if it is still there."""
    try:
        raw = await js.get_msg(
            p.kv_stream(p.AGENTS_BUCKET), subject=p.kv_subject(p.AGENTS_BUCKET, address), direct=True
        )
    except jserr.NotFoundError:
        return None
    if raw.data or raw.time is None:
        return None  # a live value, not a marker
    return raw.time.timestamp()


@dataclass
class RecordEntry:
    address: str
    record: p.MailboxRecord
    revision: int


async def read_record(js: JetStreamContext, address: str) -> RecordEntry | None:
    kv = await js.key_value(p.MAILBOXES_BUCKET)
    try:
        entry = await kv.get(address)
    except jserr.KeyNotFoundError:
        return None
    if entry.value is None or entry.revision is None:
        return None
    return RecordEntry(address, p.MailboxRecord.decode(entry.value), entry.revision)


async def mailbox_records(js: JetStreamContext) -> list[RecordEntry]:
    """Every mailbox record, in one consistent read and without creating a consumer."""
    items = await kvscan.read_bucket(js, p.MAILBOXES_BUCKET)
    return [
        RecordEntry(key, p.MailboxRecord.decode(it.value), it.revision) for key, it in sorted(items.items())
    ]


async def opened_mailboxes(js: JetStreamContext) -> dict[str, float]:
    """Address -> unix time the mailbox was last opened."""
    return {e.address: e.record.opened_at for e in await mailbox_records(js)}


async def mark_offline(js: JetStreamContext, entry: RecordEntry, since: float) -> RecordEntry | None:
    """Start the retention clock. A conditional write: if the agent reopened meanwhile (and
    rewrote the record), nothing changes. Returns the updated entry or None."""
    kv = await js.key_value(p.MAILBOXES_BUCKET)
    record = entry.record.model_copy(update={"offline_since": since})
    record.card = {**record.card, "status": "offline"}
    try:
        rev = await kv.update(entry.address, record.encode(), last=entry.revision)
    except jserr.KeyWrongLastSequenceError:
        return None
    return RecordEntry(entry.address, record, rev)


@dataclass
class RetentionStep:
    """What one look at one mailbox did."""

    address: str
    went_offline: bool = False
    consumers_released: list[str] = field(default_factory=list)
    reclaimed: ReclaimReport | None = None
    #: When retention runs out, for a mailbox that is offline and not reclaimed yet.
    due: float | None = None


Hook = Callable[[RecordEntry], Awaitable[None]]


async def apply_retention(
    js: JetStreamContext,
    entry: RecordEntry,
    *,
    now: float | None = None,
    lapsed_at: float | None = None,
    grace: float = 2.0,
    before_release: Hook | None = None,
    before_reclaim: Hook | None = None,
) -> RetentionStep:
    """Decide for one mailbox: online (nothing), newly offline (release its consumers, start
    the retention clock), or out of retention (reclaim).

    ``before_release`` runs while the consumers still exist (the sidecar asks them for mail
    that ran out of deliveries); ``before_reclaim`` runs just before anything is removed (the
    sidecar announces the reclaim there, so the event is never missing).
    """
    now = time.time() if now is None else now
    step = RetentionStep(entry.address)
    if now - entry.record.opened_at < grace:
        return step  # open() writes the record just before the lease
    if await lease_alive(js, entry.address):
        return step
    if entry.record.offline_since is None:
        since = lapsed_at or await lease_lapsed_at(js, entry.address) or now
        if before_release is not None:
            await before_release(entry)
        updated = await mark_offline(js, entry, since)
        if updated is None:
            return step  # reopened meanwhile
        entry = updated
        step.went_offline = True
        step.consumers_released = await release_consumers(js, entry.address)
    due = entry.record.reclaim_due()
    step.due = due
    if due is not None and due <= now:
        if await lease_alive(js, entry.address):
            return step
        if before_reclaim is not None:
            await before_reclaim(entry)
        step.reclaimed = await reclaim_mailbox(js, entry.address)
        step.due = None
    return step


async def unclaimed_addresses(js: JetStreamContext, opened: set[str]) -> list[str]:
    """Addresses holding mail that own no mailbox record (nobody ever opened them, or the
    record went with a reclaim and mail arrived after)."""
    info = await js.stream_info(p.MAIL_STREAM, subjects_filter=f"{p.MAIL_PREFIX}.>")
    out: set[str] = set()
    for subject in info.state.subjects or {}:
        try:
            _, address = p.parse_mail_subject(subject)
        except (ValueError, IndexError):
            continue
        owner = address.rsplit(".", 1)[0] if p.is_reply_address(address) else address
        if owner not in opened:
            out.add(address)
    return sorted(out)


async def reclaim_unclaimed(
    js: JetStreamContext, *, keep: float = p.DEFAULT_UNCLAIMED_KEEP, opened: set[str] | None = None
) -> list[DeadLetterResult]:
    """Dead-letter mail that waited longer than ``keep`` at an address nobody opened."""
    if opened is None:
        opened = {e.address for e in await mailbox_records(js)}
    cutoff = time.time() - keep
    out: list[DeadLetterResult] = []
    for address in await unclaimed_addresses(js, opened):
        out += await dead_letter_subjects(js, [p.mail_subject_all_priorities(address)], stored_before=cutoff)
    return out


async def reclaim_expired(
    js: JetStreamContext, *, grace: float = 2.0, now: float | None = None
) -> list[ReclaimReport]:
    """One retention pass over every opened mailbox (what the sidecar does periodically).

    Returns the reports of the mailboxes reclaimed; mailboxes that just went offline only have
    their consumers released and their retention clock started.
    """
    reports = []
    for entry in await mailbox_records(js):
        step = await apply_retention(js, entry, now=now, grace=grace)
        if step.reclaimed is not None:
            reports.append(step.reclaimed)
    return reports


def reclaimed_event(entry: RecordEntry, *, unread: int) -> bytes:
    """Body of the ``mailslot.agent.reclaimed`` system event (published before the reclaim:
    ``unread`` is how many messages are about to go to dead letters)."""
    return json.dumps(
        {
            "address": entry.address,
            "unread": unread,
            "keep": entry.record.keep,
            "offline_since": entry.record.offline_since,
            "reclaimed_at": time.time(),
        }
    ).encode()


async def unread_count(js: JetStreamContext, address: str) -> int:
    info = await js.stream_info(p.MAIL_STREAM, subjects_filter=p.mail_subject_all_priorities(address))
    return sum((info.state.subjects or {}).values())
