"""2. Receive throughput: drain a backlog spread over the four priority levels.

Mailslot: ``receive_batch(max=100)`` then ``ack_many(batch)`` (one confirmed round trip per
batch), and also ``gather`` of the confirmed ``ack()`` of each message.
Raw: one durable pull consumer on ``mbox.*.<address>`` doing ``fetch(100)`` + ``ack`` (fire and
forget), and the same with ``ack_sync`` gathered per batch (what Mailslot's ack does).
"""

from __future__ import annotations

import asyncio
from typing import Any

from mailslot_broker import protocol as p

from ._common import Bench, Timer, median, paired_ratio, payload, raw_headers, unique


async def fill(b: Bench, to: str, n: int, prios: tuple[p.Priority, ...] = p.PRIORITIES) -> None:
    """Untimed: ``n`` messages round-robin over ``prios`` with Mailslot's header set."""
    js, data = b.js, payload()
    for i in range(n):
        prio = prios[i % len(prios)]
        await js.publish_async(p.mail_subject(prio, to), data, headers=raw_headers(to, prio))
    await js.publish_async_completed()


async def _mailslot(b: Bench, n: int, *, each: bool = False) -> float:
    mb = await b.ms.open(unique("bench-recv"), ttl=120, heartbeat=2.0)
    try:
        await fill(b, mb.address, n)
        got = 0
        with Timer() as t:
            while got < n:
                batch = await mb.receive_batch(max=100, timeout=10)
                if not batch:
                    raise RuntimeError(f"mailslot receive stalled after {got} of {n}")
                if each:
                    await asyncio.gather(*(m.ack() for m in batch))
                else:
                    await mb.ack_many(batch)
                got += len(batch)
        return n / t.elapsed
    finally:
        await mb.destroy()


async def _raw(b: Bench, n: int, *, sync_ack: bool) -> float:
    to = unique("bench-rawrecv")
    js = b.js
    durable = unique("raw")
    await b.add_raw_consumer(durable, to)
    try:
        await fill(b, to, n)
        sub = await js.pull_subscribe_bind(durable, stream=p.MAIL_STREAM)
        got = 0
        with Timer() as t:
            while got < n:
                msgs = await sub.fetch(100, timeout=10)
                if sync_ack:
                    await asyncio.gather(*(m.ack_sync() for m in msgs))
                else:
                    for m in msgs:
                        await m.ack()
                got += len(msgs)
        rate = n / t.elapsed
        await sub.unsubscribe()
        return rate
    finally:
        await js.delete_consumer(p.MAIL_STREAM, durable)
        await b.purge(to)


async def run(b: Bench) -> dict[str, Any]:
    s = b.scale
    rounds: dict[str, list[float]] = {"mailslot": [], "mailslot_each": [], "raw_ack": [], "raw_ack_sync": []}
    for i in range(s.repeat):
        # Each pair that is compared runs back to back, which of the two first alternating:
        # a round is ~0.2 s and this VM's speed drifts within seconds.
        pairs = (
            (
                ("mailslot", lambda: _mailslot(b, s.receive)),
                ("raw_ack", lambda: _raw(b, s.receive, sync_ack=False)),
            ),
            (
                ("mailslot_each", lambda: _mailslot(b, s.receive, each=True)),
                ("raw_ack_sync", lambda: _raw(b, s.receive, sync_ack=True)),
            ),
        )
        for pair in pairs:
            for name, fn in pair if i % 2 == 0 else reversed(pair):
                rounds[name].append(await fn())
    med = {k: median(v) for k, v in rounds.items()}
    return {
        "messages_per_round": s.receive,
        "rounds": rounds,
        "mailslot_receive_batch_ack_msgs_per_s": med["mailslot"],
        "mailslot_receive_batch_ack_each_msgs_per_s": med["mailslot_each"],
        "raw_fetch_ack_msgs_per_s": med["raw_ack"],
        "raw_fetch_ack_sync_msgs_per_s": med["raw_ack_sync"],
        "receive_vs_fetch_ack_ratio": paired_ratio(rounds["mailslot"], rounds["raw_ack"]),
        "receive_vs_fetch_ack_sync_ratio": paired_ratio(rounds["mailslot"], rounds["raw_ack_sync"]),
        "receive_ack_each_vs_fetch_ack_sync_ratio": paired_ratio(
            rounds["mailslot_each"], rounds["raw_ack_sync"]
        ),
    }
