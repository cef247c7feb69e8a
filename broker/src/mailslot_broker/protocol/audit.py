"""The audit trail's streams and subjects: who wrote to whom, and what became of each message.

The audit adds nothing to a send or a receive. Everything it records is traffic the server
already produces after the fact: the bell the mail stream republishes once it has stored a
message, the ack a receiver sends (``$JS.ACK.MAILSLOT_MAIL.…``), the server's terminated and
max-deliveries advisories, and the headers-only republish of every dead letter
(``dlqbell.<p>.<address>``). Two streams keep it:

- ``MAILSLOT_AUDIT_IN`` listens on those subjects (``no_ack``: nobody waits for it). It allows
  per-message TTLs, because a bell carries the mail's ``Nats-TTL`` and a stream without them
  would refuse it; such a record lives there only as long as the mail would. It allows message
  schedules too: the bell of a delayed message that fired carries ``Nats-Scheduler`` and
  ``Nats-Schedule-Next``, which a stream without them refuses (err 10188).
- ``MAILSLOT_AUDIT`` sources ``MAILSLOT_AUDIT_IN``. A sourced message's ``Nats-TTL`` is ignored,
  so here every record lives for the audit's retention (``max_age``). The source resumes where
  it stopped after an outage.

Why not a source or mirror of ``MAILSLOT_MAIL``: its consumer is exempt from the WorkQueue
one-consumer-per-subject check (err 10100) and acks what it copies, so the work queue deletes
the mail before its mailbox sees it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from nats.js.api import RetentionPolicy, StreamConfig, StreamSource

from .configs import StreamSettings, _stream
from .defaults import DAY
from .names import BELL_PREFIX, DEAD_BELL_PREFIX, MAIL_STREAM
from .subjects import ADVISORY_MAX_DELIVERIES, ADVISORY_TERMINATED, consumer_advisory_subject

AUDIT_STREAM = "MAILSLOT_AUDIT"
AUDIT_CAPTURE_STREAM = "MAILSLOT_AUDIT_IN"
#: ``MAILSLOT_AUDIT``'s metadata key saying whether bells (and so records) carry bodies.
AUDIT_BODIES_METADATA = "mailslot-audit-bodies"
DEFAULT_AUDIT_RETENTION = 30 * DAY
#: How long the capture stream keeps what the audit has not sourced yet (an outage of the
#: audit stream up to this long loses nothing without a TTL).
AUDIT_CAPTURE_MAX_AGE = 1 * DAY
ACK_PREFIX = f"$JS.ACK.{MAIL_STREAM}"


def audit_subjects() -> list[str]:
    """What the capture stream listens on."""
    return [
        f"{BELL_PREFIX}.>",
        f"{DEAD_BELL_PREFIX}.>",
        f"{ACK_PREFIX}.>",
        consumer_advisory_subject(ADVISORY_TERMINATED, MAIL_STREAM),
        consumer_advisory_subject(ADVISORY_MAX_DELIVERIES, MAIL_STREAM),
    ]


def audit_capture_stream_config(s: StreamSettings) -> StreamConfig:
    return _stream(
        s,
        name=AUDIT_CAPTURE_STREAM,
        description="Mailslot audit capture: bells, acks, advisories, dead-letter bells",
        subjects=audit_subjects(),
        retention=RetentionPolicy.LIMITS,
        max_age=AUDIT_CAPTURE_MAX_AGE,
        allow_msg_ttl=True,
        allow_msg_schedules=True,
        no_ack=True,
    )


def audit_stream_config(s: StreamSettings, *, retention: float, bodies: bool) -> StreamConfig:
    cfg = _stream(
        s,
        name=AUDIT_STREAM,
        description="Mailslot audit trail: who wrote to whom, and what became of each message",
        sources=[StreamSource(name=AUDIT_CAPTURE_STREAM)],
        retention=RetentionPolicy.LIMITS,
        max_age=retention,
        metadata={AUDIT_BODIES_METADATA: "true" if bodies else "false"},
    )
    # The server wants a dedupe window no longer than max_age (a short retention).
    return dataclasses.replace(cfg, duplicate_window=min(s.dedupe_window, retention))


def audit_bodies(config: StreamConfig) -> bool:
    return (config.metadata or {}).get(AUDIT_BODIES_METADATA) == "true"


# --- reading records -------------------------------------------------------------------------


@dataclass(frozen=True)
class AckSubject:
    """What ``$JS.ACK.MAILSLOT_MAIL.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` says."""

    consumer: str
    deliveries: int
    seq: int


def parse_ack_subject(subject: str) -> AckSubject | None:
    tokens = subject.split(".")
    if len(tokens) != 9 or f"{tokens[0]}.{tokens[1]}.{tokens[2]}" != ACK_PREFIX:
        return None
    if not (tokens[4].isdigit() and tokens[5].isdigit()):
        return None
    return AckSubject(tokens[3], int(tokens[4]), int(tokens[5]))


def is_mailbox_consumer(name: str) -> bool:
    """``mbx-<p>-<32 hex>`` (:func:`consumer_name`): a mailbox's consumer, not other plumbing."""
    parts = name.split("-")
    return len(parts) == 3 and parts[0] == "mbx" and parts[1] in ("0", "1", "2", "3") and len(parts[2]) == 32


def ack_kind(body: bytes) -> str | None:
    """``acked``, ``termed`` (with ``+TERM <reason>``) or ``nacked``; None for ``+WPI``/``+NXT``."""
    if body in (b"", b"+ACK"):
        return "acked"
    if body.startswith(b"+TERM"):
        return "termed"
    if body.startswith(b"-NAK"):
        return "nacked"
    return None


def term_reason(body: bytes) -> str | None:
    reason = body[len(b"+TERM") :].strip().decode("utf-8", "replace")
    return reason or None


def is_advisory(subject: str) -> str | None:
    """``terminated`` or ``exhausted`` for a consumer advisory of the mail stream."""
    if subject.startswith(f"$JS.EVENT.ADVISORY.CONSUMER.{ADVISORY_TERMINATED}."):
        return "terminated"
    if subject.startswith(f"$JS.EVENT.ADVISORY.CONSUMER.{ADVISORY_MAX_DELIVERIES}."):
        return "exhausted"
    return None


def parse_advisory(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


__all__ = [
    "ACK_PREFIX",
    "AUDIT_BODIES_METADATA",
    "AUDIT_CAPTURE_MAX_AGE",
    "AUDIT_CAPTURE_STREAM",
    "AUDIT_STREAM",
    "DEFAULT_AUDIT_RETENTION",
    "AckSubject",
    "ack_kind",
    "audit_bodies",
    "audit_capture_stream_config",
    "audit_stream_config",
    "audit_subjects",
    "is_advisory",
    "is_mailbox_consumer",
    "parse_ack_subject",
    "parse_advisory",
    "term_reason",
]
