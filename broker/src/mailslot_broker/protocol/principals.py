"""Agents as principals inside a tenant: the subjects an agent credential may use, and the
signed-sender format.

A tenant's own credential may do anything inside its account. An agent credential is a user
of the same account whose NATS permissions allow only what the protocol needs for **one**
mailbox (the address and its reply sub-address), sending to the addresses its policy allows
and the topics its policy allows. Every list below is derived from the subject builders of
this package, so the permissions follow the wire layout.

What the server can check is the subject. JetStream requests that name what they act on in
the subject (``CONSUMER.CREATE.<stream>.<name>.<filter>``, ``CONSUMER.MSG.NEXT.<stream>.<name>``,
``$JS.ACK.<stream>.<name>.>``, the last-by-subject direct get
``DIRECT.GET.<stream>.<subject>``) can be scoped to one mailbox. Requests that carry their
target in the body (``DIRECT.GET.<stream>`` with ``next_by_subj``, ``STREAM.MSG.GET``,
``STREAM.PURGE`` with a filter, ``STREAM.INFO`` with ``subjects_filter``) cannot: an agent
gets none of them on the mail stream, so it cannot read another mailbox by sequence. It
peeks its own mailbox by asking the sidecar on ``mview.<address>`` (:mod:`.views`), a subject
that names the mailbox, and collects its replies through a consumer of its own
(:func:`reply_consumer_name`).

Its state store (``ms.state(ns)``) is its own part of the state bucket, the scope
``=agent.<b64(address)>`` (:mod:`.state`, :func:`agent_state_grants`): written through the
agent writes stream (:mod:`.agent_writes`), read by last-by-subject direct gets, listed and
watched through consumers of the state bucket whose ``CONSUMER.CREATE`` subject carries a
filter inside that scope. Every permission names the scope, so no grant reaches another
agent's state or a tenant namespace (whose first token never has the scope's ``=``).

The sender (``Mailslot-From``) is a header, which no subject permission covers: an agent
signs it instead (:func:`signed_text`), with the ed25519 nkey whose public key is published
at ``$KV.MAILSLOT_KEYS.<address>`` by the issuer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .agent_writes import AGENT_WRITES_STREAM, OUTBOX_PREFIX, agent_write_subject
from .names import (
    AGENTS_BUCKET,
    BELL_PREFIX,
    DLQ_PREFIX,
    DURABLE_TOPIC_PREFIX,
    MAIL_PREFIX,
    MAIL_STREAM,
    MAILBOXES_BUCKET,
    TOPIC_PREFIX,
    TOPICS_STREAM,
)
from .state import STATE_BUCKET, agent_state_scope
from .subjects import REPLY_TOKEN, consumer_name, kv_stream, kv_subject, reply_address
from .values import Priority
from .views import agent_view_subjects, view_address

#: Public signing keys of agents: key = address, value = JSON ``{"public_key": "U...", ...}``.
KEYS_BUCKET = "MAILSLOT_KEYS"
#: ``Mailslot-Signature``: ``<public key>.<base64url signature>`` over :func:`signed_text`.
SIGNATURE_HEADER = "Mailslot-Signature"
SIGNATURE_VERSION = "mailslot-sig-1"
#: Any address / any topic.
ANY = ">"


def inbox_prefix(address: str) -> str:
    """The inbox prefix of an agent's connection: replies to its requests (JetStream API
    answers, pulled mail) go to ``_INBOX.<hash>.>``, which only it may subscribe to."""
    return f"_INBOX.{hashlib.sha256(address.encode()).hexdigest()[:24]}"


def answers_own_inbox(view_subject: str, reply: str) -> bool:
    """Is ``reply`` an inbox of the agent whose mailbox the view request names? The server
    checks an agent's publish subject against its permissions, never the reply subject it
    picks, and the sidecar publishes its answer there with the tenant's rights: a reply
    subject of ``mbox.0.bob`` would mail bob, one of ``$JS.API.STREAM.PURGE...`` would purge.
    So answers go only into the inbox prefix that agent alone may subscribe to."""
    address = view_address(view_subject)
    if not address:
        return False
    suffix = f".{REPLY_TOKEN}"
    owner = address[: -len(suffix)] if address.endswith(suffix) else address
    return reply.startswith(inbox_prefix(owner) + ".")


def reply_consumer_name(address: str) -> str:
    """The durable consumer an agent credential finds its replies with: the asker side of
    request/reply cannot read ``<address>._replies`` by sequence (a body-addressed read), so
    it pulls them through a consumer filtered on ``mbox.*.<address>._replies`` instead."""
    digest = hashlib.sha256(reply_address(address).encode()).hexdigest()[:32]
    return f"rpl-{digest}"


def reply_filter(address: str) -> str:
    return f"{MAIL_PREFIX}.*.{reply_address(address)}"


def _mailbox_consumers(address: str) -> list[tuple[str, str]]:
    mail = [(consumer_name(address, p), f"{MAIL_PREFIX}.{int(p)}.{address}") for p in Priority]
    return [*mail, (reply_consumer_name(address), reply_filter(address))]


def _direct_last(bucket: str, key: str) -> str:
    return f"$JS.API.DIRECT.GET.{kv_stream(bucket)}.{kv_subject(bucket, key)}"


def agent_state_grants(address: str) -> list[str]:
    """What an agent's state store needs, all of it inside its scope
    (``=agent.<b64(address)>.>``):

    * writes: ``kvup.MAILSLOT_STATE.<scope>.>`` into the agent writes stream (no rollups);
      the state bucket sources them (never a publish into the bucket itself);
    * reads: the last-by-subject direct get of those subjects in the writes stream (whose
      revisions are the agent's, so compare-and-set holds), and of their sourced copies in the
      bucket (how a listing knows the bucket has caught up with the agent's last write);
    * listing and watching: a push consumer of the state bucket, named by the client, whose
      filter in the ``CONSUMER.CREATE`` subject lies in the scope (the server checks the
      body's filter is that one), delivered to the agent's own inbox (the only one it can
      subscribe to), and its deletion. ``CONSUMER.DELETE`` cannot be scoped by filter, so it
      names any consumer of the state bucket: another's watch can be ended by an agent that
      knows its random name (consumer names are never listed to agents), never read. No
      consumer of the writes stream is granted: it holds the buckets' own sourcing.

    The deliver subject is in the body, which no permission sees: an agent can point its
    consumer at any subject a client subscribes to and hand its own values there (a known
    gap, docs/deploy.md threat model, as with a pull's reply subject).
    """
    scope = agent_state_scope(address)
    bucket_stream = kv_stream(STATE_BUCKET)
    written = agent_write_subject(STATE_BUCKET, f"{scope}.{ANY}")
    copied = kv_subject(STATE_BUCKET, f"{scope}.{ANY}")
    return [
        written,
        f"$JS.API.DIRECT.GET.{AGENT_WRITES_STREAM}.{written}",
        f"$JS.API.DIRECT.GET.{bucket_stream}.{copied}",
        f"$JS.API.CONSUMER.CREATE.{bucket_stream}.*.{copied}",
        f"$JS.API.CONSUMER.DELETE.{bucket_stream}.*",
    ]


def _send_subjects(pattern: str) -> list[str]:
    """Mail to the addresses ``pattern`` matches, through the outbox (``mout.<p>.<to>``,
    moved to ``mbox.<p>.<to>`` by the sidecar): never the mail stream itself, which takes
    ``Nats-Rollup`` headers (a send could replace or wipe other mail). Not delayed mail: the
    server stores a schedule on ``msched.<to>.<id>`` and fires it at its
    ``Nats-Schedule-Target`` header, which it does not check against the publisher's
    permissions (measured: an agent allowed ``msched.alice.*`` delivered to ``mbox.2.bob``), so
    a schedule would bypass the send policy and the device-uplink deny."""
    return [f"{OUTBOX_PREFIX}.*.{pattern}"]


def agent_publish_allow(
    address: str, *, can_send: Iterable[str] = (ANY,), topics: Iterable[str] = (ANY,)
) -> list[str]:
    """Publish permissions of an agent credential for ``address``."""
    out = ["$JS.API.INFO"]
    for pattern in can_send:
        out += _send_subjects(pattern)
    for name, filt in _mailbox_consumers(address):
        out += [
            f"$JS.API.CONSUMER.CREATE.{MAIL_STREAM}.{name}.{filt}",
            f"$JS.API.CONSUMER.INFO.{MAIL_STREAM}.{name}",
            f"$JS.API.CONSUMER.DELETE.{MAIL_STREAM}.{name}",
            f"$JS.API.CONSUMER.MSG.NEXT.{MAIL_STREAM}.{name}",
            f"$JS.ACK.{MAIL_STREAM}.{name}.>",
        ]
    for addr in (address, reply_address(address)):  # term keeps the body in dead letters
        out.append(f"{DLQ_PREFIX}.*.{addr}")
    # Peek, stats, query of its own mailbox and reply sub-address: asked of the sidecar on a
    # subject that names the mailbox (.views), not read from the stream by body.
    out += agent_view_subjects(address)
    for bucket in (AGENTS_BUCKET, MAILBOXES_BUCKET):  # the lease and the mailbox record
        # Written through the agent writes stream, never into the bucket (a bucket takes
        # Nats-Rollup headers: one key could wipe them all); read back from both.
        # STREAM.INFO: the KV client looks the bucket up first. Its body may ask for subject
        # counts, so an agent can learn which addresses hold a lease or record, not more.
        written = agent_write_subject(bucket, address)
        out += [
            written,
            f"$JS.API.DIRECT.GET.{AGENT_WRITES_STREAM}.{written}",
            _direct_last(bucket, address),
            f"$JS.API.STREAM.INFO.{kv_stream(bucket)}",
        ]
    out += agent_state_grants(address)
    # Every agent's public key: they are public.
    out += [_direct_last(KEYS_BUCKET, ANY), f"$JS.API.STREAM.INFO.{kv_stream(KEYS_BUCKET)}"]
    topics = list(topics)
    for pattern in topics:
        out += [f"{TOPIC_PREFIX}.{pattern}", f"{DURABLE_TOPIC_PREFIX}.{pattern}"]
    if topics == [ANY]:
        # Replaying history: an ordered consumer, created without a name and with its filter
        # in the body (so only where every topic is allowed), pushed to its own inbox.
        out += [
            f"$JS.API.STREAM.INFO.{TOPICS_STREAM}",
            f"$JS.API.CONSUMER.CREATE.{TOPICS_STREAM}",
            f"$JS.API.CONSUMER.DELETE.{TOPICS_STREAM}.*",
            f"$JS.API.CONSUMER.INFO.{TOPICS_STREAM}.*",
            f"$JS.FC.{TOPICS_STREAM}.>",
        ]
    return out


def agent_publish_deny() -> list[str]:
    """Never, whatever the allow list says: system subjects and device uplinks (which name
    their sender in the subject, vouched for by the server)."""
    return ["$SYS.>", f"{MAIL_PREFIX}.dev.>", f"{OUTBOX_PREFIX}.dev.>"]


def agent_subscribe_allow(address: str, *, topics: Iterable[str] = (ANY,)) -> list[str]:
    """Subscribe permissions: its own inboxes, its own bells (mailbox and replies) and the
    topics its policy allows."""
    out = [f"{inbox_prefix(address)}.>"]
    for addr in (address, reply_address(address)):
        out.append(f"{BELL_PREFIX}.*.{addr}")
    out += [f"{TOPIC_PREFIX}.{pattern}" for pattern in topics]
    return out


def signed_text(*, msg_id: str, sender: str, to: str, sent_at: str, body: bytes) -> bytes:
    """What an agent signs: the version, id, sender, recipient, send time and the SHA-256 of
    the body, one per line. A receiver rebuilds it from what it got (the recipient from the
    subject), so changing any of them, or the body, breaks the signature."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([SIGNATURE_VERSION, msg_id, sender, to, sent_at, digest]).encode()


__all__ = [
    "ANY",
    "KEYS_BUCKET",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "agent_publish_allow",
    "agent_publish_deny",
    "agent_state_grants",
    "agent_subscribe_allow",
    "answers_own_inbox",
    "inbox_prefix",
    "reply_consumer_name",
    "reply_filter",
    "signed_text",
]
