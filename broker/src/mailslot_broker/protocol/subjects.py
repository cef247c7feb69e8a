"""Subject builders and parsers, derived message ids and consumer names."""

from __future__ import annotations

import hashlib

from .names import (
    BELL_PREFIX,
    DLQ_PREFIX,
    DURABLE_TOPIC_PREFIX,
    MAIL_PREFIX,
    MAIL_STREAM,
    SCHEDULE_PREFIX,
    SYSTEM_TOPIC_PREFIX,
    TOPIC_PREFIX,
)
from .values import (
    Priority,
)

# --- subjects --------------------------------------------------------------------------------


def mail_subject(priority: Priority, address: str) -> str:
    return f"{MAIL_PREFIX}.{int(priority)}.{address}"


def mail_subject_all_priorities(address: str) -> str:
    """Matches exactly this address's four priority subjects (never a longer address)."""
    return f"{MAIL_PREFIX}.*.{address}"


def bell_subject_all_priorities(address: str) -> str:
    return f"{BELL_PREFIX}.*.{address}"


def dlq_subject_all_priorities(address: str) -> str:
    """Dead letters of exactly this address (a core subscription sees each one as it is written)."""
    return f"{DLQ_PREFIX}.*.{address}"


def parse_mail_subject(subject: str) -> tuple[Priority, str]:
    """Inverse of :func:`mail_subject` (also accepts ``bell.`` and ``dlq.`` subjects)."""
    prefix, digit, address = subject.split(".", 2)
    if prefix not in (MAIL_PREFIX, BELL_PREFIX, DLQ_PREFIX):
        raise ValueError(f"not a mail subject: {subject!r}")
    return Priority(int(digit)), address


def schedule_subject(address: str, message_id: str) -> str:
    """Where a delayed message waits until its schedule fires (ADR-51)."""
    return f"{SCHEDULE_PREFIX}.{address}.{message_id}"


def schedule_subject_all(address: str) -> str:
    return f"{SCHEDULE_PREFIX}.{address}.*"


def dlq_subject(priority: Priority, address: str) -> str:
    return f"{DLQ_PREFIX}.{int(priority)}.{address}"


def dead_letter_msg_id(mail_seq: int) -> str:
    """``Nats-Msg-Id`` of a dead letter: derived from the mail-stream sequence, so a replayed
    advisory (or the client copy written before ``+TERM``) is dropped by the DLQ's dedupe, while
    a requeued message that dies again (new sequence) gets a new dead letter."""
    return f"dead-{mail_seq}"


def bounce_msg_id(mail_seq: int) -> str:
    """``Nats-Msg-Id`` of the bounce notice for the message at ``mail_seq``: a retried reclaim
    sends the sender one notice, not two."""
    return f"bounce-{mail_seq}"


def requeue_msg_id(message_id: str, dlq_seq: int) -> str:
    """``Nats-Msg-Id`` for a message put back from dead letters. Its ``Mailslot-Id`` stays the
    same; the dedupe id must differ or the mail stream would drop it within the dedupe window."""
    return f"{message_id}-requeue-{dlq_seq}"


def aged_msg_id(message_id: str, mail_seq: int) -> str:
    """``Nats-Msg-Id`` for the copy priority aging moves one level up."""
    return f"{message_id}-aged-{mail_seq}"


def topic_subject(topic: str) -> str:
    return f"{TOPIC_PREFIX}.{topic}"


def durable_topic_subject(topic: str) -> str:
    return f"{DURABLE_TOPIC_PREFIX}.{topic}"


def topic_from_subject(subject: str) -> str:
    """The topic name of a ``topic.<name>`` or ``ptopic.<name>`` subject."""
    prefix, _, name = subject.partition(".")
    if prefix not in (TOPIC_PREFIX, DURABLE_TOPIC_PREFIX) or not name:
        raise ValueError(f"not a topic subject: {subject!r}")
    return name


#: Last token of an asker's reply sub-address. Replies to ``request``/``ask`` go to
#: ``<address>.<REPLY_TOKEN>`` so they sit on ``mbox.<p>.<address>._replies``: the mailbox's
#: consumers filter the exact subject ``mbox.<p>.<address>`` and never see them, and the asker
#: finds its reply by correlation id (bell + direct get) instead of receiving it.
REPLY_TOKEN = "_replies"


def reply_address(address: str) -> str:
    """Where replies to ``address``'s requests are sent (a valid address itself)."""
    return f"{address}.{REPLY_TOKEN}"


def is_reply_address(address: str) -> bool:
    return address.rsplit(".", 1)[-1] == REPLY_TOKEN


#: System events the sidecar publishes (durably, with a dedupe id, so each is seen once) on
#: ``topic.mailslot.<event>``; subscribe with ``subscribe("mailslot.>")``.
EVENT_AGENT_RECLAIMED = "agent.reclaimed"
EVENT_MAIL_DEAD = "mail.dead"


def system_topic(event: str) -> str:
    """Topic name (as the SDK sees it) of a system event, e.g. ``mailslot.agent.reclaimed``."""
    return f"{SYSTEM_TOPIC_PREFIX}.{event}"


def system_event_subject(event: str) -> str:
    """Where the sidecar publishes a system event: the durable topic, republished live to
    ``topic.mailslot.<event>``."""
    return durable_topic_subject(system_topic(event))


ADVISORY_MAX_DELIVERIES = "MAX_DELIVERIES"
ADVISORY_TERMINATED = "MSG_TERMINATED"


def consumer_advisory_subject(kind: str, stream: str = MAIL_STREAM) -> str:
    """``$JS.EVENT.ADVISORY.CONSUMER.<kind>.<stream>.*`` (core NATS, not stored)."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.{kind}.{stream}.*"


def ack_subject_all(stream: str = MAIL_STREAM) -> str:
    """Acks clients send for the stream's consumers; the sidecar counts them for metrics."""
    return f"$JS.ACK.{stream}.>"


def ack_subject_consumer(consumer: str, stream: str = MAIL_STREAM) -> str:
    """Acks, naks, terms and progress clients send for one consumer's deliveries:
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>``."""
    return f"$JS.ACK.{stream}.{consumer}.>"


def parse_ack(subject: str, body: bytes) -> tuple[str, int] | None:
    """``("acked" | "termed", stream seq)`` for an ack that removes the message from a WorkQueue
    stream (``+ACK`` or an empty body, ``+TERM``); None for ``-NAK``, ``+WPI``, ``+NXT`` or a
    subject of another shape."""
    if body in (b"", b"+ACK"):
        kind = "acked"
    elif body.startswith(b"+TERM"):
        kind = "termed"
    else:
        return None
    tokens = subject.split(".")
    if len(tokens) != 9 or not tokens[5].isdigit():
        return None
    return kind, int(tokens[5])


def kv_stream(bucket: str) -> str:
    """The stream behind a KV bucket (``KV_<bucket>``)."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """Where a KV bucket stores ``key``: ``$KV.<bucket>.<key>`` (``key`` may be ``>`` or contain
    ``*`` to match many keys, e.g. in a ``subjects_filter``)."""
    return f"$KV.{bucket}.{key}"


def consumer_name(address: str, priority: Priority) -> str:
    """Durable consumer for one priority level of one mailbox.

    Consumer names cannot contain dots, so the address is hashed; the address itself is kept
    in the consumer's metadata for operators and the reaper.
    """
    digest = hashlib.sha256(address.encode()).hexdigest()[:32]
    return f"mbx-{int(priority)}-{digest}"


CONSUMER_ADDRESS_METADATA = "mailslot-address"
