"""Mailslot on a 3-node JetStream cluster: replicas=3 streams survive a SIGKILL of the mail
stream's leader in the middle of traffic.

Checked: every message whose ``send`` returned is delivered; none is delivered again once its
``ack`` returned; sending resumes within 15 s; the restarted node catches up.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster

N = 2000
KILL_AFTER = 400


@pytest.fixture
def cluster(tmp_path: Path):
    c = NatsCluster(tmp_path / "cluster", size=3)
    c.start()
    try:
        yield c
    finally:
        c.stop(grace=5.0)


async def test_cluster_starts_with_replicated_streams(cluster, tmp_path):
    creds = cluster.credentials.write(tmp_path / "c.json")
    settings = p.StreamSettings(replicas=3)
    async with mailslot.connect(cluster.urls, credentials=creds, settings=settings) as ms:
        for name in (p.MAIL_STREAM, p.TOPICS_STREAM, p.DLQ_STREAM, f"KV_{p.AGENTS_BUCKET}"):
            si = await ms.js.stream_info(name)
            assert si.config.num_replicas == 3, name
            assert si.cluster is not None and len(si.cluster.replicas or []) == 2


async def test_leader_kill_loses_no_acknowledged_mail(cluster, tmp_path):
    creds = cluster.credentials.write(tmp_path / "c.json")
    settings = p.StreamSettings(replicas=3)
    sender = await mailslot.connect(
        cluster.urls, credentials=creds, settings=settings, name="sender", publish_retry_for=30
    )
    receiver = await mailslot.connect(cluster.urls, credentials=creds, settings=settings, name="recv")
    mb = await receiver.open("sink", ttl=120, ack_wait=5)

    sent_at: dict[int, float] = {}
    send_errors: list[str] = []
    acked: set[int] = set()
    redelivered_after_ack: list[int] = []
    receive_errors: list[str] = []
    producing = True
    reached = asyncio.Event()
    killed_at: float | None = None
    killed_node = None

    async def produce() -> None:
        nonlocal producing
        try:
            for i in range(N):
                try:
                    await sender.send("sink", i)
                    sent_at[i] = time.monotonic()
                    if len(sent_at) >= KILL_AFTER:
                        reached.set()
                except mailslot.MailslotError as exc:
                    send_errors.append(f"{i}: {type(exc).__name__}: {exc}")
        finally:
            producing = False

    async def consume() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not producing and set(sent_at) <= acked:
                return
            try:
                m = await mb.receive(timeout=2)
            except mailslot.Timeout:
                continue
            except mailslot.MailslotError as exc:
                receive_errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.2)
                continue
            i = m.json()
            if i in acked:
                redelivered_after_ack.append(i)
                continue
            try:
                await m.ack()
                acked.add(i)
            except mailslot.MailslotError as exc:  # unconfirmed: may come again, that is fine
                receive_errors.append(f"ack {i}: {type(exc).__name__}: {exc}")

    async def kill_leader() -> None:
        nonlocal killed_at, killed_node
        await reached.wait()
        leader = (await receiver.js.stream_info(p.MAIL_STREAM)).cluster.leader
        killed_node = cluster.node(leader)
        await asyncio.to_thread(killed_node.kill)
        killed_at = time.monotonic()

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(produce(), consume(), kill_leader()), timeout=150)
    assert killed_at is not None and killed_node is not None

    # Every send that returned was delivered and acked; nothing came back after its ack.
    assert not send_errors, send_errors[:5]
    assert set(sent_at) <= acked
    assert redelivered_after_ack == []
    # Sending resumed within 15 s of the kill.
    times = sorted(sent_at.values())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 15.0, f"longest pause in sending {max(gaps):.1f} s"
    assert len(sent_at) == N

    # The killed node restarts and catches up with the stream.
    await asyncio.to_thread(killed_node.start)
    deadline = time.monotonic() + 45
    while True:
        si = await receiver.js.stream_info(p.MAIL_STREAM)
        peers = {r.name: r for r in si.cluster.replicas or []}
        names = {si.cluster.leader, *peers}
        if killed_node.config.server_name in names and all(
            r.current and not r.offline and not r.lag for r in peers.values()
        ):
            break
        assert time.monotonic() < deadline, f"restarted node did not catch up: {si.cluster}"
        await asyncio.sleep(0.2)
    print(
        f"\nfailover: {len(sent_at)} sent, {len(acked)} acked, longest send pause "
        f"{max(gaps):.1f} s, total {time.monotonic() - started:.1f} s, "
        f"receive errors {len(receive_errors)}"
    )
    await mb.close()
    await sender.close()
    await receiver.close()
