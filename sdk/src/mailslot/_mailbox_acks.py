"""Settling several messages at once: one confirmed round trip per consumer.

The server processes the acks of one connection for one consumer in order, so when the last
+ACK of a group is confirmed (a double ack) every earlier one was processed too. A lost
confirmation says nothing about the group's other +ACKs (they may have died with the
connection), so the whole group is sent again, under the policy of ``Message.ack()``
(:mod:`mailslot._acking`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from mailslot_broker import natscompat

from . import tracing
from ._acking import SendOnce, until_confirmed
from ._boundary import boundary

if TYPE_CHECKING:
    from .link import Link
    from .message import Message


async def ack_many(
    link: Link, messages: Iterable[Message], *, bound: float, settled: Callable[[Message], None]
) -> None:
    """Ack ``messages`` group by group, each group re-sent until confirmed, all within
    ``bound`` seconds (as one ``ack()``); ``settled`` hears of each confirmed message. On a
    final failure the typed error is raised and the messages of the groups not confirmed are
    left unsettled (an earlier group's stay acked)."""
    todo = list(messages)
    marked: list[Message] = []
    try:
        for m in todo:
            m._settle()  # every one checked before anything is sent
            marked.append(m)
    except BaseException:
        for m in marked:
            m._settled = False
        raise
    groups: dict[str, list[Message]] = {}
    for m in todo:
        groups.setdefault(natscompat.parse_ack_reply(m._msg.reply).consumer, []).append(m)
    pending = list(groups.values())
    started, exceeded = time.monotonic(), link.outage_exceeded
    try:
        with boundary():
            while pending:
                group = pending[0]
                send = _sender(link, group)
                with tracing.settling_group(group, "ack"):
                    await until_confirmed(send, started=started, bound=bound, outage_exceeded=exceeded)
                pending.pop(0)
                for m in group:
                    settled(m)
    except BaseException:
        for group in pending:
            for m in group:
                m._settled = False  # not confirmed: the caller may ack them again
        raise


def _sender(link: Link, group: list[Message]) -> SendOnce:
    """Sends the +ACKs of one consumer's ``group``, the last one confirmed (and checked for
    a delivery the server forgot, as ``ack()`` does)."""

    async def send(timeout: float) -> None:
        *rest, last = group
        for m in rest:
            await link.nc.publish(m._msg.reply, b"+ACK")
        await last._ack_once(timeout)

    return send
