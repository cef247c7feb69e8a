"""Dead letters: JetStream has none, so the sidecar builds them from advisories.

The move itself (copy, bounce, delete, with dedupe ids) is
:mod:`mailslot_broker.deadletters`; this module decides *when*.

* The server reports a message that used its last delivery with a ``MAX_DELIVERIES`` advisory,
  but only when it next tries to deliver from that consumer, i.e. on a pull. A receiver that
  went idle or died never pulls again, so the message would sit unacked on the consumer
  forever. :func:`probe_exhausted` makes the server look: for every consumer with unacked mail
  and no waiting pull it sends a no-wait pull with ``max_bytes: 1``. Measured on nats-server
  2.15: the server then fires the advisory for exhausted messages and answers ``409 Message
  Size Exceeds MaxBytes`` for the next deliverable one *without delivering it* (its delivery
  count is unchanged). So an exhausted message is in dead letters within
  ``ack_wait + DEAD_LETTER_SLACK`` seconds whatever its receiver does.
* ``+TERM`` on a WorkQueue stream removes the message *before* the advisory arrives, so the
  sidecar can no longer read the body. It writes a headers-only dead letter
  (``Mailslot-Dead-Body-Lost``) with the reason, the deliveries and the address from the
  consumer's metadata. ``Message.term`` in the SDK copies the full message first under the same
  dedupe id, so that copy wins and the sidecar's entry is dropped.
* Advisories are core NATS: while no sidecar runs (or during a leader hand-over) they are lost.
  :func:`sweep_exhausted` finds such messages later: for a consumer with nothing pending
  (``num_ack_pending == 0``), a message still stored on its filter subject with a sequence
  between the ack floor and the last delivered sequence has been delivered, never acked, and will
  not be redelivered, i.e. it ran out of deliveries.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.api import ConsumerInfo

from .. import protocol as p
from ..deadletters import DeadLetterResult, dead_letter_headers, move_to_dead_letters, publish_dead_letter
from ..protocol import Header

log = logging.getLogger("mailslot.sidecar.deadletter")

REASON_MAX_DELIVERIES = p.REASON_MAX_DELIVERIES


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
    """Move one message to the DLQ. Returns None when there is nothing to do (already handled,
    acked, or not a mailbox message)."""
    try:
        raw = await js.get_msg(p.MAIL_STREAM, seq=mail_seq)
    except jserr.NotFoundError:
        raw = None
    if raw is not None:
        return await move_to_dead_letters(js, raw, reason=reason, deliveries=deliveries)
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
    return await publish_dead_letter(
        js,
        headers,
        b"",
        mail_seq=mail_seq,
        address=address,
        priority=prio,
        reason=reason,
        deliveries=deliveries,
        body_lost=True,
    )


def parse_advisory(msg: Msg) -> dict[str, Any] | None:
    """The fields of a MAX_DELIVERIES / MSG_TERMINATED advisory we act on."""
    try:
        body = json.loads(msg.data)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("stream") != p.MAIL_STREAM or not body.get("stream_seq"):
        return None
    kind = msg.subject.split(".")[4] if msg.subject.count(".") >= 4 else ""
    if kind == p.ADVISORY_TERMINATED:
        reason = body.get("reason") or p.REASON_TERMINATED
    else:
        reason = REASON_MAX_DELIVERIES
    try:
        return {
            "mail_seq": int(body["stream_seq"]),
            "deliveries": int(body.get("deliveries") or 0),
            "reason": str(reason),
            "consumer": body.get("consumer"),
        }
    except (TypeError, ValueError):
        return None


async def _mail_consumers(js: JetStreamContext) -> list[ConsumerInfo]:
    out: list[ConsumerInfo] = []
    offset = 0
    while True:
        batch = await js.consumers_info(p.MAIL_STREAM, offset=offset or None)
        out += batch
        offset += len(batch)
        if len(batch) < 256:
            return out


def needs_probe(ci: ConsumerInfo) -> bool:
    """Unacked mail and nobody pulling: only a pull makes the server notice exhaustion."""
    cfg = ci.config
    return bool(
        cfg.filter_subject
        and cfg.max_deliver
        and cfg.max_deliver > 0
        and ci.num_ack_pending
        and not ci.num_waiting
    )


async def probe_exhausted(
    nc: NatsClient,
    js: JetStreamContext,
    inbox: str,
    *,
    address: str | None = None,
    consumers: list[ConsumerInfo] | None = None,
) -> int:
    """Send the ``max_bytes: 1`` probe pull (see the module docstring) to every consumer that
    needs it (or to ``address``'s four). Replies go to ``inbox`` and are ignored; the advisories
    do the rest. Returns how many consumers were probed."""
    if address is not None:
        names = [p.consumer_name(address, prio) for prio in p.PRIORITIES]
        infos = []
        for name in names:
            try:
                infos.append(await js.consumer_info(p.MAIL_STREAM, name))
            except jserr.NotFoundError:
                continue
        consumers = infos
    elif consumers is None:
        consumers = await _mail_consumers(js)
    body = json.dumps({**p.pull_request(batch=1, no_wait=True), "max_bytes": 1}).encode()
    probed = 0
    for ci in consumers:
        if not needs_probe(ci):
            continue
        await nc.publish(p.pull_subject(p.MAIL_STREAM, ci.name), body, reply=inbox)
        probed += 1
    if probed:
        await nc.flush(timeout=5)
    return probed


async def sweep_exhausted(js: JetStreamContext, *, limit: int = 10_000) -> list[DeadLetterResult]:
    """Dead-letter messages whose MAX_DELIVERIES advisory nobody acted on (see module doc)."""
    results: list[DeadLetterResult] = []
    for ci in await _mail_consumers(js):
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
    return results


__all__ = [
    "REASON_MAX_DELIVERIES",
    "DeadLetterResult",
    "dead_letter",
    "dead_letter_headers",
    "needs_probe",
    "parse_advisory",
    "probe_exhausted",
    "sweep_exhausted",
]
