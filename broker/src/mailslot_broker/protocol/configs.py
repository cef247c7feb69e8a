"""Stream, bucket and consumer configurations, and the pull request body."""

from __future__ import annotations

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

from .defaults import DEFAULT_ACK_WAIT, DEFAULT_MAX_ACK_PENDING, DEFAULT_MAX_DELIVER, MAIL_MAX_AGE
from .names import (
    AGENT_WRITES_PREFIX,
    AGENT_WRITES_STREAM,
    AGENTS_BUCKET,
    BELL_PREFIX,
    CLAIMS_BUCKET,
    DEAD_BELL_PREFIX,
    DLQ_PREFIX,
    DLQ_STREAM,
    DURABLE_TOPIC_PREFIX,
    MAIL_PREFIX,
    MAIL_STREAM,
    MAILBOXES_BUCKET,
    OUTBOX_PREFIX,
    OUTBOX_STREAM,
    SCHEDULE_PREFIX,
    SIDECAR_BUCKET,
    TOPIC_PREFIX,
    TOPICS_STREAM,
)
from .state import STATE_BUCKET
from .subjects import (
    CONSUMER_ADDRESS_METADATA,
    consumer_name,
    mail_subject,
)
from .values import (
    Priority,
)
from .views import OUTBOX_MOVE_ROOM

#: The nats-server's default ``max_payload`` (1 MiB), for a config made without a connection.
DEFAULT_MAX_PAYLOAD = 1024 * 1024

# --- stream and bucket configurations ----------------------------------------------------------


@dataclass(frozen=True)
class StreamSettings:
    """Deployment knobs for the streams Mailslot provisions.

    ``replicas`` belongs to the deployment, not to a client: ``None`` (the default) creates
    missing streams and buckets with as many replicas as the deployment allows (3 on a cluster
    of 3 or more, fewer on a smaller one, 1 on a single server) and never changes existing
    ones. A number is what an operator asks for; provisioning never *lowers* an existing
    stream's replicas, and raises them only with ``provision(..., raise_replicas=True)``.
    """

    replicas: int | None = None
    storage: StorageType = StorageType.FILE
    mail_max_age: float = MAIL_MAX_AGE
    topics_max_age: float = 7 * 24 * 3600.0
    dlq_max_age: float = 30 * 24 * 3600.0
    dedupe_window: float = 120.0
    max_consumers: int = 100_000
    lease_marker_ttl: float = 60.0
    extra: dict[str, Any] = field(default_factory=dict)


def _stream(s: StreamSettings, **fields: Any) -> StreamConfig:
    """What every Mailslot stream takes from the deployment (storage, replicas, dedupe
    window), and direct get, which the clients read stored messages with."""
    return StreamConfig(
        storage=s.storage,
        num_replicas=s.replicas or 1,
        duplicate_window=s.dedupe_window,
        allow_direct=True,
        **fields,
    )


def mail_stream_config(s: StreamSettings) -> StreamConfig:
    return _stream(
        s,
        name=MAIL_STREAM,
        description="Mailslot mailboxes: mbox.<priority>.<address>",
        subjects=[f"{MAIL_PREFIX}.>", f"{SCHEDULE_PREFIX}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        max_age=s.mail_max_age,
        max_consumers=s.max_consumers,
        allow_msg_ttl=True,
        allow_msg_schedules=True,
        discard=DiscardPolicy.OLD,
        republish=RePublish(src=f"{MAIL_PREFIX}.>", dest=f"{BELL_PREFIX}.>", headers_only=True),
    )


def topics_stream_config(s: StreamSettings) -> StreamConfig:
    return _stream(
        s,
        name=TOPICS_STREAM,
        description="Mailslot durable broadcast history: ptopic.<topic>",
        subjects=[f"{DURABLE_TOPIC_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        max_age=s.topics_max_age,
        allow_msg_ttl=True,
        republish=RePublish(src=f"{DURABLE_TOPIC_PREFIX}.>", dest=f"{TOPIC_PREFIX}.>"),
    )


def dlq_stream_config(s: StreamSettings) -> StreamConfig:
    return _stream(
        s,
        name=DLQ_STREAM,
        description="Mailslot dead letters: dlq.<priority>.<address>",
        subjects=[f"{DLQ_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        max_age=s.dlq_max_age,
        republish=RePublish(src=f"{DLQ_PREFIX}.>", dest=f"{DEAD_BELL_PREFIX}.>", headers_only=True),
    )


def agent_writes_stream_config(s: StreamSettings) -> StreamConfig:
    """Where agent credentials write their lease, mailbox record and state
    (:mod:`.agent_writes`): no rollups, one message per subject, per-message TTLs; the
    agents, mailboxes and state buckets source it."""
    return _stream(
        s,
        name=AGENT_WRITES_STREAM,
        description="Mailslot writes of agent credentials: kvup.<bucket>.<key>, sourced by the buckets",
        subjects=[f"{AGENT_WRITES_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        max_msgs_per_subject=1,
        allow_msg_ttl=True,
        allow_rollup_hdrs=False,
        deny_delete=True,
        discard=DiscardPolicy.OLD,
    )


def outbox_stream_config(s: StreamSettings, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> StreamConfig:
    """Where agent credentials publish mail (:mod:`.agent_writes`): a WorkQueue without
    rollups, which the sidecar moves into the mail stream. Its messages (headers and body)
    stay :data:`~.views.OUTBOX_MOVE_ROOM` below the server's ``max_payload``: the mover adds
    headers, and a copy over ``max_payload`` would cost the mover its connection."""
    return _stream(
        s,
        name=OUTBOX_STREAM,
        description="Mailslot mail of agent credentials on its way: mout.<priority>.<address>",
        subjects=[f"{OUTBOX_PREFIX}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        max_age=s.mail_max_age,
        max_msg_size=max_payload - OUTBOX_MOVE_ROOM,
        allow_msg_ttl=True,
        allow_rollup_hdrs=False,
        discard=DiscardPolicy.OLD,
    )


def _bucket(s: StreamSettings, **fields: Any) -> KeyValueConfig:
    """What every Mailslot bucket takes from the deployment (storage, replicas): one value
    per key (history 1)."""
    return KeyValueConfig(history=1, storage=s.storage, replicas=s.replicas or 1, **fields)


def agents_bucket_config(s: StreamSettings) -> KeyValueConfig:
    return _bucket(
        s,
        bucket=AGENTS_BUCKET,
        description="Mailslot leases and agent cards: key = address",
        direct=True,
        limit_marker_ttl=s.lease_marker_ttl,
    )


def mailboxes_bucket_config(s: StreamSettings) -> KeyValueConfig:
    """Addresses that own a mailbox (consumers, lease); lets the reaper find lapsed leases
    after downtime without confusing them with addresses that were never opened."""
    return _bucket(
        s,
        bucket=MAILBOXES_BUCKET,
        description="Mailslot mailboxes that have been opened: key = address",
        direct=True,
    )


def sidecar_bucket_config(s: StreamSettings) -> KeyValueConfig:
    """Leader election of the sidecar replicas: one key with a TTL, renewed by the leader."""
    return _bucket(
        s,
        bucket=SIDECAR_BUCKET,
        description="Mailslot sidecar leader lease",
        limit_marker_ttl=s.lease_marker_ttl,
    )


def claims_bucket_config(s: StreamSettings) -> KeyValueConfig:
    """Advisory claims: a key lives for its claim's TTL (per-message TTL, which the KV API
    turns on), renewed by a conditional write with a fresh TTL; a lapse leaves a marker for
    ``lease_marker_ttl`` so a watcher sees the claim end."""
    return _bucket(
        s,
        bucket=CLAIMS_BUCKET,
        description="Mailslot advisory claims: key = encoded claim key",
        direct=True,
        limit_marker_ttl=s.lease_marker_ttl,
    )


def state_bucket_config(s: StreamSettings) -> KeyValueConfig:
    """The state store: one value per key, a key with a TTL leaves a marker on expiry for
    ``lease_marker_ttl`` (so a watcher sees it go); created on first use, like claims."""
    return _bucket(
        s,
        bucket=STATE_BUCKET,
        description="Mailslot state store: key = <namespace>.<b64url(segment)>...",
        direct=True,
        limit_marker_ttl=s.lease_marker_ttl,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How a mailbox retries a message that was not acked."""

    ack_wait: float = DEFAULT_ACK_WAIT
    max_deliver: int = DEFAULT_MAX_DELIVER
    backoff: tuple[float, ...] = ()
    max_ack_pending: int = DEFAULT_MAX_ACK_PENDING


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


def msg_delete_subject(stream: str) -> str:
    return f"$JS.API.STREAM.MSG.DELETE.{stream}"


def msg_delete_request(seq: int, *, erase: bool) -> dict[str, Any]:
    """JSON body of ``$JS.API.STREAM.MSG.DELETE.<stream>``. Without ``no_erase`` the server
    overwrites the message's bytes on disk first (measured on 2.15.1, file store: 6.5 ms a
    delete against 0.8 ms without), which a message moved elsewhere or consumed gains nothing
    from: an ack on the work-queue mail stream removes a message without erasing it either."""
    body: dict[str, Any] = {"seq": seq}
    if not erase:
        body["no_erase"] = True
    return body
