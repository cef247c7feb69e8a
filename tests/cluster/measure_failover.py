"""Measure the pause a leader kill causes on a 3-node cluster (the figures in docs/deploy.md).

Not a test: run it by hand, ``uv run --no-sync python tests/cluster/measure_failover.py
--runs 5``. Each run starts a fresh 3-node cluster (R3 streams), sends one message at a time
at a steady rate to a mailbox that an ``async for`` loop drains and acks, moves the leader of
that mailbox's consumer onto the node leading ``MAILSLOT_MAIL`` (so one kill takes both), then
``kill -9``\\ s that node. Reported per run: the longest gap between two sends that returned
and between two messages received (acks run aside: a stalled ack is reported on its own),
and how many errors the sender, the receiving loop and the acks saw.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import mailslot
import nats
import nats.errors
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster

RATE = 200  # messages per second: the receiver keeps up, so its pause is the failover's


# -- helpers shared with the cluster tests -----------------------------------------------------


async def move_consumer_leader(ms: mailslot.Mailslot, consumer: str, to: str) -> None:
    """Step the consumer's leader down until ``to`` leads it (nats-server 2.11+ honours a
    preferred server)."""
    subject = f"$JS.API.CONSUMER.LEADER.STEPDOWN.{p.MAIL_STREAM}.{consumer}"
    body = json.dumps({"placement": {"preferred": to}}).encode()
    for _ in range(40):
        try:
            info = await ms.js.consumer_info(p.MAIL_STREAM, consumer)
            if info.cluster is not None and info.cluster.leader == to:
                return
            await ms.nc.request(subject, body, timeout=5)
        except Exception:  # an election in progress: ask again
            pass
        await asyncio.sleep(0.25)
    raise RuntimeError(f"{consumer} could not be moved to {to}")


def node_of(cluster: NatsCluster, ms: mailslot.Mailslot) -> NatsServer:
    """The node the client is connected to."""
    port = ms.nc.connected_url.port if ms.nc.connected_url else None
    return next(n for n in cluster.nodes if n.port == port)


async def wait_until_serving(cluster: NatsCluster, *, timeout: float = 30.0) -> None:
    """Until JetStream answers through every node. ``NatsCluster.start`` returns once a meta
    leader is elected, but the routes are still being de-duplicated then, and a request
    crossing a route that is being replaced can be lost (seen: ``connect()`` timing out on
    its account info)."""
    creds = cluster.credentials
    deadline = time.monotonic() + timeout
    for node in cluster.nodes:
        nc = await nats.connect(node.url, user=creds.user, password=creds.password, connect_timeout=5)
        try:
            answered = 0
            while answered < 3:
                try:
                    await nc.request("$JS.API.INFO", b"", timeout=1)
                    answered += 1
                except nats.errors.Error:
                    answered = 0
                    if time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.05)
        finally:
            await nc.close()


async def wait_until_healthy(ms: mailslot.Mailslot, *, timeout: float = 60.0) -> None:
    """Until the meta leader answers and every stream has a leader and all its replicas
    current (a node restarted after a kill has caught up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            infos = await ms.js.streams_info()  # answered by the meta leader
            if infos and all(
                si.cluster is not None
                and si.cluster.leader
                and len(si.cluster.replicas or []) == (si.config.num_replicas or 1) - 1
                and all(r.current and not r.offline for r in si.cluster.replicas or [])
                for si in infos
            ):
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster did not become healthy")
        await asyncio.sleep(0.25)


# -- the measurement -------------------------------------------------------------------------


async def one_run(workdir: Path) -> dict[str, float]:
    cluster = NatsCluster(workdir, size=3)
    cluster.start()
    try:
        await wait_until_serving(cluster)
        creds = cluster.credentials.write(workdir / "c.json")
        settings = p.StreamSettings(replicas=3)
        sender = await mailslot.connect(cluster.urls, credentials=creds, settings=settings, name="s")
        receiver = await mailslot.connect(cluster.urls, credentials=creds, settings=settings, name="r")
        mb = await receiver.open("measured", ttl=120)
        leader = (await receiver.js.stream_info(p.MAIL_STREAM)).cluster.leader
        await move_consumer_leader(receiver, p.consumer_name("measured", p.Priority.NORMAL), leader)

        sent: list[float] = []
        got: list[float] = []
        acks: list[float] = []
        errors = {"send": 0, "receive": 0, "ack": 0}
        stop = asyncio.Event()
        pending: set[asyncio.Task[None]] = set()

        async def ack(m: mailslot.Message) -> None:
            t = time.monotonic()
            try:
                await m.ack()
            except mailslot.MailslotError:
                errors["ack"] += 1
            acks.append(time.monotonic() - t)

        async def produce() -> None:
            i = 0
            while not stop.is_set():
                try:
                    await sender.send("measured", i)
                    sent.append(time.monotonic())
                    i += 1
                except mailslot.MailslotError:
                    errors["send"] += 1
                await asyncio.sleep(1 / RATE)

        async def consume() -> None:
            while not stop.is_set():
                try:
                    async for m in mb:
                        got.append(time.monotonic())
                        # Acked aside, so that a stalled ack does not count as a pause in
                        # receiving (an ack to a consumer whose leader just died can hang).
                        task = asyncio.ensure_future(ack(m))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                except mailslot.MailslotError:
                    errors["receive"] += 1

        tasks = [asyncio.ensure_future(produce()), asyncio.ensure_future(consume())]
        await asyncio.sleep(2.0)
        node = cluster.node(leader)
        killed = time.monotonic()
        await asyncio.to_thread(node.kill)
        await asyncio.sleep(15.0)
        stop.set()
        await mb.close()
        await asyncio.wait(tasks, timeout=10)
        if pending:
            await asyncio.wait(pending, timeout=15)

        def pause(times: list[float]) -> float:
            around = [t for t in times if t > killed - 1.0]
            return max((b - a for a, b in itertools.pairwise(around)), default=float("nan"))

        await sender.close()
        await receiver.close()
        return {
            "send_pause": pause(sent),
            "receive_pause": pause(got),
            "send_errors": errors["send"],
            "receive_errors": errors["receive"],
            "ack_errors": errors["ack"],
            "longest_ack": max(acks, default=float("nan")),
        }
    finally:
        cluster.stop(grace=5.0)


async def main(runs: int) -> None:
    results = []
    for i in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            r = await one_run(Path(tmp))
        results.append(r)
        print(
            f"run {i + 1}: send pause {r['send_pause']:.2f} s, receive pause {r['receive_pause']:.2f} s, "
            f"errors: send {r['send_errors']:.0f}, receive {r['receive_errors']:.0f}, "
            f"ack {r['ack_errors']:.0f} (longest ack {r['longest_ack']:.2f} s)",
            flush=True,
        )
    for key in ("send_pause", "receive_pause"):
        values = [r[key] for r in results]
        med = statistics.median(values)
        print(f"{key}: median {med:.2f} s (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
