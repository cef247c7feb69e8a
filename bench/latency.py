"""3. End-to-end latency for an online receiver: send -> delivered to the receiving code.

One message in flight at a time; the receiver acks each one and the sender waits for that,
plus a 5 ms pause so the receiver is back to waiting (idle) before the next send.
Mailslot: a task looping ``mailbox.receive()`` (woken by the headers-only bell).
Raw: a durable pull consumer in a ``fetch(1, timeout=...)`` loop (long-poll pull, the usual
nats-py pattern), and for reference a push subscription (``js.subscribe``, manual ack).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mailslot_broker import protocol as p

from ._common import Bench, median, paired_ratio, payload, pct, ratio, raw_headers, unique

_GAP = 0.005


async def _drive(
    n: int, send: Callable[[], Awaitable[Any]], got: asyncio.Queue[float], receiver: asyncio.Task[Any]
) -> list[float]:
    await asyncio.sleep(0.05)  # the receiver is waiting before the first sample
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        await send()
        get = asyncio.ensure_future(got.get())
        await asyncio.wait({get, receiver}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if not get.done():
            get.cancel()
            if receiver.done():
                raise RuntimeError(f"receiver died at sample {i}") from receiver.exception()
            raise RuntimeError(f"message {i} not delivered within 60 s")
        out.append((get.result() - t0) * 1000)
        await asyncio.sleep(_GAP)
    return out


def _publisher(js: Any, to: str) -> Callable[[], Awaitable[Any]]:
    """One raw publish per sample, with the headers Mailslot's send writes."""
    subject, data = p.mail_subject(p.Priority.NORMAL, to), payload()
    return lambda: js.publish(subject, data, headers=raw_headers(to), timeout=5.0)


async def _mailslot(b: Bench, n: int) -> list[float]:
    # heartbeat=2 s: the receiver is never idle that long between samples, so it changes
    # nothing unless a wake-up is lost (see README, "lost bell"); then it bounds the stall.
    mb = await b.ms.open(unique("bench-lat"), ttl=120, heartbeat=2.0)
    got: asyncio.Queue[float] = asyncio.Queue()
    data = payload()

    async def receiver() -> None:
        while True:
            m = await mb.receive()
            t = time.perf_counter()
            await m.ack()
            got.put_nowait(t)

    task = asyncio.create_task(receiver())
    try:
        return await _drive(n, lambda: b.ms.send(mb.address, data), got, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await mb.destroy()


async def _raw_pull(b: Bench, n: int) -> list[float]:
    js, to, durable = b.js, unique("bench-rawlat"), unique("rawlat")
    await b.add_raw_consumer(durable, to)
    sub = await js.pull_subscribe_bind(durable, stream=p.MAIL_STREAM)
    got: asyncio.Queue[float] = asyncio.Queue()

    async def receiver() -> None:
        while True:
            try:
                msgs = await sub.fetch(1, timeout=30)
            except Exception:
                continue
            t = time.perf_counter()
            for m in msgs:
                await m.ack()
            got.put_nowait(t)

    task = asyncio.create_task(receiver())
    try:
        return await _drive(n, _publisher(js, to), got, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        await js.delete_consumer(p.MAIL_STREAM, durable)
        await b.purge(to)


async def _raw_push(b: Bench, n: int) -> list[float]:
    js, to = b.js, unique("bench-rawpush")
    got: asyncio.Queue[float] = asyncio.Queue()

    async def cb(msg: Any) -> None:
        t = time.perf_counter()
        await msg.ack()
        got.put_nowait(t)

    sub = await js.subscribe(p.mail_subject_all_priorities(to), stream=p.MAIL_STREAM, cb=cb, manual_ack=True)
    idle = asyncio.create_task(asyncio.Event().wait())  # push has no receiver task to watch
    try:
        return await _drive(n, _publisher(js, to), got, idle)
    finally:
        idle.cancel()
        await sub.unsubscribe()
        await b.purge(to)


async def run(b: Bench) -> dict[str, Any]:
    s = b.scale
    samples: dict[str, list[float]] = {"mailslot": [], "raw_pull": [], "raw_push": []}
    p50s: dict[str, list[float]] = {k: [] for k in samples}
    for _ in range(s.repeat):
        for name, fn in (("mailslot", _mailslot), ("raw_pull", _raw_pull), ("raw_push", _raw_push)):
            xs = await fn(b, s.latency)
            samples[name].extend(xs)
            p50s[name].append(median(xs))
    out: dict[str, Any] = {
        "samples_per_round": s.latency,
        "raw_method": "durable pull consumer, fetch(1, timeout=30) loop; push subscription for reference",
        "round_p50_ms": p50s,
    }
    for name, xs in samples.items():
        out[f"{name}_p50_ms"] = round(median(p50s[name]), 3)
        out[f"{name}_p99_ms"] = round(pct(xs, 99), 3)
    for name, xs in samples.items():
        out[f"{name}_stalls_over_500ms"] = sum(1 for x in xs if x > 500)
        out[f"{name}_max_ms"] = round(max(xs), 3)
    out["p50_vs_raw_pull_ratio"] = paired_ratio(p50s["mailslot"], p50s["raw_pull"])
    out["p99_vs_raw_pull_ratio"] = ratio(out["mailslot_p99_ms"], out["raw_pull_p99_ms"])
    out["p50_vs_raw_push_ratio"] = paired_ratio(p50s["mailslot"], p50s["raw_push"])
    return out
