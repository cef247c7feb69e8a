"""How mail looks to a model: small flat dicts, JSON bodies decoded, empty fields left out."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime
from typing import Any

import mailslot


def body_of(item: mailslot.Message | mailslot.Broadcast) -> Any:
    if item.content_type.startswith("application/json"):
        with contextlib.suppress(mailslot.MailslotError):
            return item.json()
    try:
        return item.text()
    except mailslot.MailslotError:
        return f"<{len(item.data)} bytes, {item.content_type}>"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}


def message_view(m: mailslot.Message, *, held: bool | None = None) -> dict[str, Any]:
    out = {
        "id": m.id,
        "from": m.sender,
        "priority": m.priority.label,
        "thread": m.thread_id,
        "reply_to": m.reply_to,
        "correlation_id": m.correlation_id,
        "sent_at": _time(m.sent_at),
        "body": body_of(m),
        "headers": m.user_headers,
    }
    if m.delivery_count > 1:
        out["deliveries"] = m.delivery_count
    if held is not None:
        out["held"] = held
    return _compact(out)


def receipt_view(r: mailslot.Receipt) -> dict[str, Any]:
    return {**dataclasses.asdict(r), "priority": r.priority.label}


def broadcast_view(b: mailslot.Broadcast) -> dict[str, Any]:
    return _compact(
        {
            "topic": b.topic,
            "from": b.sender,
            "seq": b.seq,
            "sent_at": _time(b.sent_at),
            "body": body_of(b),
        }
    )


def card_view(card: mailslot.AgentCard, *, me: str) -> dict[str, Any]:
    out = _compact(
        {
            "address": card.address,
            "status": card.status,
            "name": card.name if card.name != card.address else None,
            "description": card.description,
            "capabilities": card.capabilities,
            "skills": card.skills,
            "tags": card.tags,
        }
    )
    if card.address == me:
        out["you"] = True
    return out
