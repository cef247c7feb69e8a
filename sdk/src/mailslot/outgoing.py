"""Turning ``send(...)`` arguments into a subject, headers and bytes, all validated up front."""

from __future__ import annotations

import functools
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from mailslot_broker.errors import ProtocolViolation
from mailslot_broker.protocol import Header

from . import payload as pl
from ._boundary import address as check_address
from ._boundary import header_value, seconds
from ._boundary import priority as check_priority
from .errors import InvalidHeader, InvalidInput, InvalidPayload, PayloadTooLarge

#: Namespace for ids derived from idempotency keys: the same (to, key) always yields the same id.
_IDEMPOTENCY_NS = uuid.UUID("6f1d6a3e-3c8e-4d55-9a55-6d61696c736c")


def new_message_id() -> str:
    """A random (version 4) UUID in hex, as ``uuid.uuid4().hex`` is, without building a
    ``UUID`` object (that was a tenth of ``prepare``'s CPU)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    return b.hex()


@dataclass(slots=True)
class Outgoing:
    """One message ready to publish. Build with :func:`prepare`."""

    to: str
    priority: p.Priority
    subject: str
    data: bytes
    headers: dict[str, str]
    id: str
    scheduled: bool = False
    #: Set for ``send(..., replace_key=...)``: older mail with this key is removed once stored.
    replace_key: str | None = None


@functools.lru_cache(maxsize=4096)
def _cached_address(value: str) -> str:
    return check_address(value)


@functools.lru_cache(maxsize=64)
def _cached_priority(value: str) -> p.Priority:
    return check_priority(value)


def _address(value: Any) -> str:
    """Validated address; str results are memoised (send_many validates the same few
    addresses thousands of times). Invalid ones raise and are never cached."""
    return _cached_address(value) if type(value) is str else check_address(value)


@functools.lru_cache(maxsize=1024)
def _cached_sender(value: str) -> str:
    return header_value(value, what="sender")


def _sender(value: Any) -> str | None:
    """Validated sender; memoised like addresses (a client sends as the same few names)."""
    if value is None or value == "":
        return None
    return _cached_sender(value) if type(value) is str else header_value(value, what="sender")


def _priority(value: Any) -> p.Priority:
    if type(value) is str:
        return _cached_priority(value)
    return check_priority(value)


_RESERVED = tuple(x.lower() for x in p.RESERVED_HEADER_PREFIXES)


def _check_user_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise InvalidHeader(f"headers must be a mapping of str to str, not {type(headers).__name__}")
    out: dict[str, str] = {}
    for k, v in headers.items():
        try:
            p.validate_header_name(k)
            if k.lower().startswith(_RESERVED):
                raise InvalidHeader(f"header {k!r} is reserved by the Mailslot protocol")
            out[k] = p.validate_header_value(v, what=f"header {k!r}")
        except ProtocolViolation as exc:
            raise InvalidHeader(str(exc)) from exc
    return out


def _optional_value(value: Any, *, what: str) -> str | None:
    """An optional id that rides in a header: None or "" (not set), else a one-line str."""
    if value is None or value == "":
        return None
    return header_value(value, what=what)


def _tags_and_key(tags: Iterable[str] | None, replace_key: str | None) -> tuple[tuple[str, ...], str | None]:
    try:
        return (
            p.validate_tags(tags) if tags is not None else (),
            p.validate_replace_key(replace_key) if replace_key is not None else None,
        )
    except ProtocolViolation as exc:
        raise InvalidInput(str(exc)) from exc


def _encode(payload: Any) -> tuple[bytes, str]:
    try:
        data, content_type = pl.encode(payload)
    except InvalidPayload:
        raise
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. a str with a lone surrogate
        raise InvalidPayload(f"cannot encode the {type(payload).__name__} payload: {exc}") from exc
    if content_type == p.ContentType.JSON and (b"NaN" in data or b"Infinity" in data):
        # pydantic writes non-finite floats as NaN/Infinity, which is not JSON: a receiver in
        # another language could not read it. (The words inside a string are fine.)
        try:
            json.loads(data, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise InvalidPayload(f"payload is not valid JSON: {exc}") from exc
    return data, content_type


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (use None or a string)")


def stamp(
    payload: Any,
    *,
    headers: Mapping[str, str] | None,
    msg_id: str,
    sender: str | None,
    now: datetime,
) -> tuple[bytes, dict[str, str]]:
    """The payload's bytes and the headers a mail message and a broadcast both start with: the
    caller's own (checked), then id, content type, time sent and sender. One place, so a
    receiver reads both kinds the same way."""
    user = _check_user_headers(headers) if headers is not None else {}
    data, content_type = _encode(payload)
    # Every name and value here is validated: nats-py's per-header checks can be skipped.
    hdrs: dict[str, str] = natscompat.WireHeaders(user)
    hdrs[Header.MSG_ID] = msg_id
    hdrs[Header.CONTENT_TYPE] = content_type
    hdrs[Header.SENT_AT] = now.isoformat()
    if sender:
        hdrs[Header.FROM] = sender
    return data, hdrs


def check_size(subject: str, data: bytes, headers: Mapping[str, str], *, max_payload: int, what: str) -> None:
    """Refuse before publishing what the server would refuse after: its max_payload counts
    the subject and headers too (estimated with a margin for the protocol line)."""
    size = len(data) + len(subject) + 64 + 4 * len(headers)
    size += sum(map(len, headers)) + sum(map(len, headers.values()))
    if size > max_payload:
        raise PayloadTooLarge(f"{what} is {size} bytes with headers; the server accepts {max_payload}")


def prepare(
    to: str,
    payload: Any,
    *,
    sender: str | None,
    max_payload: int,
    priority: p.Priority | str | int = "normal",
    ttl: float | timedelta | None = None,
    delay: float | timedelta | None = None,
    idempotency_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    reply_to: str | None = None,
    correlation_id: str | None = None,
    thread_id: str | None = None,
    traceparent: str | None = None,
    notify_undelivered: bool = False,
    tags: Iterable[str] | None = None,
    replace_key: str | None = None,
) -> Outgoing:
    """Validate everything and build the wire form. Raises before any I/O."""
    to = _address(to)
    prio = _priority(priority)
    # Each check runs only for an option that was given: a plain send runs none of them
    # (a send's Python runs with cold caches between round trips, ~4x its hot cost: bench/).
    ttl_s = seconds(ttl, what="ttl") if ttl is not None else None
    delay_s = seconds(delay, what="delay") if delay is not None else None
    if reply_to is not None:
        reply_to = _address(reply_to)
    sender = _sender(sender)
    if correlation_id is not None:
        correlation_id = _optional_value(correlation_id, what="correlation_id")
    if thread_id is not None:
        thread_id = _optional_value(thread_id, what="thread_id")
    if traceparent is not None:
        traceparent = _optional_value(traceparent, what="traceparent")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
        raise InvalidInput(f"idempotency_key must be a non-empty str, not {type(idempotency_key).__name__}")
    if idempotency_key is not None:
        msg_id = uuid.uuid5(_IDEMPOTENCY_NS, f"{to}\n{idempotency_key}").hex
    else:
        msg_id = new_message_id()
    tag_list: tuple[str, ...] = ()
    if tags is not None or replace_key is not None:
        tag_list, replace_key = _tags_and_key(tags, replace_key)
    now = datetime.now(timezone.utc)
    data, hdrs = stamp(payload, headers=headers, msg_id=msg_id, sender=sender, now=now)
    hdrs[Header.NATS_MSG_ID] = msg_id
    hdrs[Header.TO] = to
    hdrs[Header.PRIORITY] = prio.label
    if reply_to:
        hdrs[Header.REPLY_TO] = reply_to
    if correlation_id:
        hdrs[Header.CORRELATION_ID] = correlation_id
    if thread_id:
        hdrs[Header.THREAD_ID] = thread_id
    if traceparent:
        hdrs[Header.TRACEPARENT] = traceparent
    if tag_list:
        hdrs[Header.TAGS] = p.encode_tags(tag_list)
    if replace_key:
        hdrs[Header.REPLACE_KEY] = replace_key
    if notify_undelivered:
        # The bounce goes to the sender's own mailbox: without one nobody could be told.
        if not isinstance(notify_undelivered, bool):
            raise InvalidInput("notify_undelivered must be True or False")
        if not sender:
            raise InvalidInput("notify_undelivered=True needs a sender address to bounce to")
        hdrs[Header.NOTIFY] = p.NOTIFY_UNDELIVERED
    target = p.mail_subject(prio, to)
    subject = target
    scheduled = False
    if ttl_s is not None:
        hdrs[Header.TTL] = f"{ttl_s:g}"
    if delay_s is not None:
        # ADR-51 message schedule: the server stores the message on a schedule subject and
        # publishes it to the mailbox at the given time; no client-side timer.
        at = now + timedelta(seconds=delay_s)
        if at.microsecond:
            at = at.replace(microsecond=0) + timedelta(seconds=1)
        hdrs[Header.NATS_SCHEDULE] = "@at " + at.strftime("%Y-%m-%dT%H:%M:%SZ")
        hdrs[Header.NATS_SCHEDULE_TARGET] = target
        if ttl_s is not None:
            hdrs[Header.NATS_SCHEDULE_TTL] = p.nats_ttl_value(ttl_s)
        subject = p.schedule_subject(to, msg_id)
        scheduled = True
    elif ttl_s is not None:
        hdrs[Header.NATS_TTL] = p.nats_ttl_value(ttl_s)

    check_size(subject, data, hdrs, max_payload=max_payload, what=f"message to {to}")
    return Outgoing(
        to=to,
        priority=prio,
        subject=subject,
        data=data,
        headers=hdrs,
        id=msg_id,
        scheduled=scheduled,
        replace_key=replace_key,
    )
