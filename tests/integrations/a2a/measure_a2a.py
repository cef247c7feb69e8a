"""Measure A2A over Mailslot on a throwaway nats-server (not a test; run it directly):

    .tools/bin/uv run --no-sync python tests/integrations/a2a/measure_a2a.py [--runs 10] [--tasks 300]

1. agent start -> client sees COMPLETED: a task is queued while the agent is offline, a client
   subscribes; the time from starting the agent's runner (opening its mailbox included) to the
   COMPLETED event reaching the client, median and max of ``--runs``;
2. tasks per second through the HTTP front: ``--tasks`` raw JSON-RPC SendMessage calls (16 in
   flight) to an offline agent (queued and answered SUBMITTED), then the agent (concurrency 8)
   drains them all to COMPLETED.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import mailslot
from a2a.types.a2a_pb2 import SubscribeToTaskRequest, TaskState
from mailslot_broker import NatsServer

sys.path.insert(0, str(Path(__file__).parent))
from a2a_support import V1, EchoExecutor, agent_card, rpc, send_params, serving, user_request
from mailslot_a2a import A2ARunner, client_factory
from mailslot_a2a.front import Front


async def start_latency(connect, runs: int) -> list[float]:
    out = []
    for i in range(runs):
        agent, requester = f"lat-{i}", f"asker-{i}"
        cms, ams = await connect(requester), await connect(agent)
        client = client_factory(cms, requester=requester).create(agent_card(agent))
        task = [ev async for ev in client.send_message(user_request("ping"))][-1].task
        seen = asyncio.Event()

        async def watch(client: Any, task_id: str, seen: asyncio.Event) -> None:
            async for ev in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                if (
                    ev.WhichOneof("payload") == "status_update"
                    and ev.status_update.status.state == TaskState.TASK_STATE_COMPLETED
                ):
                    seen.set()

        watcher = asyncio.create_task(watch(client, task.id, seen))
        await asyncio.sleep(0.3)  # the subscriber is waiting
        t0 = time.perf_counter()
        runner = await A2ARunner(ams, EchoExecutor(), agent_card(agent), address=agent).start()
        await asyncio.wait_for(seen.wait(), 20)
        out.append((time.perf_counter() - t0) * 1000)
        await watcher
        await runner.close()
        await client.close()
        await cms.close()
        await ams.close()
    return out


async def front_throughput(connect, n: int) -> tuple[float, float]:
    fms, ams = await connect("a2a-front"), await connect("bulk")
    runner = await A2ARunner(ams, EchoExecutor(), agent_card("bulk"), address="bulk").start()
    await runner.close()  # registered, offline
    front = Front(fms, base_url="http://127.0.0.1", name="front")  # cards are not read here
    async with serving(front.app) as base, httpx.AsyncClient(base_url=base, headers=V1, timeout=30) as http:
        slots = asyncio.Semaphore(16)
        ids: list[str] = []

        async def one(i: int) -> None:
            async with slots:
                r = (await http.post("/agents/bulk", json=rpc("SendMessage", send_params(f"t{i}"), i))).json()
                ids.append(r["result"]["task"]["id"])

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        queued = n / (time.perf_counter() - t0)
        t1 = time.perf_counter()
        runner = await A2ARunner(
            ams, EchoExecutor(), agent_card("bulk"), address="bulk", concurrency=8
        ).start()
        while runner.handled < n:  # noqa: ASYNC110  (a count to reach, not an event)
            await asyncio.sleep(0.05)
        drained = n / (time.perf_counter() - t1)
        await runner.close()
    await front.close()
    return queued, drained


async def main(runs: int, tasks: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="a2a-measure-"))
    server = NatsServer(work / "nats").start()
    opened: list[mailslot.Mailslot] = []

    async def connect(name: str) -> mailslot.Mailslot:
        c = server.credentials
        ms = await mailslot.connect(server.url, user=c.user, password=c.password, name=name)
        opened.append(ms)
        return ms

    try:
        lat = await start_latency(connect, runs)
        print(
            f"agent start -> client sees COMPLETED: median {statistics.median(lat):.0f} ms, "
            f"max {max(lat):.0f} ms ({runs} runs)"
        )
        queued, drained = await front_throughput(connect, tasks)
        print(
            f"HTTP front: {queued:.0f} tasks/s queued (SendMessage -> SUBMITTED, agent offline); "
            f"{drained:.0f} tasks/s run to COMPLETED by one agent (concurrency 8), {tasks} tasks"
        )
    finally:
        for ms in opened:
            if not ms.closed:
                await ms.close()
        server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--tasks", type=int, default=300)
    a = ap.parse_args()
    asyncio.run(main(a.runs, a.tasks))
