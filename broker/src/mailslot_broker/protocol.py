"""The Mailslot wire protocol on NATS JetStream.

This is the only module that writes down the wire layout: stream and bucket names, their
configurations, subject builders, header names, priority levels and address rules. Everything
else (SDK, sidecar, CLI, integrations) goes through these functions so that a client written in
another language can follow ``docs/protocol.md`` and interoperate byte for byte.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from .errors import InvalidAddress, InvalidPriority, InvalidTopic, InvalidTTL

PROTOCOL_VERSION = 1
#: Message schedules (delayed delivery) and the prioritized policy arrived in nats-server 2.12.
MIN_SERVER_VERSION = (2, 12, 0)

# --- names -----------------------------------------------------------------------------------

MAIL_STREAM = "MAILSLOT_MAIL"
TOPICS_STREAM = "MAILSLOT_TOPICS"
DLQ_STREAM = "MAILSLOT_DLQ"
AGENTS_BUCKET = "MAILSLOT_AGENTS"
MAILBOXES_BUCKET = "MAILSLOT_MAILBOXES"
#: Small bucket the sidecar replicas use to elect the one that acts (key :data:`SIDECAR_LEADER_KEY`).
SIDECAR_BUCKET = "MAILSLOT_SIDECAR"
SIDECAR_LEADER_KEY = "leader"

MAIL_PREFIX = "mbox"
BELL_PREFIX = "bell"
SCHEDULE_PREFIX = "msched"
TOPIC_PREFIX = "topic"
DURABLE_TOPIC_PREFIX = "ptopic"
DLQ_PREFIX = "dlq"
SYSTEM_TOPIC_PREFIX = "mailslot"

# --- headers ---------------------------------------------------------------------------------


class Header:
    """Header names. Metadata rides in headers so any NATS client can read and write mail."""

    MSG_ID = "Mailslot-Id"
    FROM = "Mailslot-From"
    TO = "Mailslot-To"
    PRIORITY = "Mailslot-Priority"
    REPLY_TO = "Mailslot-Reply-To"
    CORRELATION_ID = "Mailslot-Correlation-Id"
    THREAD_ID = "Mailslot-Thread-Id"
    CONTENT_TYPE = "Mailslot-Content-Type"
    SENT_AT = "Mailslot-Sent-At"
    TTL = "Mailslot-TTL"
    DEAD_REASON = "Mailslot-Dead-Reason"
    DEAD_DELIVERIES = "Mailslot-Dead-Deliveries"
    #: Stream sequence the message had in the mail stream when it died.
    DEAD_SEQ = "Mailslot-Dead-Seq"
    DEAD_AT = "Mailslot-Dead-At"
    #: Set on a dead letter whose body the server had already removed (a ``+TERM`` on a
    #: WorkQueue stream deletes the message before the advisory is seen).
    DEAD_BODY_LOST = "Mailslot-Dead-Body-Lost"
    #: Set by priority aging on the moved copy: the priority label it had before.
    AGED_FROM = "Mailslot-Aged-From"
    #: Set on a message put back from dead letters: how many times it was requeued.
    REQUEUED = "Mailslot-Requeued"
    TRACEPARENT = "traceparent"
    # NATS-defined headers Mailslot relies on.
    NATS_MSG_ID = "Nats-Msg-Id"
    NATS_TTL = "Nats-TTL"
    NATS_SCHEDULE = "Nats-Schedule"
    NATS_SCHEDULE_TARGET = "Nats-Schedule-Target"
    NATS_SCHEDULE_TTL = "Nats-Schedule-TTL"
    NATS_SEQUENCE = "Nats-Sequence"
    NATS_SUBJECT = "Nats-Subject"
    NATS_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"


#: Header names a user may not set through ``headers=``: they belong to the protocol.
RESERVED_HEADER_PREFIXES = ("Mailslot-", "Nats-")


class ContentType:
    JSON = "application/json"
    TEXT = "text/plain; charset=utf-8"
    BYTES = "application/octet-stream"


# --- priorities ------------------------------------------------------------------------------


class Priority(enum.IntEnum):
    """Lower value = served first. The value is the digit in the subject."""

    CRITICAL = 0
    URGENT = 1
    NORMAL = 2
    LOW = 3

    @property
    def label(self) -> str:
        return self.name.lower()


PRIORITIES: tuple[Priority, ...] = tuple(Priority)


def parse_priority(value: Priority | str | int) -> Priority:
    """Accept a :class:`Priority`, its name (any case) or its digit."""
    if isinstance(value, Priority):
        return value
    if isinstance(value, bool):
        raise InvalidPriority(f"unknown priority {value!r}")
    if isinstance(value, int):
        try:
            return Priority(value)
        except ValueError:
            raise InvalidPriority(
                f"unknown priority {value!r}; use one of 0..3 or " + ", ".join(p.label for p in PRIORITIES)
            ) from None
    if isinstance(value, str):
        key = value.strip().upper()
        if key in Priority.__members__:
            return Priority[key]
        if key.isdigit():
            return parse_priority(int(key))
    raise InvalidPriority(f"unknown priority {value!r}; use one of " + ", ".join(p.label for p in PRIORITIES))


# --- addresses and topics --------------------------------------------------------------------

#: An address is 1..MAX_ADDRESS_TOKENS dot-separated tokens of letters, digits, '_' and '-'.
MAX_ADDRESS_LENGTH = 128
MAX_ADDRESS_TOKENS = 8
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
#: Topic names share the token alphabet; patterns may also use '*' tokens and a final '>'.
MAX_TOPIC_LENGTH = 200


def validate_address(address: object) -> str:
    """Return ``address`` if it can be a mailbox address, else raise :class:`InvalidAddress`.

    The rules guarantee that every subject built from an address is literal: no wildcard, no
    whitespace, no empty token, so an address can never read or purge another mailbox.
    """
    if not isinstance(address, str):
        raise InvalidAddress(f"address must be a str, not {type(address).__name__}")
    if not address:
        raise InvalidAddress("address is empty")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(f"address is {len(address)} characters long; the limit is {MAX_ADDRESS_LENGTH}")
    tokens = address.split(".")
    if len(tokens) > MAX_ADDRESS_TOKENS:
        raise InvalidAddress(
            f"address {address!r} has {len(tokens)} tokens; the limit is {MAX_ADDRESS_TOKENS}"
        )
    for token in tokens:
        if not token:
            raise InvalidAddress(f"address {address!r} has an empty token")
        if not _TOKEN.match(token):
            bad = sorted({c for c in token if not re.match(r"[A-Za-z0-9_-]", c)})
            raise InvalidAddress(
                f"address {address!r} contains {''.join(bad)!r}; allowed are letters, digits, "
                "'_', '-' and '.' between tokens (no wildcards, no whitespace)"
            )
    return address


def _validate_topic_like(name: object, *, allow_wildcards: bool, what: str) -> str:
    if not isinstance(name, str):
        raise InvalidTopic(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidTopic(f"{what} is empty")
    if len(name) > MAX_TOPIC_LENGTH:
        raise InvalidTopic(f"{what} is longer than {MAX_TOPIC_LENGTH} characters")
    tokens = name.split(".")
    for i, token in enumerate(tokens):
        if allow_wildcards and token == "*":
            continue
        if allow_wildcards and token == ">" and i == len(tokens) - 1:
            continue
        if not token:
            raise InvalidTopic(f"{what} {name!r} has an empty token")
        if not _TOKEN.match(token):
            hint = "wildcards '*' and a final '>'" if allow_wildcards else "no wildcards"
            raise InvalidTopic(
                f"{what} {name!r} has an invalid token {token!r} (letters, digits, '_', '-'; {hint})"
            )
    return name


def validate_topic(name: object) -> str:
    """A concrete topic to publish on: literal tokens only."""
    return _validate_topic_like(name, allow_wildcards=False, what="topic")


def validate_topic_pattern(pattern: object) -> str:
    """A subscription pattern: tokens, ``*`` for one token, ``>`` as the last token."""
    return _validate_topic_like(pattern, allow_wildcards=True, what="topic pattern")


MIN_TTL_SECONDS = 1.0


def validate_ttl(seconds: float, *, what: str = "ttl") -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidTTL(f"{what} must be a number of seconds, not {seconds!r}")
    if seconds != seconds or seconds < MIN_TTL_SECONDS:  # NaN or too small
        raise InvalidTTL(f"{what} must be at least {MIN_TTL_SECONDS:g} s, got {seconds!r}")
    return float(seconds)


def nats_ttl_value(seconds: float) -> str:
    """``Nats-TTL`` value. Whole seconds, rounded up, so a TTL is never shortened."""
    whole = int(seconds)
    if whole < seconds:
        whole += 1
    return f"{whole}s"


# --- subjects --------------------------------------------------------------------------------


def mail_subject(priority: Priority, address: str) -> str:
    return f"{MAIL_PREFIX}.{int(priority)}.{address}"


def mail_subject_all_priorities(address: str) -> str:
    """Matches exactly this address's four priority subjects (never a longer address)."""
    return f"{MAIL_PREFIX}.*.{address}"


def bell_subject_all_priorities(address: str) -> str:
    return f"{BELL_PREFIX}.*.{address}"


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


def consumer_name(address: str, priority: Priority) -> str:
    """Durable consumer for one priority level of one mailbox.

    Consumer names cannot contain dots, so the address is hashed; the address itself is kept
    in the consumer's metadata for operators and the reaper.
    """
    digest = hashlib.sha256(address.encode()).hexdigest()[:32]
    return f"mbx-{int(priority)}-{digest}"


CONSUMER_ADDRESS_METADATA = "mailslot-address"


# --- stream and bucket configurations ----------------------------------------------------------


@dataclass(frozen=True)
class StreamSettings:
    """Deployment knobs for the streams Mailslot provisions."""

    replicas: int = 1
    storage: StorageType = StorageType.FILE
    mail_max_age: float = 30 * 24 * 3600.0
    topics_max_age: float = 7 * 24 * 3600.0
    dlq_max_age: float = 30 * 24 * 3600.0
    dedupe_window: float = 120.0
    max_consumers: int = 100_000
    lease_marker_ttl: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)


def mail_stream_config(s: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=MAIL_STREAM,
        description="Mailslot mailboxes: mbox.<priority>.<address>",
        subjects=[f"{MAIL_PREFIX}.>", f"{SCHEDULE_PREFIX}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=s.storage,
        num_replicas=s.replicas,
        max_age=s.mail_max_age,
        duplicate_window=s.dedupe_window,
        max_consumers=s.max_consumers,
        allow_msg_ttl=True,
        allow_msg_schedules=True,
        allow_direct=True,
        discard=DiscardPolicy.OLD,
        republish=RePublish(src=f"{MAIL_PREFIX}.>", dest=f"{BELL_PREFIX}.>", headers_only=True),
    )


def topics_stream_config(s: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=TOPICS_STREAM,
        description="Mailslot durable broadcast history: ptopic.<topic>",
        subjects=[f"{DURABLE_TOPIC_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=s.storage,
        num_replicas=s.replicas,
        max_age=s.topics_max_age,
        duplicate_window=s.dedupe_window,
        allow_msg_ttl=True,
        allow_direct=True,
        republish=RePublish(src=f"{DURABLE_TOPIC_PREFIX}.>", dest=f"{TOPIC_PREFIX}.>"),
    )


def dlq_stream_config(s: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=DLQ_STREAM,
        description="Mailslot dead letters: dlq.<priority>.<address>",
        subjects=[f"{DLQ_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=s.storage,
        num_replicas=s.replicas,
        max_age=s.dlq_max_age,
        duplicate_window=s.dedupe_window,
        allow_direct=True,
    )


def agents_bucket_config(s: StreamSettings) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=AGENTS_BUCKET,
        description="Mailslot leases and agent cards: key = address",
        history=1,
        storage=s.storage,
        replicas=s.replicas,
        direct=True,
        limit_marker_ttl=s.lease_marker_ttl,
    )


def mailboxes_bucket_config(s: StreamSettings) -> KeyValueConfig:
    """Addresses that own a mailbox (consumers, lease); lets the reaper find lapsed leases
    after downtime without confusing them with addresses that were never opened."""
    return KeyValueConfig(
        bucket=MAILBOXES_BUCKET,
        description="Mailslot mailboxes that have been opened: key = address",
        history=1,
        storage=s.storage,
        replicas=s.replicas,
        direct=True,
    )


def sidecar_bucket_config(s: StreamSettings) -> KeyValueConfig:
    """Leader election of the sidecar replicas: one key with a TTL, renewed by the leader."""
    return KeyValueConfig(
        bucket=SIDECAR_BUCKET,
        description="Mailslot sidecar leader lease",
        history=1,
        storage=s.storage,
        replicas=s.replicas,
        limit_marker_ttl=s.lease_marker_ttl,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How a mailbox retries a message that was not acked."""

    ack_wait: float = 30.0
    max_deliver: int = 5
    backoff: tuple[float, ...] = ()
    max_ack_pending: int = 1000


def mail_consumer_config(
    address: str, priority: Priority, *, policy: RetryPolicy, inactive_threshold: float
) -> ConsumerConfig:
    name = consumer_name(address, priority)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"Mailslot mailbox {address} priority {priority.label}",
        filter_subject=mail_subject(priority, address),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=policy.ack_wait,
        max_deliver=policy.max_deliver,
        backoff=list(policy.backoff) or None,
        max_ack_pending=policy.max_ack_pending,
        inactive_threshold=inactive_threshold,
        num_replicas=0,
        metadata={CONSUMER_ADDRESS_METADATA: address, "mailslot-priority": priority.label},
    )


def pull_request(*, batch: int, no_wait: bool = False, expires: float | None = None) -> dict:
    """JSON body of ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``."""
    body: dict[str, Any] = {"batch": batch}
    if no_wait:
        body["no_wait"] = True
    if expires is not None:
        body["expires"] = int(expires * 1e9)
    return body


def pull_subject(stream: str, consumer: str) -> str:
    return f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
