"""Own-mailbox reads for agent credentials: a request subject that names the mailbox,
answered by the sidecar.

Every read of stored mail is body-addressed (``DIRECT.GET`` with ``next_by_subj``,
``STREAM.INFO`` with ``subjects_filter``), and a subject permission cannot tell which mailbox
a body names, so an agent credential is allowed none of them on the mail stream. It asks the
sidecar instead, on ``mview.<address>``: the server lets it publish there for its own address
and its reply sub-address only (:mod:`.principals`), and the sidecar (a tenant credential)
reads that mailbox, the one the *subject* names, never one named by the body. Replicas share
the requests (queue group :data:`VIEW_QUEUE`).

Requests (JSON bodies) and answers, to the request's reply subject:

- ``{"op": "scan", "priority": 0..3, "after": <seq>, "batch": <n>}``: up to
  ``min(batch, MAX_SCAN_BATCH)`` stored messages at that priority with a sequence above
  ``after``, oldest first, one reply each, in the form of a batched direct get (the stored
  headers plus ``Nats-Subject``, ``Nats-Sequence``, ``Nats-Time-Stamp``), then an end marker
  (header ``Status: 204``). A caller pages on with ``after`` = the last sequence it got. A
  message whose relay would not fit the connection's ``max_payload`` (stored within a few
  hundred bytes of it) comes without its body, with header :data:`BODY_OMITTED` = its size.
- ``{"op": "stats"}``: one reply ``{"counts": {"0": n, "1": n, "2": n, "3": n}}``.
- ``{"op": "last"}``: one reply ``{"last": <highest waiting seq, 0 if none>}``.
- ``{"op": "destroy"}``: what a tenant credential's ``Mailbox.destroy()`` does, for the
  mailbox the subject names (never its reply sub-address: 400), done by the sidecar
  (:func:`mailslot_broker.reclaim.reclaim_mailbox`): its consumers, every waiting message to
  dead letters with reason ``mailbox reclaimed`` (bounces where asked), its lease, its record
  and the agent's own writes of both. One reply ``{"destroyed": {"dead_lettered": n,
  "bounces": n, "consumers_deleted": [...]}}``. The server lets an agent publish only its own
  view subjects, so an agent destroys its own mailbox and no other.
- ``{"op": "agents", "include_offline": bool, "after": "<address>", "batch": <n>}``: the
  registry (every card is public inside a tenant, whoever asks), read from the agents bucket
  (and, with ``include_offline``, the mailbox records of agents whose lease lapsed) in one
  batched read: up to ``min(batch, MAX_AGENTS_BATCH)`` cards with an address above ``after``,
  in address order, one reply each (the card's JSON, header :data:`AGENT_HEADER` = its address,
  :data:`AGENT_OFFLINE_HEADER` ``= 1`` for an offline one; a card too large to answer with
  them comes without its body, with :data:`BODY_OMITTED`), then the end marker. A caller pages
  on with ``after`` = the last address it got.
- ``{"op": "supersede", "to": "<address>", "key": "<replace key>", "outbox_seq": <n>}``:
  keep-latest for an agent's send (``send(..., replace_key=...)``), after the agent stored
  the new message in its outbox at sequence ``outbox_seq``. The sidecar waits until its
  outbox mover has moved that message (the outbox no longer holds that sequence; at most
  :data:`SUPERSEDE_MOVE_WAIT` seconds; then ``Status: 504``), then deletes from ``to``'s
  mailbox every waiting message with that key that this agent sent through its outbox before
  it: ``Mailslot-From`` is the agent the subject names and :data:`OUTBOX_SEQ_HEADER`
  (stamped by the mover, never taken from the agent) is below ``outbox_seq``. Never another
  sender's mail: the sidecar cannot check a signature, but it knows who asked (the server
  lets only that agent publish its view subject), so a forged ``Mailslot-From`` can at most
  have the forger's mail replaced by the agent it names. One reply ``{"superseded": <n>}``.
- a request it cannot serve: one reply with headers ``Status: 400`` and ``Description``.

Requests whose reply subject is not an inbox of the agent the subject names (its own inbox
prefix, :func:`.principals.answers_own_inbox`) are dropped unanswered and not acted on: the
sidecar would publish its answer there with the tenant's rights.

No sidecar subscribed: the server answers the request with a no-responders status (503).
"""

from __future__ import annotations

from collections.abc import Mapping

from .names import MAIL_PREFIX
from .subjects import reply_address

#: Request subjects: ``mview.<address>``.
VIEW_PREFIX = "mview"
#: The sidecar replicas' queue group.
VIEW_QUEUE = "mailslot-sidecar-views"
#: Most messages one scan answers.
MAX_SCAN_BATCH = 256
#: Header on a view answer whose body did not fit the connection's ``max_payload`` with its
#: subject and headers (a relayed message, an ``agents`` card): the body's size in bytes,
#: the body left out.
BODY_OMITTED = "Mailslot-Body-Omitted"

#: The status replies of a view answer (the header and codes of a batched direct get's).
STATUS_HEADER = "Status"
DESCRIPTION_HEADER = "Description"
STATUS_END = "204"
STATUS_BAD_REQUEST = "400"
STATUS_FAILED = "500"
#: The ``Nats-*`` headers of a stored message a relayed copy keeps (no other ``Nats-*``).
RELAYED_NATS_HEADERS = ("Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Msg-Id", "Nats-TTL")

OP_SCAN = "scan"
OP_STATS = "stats"
OP_LAST = "last"
OP_DESTROY = "destroy"
OP_AGENTS = "agents"
OP_SUPERSEDE = "supersede"

#: Header the outbox mover puts on every message it moves into a mailbox: the message's
#: sequence in the outbox (what the agent's receipt says), replacing any the agent wrote.
OUTBOX_SEQ_HEADER = "Mailslot-Outbox-Seq"
#: Bytes the outbox leaves below the server's ``max_payload`` (its ``max_msg_size``) for what
#: the mover adds to a copy: :data:`OUTBOX_SEQ_HEADER` with up to 20 digits (45 bytes on the
#: wire) and a remaining ``Nats-TTL`` a few bytes longer than the sender's, with room to spare.
#: A message the outbox stored therefore fits the mail stream once moved.
OUTBOX_MOVE_ROOM = 128
#: Dead-letter reason of an outbox message whose mailbox copy would exceed ``max_payload``
#: (stored before the outbox had :data:`OUTBOX_MOVE_ROOM`, or on a server whose
#: ``max_payload`` shrank): the mover terminates it and dead-letters its headers, once.
REASON_OUTBOX_OVERSIZE = "too large to move from the outbox"
#: Seconds a ``supersede`` waits for the mover to have moved the new message.
SUPERSEDE_MOVE_WAIT = 10.0
STATUS_TIMEOUT = "504"

#: Most cards one ``agents`` answer holds.
MAX_AGENTS_BATCH = 256
#: Headers of a card in an ``agents`` answer: its address, and ``1`` when the agent is offline
#: (its lease lapsed, its mailbox kept: the card is the one in its mailbox record).
AGENT_HEADER = "Mailslot-Agent"
AGENT_OFFLINE_HEADER = "Mailslot-Agent-Offline"


def message_size(headers: Mapping[str, str] | None, data: bytes) -> int:
    """What the server counts against ``max_payload`` for a message: its header block as
    nats-py writes it (``NATS/1.0``, one ``key: value`` line each, the blank line) and its
    body. A message over ``max_payload`` costs the publisher its connection."""
    size = len(data)
    if headers:
        size += len("NATS/1.0\r\n\r\n") + sum(len(k) + len(val) + 4 for k, val in headers.items())
    return size


def view_subject(address: str) -> str:
    return f"{VIEW_PREFIX}.{address}"


def view_subject_all() -> str:
    """What the sidecar subscribes to."""
    return f"{VIEW_PREFIX}.>"


def view_address(subject: str) -> str | None:
    """The address a request subject names (None if it is not a view subject)."""
    prefix = VIEW_PREFIX + "."
    if not subject.startswith(prefix) or len(subject) == len(prefix):
        return None
    return subject[len(prefix) :]


def agent_view_subjects(address: str) -> list[str]:
    """The view subjects an agent credential for ``address`` may publish: its mailbox and
    its reply sub-address (a mailbox of its own), literally (never a longer address)."""
    return [view_subject(address), view_subject(reply_address(address))]


assert not VIEW_PREFIX.startswith(MAIL_PREFIX + ".")

__all__ = [
    "AGENT_HEADER",
    "AGENT_OFFLINE_HEADER",
    "BODY_OMITTED",
    "DESCRIPTION_HEADER",
    "MAX_AGENTS_BATCH",
    "MAX_SCAN_BATCH",
    "OP_AGENTS",
    "OP_DESTROY",
    "OP_LAST",
    "OP_SCAN",
    "OP_STATS",
    "OP_SUPERSEDE",
    "OUTBOX_MOVE_ROOM",
    "OUTBOX_SEQ_HEADER",
    "REASON_OUTBOX_OVERSIZE",
    "RELAYED_NATS_HEADERS",
    "STATUS_BAD_REQUEST",
    "STATUS_END",
    "STATUS_FAILED",
    "STATUS_HEADER",
    "STATUS_TIMEOUT",
    "SUPERSEDE_MOVE_WAIT",
    "VIEW_PREFIX",
    "VIEW_QUEUE",
    "agent_view_subjects",
    "message_size",
    "view_address",
    "view_subject",
    "view_subject_all",
]
