"""Turning a received :class:`mailslot.Message` into plain, checkpoint-safe data.

Graph state is checkpointed and may be loaded by another process, so mail enters the state
as a plain dict (JSON types only), never as a live Message or a custom class.
"""

from __future__ import annotations

from typing import Any, TypedDict

import mailslot

#: Mailslot's content type for JSON payloads (the SDK sets it when it encodes a value as JSON).
_JSON = "application/json"


class Mail(TypedDict, total=False):
    """One piece of mail as it is kept in graph state."""

    id: str
    sender: str | None
    to: str
    priority: str
    thread_id: str | None
    correlation_id: str | None
    reply_to: str | None
    headers: dict[str, str]
    payload: Any


def decode_payload(msg: mailslot.Message) -> Any:
    """JSON payloads as Python values, text as str, anything else as bytes."""
    ct = msg.content_type
    if ct.startswith(_JSON):
        return msg.json()
    if ct.startswith("text/"):
        return msg.text()
    try:
        return msg.text()
    except mailslot.DecodeError:
        return msg.data


def to_mail(msg: mailslot.Message) -> Mail:
    """The plain-dict form of ``msg`` (see :class:`Mail`)."""
    return Mail(
        id=msg.id,
        sender=msg.sender,
        to=msg.to,
        priority=msg.priority.label,
        thread_id=msg.thread_id,
        correlation_id=msg.correlation_id,
        reply_to=msg.reply_to,
        headers=dict(msg.user_headers),
        payload=decode_payload(msg),
    )
