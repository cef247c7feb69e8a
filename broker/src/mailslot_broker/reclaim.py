"""Reclaiming the mailbox of an agent whose lease lapsed.

An address that was *opened* owns a mailbox: a lease in the agents bucket, consumers, and a
record in the mailboxes bucket. When the lease is gone but the record remains, the agent died
or left and did not come back within its TTL: its mail, consumers and card are removed. Mail
sent to an address that was never opened has no record and is left waiting, on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js import errors as jserr

from . import protocol as p


@dataclass
class ReclaimReport:
    address: str
    messages_purged: int = 0
    consumers_deleted: list[str] = field(default_factory=list)


#: Seconds the purge marker of a destroyed agent's card stays visible to registry watchers.
LEAVE_MARKER_TTL = 5.0


def kv_subject(bucket: str, key: str) -> str:
    return f"$KV.{bucket}.{key}"


async def _purge_key(js: JetStreamContext, bucket: str, key: str) -> None:
    """Remove every trace of a key, markers included (a plain KV purge leaves a marker)."""
    with contextlib.suppress(jserr.NotFoundError):
        await js.purge_stream(f"KV_{bucket}", subject=kv_subject(bucket, key))


async def reclaim_mailbox(js: JetStreamContext, address: str) -> ReclaimReport:
    """Remove a mailbox now: its messages (queued and scheduled), consumers, lease and record."""
    p.validate_address(address)
    report = ReclaimReport(address)

    async def delete(name: str) -> None:
        with contextlib.suppress(jserr.NotFoundError):
            await js.delete_consumer(p.MAIL_STREAM, name)
            report.consumers_deleted.append(name)

    await asyncio.gather(*(delete(p.consumer_name(address, prio)) for prio in p.PRIORITIES))
    before = await _count(js, address)
    await js.purge_stream(p.MAIL_STREAM, subject=p.mail_subject_all_priorities(address))
    await js.purge_stream(p.MAIL_STREAM, subject=p.schedule_subject_all(address))
    # Replies to the agent's requests wait on its reply sub-address: they go with it.
    await js.purge_stream(p.MAIL_STREAM, subject=p.mail_subject_all_priorities(p.reply_address(address)))
    report.messages_purged = before
    if await lease_alive(js, address):
        # A live lease (destroy): leave a self-expiring purge marker instead of erasing the
        # key, so registry watchers see the agent leave; the marker removes itself.
        kv = await js.key_value(p.AGENTS_BUCKET)
        await kv.purge(address, msg_ttl=LEAVE_MARKER_TTL)
    else:
        await _purge_key(js, p.AGENTS_BUCKET, address)
    await _purge_key(js, p.MAILBOXES_BUCKET, address)
    return report


async def _count(js: JetStreamContext, address: str) -> int:
    info = await js.stream_info(p.MAIL_STREAM, subjects_filter=p.mail_subject_all_priorities(address))
    return sum((info.state.subjects or {}).values())


async def lease_alive(js: JetStreamContext, address: str) -> bool:
    kv = await js.key_value(p.AGENTS_BUCKET)
    try:
        entry = await kv.get(address)
    except jserr.KeyNotFoundError:
        return False
    return entry.value is not None and entry.operation is None


async def opened_mailboxes(js: JetStreamContext) -> dict[str, float]:
    """Address -> unix time the mailbox record was written."""
    kv = await js.key_value(p.MAILBOXES_BUCKET)
    out: dict[str, float] = {}
    try:
        keys = await kv.keys()
    except jserr.NoKeysError:
        return out
    for key in keys:
        try:
            entry = await kv.get(key)
        except jserr.KeyNotFoundError:
            continue
        try:
            out[key] = float((entry.value or b"0").decode())
        except ValueError:
            out[key] = 0.0
    return out


async def reclaim_expired(js: JetStreamContext, *, grace: float = 2.0) -> list[ReclaimReport]:
    """Reclaim every opened mailbox whose lease has lapsed.

    ``grace`` skips records younger than that many seconds: ``open()`` writes the record just
    before the lease, and a sweep in between must not reclaim a mailbox being born.
    """
    now = time.time()
    reports = []
    for address, created in (await opened_mailboxes(js)).items():
        if now - created < grace:
            continue
        if await lease_alive(js, address):
            continue
        reports.append(await reclaim_mailbox(js, address))
    return reports
