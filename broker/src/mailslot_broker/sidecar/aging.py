"""Priority aging: mail that waited longer than ``age_after`` seconds in level p moves to p-1.

Off by default (``age_after=None``). A moved message keeps its ``Mailslot-Id``; the copy gets
``Mailslot-Aged-From`` and a dedupe id :func:`mailslot_broker.protocol.aged_msg_id`. The time
spent in a level is measured from when the stream stored the message there, so a message climbs
at most one level per ``age_after``; ``critical`` never moves.

Ordering for one message (``seq`` at level p of ``address``) -- it must never be delivered twice:

1. pause the mailbox's consumer for level p (``CONSUMER.PAUSE`` with a short deadline, so a
   crashed sidecar cannot leave it paused); if the consumer does not exist (agent offline) there
   is nothing to pause, and a consumer created meanwhile is caught by step 4;
2. read the consumer's ``delivered.stream_seq``. If it is >= seq the message was delivered at
   least once and is in a receiver's hands (or ran out of deliveries): leave it alone;
3. ``delete_msg(seq)``; if that fails the message was acked, expired or reclaimed meanwhile: done;
4. read ``delivered.stream_seq`` again: if the message was delivered between 2 and 3 (the
   consumer was created or unpaused by a lease renewal in that window) the receiver holds the
   only copy: do not publish (publishing would deliver it a second time);
5. publish the copy to ``mbox.<p-1>.<address>`` with the remaining TTL (retried; the dedupe id
   makes a retry harmless); 6. resume the consumer.

The price of "never twice" is a narrow window for "once at most": if the sidecar dies between 3
and 5, or the message was delivered in the window of step 4 and that receiver then fails, the
message is gone. Both windows are a few milliseconds wide; aging is a courtesy for starving
mail, not a delivery guarantee of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone

from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.api import RawStreamMsg

from .. import protocol as p
from ..deadletters import delete_stored
from ..protocol import Header

log = logging.getLogger("mailslot.sidecar.aging")


def _remaining_ttl(raw: RawStreamMsg, now: float) -> float | None:
    """Seconds left of the message's TTL (None = no TTL)."""
    h = raw.headers or {}
    ttl = h.get(Header.TTL) or h.get(Header.NATS_TTL)
    if not ttl:
        return None
    try:
        seconds = float(ttl.rstrip("s"))
    except ValueError:
        return None
    start = raw.time.timestamp() if raw.time else now
    sent = h.get(Header.SENT_AT)
    if sent and h.get(Header.TTL):
        with contextlib.suppress(ValueError):
            start = datetime.fromisoformat(sent.replace("Z", "+00:00")).timestamp()
    return start + seconds - now


class Aging:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        age_after: float,
        pause_for: float = 10.0,
        batch: int = 1000,
    ) -> None:
        self._js = js
        self.age_after = float(age_after)
        self.pause_for = pause_for
        self.batch = batch
        self.moved = 0

    async def _delivered(self, consumer: str) -> int | None:
        try:
            ci = await self._js.consumer_info(p.MAIL_STREAM, consumer)
        except jserr.NotFoundError:
            return None
        return int(ci.delivered.stream_seq or 0) if ci.delivered else 0

    async def _old(self, prio: p.Priority, cutoff: float) -> dict[str, list[RawStreamMsg]]:
        """Messages at level ``prio`` stored before ``cutoff``, oldest first, per address."""
        out: dict[str, list[RawStreamMsg]] = defaultdict(list)
        seq, n = 1, 0
        subject = f"{p.MAIL_PREFIX}.{int(prio)}.>"
        while n < self.batch:
            try:
                raw = await self._js.get_msg(p.MAIL_STREAM, seq=seq, subject=subject, next=True)
            except jserr.NotFoundError:
                break
            if raw.time is None or raw.time.timestamp() > cutoff or raw.seq is None:
                break
            _, address = p.parse_mail_subject(raw.subject or "")
            out[address].append(raw)
            n += 1
            seq = raw.seq + 1
        return out

    async def sweep(self) -> int:
        """One pass over levels low, normal, urgent; returns how many messages moved."""
        moved = 0
        cutoff = time.time() - self.age_after
        for prio in (p.Priority.LOW, p.Priority.NORMAL, p.Priority.URGENT):
            for address, msgs in (await self._old(prio, cutoff)).items():
                moved += await self._move(address, prio, msgs)
        self.moved += moved
        return moved

    async def _move(self, address: str, prio: p.Priority, msgs: list[RawStreamMsg]) -> int:
        consumer = p.consumer_name(address, prio)
        until = datetime.now(timezone.utc) + timedelta(seconds=self.pause_for)
        paused = False
        try:
            await self._js.pause_consumer(p.MAIL_STREAM, consumer, until.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            paused = True
        except jserr.NotFoundError:
            pass
        moved = 0
        try:
            delivered = await self._delivered(consumer)
            for raw in msgs:
                assert raw.seq is not None
                if delivered is not None and delivered >= raw.seq:
                    continue  # in flight (or exhausted): the receiver has it
                if await self._move_one(address, prio, raw, consumer):
                    moved += 1
        finally:
            if paused:
                with contextlib.suppress(Exception):
                    await self._js.resume_consumer(p.MAIL_STREAM, consumer)
        return moved

    async def _move_one(self, address: str, prio: p.Priority, raw: RawStreamMsg, consumer: str) -> bool:
        assert raw.seq is not None
        now = time.time()
        remaining = _remaining_ttl(raw, now)
        if remaining is not None and remaining < 1.0:
            return False  # about to expire: let the server remove it
        if not await delete_stored(self._js, p.MAIL_STREAM, raw.seq):
            return False  # acked, expired or reclaimed meanwhile
        after = await self._delivered(consumer)
        if after is not None and after >= raw.seq:
            log.warning("message %s of %s was delivered while aging; not copied", raw.seq, address)
            return False
        h = raw.headers or {}
        headers = {k: v for k, v in h.items() if not k.lower().startswith("nats-")}
        msg_id = h.get(Header.MSG_ID) or h.get(Header.NATS_MSG_ID) or f"seq-{raw.seq}"
        headers[Header.MSG_ID] = msg_id
        up = p.Priority(int(prio) - 1)
        headers[Header.PRIORITY] = up.label
        headers[Header.AGED_FROM] = prio.label
        headers[Header.NATS_MSG_ID] = p.aged_msg_id(msg_id, raw.seq)
        if remaining is not None:
            headers[Header.NATS_TTL] = p.nats_ttl_value(remaining)
        for attempt in range(20):
            try:
                await self._js.publish(
                    p.mail_subject(up, address), raw.data or b"", headers=headers, timeout=5.0
                )
                return True
            except (jserr.NoStreamResponseError, asyncio.TimeoutError, jserr.ServiceUnavailableError) as exc:
                log.warning("aging copy of %s failed (attempt %d): %s", msg_id, attempt + 1, exc)
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        log.error("aging copy of %s to %s could not be published; message lost", msg_id, address)
        return False
