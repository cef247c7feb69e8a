"""Every default and limit of the lifecycle and the retry policy, in one place.

Presence and retention are two clocks (``docs/protocol.md``, "Lifecycle"): the lease says
whether an agent is online *now*; retention (``keep``) says how long its mailbox waits for it
after it was last present. Everything that picks a number for either clock reads it from here,
so the SDK, the sidecar, the CLI and the docs cannot drift apart.
"""

from __future__ import annotations

DAY = 24 * 3600.0

# --- presence -------------------------------------------------------------------------------

#: Lease TTL of an open mailbox: renewed every third of it while the agent runs.
DEFAULT_LEASE_TTL = 60.0

# --- retention ------------------------------------------------------------------------------

#: How long a named mailbox waits for its agent after the lease lapsed. Long on purpose: an
#: agent that is offline for a weekend still finds its mail.
DEFAULT_KEEP = 7 * DAY
#: An identity-on-call mailbox (``open()`` with no address) cannot be found again by anyone:
#: it is reclaimed as soon as its lease lapses.
DEFAULT_IDENTITY_KEEP = 0.0
#: Mail to an address nobody ever opened waits this long (from when it was stored), then goes
#: to dead letters like reclaimed mail. Per tenant: the tenant's sidecar applies it.
DEFAULT_UNCLAIMED_KEEP = 7 * DAY
#: The mail stream's ``max_age`` is a backstop only; retention must end well before it, so
#: that the sidecar (not the server's silent age limit) decides what happens to unread mail.
MAIL_MAX_AGE = 30 * DAY
MAX_KEEP = 28 * DAY

# --- limits of numbers on the wire ------------------------------------------------------------
#
# Every number an agent passes (``open``, ``send``, ``nak``, ``receive``) is checked against
# these before anything is written, so the server never refuses one half-way through an
# ``open``. Measured on nats-server 2.15.1 (tests/sdk/test_open_atomic.py keeps them honest):
# durations are int64 nanoseconds everywhere, so ``Nats-TTL`` and ``Nats-Schedule-TTL`` above
# 9223372036 s (2562047 h) are refused (10165 / 10191), and a consumer ``ack_wait``, ``backoff``
# step or ``inactive_threshold`` above that does not even parse (10025); a negative ack wait
# (10183) or backoff step (10184) is refused, while 0 silently means "default" (ack wait 30 s,
# no inactivity limit) and ``max_deliver`` 0 or below silently means "unlimited". Pull
# batches, ``max_deliver`` and ``max_ack_pending`` are only bounded by int64; a consumer with
# a backoff takes ``backoff[0]`` as its ack wait; a schedule may be set centuries ahead.

#: What the server can represent at all: int64 nanoseconds, in seconds.
SERVER_MAX_SECONDS = (2**63 - 1) / 1e9
#: Largest message TTL, delay, wait or nak delay Mailslot accepts. A year keeps every sum of
#: durations the server adds up (stored time + TTL, schedule time + TTL) far from overflow.
MAX_SECONDS = 365 * DAY
#: Shortest and longest lease TTL of an open mailbox. Presence must be able to lapse within a
#: day of a crash, or a dead agent looks online (and holds its consumers) for that long.
MIN_LEASE_TTL = 1.0
MAX_LEASE_TTL = DAY
#: Shortest and longest ack wait and backoff step (the server takes ``backoff[0]`` as the ack
#: wait, so a backoff step is an ack wait too; shorter than 0.1 s is a redelivery busy loop).
MIN_ACK_WAIT = 1.0
MIN_BACKOFF = 0.1
MAX_ACK_WAIT = 12 * 3600.0
#: Most backoff steps one mailbox may configure (the consumer config is sent as one request).
MAX_BACKOFF_STEPS = 100
#: Largest ``max_deliver`` other than -1 (unlimited).
MAX_DELIVER_LIMIT = 1_000_000
#: The receive loop's sweep for redeliveries nobody rang for, and its idle pulls' expiry.
MIN_HEARTBEAT = 1.0
MAX_HEARTBEAT = MAX_ACK_WAIT
#: Least inactivity threshold of a mailbox's level consumers (3 x its heartbeat otherwise): the
#: server removes a drained level's consumer after that long without pulls (never one with
#: acks pending); the next bell for the level brings it back.
CONSUMER_IDLE_FLOOR = 3.0
#: Largest agent card (its JSON): it rides in the lease and the mailbox record.
MAX_CARD_BYTES = 64 * 1024

# --- retry policy (a mailbox's consumers) -----------------------------------------------------

DEFAULT_ACK_WAIT = 30.0
DEFAULT_MAX_DELIVER = 5
DEFAULT_MAX_ACK_PENDING = 1000
#: Largest ``prefetch``: a consumer never has more than ``max_ack_pending`` messages out.
MAX_PREFETCH = DEFAULT_MAX_ACK_PENDING

# --- dead letters ---------------------------------------------------------------------------

#: How often the sidecar asks idle consumers with unacked mail whether a message ran out of
#: deliveries (the server only notices on a pull). A message that used its last delivery is
#: in dead letters within ``ack_wait + DEAD_LETTER_SLACK`` seconds.
EXHAUSTED_PROBE_INTERVAL = 2.0
DEAD_LETTER_SLACK = 5.0

REASON_MAX_DELIVERIES = "max deliveries"
REASON_TERMINATED = "terminated"
REASON_RECLAIMED = "mailbox reclaimed"
