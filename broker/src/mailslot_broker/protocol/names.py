"""Names: protocol version, streams, buckets, subject prefixes, headers, content types."""

from __future__ import annotations

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
#: Advisory claims on keys (repository paths): one KV key per claimed key, with a TTL.
CLAIMS_BUCKET = "MAILSLOT_CLAIMS"
#: The streams of agent credentials (:mod:`.agent_writes`): their lease and record writes,
#: which the agents and mailboxes buckets source, and their outbox, which the sidecar moves
#: into the mail stream.
AGENT_WRITES_STREAM = "MAILSLOT_AGENT_WRITES"
OUTBOX_STREAM = "MAILSLOT_OUTBOX"

MAIL_PREFIX = "mbox"
BELL_PREFIX = "bell"
SCHEDULE_PREFIX = "msched"
TOPIC_PREFIX = "topic"
DURABLE_TOPIC_PREFIX = "ptopic"
DLQ_PREFIX = "dlq"
AGENT_WRITES_PREFIX = "kvup"
OUTBOX_PREFIX = "mout"
#: Headers-only republish of every dead letter (``dlqbell.<p>.<address>``), which the audit
#: stream records; like the mail stream's bell, nobody needs to listen.
DEAD_BELL_PREFIX = "dlqbell"
SYSTEM_TOPIC_PREFIX = "mailslot"
#: ``Mailslot-From`` of notices the sidecar writes itself (bounces).
SYSTEM_SENDER = "mailslot"
#: Value of ``Mailslot-Notify`` asking for a bounce notice when mail is reclaimed unread.
NOTIFY_UNDELIVERED = "undelivered"

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
    #: Set by a sender that wants to be told what happened to its message. A comma-separated
    #: list; ``undelivered`` asks for a bounce notice if the message is reclaimed unread.
    NOTIFY = "Mailslot-Notify"
    #: On a bounce notice: the ``Mailslot-Id`` of the message it is about, and why it bounced.
    BOUNCE_FOR = "Mailslot-Bounce-For"
    BOUNCE_REASON = "Mailslot-Bounce-Reason"
    #: Comma-separated tags (``send(..., tags=[...])``), matched by a mailbox query.
    TAGS = "Mailslot-Tags"
    #: Keep-latest key: a newer message with the same key replaces an unread older one in the
    #: same mailbox (unlike the idempotency key, which keeps the first).
    REPLACE_KEY = "Mailslot-Replace-Key"
    #: W3C trace context of the send (lowercase, as W3C spells it): ``00-<trace>-<span>-<flags>``.
    #: Written only by a sender that traces; a malformed one is ignored by receivers.
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
