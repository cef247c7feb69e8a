"""1. Send throughput, durable (each message acked by the server).

Mailslot ``send`` (one at a time) vs raw ``js.publish`` (one at a time), and Mailslot
``send_many`` vs raw ``publish_async`` + ``publish_async_completed``. Same stream, same
subject layout, same payload and the same header set (see ``_common.raw_headers``).
"""

from __future__ import annotations

from typing import Any

from mailslot_broker import protocol as p

from ._common import Bench, Timer, median, paired_ratio, payload, raw_headers, unique


async def _ms_send(b: Bench, to: str, n: int) -> float:
    data = payload()
    with Timer() as t:
        for _ in range(n):
            await b.ms.send(to, data)
    return n / t.elapsed


async def _ms_send_many(b: Bench, to: str, n: int) -> float:
    data = payload()
    with Timer() as t:
        await b.ms.send_many({"to": to, "payload": data} for _ in range(n))
    return n / t.elapsed


async def _raw_publish(b: Bench, to: str, n: int) -> float:
    js, data, subject = b.js, payload(), p.mail_subject(p.Priority.NORMAL, to)
    with Timer() as t:
        for _ in range(n):
            await js.publish(subject, data, headers=raw_headers(to), timeout=5.0)
    return n / t.elapsed


async def _raw_publish_async(b: Bench, to: str, n: int) -> float:
    js, data, subject = b.js, payload(), p.mail_subject(p.Priority.NORMAL, to)
    with Timer() as t:
        for _ in range(n):
            await js.publish_async(subject, data, headers=raw_headers(to))
        await js.publish_async_completed()
    return n / t.elapsed


async def run(b: Bench) -> dict[str, Any]:
    s = b.scale
    to = unique("bench-send")
    rounds: dict[str, list[float]] = {k: [] for k in ("send", "publish", "send_many", "publish_async")}
    # Warm-up: first publishes set up inboxes and the async reply subscription.
    await _ms_send(b, to, 20)
    await _raw_publish_async(b, to, 20)
    await b.purge(to)
    for _ in range(s.repeat):
        for name, fn, n in (
            ("send", _ms_send, s.send_one),
            ("publish", _raw_publish, s.send_one),
            ("send_many", _ms_send_many, s.send_many),
            ("publish_async", _raw_publish_async, s.send_many),
        ):
            rounds[name].append(await fn(b, to, n))
            await b.purge(to)
    med = {k: median(v) for k, v in rounds.items()}
    return {
        "payload_bytes": len(payload()),
        "messages_per_round": {"one_at_a_time": s.send_one, "pipelined": s.send_many},
        "rounds": rounds,
        "mailslot_send_msgs_per_s": med["send"],
        "raw_publish_msgs_per_s": med["publish"],
        "mailslot_send_many_msgs_per_s": med["send_many"],
        "raw_publish_async_msgs_per_s": med["publish_async"],
        "send_vs_publish_ratio": paired_ratio(rounds["send"], rounds["publish"]),
        "send_many_vs_publish_async_ratio": paired_ratio(rounds["send_many"], rounds["publish_async"]),
    }
