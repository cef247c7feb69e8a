"""5. Lifecycle of ephemeral agents: what one costs, and what a lapsed crowd leaves behind.

Cost: ``open`` + ``destroy`` (close + reclaim) per agent, sequentially, against the raw
minimum for a per-agent queue (create one durable pull consumer, delete it, purge its
subjects). Lapse: open many agents with ttl=1 s, send each one message, close them (leases
stop being renewed), wait until every lease has lapsed, then one ``reclaim_expired`` sweep;
count consumers, KV entries and messages before and after (after must be back to baseline).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mailslot_broker import protocol as p
from mailslot_broker.reclaim import lease_alive, reclaim_expired

from ._common import Bench, Timer, median, payload, ratio, unique


async def _cost_mailslot(b: Bench, k: int) -> tuple[float, float]:
    opens, destroys = [], []
    for _ in range(k):
        with Timer() as t1:
            mb = await b.ms.open(ttl=5)
        with Timer() as t2:
            await mb.destroy()
        opens.append(t1.elapsed)
        destroys.append(t2.elapsed)
    return median(opens) * 1000, median(destroys) * 1000


async def _cost_raw(b: Bench, k: int) -> float:
    js, out = b.js, []
    for _ in range(k):
        to, durable = unique("raw-agent"), unique("rawlc")
        with Timer() as t:
            await b.add_raw_consumer(durable, to)
            await js.delete_consumer(p.MAIL_STREAM, durable)
            await b.purge(to)
        out.append(t.elapsed)
    return median(out) * 1000


async def _counts(b: Bench, addresses: set[str]) -> dict[str, int]:
    """What the server still holds for ``addresses``: consumers, KV entries (keys and
    markers, both buckets) and messages. Counted per address, so other benchmarks' leftovers
    (or their absence) cannot skew it."""
    js = b.js
    consumers, offset = 0, 0
    while page := await js.consumers_info(p.MAIL_STREAM, offset=offset):  # paged by the server
        offset += len(page)
        for ci in page:
            meta = ci.config.metadata or {}
            consumers += meta.get(p.CONSUMER_ADDRESS_METADATA) in addresses
    kv = 0
    for bucket in (p.AGENTS_BUCKET, p.MAILBOXES_BUCKET):
        info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.>")
        kv += sum(n for subj, n in (info.state.subjects or {}).items() if subj.split(".", 2)[2] in addresses)
    info = await js.stream_info(p.MAIL_STREAM, subjects_filter=f"{p.MAIL_PREFIX}.>")
    messages = sum(n for subj, n in (info.state.subjects or {}).items() if subj.split(".", 2)[2] in addresses)
    return {"consumers": consumers, "kv_entries": kv, "messages": messages}


async def _lapse(b: Bench, n: int) -> dict[str, Any]:
    sem = asyncio.Semaphore(16)

    async def one() -> str:
        async with sem:
            mb = await b.ms.open(ttl=1)
            await mb.close()  # stop renewing: the lease runs out by itself
            return mb.address

    with Timer() as t_open:
        addresses = await asyncio.gather(*(one() for _ in range(n)))
    await b.ms.send_many({"to": a, "payload": payload()} for a in addresses)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the server expires leases; nothing to wait on
        alive = await asyncio.gather(*(lease_alive(b.js, a) for a in addresses))
        if not any(alive):
            break
        await asyncio.sleep(0.5)
    before = await _counts(b, set(addresses))
    with Timer() as t_reclaim:
        reports = await reclaim_expired(b.js, grace=0)
    after = await _counts(b, set(addresses))
    return {
        "agents": n,
        "open_close_per_s": round(n / t_open.elapsed, 1),
        "reclaimed": len(reports),
        "reclaim_s": round(t_reclaim.elapsed, 3),
        "reclaim_ms_per_agent": round(t_reclaim.elapsed * 1000 / max(1, len(reports)), 3),
        "left_before_reclaim": before,
        "left_after_reclaim": after,
    }


async def run(b: Bench) -> dict[str, Any]:
    k = b.scale.lifecycle_cost
    await _cost_mailslot(b, 2)  # warm-up
    ms_open, ms_destroy = await _cost_mailslot(b, k)
    raw = await _cost_raw(b, k)
    total = ms_open + ms_destroy
    return {
        "agents_for_cost": k,
        "mailslot_open_ms": round(ms_open, 3),
        "mailslot_destroy_ms": round(ms_destroy, 3),
        "mailslot_open_destroy_ms": round(total, 3),
        "raw_consumer_create_delete_ms": round(raw, 3),
        "agent_cost_vs_raw_consumer_ratio": ratio(total, raw),
        "lapse": await _lapse(b, b.scale.lapse_agents),
    }
