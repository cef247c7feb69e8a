"""Moving agent credentials' mail from their outbox to the mailboxes.

An agent credential may not publish into the mail stream: the stream accepts ``Nats-Rollup``
(its message schedules force it on) and NATS permissions see subjects, not headers, so a send
could replace another mailbox's waiting mail or empty the stream. It publishes to
``mout.<p>.<to>`` in ``MAILSLOT_OUTBOX`` instead (rollups off), and the leader moves each
message to ``mbox.<p>.<to>``:

1. pull a batch from the outbox (one durable consumer, explicit acks);
2. publish each to its mailbox with the same body, the same headers without the ``Nats-*``
   control headers, the same ``Nats-Msg-Id``, the rest of its ``Nats-TTL`` (one that ran
   out meanwhile expired as its sender asked: it is dropped) and its outbox sequence
   (``Mailslot-Outbox-Seq``, what the sender's receipt says; keep-latest orders by it);
3. ack it in the outbox once the mail stream has acked the copy; a copy that failed is naked
   and moved again.

A copy that would exceed the server's ``max_payload`` (headers and body: the server closes
the connection of whoever publishes one) is never published: the outbox keeps
:data:`~..protocol.views.OUTBOX_MOVE_ROOM` for what the mover adds, so only a message stored
before it had that room (or on a server whose ``max_payload`` shrank) gets there. It is
dead-lettered without its body (reason :data:`~..protocol.views.REASON_OUTBOX_OVERSIZE`) and
terminated in the outbox, never naked to come back forever.

At least once plus the id: a move repeated after a crash (the outbox redelivers after
``ack_wait``) is within the mail stream's dedupe window and stored once. An agent's send is
acked when the outbox stored it, so nothing acked is lost while the sidecar is down: the mail
waits in the outbox and moves when a leader runs again. A subject that names no mailbox
(``mout.dev...``, which the permissions refuse anyway, or a priority outside 0..3) is dropped
with a warning: moving it would forge a device uplink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .. import natscompat
from .. import protocol as p
from ..deadletters import dead_letter_headers
from ..protocol import Header

log = logging.getLogger("mailslot.sidecar.outbox")

aw = p.agent_writes
#: Seconds before an unacked move is delivered again.
MOVE_ACK_WAIT = 30.0


def remaining_ttl(value: str, stored: float, now: float) -> str | None:
    """The ``Nats-TTL`` a moved copy gets: what is left of ``value`` since the outbox stored
    the message (whole seconds, at least 1); ``"0"`` when it ran out; ``value`` itself when
    it is not a number of seconds (``never``)."""
    try:
        seconds = float(value[:-1] if value.endswith("s") else value)
    except ValueError:
        return value
    left = seconds - max(0.0, now - stored)
    if left <= 0:
        return "0"
    return p.nats_ttl_value(max(1.0, left))


def moved_headers(msg: Msg, now: float) -> dict[str, str] | None:
    """The headers of the mailbox copy of ``msg``; None when its TTL ran out in the outbox."""
    hdrs = msg.headers or {}
    out = {k: v for k, v in hdrs.items() if not k.startswith("Nats-")}
    # Where it was in the outbox (the sender's receipt): keep-latest of agents' mail orders by
    # it (sidecar/views.py, op supersede). The mover's, never the agent's own.
    out[p.views.OUTBOX_SEQ_HEADER] = str(msg.metadata.sequence.stream)
    msg_id = hdrs.get(Header.NATS_MSG_ID)
    if msg_id:
        out[Header.NATS_MSG_ID] = msg_id
    ttl = hdrs.get(Header.NATS_TTL)
    if ttl:
        left = remaining_ttl(ttl, msg.metadata.timestamp.timestamp(), now)
        if left == "0":
            return None
        assert left is not None
        out[Header.NATS_TTL] = left
    return out


class OutboxMover:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        is_leader: Callable[[], bool],
        batch: int = 256,
        idle: float = 1.0,
        missing_wait: float = 5.0,
        retry_wait: float = 1.0,
    ) -> None:
        self.js = js
        self.is_leader = is_leader
        self.batch = batch
        self.idle = idle
        #: How often a tenant without an outbox (no agent credential yet) is asked again:
        #: one API request each, so not every second on every idle tenant.
        self.missing_wait = missing_wait
        self.retry_wait = retry_wait
        self.moved = 0
        self.dropped = 0
        self.oversize = 0  # messages too large to move, dead-lettered without their body
        self._psub: Any = None

    async def _bind(self) -> Any:
        """The mover's pull subscription; None while the tenant has no outbox (no agent
        credential issued yet)."""
        config = ConsumerConfig(
            durable_name=aw.OUTBOX_MOVER,
            description="Mailslot sidecar: moves agent mail from the outbox to the mailboxes",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=MOVE_ACK_WAIT,
            max_ack_pending=4 * self.batch,
            num_replicas=0,
        )
        try:
            await self.js.add_consumer(aw.OUTBOX_STREAM, config)
        except jserr.NotFoundError:
            return None
        return await self.js.pull_subscribe_bind(aw.OUTBOX_MOVER, aw.OUTBOX_STREAM)

    async def _unbind(self) -> None:
        psub, self._psub = self._psub, None
        if psub is not None:
            try:
                await psub.unsubscribe()
            except Exception as exc:  # the connection may be gone
                log.debug("outbox unsubscribe failed: %s", exc)

    async def run(self) -> None:
        # nats-py's fetch can swallow a cancellation: do not pull on after one (3.11+).
        cancelling = getattr(asyncio.current_task(), "cancelling", None)
        try:
            while True:
                await self.step()
                if cancelling is not None and cancelling():
                    raise asyncio.CancelledError
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._unbind(), 5.0)

    async def step(self) -> int:
        """One pull and its moves (or a wait); returns how many messages it moved."""
        if not self.is_leader():
            await self._unbind()
            await asyncio.sleep(0.5)
            return 0
        try:
            if self._psub is None:
                self._psub = await self._bind()
                if self._psub is None:
                    await asyncio.sleep(self.missing_wait)
                    return 0
            try:
                msgs = await self._psub.fetch(self.batch, timeout=self.idle)
            except asyncio.TimeoutError:
                # Nothing to move. nats-py raises its own TimeoutError or, when the deadline
                # ran out between its two pull requests, a plain asyncio one: not a failure
                # to unbind and log for (the full bench logged one under load).
                return 0
            return await self.move(msgs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an outage, a deleted consumer: bind again
            log.warning("outbox move failed: %r", exc)
            await self._unbind()
            await asyncio.sleep(self.retry_wait)
            return 0

    async def move(self, msgs: list[Msg]) -> int:
        now = time.time()
        todo: list[tuple[Msg, str, dict[str, str]]] = []
        for m in msgs:
            target = aw.outbox_target(m.subject)
            headers = moved_headers(m, now) if target is not None else None
            if target is None:
                log.warning("outbox: %s names no mailbox; dropped", m.subject)
                self.dropped += 1
            if headers is None:
                await m.ack()  # nothing to move (no mailbox, or its TTL ran out)
                continue
            assert target is not None
            if p.views.message_size(headers, m.data or b"") > self._max_payload():
                await self._too_large(m, target, headers)
                continue
            todo.append((m, p.mail_subject(*target), headers))
        # One batch in flight at once, published in order (FIFO within a level holds).
        results = await asyncio.gather(
            *(self.js.publish(subject, m.data, headers=h, timeout=5.0) for m, subject, h in todo),
            return_exceptions=True,
        )
        moved = 0
        for (m, subject, _), res in zip(todo, results, strict=True):
            if isinstance(res, BaseException):
                log.warning("outbox: moving %s to %s failed: %r (again later)", m.subject, subject, res)
                await m.nak(delay=1.0)
                continue
            await m.ack()
            moved += 1
        self.moved += moved
        return moved

    def _max_payload(self) -> int:
        return int(natscompat.js_connection(self.js).max_payload)

    async def _too_large(self, m: Msg, target: tuple[p.Priority, str], moved: dict[str, str]) -> None:
        """Dead-letter ``m`` without its body (its copy would not fit ``max_payload``) and
        terminate it in the outbox; a failed dead letter is naked and tried again."""
        prio, address = target
        seq = m.metadata.sequence.stream
        size = p.views.message_size(moved, m.data or b"")
        log.warning(
            "outbox: message %d to %s is %d bytes once moved, over max_payload %d; dead-lettered",
            seq,
            address,
            size,
            self._max_payload(),
        )
        reason = p.views.REASON_OUTBOX_OVERSIZE
        headers = dead_letter_headers(
            m.headers, mail_seq=seq, reason=reason, deliveries=m.metadata.num_delivered or 1
        )
        extra = {
            Header.DEAD_BODY_LOST: f"{len(m.data or b'')} bytes, too large to move from the outbox",
            Header.TO: address,
            Header.PRIORITY: prio.label,
            # Not the mail stream's dead-{seq}: an outbox sequence is another count.
            Header.NATS_MSG_ID: f"outbox-dead-{seq}",
        }
        headers.update(extra)
        if p.views.message_size(headers, b"") > self._max_payload():
            # The headers themselves are what is too large: keep only the dead letter's own.
            keep = (Header.DEAD_REASON, Header.DEAD_DELIVERIES, Header.DEAD_SEQ, Header.DEAD_AT)
            headers = {k: headers[k] for k in keep} | extra
        try:
            await self.js.publish(p.dlq_subject(prio, address), b"", headers=headers, timeout=5.0)
        except Exception as exc:
            log.warning("outbox: dead-lettering oversize message %d failed: %r (again later)", seq, exc)
            await m.nak(delay=1.0)
            return
        await m.term()
        self.oversize += 1


__all__ = ["MOVE_ACK_WAIT", "OutboxMover", "moved_headers", "remaining_ttl"]
