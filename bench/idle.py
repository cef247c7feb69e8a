"""6. Idle cost: what an open mailbox that receives nothing costs the server.

Mailslot: K mailboxes (default ttl 60 s), each with a task blocked in ``receive()``.
Raw: K durable pull consumers, each with a task in a ``fetch(1, timeout=5)`` long-poll loop
(what a raw nats-py agent waiting for work does). Measured: nats-server RSS growth per
mailbox/consumer (from /proc) and JetStream API requests (``account_info().api.total``)
per mailbox per minute over a window; Mailslot's own pull counter is reported too. The
window (21 s in quick and full mode) spans one lease renewal (every ttl/3 = 20 s), which
re-asserts the lease and the four consumers.

Each side runs on its own fresh server (same config, same run): on the shared server the Go
heap freed by the earlier benchmarks is reused, which hides RSS growth (negative deltas).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mailslot_broker import protocol as p

from ._common import Bench, bench_env, cancel_all, ratio, unique


async def _settle() -> None:
    await asyncio.sleep(1.0)


async def _measure(b: Bench, k: int, window: float, rss0: int) -> tuple[float, float]:
    await _settle()
    rss1 = b.rss_kb()
    a1 = await b.api_total()
    await asyncio.sleep(window)
    a2 = await b.api_total()
    per_rss = (rss1 - rss0) / k
    per_api = max(0, a2 - a1 - 1) / k / window  # -1: our own account_info
    return per_rss, per_api


async def _mailslot(b: Bench, k: int, window: float) -> dict[str, float]:
    await _settle()
    rss0 = b.rss_kb()
    boxes = [await b.ms.open(unique("bench-idle")) for _ in range(k)]
    tasks = [asyncio.create_task(mb.receive()) for mb in boxes]
    pulls0 = sum(mb.pull_requests for mb in boxes)
    try:
        await asyncio.sleep(0.5)
        pulls0 = sum(mb.pull_requests for mb in boxes)
        rss, api = await _measure(b, k, window, rss0)
        pulls = (sum(mb.pull_requests for mb in boxes) - pulls0) / k / window
    finally:
        await cancel_all(tasks)
        for mb in boxes:
            await mb.destroy()
    return {"rss_kb": rss, "api_per_s": api, "pulls_per_s": pulls}


async def _raw(b: Bench, k: int, window: float) -> dict[str, float]:
    js = b.js
    await _settle()
    rss0 = b.rss_kb()
    names, subs = [], []
    for _ in range(k):
        durable = unique("rawidle")
        await b.add_raw_consumer(durable, unique("raw-idle"))
        names.append(durable)
        subs.append(await js.pull_subscribe_bind(durable, stream=p.MAIL_STREAM))

    async def loop(sub: Any) -> None:
        while True:
            with contextlib.suppress(Exception):
                await sub.fetch(1, timeout=5)

    tasks = [asyncio.create_task(loop(s)) for s in subs]
    try:
        rss, api = await _measure(b, k, window, rss0)
    finally:
        await cancel_all(tasks)
        for s, n in zip(subs, names, strict=True):
            with contextlib.suppress(Exception):
                await s.unsubscribe()
            await js.delete_consumer(p.MAIL_STREAM, n)
    return {"rss_kb": rss, "api_per_s": api, "pulls_per_s": 1 / 5}


async def run(b: Bench) -> dict[str, Any]:
    k, window = b.scale.idle_mailboxes, b.scale.idle_window
    async with bench_env(b.scale) as fresh:
        ms = await _mailslot(fresh, k, window)
    async with bench_env(b.scale) as fresh:
        raw = await _raw(fresh, k, window)
    return {
        "idle_mailboxes": k,
        "window_s": window,
        "servers": "one fresh server per side",
        "mailslot_rss_kb_per_mailbox": round(ms["rss_kb"], 1),
        "raw_rss_kb_per_consumer": round(raw["rss_kb"], 1),
        "mailslot_api_requests_per_mailbox_per_min": round(ms["api_per_s"] * 60, 3),
        "raw_api_requests_per_consumer_per_min": round(raw["api_per_s"] * 60, 3),
        "mailslot_pull_requests_per_mailbox_per_s": round(ms["pulls_per_s"], 4),
        "raw_pull_requests_per_consumer_per_s": raw["pulls_per_s"],
        "idle_rss_ratio": ratio(ms["rss_kb"], raw["rss_kb"]),
        "idle_pull_requests_ratio": ratio(ms["pulls_per_s"], raw["pulls_per_s"]),
    }
