"""Dead letters: messages that ran out of deliveries or were terminated.

The sidecar moves them from the mail stream to ``MAILSLOT_DLQ`` (subject
``dlq.<priority>.<address>``) with why and when they died in headers. This module lists, reads,
requeues and purges them. Reach it as ``ms.dead_letters``.

``requeue`` puts a message back in its mailbox at its priority with the **same** ``Mailslot-Id``,
but a derived ``Nats-Msg-Id`` (:func:`mailslot_broker.protocol.requeue_msg_id`): the original id
is probably still in the mail stream's dedupe window, and reusing it would make the server drop
the requeued copy silently. A requeued message no longer carries its TTL: it was dead, putting
it back is a deliberate act and it should not vanish on arrival.

``term`` is the cooperative way to terminate: on a WorkQueue stream ``+TERM`` deletes the message
before the sidecar can read it, so this writes the dead letter (full body) first, then terms.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from mailslot_broker.deadletters import dead_letter_headers
from mailslot_broker.protocol import Header
from nats.js import errors as jserr
from nats.js.api import RawStreamMsg

from . import payload as pl
from ._boundary import address as check_address
from ._boundary import boundary
from .envelope import LegacyText
from .errors import InvalidInput, MessageError
from .link import Link
from .message import Message, Receipt


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


@dataclass
class DeadLetter:
    """One dead letter, as stored in the DLQ."""

    seq: int
    id: str
    address: str
    priority: p.Priority
    reason: str
    deliveries: int
    mail_seq: int
    dead_at: datetime | None
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body_lost(self) -> bool:
        """True when the server removed the body before it could be copied (see module doc)."""
        return Header.DEAD_BODY_LOST in self.headers

    @property
    def sender(self) -> str | None:
        return self.headers.get(Header.FROM)

    @property
    def text(self) -> LegacyText:
        """The body as UTF-8 text: ``text()``, like a message's (``msg.text`` uncalled still
        reads as the text, with a ``DeprecationWarning``)."""
        return LegacyText(pl.decode_text(self.data))

    def json(self) -> Any:
        return pl.decode_json(self.data)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "address": self.address,
            "priority": self.priority.label,
            "reason": self.reason,
            "deliveries": self.deliveries,
            "mail_seq": self.mail_seq,
            "dead_at": self.dead_at.isoformat() if self.dead_at else None,
            "sender": self.sender,
            "body_lost": self.body_lost,
            "size": len(self.data),
        }

    @classmethod
    def _from_raw(cls, raw: RawStreamMsg) -> DeadLetter:
        h = {k: v for k, v in (raw.headers or {}).items() if isinstance(v, str)}
        prio, address = p.parse_mail_subject(raw.subject or "")
        dead_at = None
        if h.get(Header.DEAD_AT):
            with contextlib.suppress(ValueError):
                dead_at = datetime.fromisoformat(h[Header.DEAD_AT])
        seq = raw.seq or _int(h.get(Header.NATS_SEQUENCE))
        mail_seq = _int(h.get(Header.DEAD_SEQ))
        return cls(
            seq=seq,
            id=h.get(Header.MSG_ID) or f"seq-{mail_seq}",
            address=address,
            priority=prio,
            reason=h.get(Header.DEAD_REASON, ""),
            deliveries=_int(h.get(Header.DEAD_DELIVERIES)),
            mail_seq=mail_seq,
            dead_at=dead_at,
            data=raw.data or b"",
            headers=h,
        )


class DeadLetters:
    """The dead-letter queue of one deployment (tenant)."""

    def __init__(self, link: Link) -> None:
        self._link = link

    def _filter(self, address: str | None) -> str:
        if address is None:
            return f"{p.DLQ_PREFIX}.>"
        return f"{p.DLQ_PREFIX}.*.{check_address(address)}"

    async def _next(self, subject: str, seq: int) -> DeadLetter | None:
        try:
            raw = await self._link.js.get_msg(p.DLQ_STREAM, seq=seq, subject=subject, next=True, direct=True)
        except jserr.NotFoundError:
            return None
        return DeadLetter._from_raw(raw)

    async def list(self, address: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest first (all addresses, or one)."""
        if not isinstance(limit, int) or limit < 1:
            raise InvalidInput("limit must be a positive int")
        subject = self._filter(address)
        out: list[DeadLetter] = []
        seq = 1
        with boundary():
            while len(out) < limit:
                d = await self._next(subject, seq)
                if d is None:
                    break
                out.append(d)
                seq = d.seq + 1
        return out

    async def get(self, ref: str | int) -> DeadLetter:
        """By DLQ sequence (int, or a string of digits) or by message id (the newest match)."""
        with boundary():
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
                try:
                    raw = await self._link.js.get_msg(p.DLQ_STREAM, seq=int(ref))
                except jserr.NotFoundError:
                    raise MessageError(f"no dead letter with sequence {ref}") from None
                return DeadLetter._from_raw(raw)
            found: DeadLetter | None = None
            seq = 1
            while True:
                d = await self._next(f"{p.DLQ_PREFIX}.>", seq)
                if d is None:
                    break
                if d.id == ref:
                    found = d
                seq = d.seq + 1
        if found is None:
            raise MessageError(f"no dead letter with id {ref!r}")
        return found

    async def requeue(self, ref: str | int | DeadLetter) -> Receipt | None:
        """Put a dead letter back in its mailbox (same id and priority), then drop it from
        the DLQ. Publish first, delete second: a crash in between leaves a copy in both, never
        in neither, and the retry is dropped by the mail stream's dedupe (same derived id).

        Idempotent: when that dead letter is no longer in the queue (a retried requeue, or it
        was purged) nothing happens and the result is None.
        """
        if isinstance(ref, DeadLetter):
            d: DeadLetter | None = await self._still_there(ref.seq)
        elif isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            d = await self._still_there(int(ref))
        else:
            try:
                d = await self.get(ref)
            except MessageError:
                d = None
        if d is None:
            return None
        if d.body_lost:
            raise MessageError(f"dead letter {d.seq} has no body (it was terminated): cannot requeue")
        headers = {
            k: v
            for k, v in d.headers.items()
            if not k.lower().startswith("nats-")
            and not k.startswith("Mailslot-Dead-")
            and k not in (Header.TTL,)
        }
        headers[Header.MSG_ID] = d.id
        headers[Header.REQUEUED] = str(_int(d.headers.get(Header.REQUEUED)) + 1)
        headers[Header.NATS_MSG_ID] = p.requeue_msg_id(d.id, d.seq)
        with boundary():
            ack = await self._link.js.publish(
                p.mail_subject(d.priority, d.address), d.data, headers=headers, timeout=5.0
            )
            await self._delete(d.seq)
        return Receipt(id=d.id, to=d.address, priority=d.priority, seq=ack.seq, duplicate=bool(ack.duplicate))

    async def _still_there(self, seq: int) -> DeadLetter | None:
        with boundary():
            try:
                raw = await self._link.js.get_msg(p.DLQ_STREAM, seq=seq)
            except jserr.NotFoundError:
                return None
        return DeadLetter._from_raw(raw)

    async def _delete(self, seq: int) -> None:
        """Delete a DLQ entry; one deleted meanwhile (a concurrent requeue) is not an error."""
        try:
            await natscompat.delete_msg(self._link.js, p.DLQ_STREAM, seq)  # requeued: no erase
        except jserr.NotFoundError:
            return
        except jserr.APIError as exc:
            if p.jsapi.is_already_gone(exc) or await self._still_there(seq) is None:
                return
            raise exc

    async def purge(self, address: str | None = None) -> int:
        """Delete dead letters (all, or one address's); returns how many."""
        subject = self._filter(address)
        with boundary():
            info = await self._link.js.stream_info(p.DLQ_STREAM, subjects_filter=subject)
            n = sum((info.state.subjects or {}).values())
            await self._link.js.purge_stream(p.DLQ_STREAM, subject=subject)
        return n

    async def count(self, address: str | None = None) -> int:
        with boundary():
            info = await self._link.js.stream_info(p.DLQ_STREAM, subjects_filter=self._filter(address))
        return sum((info.state.subjects or {}).values())

    async def _preserve(self, message: Message, *, reason: str | None) -> None:
        """Copy a message about to be termed into dead letters, body included: on a WorkQueue
        stream ``+TERM`` deletes it before the sidecar's advisory handler could read it. The
        sidecar writes its (bodiless) copy under the same dedupe id, so this full copy wins."""
        headers = dead_letter_headers(
            dict(message.headers),
            mail_seq=message.seq,
            reason=reason or "terminated",
            deliveries=message.delivery_count,
        )
        with boundary():
            await self._link.js.publish(
                p.dlq_subject(message.priority, message.to), message.data, headers=headers, timeout=5.0
            )

    async def term(self, message: Message, *, reason: str | None = None) -> None:
        """Terminate ``message``, keeping its full body in dead letters (same as ``message.term``)."""
        if not message._msg.reply:
            raise MessageError("a peeked message cannot be terminated")
        await message.term(reason=reason)


__all__ = ["DeadLetter", "DeadLetters"]
