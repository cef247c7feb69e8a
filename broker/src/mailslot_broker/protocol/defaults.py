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

#: Largest message TTL, delay, lease TTL or wait Mailslot accepts. nats-server stores
#: durations as int64 nanoseconds; a year keeps every sum of them far from overflow.
MAX_SECONDS = 365 * DAY
#: Largest ack wait and backoff step (the server rejects absurd ones only at consumer creation).
MAX_ACK_WAIT = 12 * 3600.0

# --- retry policy (a mailbox's consumers) -----------------------------------------------------

DEFAULT_ACK_WAIT = 30.0
DEFAULT_MAX_DELIVER = 5
DEFAULT_MAX_ACK_PENDING = 1000

# --- dead letters ---------------------------------------------------------------------------

#: How often the sidecar asks idle consumers with unacked mail whether a message ran out of
#: deliveries (the server only notices on a pull). A message that used its last delivery is
#: in dead letters within ``ack_wait + DEAD_LETTER_SLACK`` seconds.
EXHAUSTED_PROBE_INTERVAL = 2.0
DEAD_LETTER_SLACK = 5.0

REASON_MAX_DELIVERIES = "max deliveries"
REASON_TERMINATED = "terminated"
REASON_RECLAIMED = "mailbox reclaimed"
