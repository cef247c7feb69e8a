"""``Message.ack()`` rides out a broker restart and a cluster leader kill.

An ack whose confirmation is lost (the connection dropped with the +ACK in flight, or the
consumer's leader died and its successor is not elected yet: no responders) re-sends the +ACK
until one is confirmed. What must hold: every ``ack()`` either returns, and then the message
never comes again, or raises a typed error and leaves the message unsettled, so that acking it
again works. The single-server case lives here too because it shares the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import mailslot
import pytest
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster

from .measure_failover import move_consumer_leader

R3 = p.StreamSettings(replicas=3)


class _Acks:
    """Every ack of one test: when it started, how long it took, what it raised."""

    def __init__(self) -> None:
        self.confirmed: dict[int, tuple[float, float]] = {}  # index -> (started, took)
        self.raised: dict[int, mailslot.MailslotError] = {}

    async def ack(self, i: int, m: mailslot.Message) -> None:
        t = time.monotonic()
        try:
            await m.ack()
        except mailslot.MailslotError as exc:
            assert not m.settled, f"message {i}: ack raised {exc!r} but left it settled"
            self.raised[i] = exc
            return
        assert m.settled
        self.confirmed[i] = (t, time.monotonic() - t)

    async def settle_the_rest(self, msgs: list[mailslot.Message]) -> None:
        """An ack that raised left its message unsettled: acking it again must work."""
        for i in list(self.raised):
            await self.ack(i, msgs[i])
            assert i in self.confirmed, f"message {i}: a second ack raised {self.raised[i]!r}"
        assert len(self.confirmed) == len(msgs)


async def _receive_all(mb: mailslot.Mailbox, n: int) -> list[mailslot.Message]:
    msgs = [await mb.receive(timeout=10) for _ in range(n)]
    assert sorted(m.json() for m in msgs) == list(range(n))
    return sorted(msgs, key=lambda m: m.json())


async def _nothing_comes_again(ms: mailslot.Mailslot, mb: mailslot.Mailbox, address: str) -> None:
    """Every message was acked: none is stored any more (the mail stream is a work queue, so
    nothing is left that could be redelivered), and a receive gets nothing."""
    left = -1
    for _ in range(50):  # a new leader may be slow to answer, or answer before it applied the last acks
        with contextlib.suppress(mailslot.Timeout):
            left = (await ms.inspect(address).stats()).total
            if not left:
                break
        await asyncio.sleep(0.2)
    assert left == 0, f"{left} acked messages still stored: {await _what_is_stored(ms, address)}"
    with pytest.raises(mailslot.Timeout):
        await mb.receive(timeout=1.5)


async def _what_is_stored(ms: mailslot.Mailslot, address: str) -> str:
    """For a failure message: what is still stored, and where the consumers' ack floors are
    (a message below its consumer's ack floor was acked but not removed: it would only come
    again to a re-created consumer; one above it is unacked, and redelivery failed)."""
    stored = [(m.seq, m.text(), m.delivery_count) for m in await ms.inspect(address).peek(10)]
    floors = {}
    for prio in p.PRIORITIES:
        with contextlib.suppress(Exception):
            ci = await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))
            floors[prio.label] = (ci.ack_floor, ci.delivered, ci.num_ack_pending, ci.num_redelivered)
    return (
        f"stored (seq, body, deliveries) {stored}; "
        f"consumers (ack floor, delivered, ack pending, redelivered) {floors}"
    )


def _freeze_then_restart(server: NatsServer, *, kill: bool) -> None:
    """End a frozen server: SIGKILL, or a SIGTERM it handles as it thaws (racing the +ACKs
    waiting in its socket: some land and lose their reply in the shutdown), then restart it."""
    assert server.pid is not None
    if not kill:
        os.kill(server.pid, signal.SIGTERM)
        os.kill(server.pid, signal.SIGCONT)
    server.restart(kill=kill)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_ack_rides_out_a_broker_restart(server: NatsServer, kill: bool) -> None:
    """Acks are in flight while the broker is frozen (SIGSTOP), then stopped and restarted:
    their +ACKs die with the connection or land while their confirmations do; more acks are
    made while it restarts. After a clean stop every ack returns. After ``kill -9`` the server
    may restore its consumer from before some deliveries and ignore their +ACKs: each ack then
    returns or raises Timeout with its message unsettled, and only such messages come again."""
    n = 40
    address = f"acks-restart-{'kill' if kill else 'term'}"
    c = server.credentials
    async with mailslot.connect(server.url, user=c.user, password=c.password, name="acker") as ms:
        mb = await ms.open(address, ttl=120, ack_wait=2)
        mb.failover_timeout = 10
        for i in range(n):
            await ms.send(address, i)
        msgs = await _receive_all(mb, n)
        acks = _Acks()
        for i in range(5):  # confirmed before anything happens
            await acks.ack(i, msgs[i])

        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)  # the +ACKs below reach its socket, not the server
        frozen = [asyncio.ensure_future(acks.ack(i, msgs[i])) for i in range(5, 20)]
        await asyncio.sleep(0.3)
        restart = asyncio.ensure_future(asyncio.to_thread(_freeze_then_restart, server, kill=kill))
        during: list[asyncio.Future[None]] = []
        for i in range(20, n):  # while it restarts, and just after
            during.append(asyncio.ensure_future(acks.ack(i, msgs[i])))
            await asyncio.sleep(0.05)
        await restart
        await asyncio.wait_for(asyncio.gather(*frozen, *during), 30)
        assert ms.reconnects >= 1
        assert len(acks.confirmed) + len(acks.raised) == n
        if not kill:
            assert not acks.raised, acks.raised
        for i, exc in acks.raised.items():
            assert isinstance(exc, mailslot.Timeout), f"message {i}: {exc!r}"
        print(f"\n{len(acks.confirmed)} acks confirmed, {len(acks.raised)} raised")
        # What comes again is only what no ack confirmed; it is acked now.
        while True:
            try:
                m = await mb.receive(timeout=3)  # beyond the ack wait
            except mailslot.Timeout:
                break
            assert m.json() not in acks.confirmed, f"message {m.json()} came again after its ack"
            await m.ack()
        await _nothing_comes_again(ms, mb, address)


async def test_acks_ride_out_a_consumer_and_stream_leader_kill(
    serving_cluster: NatsCluster, tmp_path
) -> None:
    """Acks go out one every 20 ms; the node leading both the mail stream and the mailbox's
    consumer is killed after a third of them (the receiver is connected to another node, so
    its acks meet no responders, then a new leader). Every ack returns (or raises typed and
    unsettled, and a second ack works); nothing is stored afterwards, nothing comes again."""
    n = 60
    cluster = serving_cluster
    creds = cluster.credentials.write(tmp_path / "c.json")
    address = "acks-kill"
    async with mailslot.connect(cluster.urls, credentials=creds, settings=R3, name="probe") as admin:
        leader = (await admin.js.stream_info(p.MAIL_STREAM)).cluster.leader
    victim = cluster.node(leader)
    others = [x.url for x in cluster.nodes if x is not victim]
    async with mailslot.connect(others, credentials=creds, settings=R3, name="acker") as ms:
        mb = await ms.open(address, ttl=120)
        for i in range(n):
            await ms.send(address, i)
        msgs = await _receive_all(mb, n)
        await move_consumer_leader(ms, p.consumer_name(address, p.Priority.NORMAL), leader)

        acks = _Acks()
        pending: list[asyncio.Future[None]] = []
        killed = 0.0
        for i in range(n):
            if i == n // 3:
                await asyncio.to_thread(victim.kill)
                killed = time.monotonic()
            pending.append(asyncio.ensure_future(acks.ack(i, msgs[i])))
            await asyncio.sleep(0.02)
        await asyncio.wait_for(asyncio.gather(*pending), 60)
        assert ms.disconnects == 0  # the acks rode out the election, not a reconnect
        rode_out = [i for i, (t, took) in acks.confirmed.items() if t >= killed and took > 0.5]
        assert rode_out, "no ack met the election: the test did not test anything"
        assert not acks.raised, acks.raised  # the election took less than failover_timeout
        slowest = max(took for _, took in acks.confirmed.values())
        print(
            f"\n{len(rode_out)} acks rode out the election (slowest {slowest:.1f} s), "
            f"{len(acks.raised)} raised"
        )
        await acks.settle_the_rest(msgs)
        await _nothing_comes_again(ms, mb, address)
