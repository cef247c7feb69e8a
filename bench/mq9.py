"""The mq9 gateway against the native SDK on the same private server: how many SEND and FETCH
requests per second the gateway answers (one replica, requests one at a time and 32 in flight),
next to ``send`` and ``receive_batch`` + ``ack_many`` of the SDK doing the same job.

    .venv/bin/python -m bench.mq9 [--messages 500] [--rounds 3]

Rounds interleave gateway and native (A B A B ...); medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import mailslot
from mailslot_mq9 import Gateway

from ._common import SCALES, bench_env

PAYLOAD = b"x" * 256


def _addr(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def _req(nc: Any, subject: str, data: bytes) -> dict[str, Any]:
    out = json.loads((await nc.request(subject, data, timeout=30)).data)
    if out.get("error"):
        raise RuntimeError(out["error"])
    return out


async def gateway_send(nc: Any, n: int, *, inflight: int) -> float:
    box = _addr("gs")
    await _req(nc, "$mq9.AI.MAILBOX.CREATE", json.dumps({"name": box, "ttl": 0}).encode())
    gate = asyncio.Semaphore(inflight)

    async def one() -> None:
        async with gate:
            await _req(nc, f"$mq9.AI.MSG.SEND.{box}", PAYLOAD)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def native_send(ms: mailslot.Mailslot, n: int, *, inflight: int) -> float:
    box = _addr("ns")
    gate = asyncio.Semaphore(inflight)

    async def one() -> None:
        async with gate:
            await ms.send(box, PAYLOAD)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def gateway_fetch(nc: Any, ms: mailslot.Mailslot, n: int, *, batch: int) -> tuple[float, float]:
    """(requests/s, messages/s) of a group draining ``n`` messages: FETCH ``batch``, ACK the last."""
    box = _addr("gf")
    await _req(nc, "$mq9.AI.MAILBOX.CREATE", json.dumps({"name": box, "ttl": 0}).encode())
    await ms.send_many([{"to": box, "payload": PAYLOAD} for _ in range(n)])
    body = {
        "group_name": "g",
        "deliver": "earliest",
        "force_deliver": False,
        "config": {"num_msgs": batch, "max_wait_ms": 0},
    }
    got = requests = 0
    t0 = time.perf_counter()
    while got < n:
        msgs = (await _req(nc, f"$mq9.AI.MSG.FETCH.{box}", json.dumps(body).encode()))["messages"]
        requests += 1
        if not msgs:
            break
        ack = {"group_name": "g", "mail_address": box, "msg_id": msgs[-1]["msg_id"]}
        await _req(nc, f"$mq9.AI.MSG.ACK.{box}", json.dumps(ack).encode())
        requests += 1
        got += len(msgs)
    dt = time.perf_counter() - t0
    return requests / dt, got / dt


async def native_receive(ms: mailslot.Mailslot, n: int, *, batch: int) -> float:
    box = _addr("nr")
    await ms.send_many([{"to": box, "payload": PAYLOAD} for _ in range(n)])
    inbox = await ms.open(box)
    got = 0
    t0 = time.perf_counter()
    while got < n:
        msgs = await inbox.receive_batch(max=batch, timeout=5)
        if not msgs:
            break
        await inbox.ack_many(msgs)
        got += len(msgs)
    dt = time.perf_counter() - t0
    await inbox.destroy()
    return got / dt


async def main_async(n: int, rounds: int) -> dict[str, float]:
    rows: dict[str, list[float]] = {}

    def add(k: str, v: float) -> None:
        rows.setdefault(k, []).append(v)

    async with bench_env(SCALES["quick"]) as env:
        c = env.server.credentials
        gms = await mailslot.connect(env.server.url, user=c.user, password=c.password, name="mq9-gateway")
        nc, ms = env.raw, env.ms
        try:
            async with Gateway(gms):
                for _ in range(rounds):
                    add("gateway SEND req/s, 1 in flight", await gateway_send(nc, n, inflight=1))
                    add("native send msg/s, 1 in flight", await native_send(ms, n, inflight=1))
                    add("gateway SEND req/s, 32 in flight", await gateway_send(nc, n, inflight=32))
                    add("native send msg/s, 32 in flight", await native_send(ms, n, inflight=32))
                    for batch in (1, 100):
                        count = n if batch > 1 else n // 5
                        reqs, msgs = await gateway_fetch(nc, ms, count, batch=batch)
                        add(f"gateway FETCH+ACK req/s, num_msgs={batch}", reqs)
                        add(f"gateway FETCH+ACK msg/s, num_msgs={batch}", msgs)
                        add(
                            f"native receive+ack msg/s, batch={batch}",
                            await native_receive(ms, count, batch=batch),
                        )
        finally:
            await gms.close()
    out = {k: statistics.median(v) for k, v in rows.items()}
    # Round-by-round ratios (each pair ran back to back, under about the same load).
    pairs = {
        "SEND / send, 1 in flight": ("gateway SEND req/s, 1 in flight", "native send msg/s, 1 in flight"),
        "SEND / send, 32 in flight": ("gateway SEND req/s, 32 in flight", "native send msg/s, 32 in flight"),
        "FETCH+ACK / receive+ack msg/s, 1": (
            "gateway FETCH+ACK msg/s, num_msgs=1",
            "native receive+ack msg/s, batch=1",
        ),
        "FETCH+ACK / receive+ack msg/s, 100": (
            "gateway FETCH+ACK msg/s, num_msgs=100",
            "native receive+ack msg/s, batch=100",
        ),
    }
    for name, (a, b) in pairs.items():
        out[f"ratio {name}"] = statistics.median(x / y for x, y in zip(rows[a], rows[b], strict=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    out = asyncio.run(main_async(args.messages, args.rounds))
    width = max(len(k) for k in out)
    for k, v in out.items():
        print(f"{k:<{width}}  {v:9.2f}" if k.startswith("ratio") else f"{k:<{width}}  {v:9.0f}")


if __name__ == "__main__":
    main()
