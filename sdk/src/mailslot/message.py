"""Received messages and send receipts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import nats.errors as nerr
from mailslot_broker import natscompat
from mailslot_broker.protocol import (
    MAIL_STREAM,
    Header,
    Priority,
    decode_tags,
    parse_mail_subject,
)
from nats.aio.msg import Msg

from . import tracing
from ._acking import ACK_BOUND, until_confirmed
from ._boundary import boundary, plain_seconds
from .envelope import Envelope
from .errors import AlreadyAcknowledged, InvalidInput, MessageError, Timeout

if TYPE_CHECKING:
    from .mailbox import Mailbox

T = TypeVar("T")


@dataclass(frozen=True)
class Receipt:
    """What the server confirmed for one send.

    ``seq`` is the sequence of the stored message in ``stream``. For a tenant credential
    that is the mail stream (``MAILSLOT_MAIL``): the receiver's ``msg.seq``, what
    ``query(after=...)`` and ``delete(seq)`` take. An agent credential's mail is stored in
    its outbox (``MAILSLOT_OUTBOX``), which the sidecar moves into the mailbox, where it gets
    a sequence of its own: ``seq`` then counts in the outbox and names nothing in the
    mailbox; find the message there by ``id``."""

    id: str
    to: str
    priority: Priority
    seq: int
    duplicate: bool = False
    scheduled: bool = False
    #: The stream ``seq`` counts in: ``MAILSLOT_MAIL``, or ``MAILSLOT_OUTBOX`` for an agent
    #: credential's send.
    stream: str = MAIL_STREAM

    @property
    def in_mailbox(self) -> bool:
        """Whether ``seq`` is the message's sequence in the mailbox (the mail stream)."""
        return self.stream == MAIL_STREAM

    @property
    def correlation_id(self) -> str:
        return self.id


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _parse_float(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return float(value.rstrip("s"))
    return None


@dataclass(frozen=True)
class Bounce:
    """A delivery status notice: the message ``message_id`` to ``to`` was not delivered.
    Its body is in dead letters at ``dead_letter_seq`` (``dead_letters.get(seq)``)."""

    message_id: str
    to: str
    reason: str
    dead_letter_seq: int | None = None


class Message(Envelope):
    """One piece of mail, delivered to a mailbox and waiting for ``ack``.

    Foreign clients may send mail without Mailslot headers: every accessor degrades to
    ``None`` (or to the subject's priority) instead of failing, and payload accessors raise
    :class:`DecodeError` when the bytes are not what was asked for.
    """

    __slots__ = (
        "_mailbox",
        "_msg",
        "_seq",
        "_settled",
        "_trace",
        "_unverified",
        "_verified_by",
        "headers",
        "priority",
        "to",
    )

    def __init__(self, msg: Msg, mailbox: Mailbox | None) -> None:
        self._msg = msg
        self._mailbox = mailbox
        self._settled = False
        self._seq: int | None = None
        self._trace: Any = None  # its delivery span's context (mailslot.tracing)
        self._unverified: str | None = "not checked"  # set on receive (mailslot.signing)
        self._verified_by: str | None = None  # the voucher of a verified sender, if any
        self.headers: Mapping[str, str] = dict(msg.headers or {})
        try:
            self.priority, self.to = parse_mail_subject(msg.subject)
        except (ValueError, IndexError):
            self.priority, self.to = Priority.NORMAL, msg.subject

    # -- metadata ------------------------------------------------------------------------------

    @property
    def sender_verified(self) -> bool:
        """True only when ``sender`` signed this message (id, sender, recipient, time, body)
        with the key the tenant's key bucket holds for it (:mod:`mailslot.signing`)."""
        return self._unverified is None

    @property
    def unverified_reason(self) -> str | None:
        """Why ``sender_verified`` is False (``unsigned``, ``signature does not match``...)."""
        return self._unverified

    @property
    def verified_by(self) -> str | None:
        """Who vouched for a verified ``sender`` that did not sign itself: the address whose
        key signed the mail and whom the tenant's key bucket lets speak for that sender (the
        Synadia bridge for ``sap.*`` senders, :mod:`mailslot.signing`); None when the sender
        signed itself, or is not verified."""
        return self._verified_by if self._unverified is None else None

    @property
    def id(self) -> str:
        h = self.headers
        return h.get(Header.MSG_ID) or h.get(Header.NATS_MSG_ID) or f"seq-{self.seq}"

    @property
    def seq(self) -> int:
        """Stream sequence (unique within the mail stream)."""
        if self._seq is None:
            try:
                self._seq = int(self._msg.metadata.sequence.stream)
            except Exception:
                self._seq = int(self.headers.get(Header.NATS_SEQUENCE, "0") or 0)
        return self._seq

    @property
    def reply_to(self) -> str | None:
        return self.headers.get(Header.REPLY_TO)

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get(Header.CORRELATION_ID)

    @property
    def thread_id(self) -> str | None:
        return self.headers.get(Header.THREAD_ID)

    @property
    def sent_at(self) -> datetime | None:
        sent = _parse_time(self.headers.get(Header.SENT_AT))
        if sent is None:
            with contextlib.suppress(Exception):
                sent = self._msg.metadata.timestamp  # stored time, for mail from foreign clients
        return sent

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags it was sent with (``send(..., tags=[...])``), in the sender's order."""
        return decode_tags(self.headers.get(Header.TAGS))

    @property
    def replace_key(self) -> str | None:
        """Its keep-latest key (``send(..., replace_key=...)``), if any."""
        return self.headers.get(Header.REPLACE_KEY)

    @property
    def ttl(self) -> float | None:
        return _parse_float(self.headers.get(Header.TTL) or self.headers.get(Header.NATS_TTL))

    @property
    def bounce(self) -> Bounce | None:
        """If this is a bounce notice (mail this agent sent with ``notify_undelivered=True``
        was reclaimed unread), what bounced and why; else None."""
        about = self.headers.get(Header.BOUNCE_FOR)
        if not about:
            return None
        try:
            body = self.json()
        except Exception:
            body = {}
        if not isinstance(body, dict):
            body = {}
        seq = body.get("dead_letter_seq")
        return Bounce(
            message_id=about,
            to=str(body.get("to") or ""),
            reason=self.headers.get(Header.BOUNCE_REASON) or str(body.get("reason") or ""),
            dead_letter_seq=seq if isinstance(seq, int) else None,
        )

    @property
    def delivery_count(self) -> int:
        try:
            return int(self._msg.metadata.num_delivered)
        except Exception:
            return 1

    # -- settlement ----------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        return self._settled

    def _settle(self) -> None:
        if not self._msg.reply:
            raise MessageError("a peeked message cannot be acked, naked or termed")
        if self._settled:
            raise AlreadyAcknowledged(f"message {self.id} was already acked, naked or termed")
        self._settled = True

    async def ack(self) -> None:
        """Acknowledge and remove the message. Returns once the server confirmed it, so an
        acked message is never delivered again, even if the server crashes right after.

        A confirmation lost in a broker restart or a cluster failover (no reply, no responders
        while the consumer elects a leader, the connection dropped) does not raise: the +ACK
        is sent again until one is confirmed (acking twice is harmless), for up to the
        mailbox's ``failover_timeout`` (30 s by default) and while the connection has not been
        down longer than ``outage_timeout``. If it still is not confirmed the typed error is
        raised (:class:`Timeout`, :class:`Disconnected`, or :class:`BrokerFailure` for no
        responders) and the message is **not** settled: ``ack()`` may be called again, and if
        none of the +ACKs landed the message comes again after its ack wait. A delivery the
        server forgot (a broker killed with ``kill -9`` restores its consumer from before it)
        raises :class:`Timeout` after one unanswered +ACK: it ignores +ACKs of it and delivers
        the message again."""
        self._settle()
        try:
            with boundary(), tracing.settling(self, "ack"):
                await until_confirmed(
                    self._ack_once,
                    started=time.monotonic(),
                    bound=self._ack_bound,
                    outage_exceeded=self._outage_exceeded,
                )
        except BaseException:
            self._settled = False  # nothing confirmed: the caller may ack again
            raise
        if self._mailbox is not None:
            self._mailbox._settled(self)

    @property
    def _ack_bound(self) -> float:
        return ACK_BOUND if self._mailbox is None else self._mailbox.failover_timeout

    def _outage_exceeded(self) -> bool:
        return self._mailbox is not None and self._mailbox._link.outage_exceeded()

    async def _ack_once(self, timeout: float) -> None:
        try:
            await self._msg.ack_sync(timeout=timeout)
        except nerr.TimeoutError:
            if await self._delivery_forgotten():
                raise Timeout(
                    f"the ack of message {self.id} was not confirmed: the server no longer "
                    "knows this delivery (it restarted without its consumer state, or the "
                    "consumer was re-created), so it ignores the +ACK and delivers the "
                    "message again"
                ) from None
            raise

    async def _delivery_forgotten(self) -> bool:
        """True if the consumer's delivered pointer is below this message. A server killed
        with ``kill -9`` restores a consumer as of its last flush (a re-created consumer starts
        afresh): it then ignores a +ACK of a later delivery without a reply, and delivers the
        message again, so sending the +ACK again is pointless. No verdict (False) if the
        consumer does not answer (a leader election: acks are waited for meanwhile)."""
        if self._mailbox is None or not self._mailbox._link.connected:
            return False
        try:
            ack = natscompat.parse_ack_reply(self._msg.reply)
            info = await self._mailbox._link.js.consumer_info(ack.stream, ack.consumer, timeout=1.0)
        except Exception:
            return False
        delivered = info.delivered.stream_seq if info.delivered is not None else None
        return delivered is not None and delivered < ack.stream_seq

    async def nak(self, *, delay: float | None = None) -> None:
        """Give the message back for redelivery, after ``delay`` seconds if given."""
        d = plain_seconds(delay, what="delay")
        self._settle()
        with boundary(), tracing.settling(self, "nak"):
            await self._msg.nak(delay=d)
        if self._mailbox is not None:
            self._mailbox._settled(self, redeliver_in=d or 0.0)

    async def term(self, *, reason: str | None = None) -> None:
        """Stop redelivering: the message goes to dead letters (with ``reason``), body included."""
        self._settle()
        if self._mailbox is not None:
            try:
                await self._mailbox._dead_letter(self, reason=reason)
            except BaseException:
                self._settled = False  # nothing was termed; the caller may retry
                raise
        with boundary(), tracing.settling(self, "term", reason=reason):
            body = b"+TERM" + (b" " + reason.encode() if reason else b"")
            await natscompat.msg_client(self._msg).publish(self._msg.reply, body)
        if self._mailbox is not None:
            self._mailbox._settled(self)

    async def in_progress(self) -> None:
        """Still working: restart the ack-wait clock so the message is not redelivered."""
        if self._settled:
            raise AlreadyAcknowledged(f"message {self.id} was already settled")
        with boundary():
            await self._msg.in_progress()
        if self._mailbox is not None:
            self._mailbox._touched(self)

    async def reply(
        self,
        payload: Any,
        *,
        priority: Priority | str | int | None = None,
        headers: Mapping[str, str] | None = None,
        ttl: float | None = None,
    ) -> Receipt:
        """Answer to ``reply_to`` with the same correlation and thread id."""
        if self._mailbox is None:
            raise InvalidInput("this message was not received through a mailbox")
        if not self.reply_to:
            raise InvalidInput(f"message {self.id} has no reply-to address")
        with tracing.replying(self):  # its send span joins this delivery's trace
            return await self._mailbox.send(
                self.reply_to,
                payload,
                priority=self.priority if priority is None else priority,
                headers=headers,
                ttl=ttl,
                correlation_id=self.correlation_id or self.id,
                thread_id=self.thread_id,
            )

    def __repr__(self) -> str:
        return (
            f"<Message id={self.id} to={self.to} priority={self.priority.label} "
            f"from={self.sender} seq={self.seq} deliveries={self.delivery_count}>"
        )
