"""Measure what one server and a 3-node R3 cluster sustain (the capacity figures in docs/deploy.md).

Not a test: run it by hand, ``uv run --no-sync python -m tests.cluster.measure_capacity``.
In one run, on a single nats-server (R1) and then on a fresh 3-node cluster (R3 streams),
both from the project's launcher: send throughput one ``send`` at a time and with
``send_many``; ``receive`` + ``ack`` throughput (one at a time, as an agent does); how many
mailboxes one client opens per second (sequentially); the server RSS that 100 idle online
mailboxes add (``ttl=60``, each with a task blocked in ``receive()``; VmRSS from
``/proc/<pid>/status``, summed over the nodes, 2 s settle), and the JetStream API requests they
cause over a 25 s idle window that spans one lease renewal (``account_info().api.total``).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from pathlib import Path

import mailslot
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster

from .measure_failover import wait_until_serving


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def measure(ms: mailslot.Mailslot, pids: list[int], *, sends: int, boxes: int) -> dict[str, float]:
    out: dict[str, float] = {}
    mb = await ms.open("capacity", ttl=600)

    t = time.monotonic()
    for i in range(sends):
        await ms.send("capacity", i)
    out["send_one"] = sends / (time.monotonic() - t)

    t = time.monotonic()
    await ms.send_many({"to": "capacity", "payload": i} for i in range(sends))
    out["send_many"] = sends / (time.monotonic() - t)

    t = time.monotonic()
    for _ in range(2 * sends):
        m = await mb.receive(timeout=30)
        await m.ack()
    out["receive_ack"] = 2 * sends / (time.monotonic() - t)
    await mb.close()

    await asyncio.sleep(2.0)
    base = sum(rss_kb(pid) for pid in pids)
    t = time.monotonic()
    opened = [await ms.open(f"idle{i}", ttl=60) for i in range(boxes)]
    out["open_per_s"] = boxes / (time.monotonic() - t)
    waiting = [asyncio.create_task(box.receive()) for box in opened]
    await asyncio.sleep(2.0)
    out["rss_kb_per_100"] = (sum(rss_kb(pid) for pid in pids) - base) * 100 / boxes
    js = ms.js
    before = (await js.account_info()).api.total
    await asyncio.sleep(25.0)
    after = (await js.account_info()).api.total
    out["idle_api_per_min_per_1000"] = (after - before - 1) / 25.0 * 60 * 1000 / boxes
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    for box in opened:
        await box.close()
    return out


def show(label: str, r: dict[str, float]) -> None:
    print(
        f"{label}: send {r['send_one']:.0f}/s one at a time, {r['send_many']:.0f}/s send_many; "
        f"receive+ack {r['receive_ack']:.0f}/s; open {r['open_per_s']:.1f} mailboxes/s; "
        f"+{r['rss_kb_per_100'] / 1024:.1f} MB server RSS per 100 idle open mailboxes "
        f"(~{1024 * 1024 * 100 / max(r['rss_kb_per_100'], 1):.0f} online agents per GB); "
        f"idle API load {r['idle_api_per_min_per_1000']:.1f} requests/min per 1,000 agents",
        flush=True,
    )


async def main(sends: int, boxes: int) -> None:
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {len(__import__('os').sched_getaffinity(0))} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        srv = NatsServer(Path(tmp) / "single")
        srv.start()
        try:
            c = srv.credentials
            async with mailslot.connect(srv.url, user=c.user, password=c.password, name="cap") as ms:
                assert srv.pid is not None
                show(
                    f"single server (nats-server {srv.version})",
                    await measure(ms, [srv.pid], sends=sends, boxes=boxes),
                )
        finally:
            srv.stop()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = NatsCluster(Path(tmp) / "cluster", size=3)
        cluster.start()
        try:
            await wait_until_serving(cluster)
            creds = cluster.credentials.write(Path(tmp) / "c.json")
            settings = p.StreamSettings(replicas=3)
            async with mailslot.connect(cluster.urls, credentials=creds, settings=settings, name="cap") as ms:
                pids = [n.pid for n in cluster.nodes if n.pid is not None]
                show("3-node cluster, R3 (sum over nodes)", await measure(ms, pids, sends=sends, boxes=boxes))
        finally:
            cluster.stop(grace=5.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--boxes", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.sends, args.boxes))
