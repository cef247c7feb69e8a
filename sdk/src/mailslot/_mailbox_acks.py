"""Settling several messages at once: one confirmed round trip per consumer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mailslot_broker import natscompat

from ._boundary import boundary

if TYPE_CHECKING:
    from .link import Link
    from .message import Message


async def ack_many(link: Link, messages: Iterable[Message]) -> list[Message]:
    """Ack ``messages``, grouped by consumer; returns them once every group was confirmed.

    The server processes the acks of one connection for one consumer in order, so when
    the last one is confirmed (a double ack) every earlier one was processed too."""
    groups: dict[str, list[Message]] = {}
    for m in messages:
        m._settle()
        groups.setdefault(natscompat.parse_ack_reply(m._msg.reply).consumer, []).append(m)
    nc = link.nc
    with boundary():
        for group in groups.values():
            *rest, last = group
            for m in rest:
                await nc.publish(m._msg.reply, b"+ACK")
            await last._msg.ack_sync(timeout=10)
    return [m for group in groups.values() for m in group]
