"""The audit trail of a tenant: who wrote to whom, and what became of each message.

Opt-in per tenant (per account): ``enable`` creates the two audit streams of
:mod:`mailslot_broker.protocol.audit`, ``disable`` deletes them, and with them off the server
records nothing. Nothing here runs on a send or a receive: the server copies into the audit
what it already publishes (bells, acks, advisories, dead-letter bells). Reach it as
``ms.audit``.

``query`` reads the whole audit stream and joins events to the mail they are about by the
mail-stream sequence: an ack names only its consumer (``mbx-<p>-<hash of the address>``, i.e. the
mailbox) and the message's sequence; the connection that sent it is not on the wire, so "who
acked" is the mailbox, never a process.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from mailslot_broker import protocol as p
from mailslot_broker.kvscan import _parse_time  # RFC 3339 with nanoseconds, as KV scans read it
from mailslot_broker.protocol import Header, Priority
from mailslot_broker.protocol import audit as pa
from nats.js import errors as jserr
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RePublish, StorageType, StreamConfig

from ._boundary import address as check_address
from ._boundary import boundary, plain_seconds
from .errors import AuditDisabled, InvalidInput
from .link import Link

AuditKind = Literal["stored", "acked", "nacked", "termed", "exhausted", "dead"]
KINDS: tuple[str, ...] = ("stored", "acked", "nacked", "termed", "exhausted", "dead")
#: Who writes a dead letter for these reasons (the sidecar, or ``destroy()`` for a reclaim).
_SYSTEM_REASONS = (p.REASON_MAX_DELIVERIES, p.REASON_RECLAIMED)
_BATCH = 1000


@dataclass(frozen=True)
class AuditRecord:
    """One thing that happened to one message.

    ``kind``: ``stored`` (the mail was stored in a mailbox: a send, a delayed message firing, a
    requeue, priority aging's copy), ``acked``, ``nacked``, ``termed`` (by a receiver),
    ``exhausted`` (the server gave up after ``deliveries``), ``dead`` (a dead letter was written,
    ``reason`` says why). ``seq`` is the message's sequence in the mail stream, the key every
    event of one message shares. ``by`` is who did it, as far as the server can tell: the
    sender's claimed address for ``stored``, ``mailbox <address>`` for what a receiver sends
    (its consumer, ``consumer``), ``server`` for ``exhausted``, ``mailslot`` for dead letters
    the system writes. ``body`` only when the audit keeps bodies.
    """

    kind: AuditKind
    at: datetime
    seq: int
    message_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    priority: Priority | None = None
    size: int | None = None
    thread_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    content_type: str | None = None
    sent_at: str | None = None
    by: str | None = None
    consumer: str | None = None
    deliveries: int | None = None
    reason: str | None = None
    #: On ``stored``: the priority label priority aging moved it from, how often it was requeued.
    aged_from: str | None = None
    requeued: int | None = None
    body: bytes | None = None
    audit_seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["at"] = self.at.isoformat()
        d["priority"] = self.priority.label if self.priority is not None else None
        d["body"] = self.body.decode("utf-8", "replace") if self.body is not None else None
        return d


@dataclass(frozen=True)
class AuditStatus:
    enabled: bool
    bodies: bool = False
    retention: float | None = None
    records: int = 0


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _priority_of_consumer(consumer: str) -> Priority | None:
    parts = consumer.split("-")
    if len(parts) == 3 and parts[0] == "mbx" and parts[1].isdigit() and int(parts[1]) < 4:
        return Priority(int(parts[1]))
    return None


def _record(
    subject: str, headers: dict[str, str], data: bytes, at: datetime, aseq: int
) -> AuditRecord | None:
    """One audit message as a record (not yet joined to its mail); None for what is no event."""
    h = headers
    if subject.startswith((f"{p.BELL_PREFIX}.", f"{p.DEAD_BELL_PREFIX}.")):
        bell = subject.startswith(f"{p.BELL_PREFIX}.")
        parts = subject.split(".", 2)
        if len(parts) != 3 or parts[1] not in ("0", "1", "2", "3"):
            return None  # e.g. bell.dev.…: a device's raw publish, not yet mail
        prio, address = Priority(int(parts[1])), parts[2]
        common: dict[str, Any] = {
            "message_id": h.get(Header.MSG_ID) or (h.get(Header.NATS_MSG_ID) if bell else None),
            "sender": h.get(Header.FROM),
            "recipient": address,
            "priority": prio,
            "thread_id": h.get(Header.THREAD_ID),
            "correlation_id": h.get(Header.CORRELATION_ID),
            "reply_to": h.get(Header.REPLY_TO),
            "content_type": h.get(Header.CONTENT_TYPE),
            "sent_at": h.get(Header.SENT_AT),
            "audit_seq": aseq,
        }
        if bell:
            seq = _int(h.get(Header.NATS_SEQUENCE))
            if seq is None:
                return None
            return AuditRecord(
                "stored",
                _parse_time(h.get("Nats-Time-Stamp")) or at,
                seq,
                # Nats-Msg-Size is on headers-only bells; a bell with the body is the body.
                size=_int(h.get("Nats-Msg-Size")) if not data else len(data),
                aged_from=h.get(Header.AGED_FROM),
                requeued=_int(h.get(Header.REQUEUED)),
                by=h.get(Header.FROM),
                body=data if data else None,
                **common,
            )
        seq = _int(h.get(Header.DEAD_SEQ))
        if seq is None:
            return None
        reason = h.get(Header.DEAD_REASON)
        return AuditRecord(
            "dead",
            _parse_time(h.get(Header.DEAD_AT)) or at,
            seq,
            by=p.SYSTEM_SENDER if reason in _SYSTEM_REASONS else f"mailbox {address}",
            deliveries=_int(h.get(Header.DEAD_DELIVERIES)),
            reason=reason,
            **common,
        )
    ack = pa.parse_ack_subject(subject)
    if ack is not None and not pa.is_mailbox_consumer(ack.consumer):
        return None  # e.g. the device bridge's uplink consumer: plumbing, not a mailbox
    if ack is not None:
        kind = pa.ack_kind(data)
        if kind is None:
            return None
        return AuditRecord(
            kind,  # type: ignore[arg-type]
            at,
            ack.seq,
            priority=_priority_of_consumer(ack.consumer),
            consumer=ack.consumer,
            deliveries=ack.deliveries,
            reason=pa.term_reason(data) if kind == "termed" else None,
            audit_seq=aseq,
        )
    advisory = pa.is_advisory(subject)
    if advisory is not None:
        body = pa.parse_advisory(data)
        seq = _int(body.get("stream_seq"))
        consumer = str(body.get("consumer") or "")
        if seq is None or not pa.is_mailbox_consumer(consumer):
            return None
        return AuditRecord(
            "exhausted" if advisory == "exhausted" else "termed",
            _parse_time(body.get("timestamp")) or at,
            seq,
            priority=_priority_of_consumer(consumer),
            consumer=consumer or None,
            by="server" if advisory == "exhausted" else None,
            deliveries=_int(body.get("deliveries")),
            reason=body.get("reason") or None,
            audit_seq=aseq,
        )
    return None


def _join(records: list[AuditRecord]) -> list[AuditRecord]:
    """Events get the message id, sender, recipient and thread of the mail they are about; a
    term seen both as ``+TERM`` and as the server's advisory is reported once."""
    stored: dict[int, AuditRecord] = {}
    out: list[AuditRecord] = []
    seen_term: set[int] = set()
    for r in records:
        if r.kind == "stored":
            stored[r.seq] = r
            out.append(r)
            continue
        if r.kind == "termed":
            if r.seq in seen_term:
                continue
            seen_term.add(r.seq)
        mail = stored.get(r.seq)
        fill: dict[str, Any] = {}
        if mail is not None:
            for name in ("message_id", "sender", "recipient", "thread_id", "correlation_id"):
                if getattr(r, name) is None:
                    fill[name] = getattr(mail, name)
            if r.priority is None:
                fill["priority"] = mail.priority
        recipient = fill.get("recipient", r.recipient)
        if r.by is None and r.kind in ("acked", "nacked", "termed"):
            who = f"consumer {r.consumer}" if r.consumer else None
            fill["by"] = f"mailbox {recipient}" if recipient else who
        out.append(dataclasses.replace(r, **fill) if fill else r)
    return out


def _since(value: datetime | timedelta | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise InvalidInput("since: a timedelta means 'that long ago' and must not be negative")
        return datetime.now(timezone.utc) - value
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    raise InvalidInput(f"since must be a datetime or a timedelta, not {type(value).__name__}")


class Audit:
    """``enable``, ``disable``, ``status`` and ``query`` of this tenant's audit trail."""

    def __init__(self, link: Link) -> None:
        self._link = link

    async def _info(self, name: str) -> Any | None:
        try:
            return await self._link.js.stream_info(name)
        except jserr.NotFoundError:
            return None

    async def _set_bell_bodies(self, bodies: bool) -> None:
        """Bells carry bodies only while an audit keeps them (``headers_only`` off)."""
        info = await self._link.js.stream_info(p.MAIL_STREAM)
        cfg: StreamConfig = info.config
        rp = cfg.republish
        if rp is None or bool(rp.headers_only) == (not bodies):
            return
        new = RePublish(src=rp.src, dest=rp.dest, headers_only=not bodies)
        await self._link.js.update_stream(dataclasses.replace(cfg, republish=new))

    async def enable(
        self, *, bodies: bool = False, retention: float | timedelta | None = None
    ) -> AuditStatus:
        """Start recording (or change bodies/retention of a running audit). ``retention``
        defaults to 30 days; records older than it are removed by the server."""
        if not isinstance(bodies, bool):
            raise InvalidInput("bodies must be a bool")
        keep = plain_seconds(retention, what="retention", minimum=1.0)
        keep = pa.DEFAULT_AUDIT_RETENTION if keep is None else keep
        self._link.check_open()
        with boundary():
            mail = await self._link.js.stream_info(p.MAIL_STREAM)
            settings = p.StreamSettings(
                replicas=mail.config.num_replicas or 1, storage=mail.config.storage or StorageType.FILE
            )
            # Bodies first: a record stored before this would lack its body.
            if bodies:
                await self._set_bell_bodies(True)
            for want in (
                pa.audit_capture_stream_config(settings),
                pa.audit_stream_config(settings, retention=keep, bodies=bodies),
            ):
                assert want.name is not None
                have = await self._info(want.name)
                if have is None:
                    await self._link.js.add_stream(want)
                else:
                    owned = ("subjects", "max_age", "duplicate_window", "metadata", "allow_msg_ttl")
                    merged = dataclasses.replace(
                        have.config,
                        **{f: getattr(want, f) for f in (*owned, "allow_msg_schedules", "description")},
                    )
                    await self._link.js.update_stream(merged)
            if not bodies:
                await self._set_bell_bodies(False)
        return await self.status()

    async def disable(self) -> bool:
        """Stop recording and delete the records; False when it was off."""
        self._link.check_open()
        with boundary():
            found = False
            for name in (pa.AUDIT_CAPTURE_STREAM, pa.AUDIT_STREAM):
                try:
                    await self._link.js.delete_stream(name)
                    found = True
                except jserr.NotFoundError:
                    pass
            await self._set_bell_bodies(False)
        return found

    async def status(self) -> AuditStatus:
        self._link.check_open()
        with boundary():
            info = await self._info(pa.AUDIT_STREAM)
            capture = await self._info(pa.AUDIT_CAPTURE_STREAM)
        if info is None or capture is None:
            return AuditStatus(False)
        return AuditStatus(
            True,
            bodies=pa.audit_bodies(info.config),
            retention=float(info.config.max_age or 0) or None,
            records=int(info.state.messages),
        )

    async def _read(self) -> list[AuditRecord]:
        js = self._link.js
        info = await self._info(pa.AUDIT_STREAM)
        if info is None or await self._info(pa.AUDIT_CAPTURE_STREAM) is None:
            raise AuditDisabled("the audit trail is off for this tenant (mailslot audit enable)")
        last = int(info.state.last_seq)
        out: list[AuditRecord] = []
        if not info.state.messages:
            return out
        ci = await js.add_consumer(
            pa.AUDIT_STREAM,
            ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                inactive_threshold=30.0,
                mem_storage=True,
                num_replicas=1,
            ),
        )
        sub = await js.pull_subscribe_bind(consumer=ci.name, stream=pa.AUDIT_STREAM)
        try:
            done = False
            while not done:
                try:
                    msgs = await sub.fetch(_BATCH, timeout=2.0)
                except jserr.FetchTimeoutError:
                    break
                for m in msgs:
                    meta = m.metadata
                    seq = meta.sequence.stream
                    if seq > last:
                        done = True
                        break
                    at = meta.timestamp if isinstance(meta.timestamp, datetime) else None
                    at = at or datetime.now(timezone.utc)
                    rec = _record(m.subject, dict(m.headers or {}), m.data or b"", at, seq)
                    if rec is not None:
                        out.append(rec)
                    if seq >= last or meta.num_pending == 0:
                        done = True
        finally:
            await sub.unsubscribe()
            with contextlib.suppress(jserr.Error):
                await js.delete_consumer(pa.AUDIT_STREAM, ci.name)
        return out

    async def query(
        self,
        *,
        sender: str | None = None,
        recipient: str | None = None,
        since: datetime | timedelta | None = None,
        message_id: str | None = None,
        kinds: tuple[str, ...] | list[str] | None = None,
    ) -> list[AuditRecord]:
        """Records in the order the audit stored them, filtered: ``sender``/``recipient`` (of
        the mail an event is about), ``since`` (a time, or a timedelta meaning that long ago),
        ``message_id`` (every record of that message: stored, acked, termed, dead...),
        ``kinds``. Raises :class:`AuditDisabled` when the audit is off."""
        frm = check_address(sender) if sender is not None else None
        to = check_address(recipient) if recipient is not None else None
        after = _since(since)
        if message_id is not None and (not isinstance(message_id, str) or not message_id.strip()):
            raise InvalidInput("message_id must be a non-empty string")
        want = None
        if kinds is not None:
            if isinstance(kinds, str) or not all(isinstance(k, str) and k in KINDS for k in kinds):
                raise InvalidInput(f"kinds must be a list of {', '.join(KINDS)}")
            want = set(kinds)
        self._link.check_open()
        with boundary():
            records = _join(await self._read())
        out = []
        for r in records:
            if frm is not None and r.sender != frm:
                continue
            if to is not None and r.recipient != to:
                continue
            if after is not None and r.at < after:
                continue
            if message_id is not None and r.message_id != message_id:
                continue
            if want is not None and r.kind not in want:
                continue
            out.append(r)
        return out


__all__ = ["KINDS", "Audit", "AuditKind", "AuditRecord", "AuditStatus"]
