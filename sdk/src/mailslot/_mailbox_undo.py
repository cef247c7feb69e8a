"""What an ``open()`` found and wrote, and how a failed one removes only what it created.

An open writes the mailbox record, the lease and the consumers of the levels that hold mail
(:func:`levels_with_mail`; the other levels get theirs when their bell rings). If it fails (or is
cancelled) half-way, what existed before must survive: an offline mailbox's record with its
retention clock, a replica's live lease, consumers a live lease owns. So the undo compares
revisions: it removes or puts back an entry only while it is still the one this open wrote,
never a concurrent opener's.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from mailslot_broker import protocol as p
from mailslot_broker.reclaim import LEAVE_MARKER_TTL
from nats.js import JetStreamContext
from nats.js import errors as jserr

from .errors import PermissionDenied


@dataclass(frozen=True)
class KVEntry:
    seq: int
    data: bytes
    #: False for a delete/purge marker or a lapsed lease's limit marker (no value).
    live: bool


async def kv_entry(js: JetStreamContext, bucket: str, key: str) -> KVEntry | None:
    """The latest entry of a key by direct get (no bucket lookup, markers included)."""
    try:
        raw = await js.get_msg(p.kv_stream(bucket), subject=p.kv_subject(bucket, key), direct=True)
    except jserr.NotFoundError:
        return None
    op = (raw.headers or {}).get("KV-Operation")
    data = raw.data or b""
    return KVEntry(seq=int(raw.seq or 0), data=data, live=bool(data) and op is None)


async def kv_write(
    js: JetStreamContext,
    bucket: str,
    key: str,
    data: bytes,
    *,
    last: int,
    headers: dict[str, str] | None = None,
    ttl: float | None = None,
) -> bool:
    """Write ``key`` only if its latest revision is still ``last``; False if it is not."""
    hdrs = dict(headers or {})
    hdrs[p.Header.NATS_EXPECTED_LAST_SUBJECT_SEQ] = str(last)
    try:
        await js.publish(p.kv_subject(bucket, key), data, headers=hdrs, msg_ttl=ttl, timeout=5.0)
    except jserr.APIError as exc:
        if p.jsapi.is_wrong_last_sequence(exc):  # somebody wrote it since
            return False
        raise
    return True


@dataclass(frozen=True)
class Before:
    """What existed at an address before open() wrote anything."""

    record: KVEntry | None
    lease_live: bool
    consumers: frozenset[p.Priority]
    #: The levels that held mail (their consumers are the ones the open creates).
    levels: frozenset[p.Priority] = frozenset()

    @classmethod
    async def read(cls, js: JetStreamContext, address: str) -> Before:
        """The record, the lease, the levels holding mail and which of their consumers exist.
        Read after the bell subscription is made: mail stored later rings."""

        async def exists(prio: p.Priority) -> bool:
            try:
                await js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))
            except jserr.NotFoundError:
                return False
            return True

        record, lease, levels = await asyncio.gather(
            kv_entry(js, p.MAILBOXES_BUCKET, address),
            kv_entry(js, p.AGENTS_BUCKET, address),
            levels_with_mail(js, address),
        )
        ordered = [prio for prio in p.PRIORITIES if prio in levels]
        found = await asyncio.gather(*(exists(prio) for prio in ordered))
        return cls(
            record=record,
            lease_live=bool(lease is not None and lease.live),
            consumers=frozenset(prio for prio, there in zip(ordered, found, strict=True) if there),
            levels=levels,
        )


@dataclass(frozen=True)
class Written:
    """Revisions of the record and the lease open() wrote (None: unknown): from the write
    acks (``Lease.record_revision``, ``Lease.revision``), or, for an agent credential (its
    writes go through the agent writes stream, whose revisions are not the buckets'), read
    back with :meth:`read` just after."""

    record: int | None = None
    lease: int | None = None
    #: The lease create was refused (the key was taken after the look before writing) and
    #: this open wrote no lease: a live one now is another opener's.
    lease_not_ours: bool = False

    @classmethod
    async def read(cls, js: JetStreamContext, address: str) -> Written:
        record, lease = await asyncio.gather(
            kv_entry(js, p.MAILBOXES_BUCKET, address), kv_entry(js, p.AGENTS_BUCKET, address)
        )
        return cls(
            record=record.seq if record is not None else None,
            lease=lease.seq if lease is not None else None,
        )


async def remove_created(js: JetStreamContext, address: str, before: Before, written: Written | None) -> None:
    """Remove what a failed open() of ``address`` created, never what existed ``before``."""
    revs = written or Written()
    # 1. The lease, unless it was alive before (a replica, or this agent restarting) or
    #    somebody else holds it now. A self-expiring purge marker, as destroy() leaves, so
    #    registry watchers see the agent that never opened leave again.
    lease_held = before.lease_live or revs.lease_not_ours
    if not lease_held:
        now = await kv_entry(js, p.AGENTS_BUCKET, address)
        if now is not None and now.live:
            if revs.lease is not None and now.seq != revs.lease:
                lease_held = True  # rewritten since (a concurrent open): theirs now
            else:
                lease_held = not await kv_write(
                    js,
                    p.AGENTS_BUCKET,
                    address,
                    b"",
                    last=now.seq,
                    headers={"KV-Operation": "PURGE", "Nats-Rollup": "sub"},
                    ttl=LEAVE_MARKER_TTL,
                )
    # 2. The consumers this call created (of the levels holding mail), unless a live lease
    #    owns them.
    if not lease_held:

        async def drop(prio: p.Priority) -> None:
            with contextlib.suppress(jserr.NotFoundError):
                await js.delete_consumer(p.MAIL_STREAM, p.consumer_name(address, prio))

        created = before.levels - before.consumers  # the open creates only these
        await asyncio.gather(*(drop(prio) for prio in created))
    # 3. The record: put back the one acquire overwrote (an offline mailbox's, with its
    #    retention clock), or remove the one it created; only if it is still ours.
    now = await kv_entry(js, p.MAILBOXES_BUCKET, address)
    if now is None or not now.live:
        return
    if before.record is not None and now.seq == before.record.seq:
        return  # never written
    if revs.record is not None and now.seq != revs.record:
        return  # rewritten since (a concurrent open): theirs now
    if before.record is not None and before.record.live:
        await kv_write(js, p.MAILBOXES_BUCKET, address, before.record.data, last=now.seq)
    else:
        # Up to and including our write only: a later one (someone else's) stays.
        await js.purge_stream(
            p.kv_stream(p.MAILBOXES_BUCKET),
            subject=p.kv_subject(p.MAILBOXES_BUCKET, address),
            seq=now.seq + 1,
        )


async def levels_with_mail(js: JetStreamContext, address: str) -> frozenset[p.Priority]:
    """The levels of ``address`` that hold stored mail: one STREAM.INFO with a subjects filter
    (the server counts per subject; nothing is read). Credentials that may not ask it (an
    agent credential: the stream's subject counts would show every mailbox) get every level,
    i.e. the four consumers, which the receive loop still lets go once drained."""
    try:
        info = await js.stream_info(p.MAIL_STREAM, subjects_filter=p.mail_subject_all_priorities(address))
    except jserr.NotFoundError:
        return frozenset()
    except PermissionDenied:
        return frozenset(p.PRIORITIES)
    out: set[p.Priority] = set()
    for subject, count in (info.state.subjects or {}).items():
        if not count:
            continue
        with contextlib.suppress(ValueError, IndexError):
            prio, where = p.parse_mail_subject(subject)
            if where == address:
                out.add(prio)
    return frozenset(out)
