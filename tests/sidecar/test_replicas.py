"""Two sidecar replicas (subprocesses): exactly one acts; kill -9 the leader, the other takes
over, nothing is done twice and nothing is missed."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from testsupport import client_env, wait_for

from .test_deadletters import _exhaust
from .test_metrics_health import scrape


def spawn_replica(server: NatsServer, tmp: Path, name: str) -> tuple[subprocess.Popen[str], dict]:
    env = client_env(server)
    log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailslot_broker.sidecar",
            "--leader-ttl",
            "1.5",
            "--sweep-interval",
            "2",
            "--metrics-interval",
            "0.3",
            "--replica-id",
            name,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    log.close()
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"replica {name} did not start; see {tmp / (name + '.log')}"
    return proc, json.loads(line)


async def test_two_replicas_one_killed(server: NatsServer, ms, tmp_path: Path) -> None:
    events: collections.Counter[str] = collections.Counter()

    async def on_event(msg) -> None:
        events[json.loads(msg.data)["address"]] += 1

    await ms.nc.subscribe(p.topic_subject(p.system_topic(p.EVENT_AGENT_RECLAIMED)), cb=on_event)
    procs = []
    try:
        for name in ("replica-a", "replica-b"):
            procs.append(await asyncio.to_thread(spawn_replica, server, tmp_path, name))

        async def leaders() -> list[int]:
            out = []
            for i, (_, info) in enumerate(procs):
                if procs[i][0].poll() is None:
                    m = await scrape(info["metrics_url"])
                    if m.get("mailslot_sidecar_leader") == 1:
                        out.append(i)
            return out

        await wait_for(lambda: _one(leaders()), timeout=20, interval=0.2)
        wave1 = [f"w1-{i}" for i in range(3)]
        for a in wave1:
            mb = await ms.open(a, ttl=1, keep=0)
            await ms.send(a, "bye")
            await mb.close()
        await wait_for(lambda: all(events[a] for a in wave1), timeout=20)
        (leader,) = await leaders()
        before = await scrape(procs[leader][1]["metrics_url"])
        os.kill(procs[leader][0].pid, signal.SIGKILL)
        procs[leader][0].wait(10)
        # Work that lands while the leader is dead and nobody leads yet.
        wave2 = [f"w2-{i}" for i in range(3)]
        for a in wave2:
            mb = await ms.open(a, ttl=1, keep=0)
            await ms.send(a, "bye")
            await mb.close()
        flaky = await ms.open("w2-flaky", ttl=30, max_deliver=1, ack_wait=1)
        r = await ms.send("w2-flaky", "doomed")
        await _exhaust(flaky)
        await wait_for(lambda: all(events[a] for a in wave2), timeout=30)
        survivor = 1 - leader
        await wait_for(lambda: _one(leaders()), timeout=10)
        assert await leaders() == [survivor]

        async def dead() -> bool:
            return [d.mail_seq for d in await ms.dead_letters.list("w2-flaky")] == [r.seq]

        await wait_for(dead, timeout=20)
        await flaky.close()
        await asyncio.sleep(2.5)  # room for any double action to show up
        assert set(events) == set(wave1 + wave2) and set(events.values()) == {1}, events
        after = await scrape(procs[survivor][1]["metrics_url"])
        reclaimed = before["mailslot_leases_reclaimed_total"] + after["mailslot_leases_reclaimed_total"]
        assert reclaimed == 6
        assert await ms.dead_letters.count("w2-flaky") == 1
        # The six reclaimed mailboxes' unread mail went to dead letters too, once each.
        assert await ms.dead_letters.count() == 7
        info = await ms.js.stream_info(p.MAIL_STREAM)
        assert info.state.messages == 0
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout:
                proc.stdout.close()


async def _one(coro) -> bool:
    return len(await coro) == 1
