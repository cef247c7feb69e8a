"""The one exception tree of the SDK, rooted at :class:`MailslotError`.

Errors from nats-py and from the broker package are translated into these at one boundary
(:mod:`mailslot._boundary`), with the original chained as ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .claims import Claim


class MailslotError(Exception):
    """Root of every error the SDK raises."""


# -- connecting ----------------------------------------------------------------------------


class ConnectionFailed(MailslotError):
    """No usable connection to a Mailslot broker."""


class BrokerUnreachable(ConnectionFailed):
    """Nothing answered at the URL (wrong host/port, server down)."""


class Disconnected(BrokerUnreachable):
    """The connection to the broker was lost and did not come back in time.

    A connected client reconnects by itself. A call that needs the server while the
    connection is down waits up to ``outage_timeout`` for it to come back
    (``receive_outage_timeout`` for a receive without a timeout) and then raises this; a
    ``receive(timeout=t)`` raises it instead of :class:`Timeout` when the broker is still
    unreachable at its deadline. A call in flight when the connection dropped may or may not
    have reached the server: a ``send`` that raised it can be repeated with the same
    ``idempotency_key``.
    """


class AuthenticationFailed(ConnectionFailed):
    """The server refused the credentials."""


class JetStreamUnavailable(ConnectionFailed):
    """The server (or this account) has JetStream disabled, or JetStream did not answer while
    connecting (a cluster still forming: connect asks again for a while first)."""


class ServerTooOld(ConnectionFailed):
    """The server lacks features Mailslot needs (message TTLs, schedules: nats-server 2.12+)."""


class NotConnected(MailslotError):
    """The client was closed, or the connection is gone for good."""


class PermissionDenied(MailslotError):
    """The server refused a subject or API call for these credentials."""


class BrokerFailure(MailslotError):
    """The server answered with an error Mailslot does not expect."""


class ProvisioningFailed(BrokerFailure):
    """Streams or buckets could not be created or upgraded."""


# -- bad input: raised before anything reaches the server ----------------------------------


class InvalidInput(MailslotError, ValueError):
    """An argument that cannot be sent. Nothing was sent."""


class InvalidAddress(InvalidInput):
    """An address with a wildcard, whitespace, an empty token or over the length limit."""


class InvalidTopic(InvalidInput):
    """A broadcast topic or pattern NATS would misread."""


class UnknownPriority(InvalidInput):
    """Not one of critical, urgent, normal, low."""


class InvalidTTL(InvalidInput):
    """A TTL or delay under 1 s, or not a number of seconds."""


class PayloadTooLarge(InvalidInput):
    """The encoded payload plus headers exceed the server's max payload."""


class InvalidPayload(InvalidInput):
    """A payload that cannot be encoded (not a model, JSON-able value, str or bytes)."""


class InvalidHeader(InvalidInput):
    """A user header whose name is reserved by the protocol or is not a valid header."""


#: The names these four had before they lost an ``Error`` suffix no other SDK error has: the
#: same classes, so ``except InvalidAddressError`` still catches.
InvalidAddressError = InvalidAddress
InvalidTopicError = InvalidTopic
UnknownPriorityError = UnknownPriority
InvalidTTLError = InvalidTTL


# -- mailboxes and messages ------------------------------------------------------------------


class MailboxClosed(MailslotError):
    """The mailbox was closed in this process."""


class MailboxDestroyed(MailboxClosed):
    """The mailbox was destroyed: its mail and lease are gone."""


class AuditDisabled(MailslotError):
    """The tenant's audit trail is off (``ms.audit.enable()`` / ``mailslot audit enable``)."""


class Timeout(MailslotError, TimeoutError):
    """Nothing arrived in time."""


class Unavailable(MailslotError):
    """Part of the broker a call needs gave no answer for longer than its bound.

    On a cluster a receive waits out a leader election: a priority whose pull goes unanswered
    or is refused (no consumer leader, 503) is asked again until it answers, and no lower
    priority is served meanwhile. When it has not answered for ``failover_timeout`` seconds
    (``connect(failover_timeout=...)``, default 30; per mailbox ``Mailbox.failover_timeout``),
    the receive raises this. Not a
    :class:`Timeout`: mail may be waiting there. It usually means a majority of the cluster is
    down; a later receive waits (up to the bound) again.
    """


# -- claims ------------------------------------------------------------------------------------


class ClaimConflict(MailslotError):
    """Another holder has a claim on one or more of the keys. ``claims`` are theirs: who holds
    which key, why, and until when. Nothing of the refused call was left behind."""

    def __init__(self, message: str, claims: list[Claim] | None = None) -> None:
        super().__init__(message)
        self.claims: list[Claim] = list(claims or [])


class ClaimNotHeld(ClaimConflict):
    """A renew or release of a key this holder does not hold (it expired, or is another's:
    then ``claims`` says whose)."""


# -- the state store ---------------------------------------------------------------------------


class InvalidStateKey(InvalidInput):
    """A namespace, key or prefix the state store cannot write: a bad namespace, no segment
    or too many, an empty or overlong segment."""


class StateTooLarge(InvalidPayload):
    """A value over the store's ``max_value_size`` (from the server's max payload). Nothing
    was written."""


class StateConflict(MailslotError):
    """A conditional write or delete found another revision: ``key`` was written (or created,
    or deleted) since revision ``expected`` was read; 0 means it was to be created. Nothing
    was written."""

    def __init__(self, message: str, *, key: tuple[str, ...], expected: int) -> None:
        super().__init__(message)
        self.key = key
        self.expected = expected


class BlockingCall(MailslotError, RuntimeError):
    """A sync-twin method was called on a thread whose event loop is running: it would have
    stopped that loop (every task, timer and connection on it) until the call returned. Use
    the async API there (``await``), or call the twin from a worker thread
    (``asyncio.to_thread``)."""


class MessageError(MailslotError):
    """A problem with one received message."""


class DecodeError(MessageError, ValueError):
    """The payload is not what the caller asked for (e.g. not JSON, or fails model validation).

    Raised by the accessors; the message itself stays in the mailbox until acked or termed.
    """


class AlreadyAcknowledged(MessageError):
    """ack/nak/term was already called on this message."""


class MessageNotFound(MessageError, LookupError):
    """No waiting message with that id or sequence in that mailbox (taken, expired, deleted,
    or it belongs to another mailbox)."""


__all__ = [
    "AlreadyAcknowledged",
    "AuditDisabled",
    "AuthenticationFailed",
    "BlockingCall",
    "BrokerFailure",
    "BrokerUnreachable",
    "ClaimConflict",
    "ClaimNotHeld",
    "ConnectionFailed",
    "DecodeError",
    "Disconnected",
    "InvalidAddress",
    "InvalidAddressError",
    "InvalidHeader",
    "InvalidInput",
    "InvalidPayload",
    "InvalidStateKey",
    "InvalidTTL",
    "InvalidTTLError",
    "InvalidTopic",
    "InvalidTopicError",
    "JetStreamUnavailable",
    "MailboxClosed",
    "MailboxDestroyed",
    "MailslotError",
    "MessageError",
    "MessageNotFound",
    "NotConnected",
    "PayloadTooLarge",
    "PermissionDenied",
    "ProvisioningFailed",
    "ServerTooOld",
    "StateConflict",
    "StateTooLarge",
    "Timeout",
    "Unavailable",
    "UnknownPriority",
    "UnknownPriorityError",
]
