"""Dead letters: JetStream has none, so the sidecar builds them from advisories.

Ordering for one dead message (``mail_seq`` in ``MAILSLOT_MAIL``):

1. read it (``STREAM.MSG.GET``, coherent even on R3);
2. publish the copy to ``dlq.<p>.<address>`` with ``Nats-Msg-Id = dead-<mail_seq>``: a replay of
   the same advisory, a second replica, or a copy the client already wrote before ``+TERM``
   is dropped by the DLQ's dedupe window;
3. delete it from the mail stream (a WorkQueue keeps a message that ran out of deliveries).

A crash between 2 and 3 leaves the original in place; the next sweep copies it again (dropped as
a duplicate) and deletes it, so the outcome is the same.

Known limits, and what covers them:

* ``+TERM`` on a WorkQueue stream removes the message *before* the advisory arrives, so the
  sidecar can no longer read the body. It writes a headers-only dead letter
  (``Mailslot-Dead-Body-Lost``) with the reason, the deliveries and the address from the
  consumer's metadata. ``DeadLetters.term(message, reason=)`` in the SDK copies the full message
  first under the same dedupe id, so it wins and the sidecar's entry is dropped.
* Advisories are core NATS: while no sidecar runs (or during a leader hand-over) they are lost.
  :func:`sweep_exhausted` finds such messages later: for a consumer with nothing pending
  (``num_ack_pending == 0``), a message still stored on its filter subject with a sequence
  between the ack floor and the last delivered sequence has been delivered, never acked, and will
  not be redelivered, i.e. it ran out of deliveries. Consumers with messages in flight are
  skipped and looked at again by the next periodic sweep; a consumer deleted before the sweep
  lets its successor deliver the message again (nothing is lost, it just is not dead yet).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jserr

from .. import protocol as p
from ..protocol import Header

log = logging.getLogger("mailslot.sidecar.deadletter")

REASON_MAX_DELIVERIES = "max deliveries"


@dataclass
class DeadLetterResult:
    mail_seq: int
    address: str
    priority: p.Priority
    reason: str
    deliveries: int
    dlq_seq: int
    duplicate: bool
    body_lost: bool = False


def dead_letter_headers(
    original: dict[str, str] | None, *, mail_seq: int, reason: str, deliveries: int
) -> dict[str, str]:
    """Headers of the DLQ copy: the original's, minus NATS-owned ones (a ``Nats-TTL`` would be
    refused by the DLQ stream), plus why and when it died."""
    headers = {k: v for k, v in (original or {}).items() if not k.lower().startswith("nats-")}
    headers[Header.DEAD_REASON] = reason
    headers[Header.DEAD_DELIVERIES] = str(int(deliveries))
    headers[Header.DEAD_SEQ] = str(int(mail_seq))
    headers[Header.DEAD_AT] = datetime.now(timezone.utc).isoformat()
    headers[Header.NATS_MSG_ID] = p.dead_letter_msg_id(mail_seq)
    return headers


async def _consumer_address(js: JetStreamContext, consumer: str) -> tuple[p.Priority, str] | None:
    try:
        info = await js.consumer_info(p.MAIL_STREAM, consumer)
    except jserr.NotFoundError:
        return None
    cfg = info.config
    subject = cfg.filter_subject or ""
    try:
        return p.parse_mail_subject(subject)
    except (ValueError, IndexError):
        address = (cfg.metadata or {}).get(p.CONSUMER_ADDRESS_METADATA)
        if address and consumer.startswith("mbx-"):
            return p.Priority(int(consumer.split("-")[1])), address
        return None


async def dead_letter(
    js: JetStreamContext,
    mail_seq: int,
    *,
    reason: str,
    deliveries: int,
    consumer: str | None = None,
) -> DeadLetterResult | None:
    """Move one message to the DLQ (see the module docstring for the ordering). Returns None
    when there is nothing to do (already handled, acked, or not a mailbox message)."""
    try:
        raw = await js.get_msg(p.MAIL_STREAM, seq=mail_seq)
    except jserr.NotFoundError:
        raw = None
    if raw is not None:
        try:
            prio, address = p.parse_mail_subject(raw.subject or "")
        except (ValueError, IndexError):
            return None
        headers = dead_letter_headers(raw.headers, mail_seq=mail_seq, reason=reason, deliveries=deliveries)
        data = raw.data or b""
        lost = False
    else:
        if consumer is None:
            return None
        found = await _consumer_address(js, consumer)
        if found is None:
            return None
        prio, address = found
        headers = dead_letter_headers(None, mail_seq=mail_seq, reason=reason, deliveries=deliveries)
        headers[Header.DEAD_BODY_LOST] = "removed by the server before it could be copied"
        headers[Header.TO] = address
        headers[Header.PRIORITY] = prio.label
        data = b""
        lost = True
    ack = await js.publish(p.dlq_subject(prio, address), data, headers=headers, timeout=5.0)
    if raw is not None:
        with contextlib.suppress(jserr.NotFoundError):
            await js.delete_msg(p.MAIL_STREAM, mail_seq)
    return DeadLetterResult(
        mail_seq=mail_seq,
        address=address,
        priority=prio,
        reason=reason,
        deliveries=deliveries,
        dlq_seq=ack.seq,
        duplicate=bool(ack.duplicate),
        body_lost=lost,
    )


def parse_advisory(msg: Msg) -> dict[str, Any] | None:
    """The fields of a MAX_DELIVERIES / MSG_TERMINATED advisory we act on."""
    try:
        body = json.loads(msg.data)
    except ValueError:
        return None
    if body.get("stream") != p.MAIL_STREAM or not body.get("stream_seq"):
        return None
    kind = msg.subject.split(".")[4] if msg.subject.count(".") >= 4 else ""
    reason = body.get("reason") or "terminated" if kind == p.ADVISORY_TERMINATED else REASON_MAX_DELIVERIES
    return {
        "mail_seq": int(body["stream_seq"]),
        "deliveries": int(body.get("deliveries") or 0),
        "reason": reason,
        "consumer": body.get("consumer"),
    }


async def sweep_exhausted(js: JetStreamContext, *, limit: int = 10_000) -> list[DeadLetterResult]:
    """Dead-letter messages whose MAX_DELIVERIES advisory nobody acted on (see module doc)."""
    results: list[DeadLetterResult] = []
    offset = 0
    while True:
        batch = await js.consumers_info(p.MAIL_STREAM, offset=offset or None)
        if not batch:
            break
        offset += len(batch)
        for ci in batch:
            cfg = ci.config
            if not cfg.filter_subject or not (cfg.max_deliver and cfg.max_deliver > 0):
                continue
            if ci.num_ack_pending or ci.delivered is None or ci.ack_floor is None:
                continue
            low, high = ci.ack_floor.stream_seq or 0, ci.delivered.stream_seq or 0
            seq = low + 1
            while seq <= high and len(results) < limit:
                try:
                    raw = await js.get_msg(
                        p.MAIL_STREAM, seq=seq, subject=cfg.filter_subject, next=True, direct=True
                    )
                except jserr.NotFoundError:
                    break
                if raw.seq is None or raw.seq > high:
                    break
                res = await dead_letter(js, raw.seq, reason=REASON_MAX_DELIVERIES, deliveries=cfg.max_deliver)
                if res is not None:
                    results.append(res)
                seq = raw.seq + 1
        if len(batch) < 256:
            break
    return results
