"""Where agent credentials write their lease and mailbox record: a stream of their own that
the agents and mailboxes buckets source.

A KV bucket accepts ``Nats-Rollup`` headers (its limit markers make the server force
``allow_rollup_hdrs`` on, and NATS permissions look at subjects, not headers), so a
credential allowed to publish one key of a bucket could roll the whole bucket up: every
lease and record gone. Agent credentials therefore never publish into a bucket. They write
``kvup.<bucket>.<address>`` in ``MAILSLOT_AGENT_WRITES``, a stream without rollups (the
server refuses the header there: 10111 "rollup not permitted"), one message per subject,
with per-message TTLs; each bucket sources its part of it, with a subject transform back to
``$KV.<bucket>.<address>``. Measured on nats-server 2.15: the sourced copy keeps its
``Nats-TTL`` (a lease lapses in the bucket and leaves its limit marker, which watchers see
as PURGE), and the compare-and-set of a renewal (``Nats-Expected-Last-Subject-Sequence``)
holds in the writes stream, whose revisions are the agent's own (the header does not apply
again in the bucket). Tenant credentials and the sidecar keep writing the buckets directly.

Mail takes the same care. The mail stream accepts ``Nats-Rollup`` too (its message
schedules force ``allow_rollup_hdrs`` on, and an existing stream's schedules cannot be turned
off: 10052; a stream with schedules cannot source another: 10187), so agent credentials
publish mail to ``mout.<priority>.<to>`` in ``MAILSLOT_OUTBOX`` (a WorkQueue without
rollups) and the sidecar moves it to ``mbox.<priority>.<to>``
(:mod:`mailslot_broker.sidecar.outbox`): the same id (``Nats-Msg-Id``, so a second move is
dropped), the same headers without the ``Nats-*`` control headers, the rest of its TTL.

**State.** An agent's state store (``ms.state(ns)`` on an agent credential; the layout is in
:mod:`.state`: ``=agent.<b64(address)>.<ns>...``) goes the same way:
``kvup.MAILSLOT_STATE.<kv key>``, sourced into ``KV_MAILSLOT_STATE`` as
``$KV.MAILSLOT_STATE.<kv key>``. The writes stream is where the agent's revisions live: its
reads are last-by-subject direct gets of the writes stream, its listings a consumer of it, and
its compare-and-set writes (``Nats-Expected-Last-Subject-Sequence``) compare against the
writes stream's sequence of that subject, which is the revision the agent was handed (the
bucket's copy has a sequence of its own, and the header is not applied again there). A
delete is a ``KV-Operation: PURGE`` marker without ``Nats-Rollup`` (refused here): one message
per subject replaces the value in the writes stream, and history 1 in the bucket. A value's
``Nats-TTL`` runs out in both: the writes stream keeps no marker (limit markers would force
rollups on), the bucket leaves one, which is how an agent's watch (a consumer of the bucket,
its revisions read back from the ``Nats-Stream-Source`` header) sees a key expire. The cost:
an agent's state is stored twice (the writes stream keeps each key's last message, as it does
a lease's). A tenant credential reads and writes an agent's state the same way
(``ms.state(ns, agent=address)``), so the revisions it sees are the agent's.

The streams are made when a tenant issues its first agent credential
(:func:`mailslot_broker.provision.provision_agent_writes`), so a tenant without agents
spends no stream on them. Their names are in :mod:`.names` and their configurations in
:mod:`.configs`, with the other streams'; this module re-exports them, and keeps the
subjects and their parsing.
"""

from __future__ import annotations

from collections.abc import Mapping

from nats.js.api import StreamSource, SubjectTransform

from .configs import agent_writes_stream_config, outbox_stream_config
from .names import (
    AGENT_WRITES_PREFIX,
    AGENT_WRITES_STREAM,
    AGENTS_BUCKET,
    MAIL_PREFIX,
    MAILBOXES_BUCKET,
    OUTBOX_PREFIX,
    OUTBOX_STREAM,
)
from .state import STATE_BUCKET
from .subjects import kv_subject
from .values import Priority

#: The buckets agent credentials write through the stream keyed by their address: the lease
#: and the mailbox record.
UPLINKED_BUCKETS = (AGENTS_BUCKET, MAILBOXES_BUCKET)
#: Every bucket that sources its part of the writes stream: those two and the state store
#: (keyed by an agent's scope, :func:`mailslot_broker.protocol.state.agent_state_scope`).
SOURCED_BUCKETS = (*UPLINKED_BUCKETS, STATE_BUCKET)


def agent_write_prefix(bucket: str) -> str:
    """The subject prefix of ``bucket``'s keys in the writes stream (a KV prefix, ``.`` last)."""
    return f"{AGENT_WRITES_PREFIX}.{bucket}."


def agent_write_subject(bucket: str, key: str) -> str:
    return agent_write_prefix(bucket) + key


#: The sidecar's consumer of the outbox.
OUTBOX_MOVER = "mailslot-outbox-mover"


def outbox_subject(mail_subject: str) -> str:
    """Where an agent credential publishes mail meant for ``mail_subject``
    (``mbox.<p>.<to>`` -> ``mout.<p>.<to>``)."""
    prefix = MAIL_PREFIX + "."
    if not mail_subject.startswith(prefix):
        raise ValueError(f"not a mail subject: {mail_subject!r}")
    return OUTBOX_PREFIX + "." + mail_subject[len(prefix) :]


def outbox_target(subject: str) -> tuple[Priority, str] | None:
    """Priority and recipient of an outbox subject; None when it names no mailbox (a device
    uplink, ``mout.dev...``, or anything else a raw client made up)."""
    parts = subject.split(".", 2)
    if len(parts) != 3 or parts[0] != OUTBOX_PREFIX or parts[1] not in ("0", "1", "2", "3") or not parts[2]:
        return None
    return Priority(int(parts[1])), parts[2]


#: The header the server puts on a sourced copy: ``<stream>[:<id>] <seq> <filter> <dest> ...``.
STREAM_SOURCE_HEADER = "Nats-Stream-Source"


def written_revision(headers: Mapping[str, str] | None) -> int | None:
    """The writes stream's sequence of a bucket message sourced from it (the revision its
    writer was handed); None for a message the bucket has of its own (a TTL's limit marker,
    or a write that did not come through the writes stream)."""
    parts = (headers or {}).get(STREAM_SOURCE_HEADER, "").split()
    if len(parts) < 2 or parts[0].split(":", 1)[0] != AGENT_WRITES_STREAM or not parts[1].isdigit():
        return None
    return int(parts[1])


def bucket_sources(bucket: str) -> list[StreamSource]:
    """What ``bucket``'s stream sources: its keys in the writes stream, as its own subjects."""
    back = SubjectTransform(src=agent_write_prefix(bucket) + ">", dest=kv_subject(bucket, ">"))
    return [StreamSource(name=AGENT_WRITES_STREAM, subject_transforms=[back])]


__all__ = [
    "AGENT_WRITES_PREFIX",
    "AGENT_WRITES_STREAM",
    "OUTBOX_MOVER",
    "OUTBOX_PREFIX",
    "OUTBOX_STREAM",
    "SOURCED_BUCKETS",
    "STREAM_SOURCE_HEADER",
    "UPLINKED_BUCKETS",
    "agent_write_prefix",
    "agent_write_subject",
    "agent_writes_stream_config",
    "bucket_sources",
    "outbox_stream_config",
    "outbox_subject",
    "outbox_target",
    "written_revision",
]
