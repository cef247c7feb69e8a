"""Moving one stored message to dead letters, and telling its sender when it asked.

Shared by the sidecar (exhausted and termed mail), by reclaiming (unread mail of a mailbox whose
retention ran out, or that was destroyed) and by the SDK (``Message.term`` keeps the body). It
needs only a JetStream context, so the SDK can use it without loading the sidecar.

Ordering for one message (``mail_seq`` in ``MAILSLOT_MAIL``):

1. read it (``STREAM.MSG.GET``, coherent even on R3);
2. publish the copy to ``dlq.<p>.<address>`` with ``Nats-Msg-Id = dead-<mail_seq>``: a replay of
   the same advisory, a second replica, or a copy the client already wrote before ``+TERM`` is
   dropped by the DLQ's dedupe window;
3. if the sender asked (``Mailslot-Notify: undelivered``) and the reason is a reclaim, publish a
   bounce notice to the sender's mailbox with ``Nats-Msg-Id = bounce-<mail_seq>``;
4. delete it from the mail stream (a WorkQueue keeps a message that ran out of deliveries).

A crash between the steps leaves the original in place; the next attempt copies again (dropped as
a duplicate within the dedupe window) and deletes it, so the outcome is the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.api import RawStreamMsg

from . import natscompat
from . import protocol as p
from .errors import InvalidAddress
from .protocol import Header


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
    bounced_to: str | None = None


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


def stored_address(raw: RawStreamMsg) -> tuple[p.Priority, str] | None:
    """Priority and mailbox of a stored message: ``mbox.<p>.<address>``, or a scheduled
    message's target (``msched.<address>.<id>`` carries ``Nats-Schedule-Target``)."""
    subject = raw.subject or ""
    if subject.startswith(p.SCHEDULE_PREFIX + "."):
        subject = (raw.headers or {}).get(Header.NATS_SCHEDULE_TARGET, "")
    try:
        return p.parse_mail_subject(subject)
    except (ValueError, IndexError):
        return None


def wants_bounce(headers: dict[str, str] | None) -> bool:
    value = (headers or {}).get(Header.NOTIFY, "")
    return p.NOTIFY_UNDELIVERED in {v.strip().lower() for v in value.split(",")}


async def bounce(
    js: JetStreamContext,
    headers: dict[str, str],
    *,
    mail_seq: int,
    address: str,
    priority: p.Priority,
    reason: str,
    dlq_seq: int,
) -> str | None:
    """Tell the sender its message was not delivered, like an SMTP delivery status notice.

    Goes to the sender's own mailbox (``Mailslot-From``), at the original priority, with the
    original's correlation id, so an agent waiting on a conversation learns it is over. Returns
    the address notified, or None when there is no valid sender to tell.
    """
    sender = headers.get(Header.FROM)
    if not sender or sender == address:
        return None
    try:
        p.validate_address(sender)
    except InvalidAddress:
        return None
    if p.is_reply_address(sender):
        return None
    message_id = headers.get(Header.MSG_ID) or f"seq-{mail_seq}"
    body = {
        "message_id": message_id,
        "to": address,
        "reason": reason,
        "dead_letter_seq": dlq_seq,
        "sent_at": headers.get(Header.SENT_AT),
        "bounced_at": time.time(),
    }
    out = {
        Header.MSG_ID: p.bounce_msg_id(mail_seq),
        Header.NATS_MSG_ID: p.bounce_msg_id(mail_seq),
        Header.FROM: p.SYSTEM_SENDER,
        Header.TO: sender,
        Header.PRIORITY: priority.label,
        Header.CONTENT_TYPE: p.ContentType.JSON,
        Header.SENT_AT: datetime.now(timezone.utc).isoformat(),
        Header.BOUNCE_FOR: message_id,
        Header.BOUNCE_REASON: reason,
        Header.CORRELATION_ID: headers.get(Header.CORRELATION_ID) or message_id,
    }
    if headers.get(Header.THREAD_ID):
        out[Header.THREAD_ID] = headers[Header.THREAD_ID]
    await js.publish(p.mail_subject(priority, sender), json.dumps(body).encode(), headers=out, timeout=5.0)
    return sender


async def move_to_dead_letters(
    js: JetStreamContext, raw: RawStreamMsg, *, reason: str, deliveries: int
) -> DeadLetterResult | None:
    """Steps 2-4 of the module docstring for a message already read. None if it is not mail."""
    found = stored_address(raw)
    if found is None or raw.seq is None:
        return None
    prio, address = found
    original = dict(raw.headers or {})
    headers = dead_letter_headers(original, mail_seq=raw.seq, reason=reason, deliveries=deliveries)
    if not headers.get(Header.TO):
        headers[Header.TO] = address
    res = await publish_dead_letter(
        js,
        headers,
        raw.data or b"",
        mail_seq=raw.seq,
        address=address,
        priority=prio,
        reason=reason,
        deliveries=deliveries,
    )
    if reason == p.REASON_RECLAIMED and wants_bounce(original):
        res.bounced_to = await bounce(
            js, original, mail_seq=raw.seq, address=address, priority=prio, reason=reason, dlq_seq=res.dlq_seq
        )
    await delete_stored(js, p.MAIL_STREAM, raw.seq)
    return res


async def delete_stored(js: JetStreamContext, stream: str, seq: int) -> bool:
    """Delete one stored message; False when it was gone already (acked, expired, or moved by
    a concurrent reclaim: the sidecar and an operator's ``reclaim_expired`` can race on the
    same mailbox). Any other failure raises."""
    try:
        await natscompat.delete_msg(js, stream, seq)  # moved or consumed: no erase
    except jserr.APIError as exc:
        if isinstance(exc, jserr.NotFoundError) or p.jsapi.is_already_gone(exc):
            return False
        raise
    return True


async def publish_dead_letter(
    js: JetStreamContext,
    headers: dict[str, str],
    data: bytes,
    *,
    mail_seq: int,
    address: str,
    priority: p.Priority,
    reason: str,
    deliveries: int,
    body_lost: bool = False,
) -> DeadLetterResult:
    """Step 2 of the module docstring, for a copy of the message (``move_to_dead_letters``)
    or for a headers-only entry when the server removed the body first (the sidecar)."""
    ack = await js.publish(p.dlq_subject(priority, address), data, headers=headers, timeout=5.0)
    return DeadLetterResult(
        mail_seq=mail_seq,
        address=address,
        priority=priority,
        reason=reason,
        deliveries=deliveries,
        dlq_seq=ack.seq,
        duplicate=bool(ack.duplicate),
        body_lost=body_lost,
    )


async def next_stored(js: JetStreamContext, subject: str, seq: int) -> RawStreamMsg | None:
    """The first message at or after ``seq`` on ``subject`` (wildcards allowed), or None."""
    try:
        return await js.get_msg(p.MAIL_STREAM, seq=seq, subject=subject, next=True, direct=True)
    except jserr.NotFoundError:
        return None
