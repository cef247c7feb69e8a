"""Strict priority through a failover on a 3-node cluster (R3 streams).

20 urgent and 20 low messages wait; one receive takes an urgent one; then the node leading the
mailbox's urgent consumer is killed (``kill -9``) while the low consumer stays up on the node
the client is connected to. Every remaining urgent message must come before any low one: the
receive loop waits for the urgent level to elect its new leader instead of serving low mail
meanwhile, and it raises nothing. Three times, on the same cluster (the killed node restarts
and catches up in between).
"""

from __future__ import annotations

import asyncio
import time

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster, start_node_server

from .measure_failover import move_consumer_leader, node_of, wait_until_healthy

R3 = p.StreamSettings(replicas=3)
EACH = 20


@pytest.fixture
def cluster(serving_cluster: NatsCluster) -> NatsCluster:
    return serving_cluster


async def test_urgent_mail_waits_out_its_leader_election_before_any_low(cluster, tmp_path) -> None:
    creds = cluster.credentials.write(tmp_path / "c.json")
    sender = await mailslot.connect(cluster.urls, credentials=creds, settings=R3, name="sender")
    ms = await mailslot.connect(cluster.urls, credentials=creds, settings=R3, name="receiver")
    waits: list[float] = []
    try:
        for rep in range(3):
            address = f"prio{rep}"
            for i in range(EACH):
                await sender.send(address, f"u{i}", priority="urgent")
            for i in range(EACH):
                await sender.send(address, f"l{i}", priority="low")
            mb = await ms.open(address, ttl=120)  # binds the two levels holding mail
            first = await mb.receive(timeout=10)
            assert first.priority is p.Priority.URGENT
            await first.ack()

            # The inversion case: the urgent consumer's leader on a node the client is not
            # connected to (it keeps its connection), the low level's on the client's node
            # (the levels without mail have no consumer).
            here = node_of(cluster, ms)
            victim = next(n for n in cluster.nodes if n is not here)
            await move_consumer_leader(
                ms, p.consumer_name(address, p.Priority.URGENT), victim.config.server_name
            )
            await move_consumer_leader(ms, p.consumer_name(address, p.Priority.LOW), here.config.server_name)

            await asyncio.to_thread(victim.kill)
            killed = time.monotonic()
            order: list[str] = []
            for _ in range(2 * EACH - 1):
                m = await mb.receive(timeout=45)  # failover_timeout is 30 s: it never raises
                order.append(m.text()[0])
                if len(order) == 1:
                    waits.append(time.monotonic() - killed)
                await m.ack()
            assert order == ["u"] * (EACH - 1) + ["l"] * EACH, f"repetition {rep}: {''.join(order)}"
            assert ms.connected and ms.disconnects == 0  # it rode out the election, not a reconnect

            await mb.close()
            await asyncio.to_thread(start_node_server, victim)
            await wait_until_healthy(ms)
        print(f"\nfirst urgent message after the kill: {', '.join(f'{w:.1f} s' for w in waits)}")
    finally:
        await ms.close()
        await sender.close()


async def test_a_level_that_never_comes_back_raises_unavailable(cluster, tmp_path) -> None:
    """Beyond ``failover_timeout`` the receive raises Unavailable (not Timeout, never a lower
    priority): here two of three nodes are gone, so the urgent consumer cannot elect a leader."""
    creds = cluster.credentials.write(tmp_path / "c.json")
    async with mailslot.connect(cluster.urls, credentials=creds, settings=R3, name="alone") as ms:
        await ms.send("stranded", "urgent", priority="urgent")
        await ms.send("stranded", "low", priority="low")
        mb = await ms.open("stranded", ttl=120)  # binds the two levels holding mail
        assert mb.failover_timeout == 30.0
        with pytest.raises(mailslot.InvalidInput):
            mb.failover_timeout = -1
        mb.failover_timeout = 3
        here = node_of(cluster, ms)
        await move_consumer_leader(ms, p.consumer_name("stranded", p.Priority.LOW), here.config.server_name)
        others = [n for n in cluster.nodes if n is not here]
        await move_consumer_leader(
            ms, p.consumer_name("stranded", p.Priority.URGENT), others[0].config.server_name
        )
        for n in others:
            await asyncio.to_thread(n.kill)
        t0 = time.monotonic()
        with pytest.raises(mailslot.Unavailable) as err:
            await mb.receive(timeout=20)
        took = time.monotonic() - t0
        assert 2.5 < took < 8, took
        assert not isinstance(err.value, mailslot.Timeout)
        assert "urgent" in str(err.value)
        # A receive with a shorter timeout than the bound returns a Timeout at its deadline.
        t0 = time.monotonic()
        with pytest.raises(mailslot.Timeout, match="urgent"):
            await mb.receive(timeout=1)
        assert time.monotonic() - t0 < 2.5
        # The nodes come back: the urgent message, then the low one (a receive raising
        # Unavailable meanwhile, with this short bound, is followed by one that waits again).
        for n in others:
            await asyncio.to_thread(start_node_server, n)
        deadline = time.monotonic() + 60
        while True:
            try:
                first = await mb.receive(timeout=30)
                break
            except mailslot.Unavailable:
                assert time.monotonic() < deadline, "the urgent consumer never came back"
        second = await mb.receive(timeout=30)
        assert (first.text(), second.text()) == ("urgent", "low")
        await first.ack()
        await second.ack()
        await mb.close()
