"""4. Priority under backlog: where does one urgent message land behind N normal ones?

The backlog is stored first (the agent was away), then the urgent message is sent, then the
receiver starts. Mailslot: open the mailbox and ``receive()``; the urgent message must come
first. Raw: a single FIFO pull consumer over the same subjects (``fetch(100)`` + ``ack``) has
to drain the N older messages first. Time is measured from the first receive call to the
urgent message in hand.
"""

from __future__ import annotations

import time
from typing import Any

from mailslot_broker import protocol as p

from ._common import Bench, payload, ratio, raw_headers, unique
from .receive import fill


async def _mailslot(b: Bench, n: int) -> tuple[int, float]:
    to = unique("bench-prio")
    await fill(b, to, n, (p.Priority.NORMAL,))
    await b.ms.send(to, payload(), priority="urgent")
    mb = await b.ms.open(to, ttl=120)
    try:
        t0 = time.perf_counter()
        m = await mb.receive(timeout=30)
        elapsed = time.perf_counter() - t0
        position = 1
        while m.priority != p.Priority.URGENT:  # not expected: count how deep it was
            await m.ack()
            m = await mb.receive(timeout=30)
            position += 1
        elapsed = time.perf_counter() - t0
        await m.ack()
        return position, elapsed
    finally:
        await mb.destroy()


async def _raw(b: Bench, n: int) -> tuple[int, float]:
    js, to, durable = b.js, unique("bench-rawprio"), unique("rawprio")
    await b.add_raw_consumer(durable, to)
    try:
        await fill(b, to, n, (p.Priority.NORMAL,))
        urgent = p.Priority.URGENT
        await js.publish(p.mail_subject(urgent, to), payload(), headers=raw_headers(to, urgent))
        sub = await js.pull_subscribe_bind(durable, stream=p.MAIL_STREAM)
        position = 0
        t0 = time.perf_counter()
        while True:
            msgs = await sub.fetch(100, timeout=30)
            done = False
            for m in msgs:
                position += 1
                await m.ack()
                if m.subject == p.mail_subject(urgent, to):
                    done = True
                    break
            if done:
                break
        elapsed = time.perf_counter() - t0
        await sub.unsubscribe()
        return position, elapsed
    finally:
        await js.delete_consumer(p.MAIL_STREAM, durable)
        await b.purge(to)


async def run(b: Bench) -> dict[str, Any]:
    out: dict[str, Any] = {"backlogs": list(b.scale.backlogs)}
    for n in b.scale.backlogs:
        mpos, mt = await _mailslot(b, n)
        rpos, rt = await _raw(b, n)
        out[f"n{n}"] = {
            "mailslot_position": mpos,
            "raw_fifo_position": rpos,
            "mailslot_time_ms": round(mt * 1000, 3),
            "raw_fifo_time_ms": round(rt * 1000, 3),
            "time_to_urgent_ratio": ratio(mt, rt),
            "position_ratio": ratio(mpos, rpos),
        }
    return out
