"""1. Send throughput, durable (each message acked by the server).

Mailslot ``send`` (one at a time) vs raw ``js.publish`` (one at a time, the two alternating in
blocks of ``_BLOCK`` within each round), and Mailslot
``send_many`` vs raw ``publish_async`` + ``publish_async_completed``. Same stream, same
subject layout, same payload and the same header set (see ``_common.raw_headers``).
"""

from __future__ import annotations

from typing import Any

from mailslot_broker import protocol as p

from ._common import Bench, Timer, median, paired_ratio, payload, raw_headers, unique

#: One-at-a-time sends alternate between Mailslot and raw in blocks this long within a round:
#: a send is a round trip, and this VM's speed drifts by a third within seconds, more than
#: the difference measured (rounds of 400 in a row gave ratios from 0.84 to 1.0 for one tree).
_BLOCK = 20


async def _one_at_a_time(b: Bench, to: str, n: int) -> tuple[float, float]:
    """(Mailslot, raw) messages per second for ``n`` sends each, in alternating blocks."""
    data, js, subject = payload(), b.js, p.mail_subject(p.Priority.NORMAL, to)
    ms_s = raw_s = 0.0
    for _ in range(max(1, n // _BLOCK)):
        with Timer() as t:
            for _ in range(_BLOCK):
                await b.ms.send(to, data)
        ms_s += t.elapsed
        with Timer() as t:
            for _ in range(_BLOCK):
                await js.publish(subject, data, headers=raw_headers(to), timeout=5.0)
        raw_s += t.elapsed
    sent = max(1, n // _BLOCK) * _BLOCK
    return sent / ms_s, sent / raw_s


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
        ms_rate, raw_rate = await _one_at_a_time(b, to, s.send_one)
        rounds["send"].append(ms_rate)
        rounds["publish"].append(raw_rate)
        await b.purge(to)
        pair = (("send_many", _ms_send_many), ("publish_async", _raw_publish_async))
        for name, fn in pair if len(rounds["send_many"]) % 2 == 0 else reversed(pair):
            rounds[name].append(await fn(b, to, s.send_many))
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
