"""Mailslot on a 3-node JetStream cluster: replicas=3 streams survive a SIGKILL of the mail
stream's leader in the middle of traffic.

Checked: every message whose ``send`` returned is delivered; none is delivered again once its
``ack`` returned; sending resumes within 15 s; the restarted node catches up; the receiving
loop raises nothing; mail queued before a kill comes out in strict priority order.

An ``ack`` in flight when the node the receiver is connected to dies may have landed although
it raised (its confirmation died with the connection): such a message never comes again, and
that is not a loss. So "delivered" is what counts for loss; that nothing was left unacked is
checked on the server at the end (the stream holds none of the mailbox's mail), and every
message without a confirmed ack must be one whose ack raised.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter

import mailslot
import pytest
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster, start_node_server
from nats.js.errors import NotFoundError

from .measure_failover import move_consumer_leader, wait_until_healthy

N = 2000
KILL_AFTER = 400
R3 = p.StreamSettings(replicas=3)


@pytest.fixture
def cluster(serving_cluster: NatsCluster) -> NatsCluster:
    return serving_cluster


async def _mail_left(ms: mailslot.Mailslot, address: str) -> int:
    info = await ms.js.stream_info(p.MAIL_STREAM, subjects_filter=p.mail_subject_all_priorities(address))
    return sum((info.state.subjects or {}).values())


async def _mail_left_settled(ms: mailslot.Mailslot, address: str, *, timeout: float = 10.0) -> int:
    """What is left once the last acks have reached the stream: right after a kill, its new
    leader may answer a moment before it applied the removal of the last acked message."""
    deadline = time.monotonic() + timeout
    left = await _mail_left(ms, address)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        left = await _mail_left(ms, address)
    return left


async def _has_consumer(ms: mailslot.Mailslot, name: str) -> bool:
    try:
        await ms.js.consumer_info(p.MAIL_STREAM, name)
    except NotFoundError:
        return False
    return True


class _Ledger:
    """What the producer and the receiver saw."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.priority: dict[int, p.Priority] = {}
        self.send_errors: list[str] = []
        self.delivered: Counter[int] = Counter()
        self.order: list[int] = []  # every delivery, in order
        self.received_at: list[float] = []
        self.acked: set[int] = set()  # confirmed acks
        self.after_ack: list[int] = []  # delivered again after a confirmed ack: must stay empty
        self.unconfirmed: dict[int, str] = {}  # acks that raised

    def deliver(self, i: int) -> None:
        self.delivered[i] += 1
        self.order.append(i)
        self.received_at.append(time.monotonic())
        if i in self.acked:
            self.after_ack.append(i)

    async def ack(self, m: mailslot.Message, i: int) -> None:
        try:
            await m.ack()
            self.acked.add(i)
        except mailslot.MailslotError as exc:  # unconfirmed: it may come again, or have landed
            self.unconfirmed[i] = f"{type(exc).__name__}: {exc}"

    def all_delivered(self) -> bool:
        return all(self.delivered[i] for i in self.sent)

    def check(self, n: int) -> None:
        assert not self.send_errors, self.send_errors[:5]
        assert len(self.sent) == n
        lost = [i for i in self.sent if not self.delivered[i]]
        assert not lost, f"{len(lost)} sent messages never delivered, e.g. {lost[:5]}"
        assert self.after_ack == [], f"delivered again after a confirmed ack: {self.after_ack[:5]}"
        doubtful = set(self.sent) - self.acked
        assert doubtful <= set(self.unconfirmed), sorted(doubtful - set(self.unconfirmed))[:5]


async def test_cluster_starts_with_replicated_streams(cluster, tmp_path):
    creds = cluster.credentials.write(tmp_path / "c.json")
    async with mailslot.connect(cluster.urls, credentials=creds, settings=R3) as ms:
        for name in (p.MAIL_STREAM, p.TOPICS_STREAM, p.DLQ_STREAM, f"KV_{p.AGENTS_BUCKET}"):
            si = await ms.js.stream_info(name)
            assert si.config.num_replicas == 3, name
            assert si.cluster is not None and len(si.cluster.replicas or []) == 2


async def test_leader_kill_loses_no_acknowledged_mail(cluster, tmp_path):
    creds = cluster.credentials.write(tmp_path / "c.json")
    sender = await mailslot.connect(
        cluster.urls, credentials=creds, settings=R3, name="sender", publish_retry_for=30
    )
    receiver = await mailslot.connect(cluster.urls, credentials=creds, settings=R3, name="recv")
    try:
        await _one_kill(cluster, sender, receiver)
    finally:
        await sender.close()
        await receiver.close()


async def _one_kill(cluster: NatsCluster, sender: mailslot.Mailslot, receiver: mailslot.Mailslot) -> None:
    mb = await receiver.open("sink", ttl=120, ack_wait=5)
    led = _Ledger()
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
                    led.sent[i] = time.monotonic()
                    if len(led.sent) >= KILL_AFTER:
                        reached.set()
                except mailslot.MailslotError as exc:
                    led.send_errors.append(f"{i}: {type(exc).__name__}: {exc}")
        finally:
            producing = False

    async def consume() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not producing and set(led.sent) <= led.acked:
                return
            try:
                m = await mb.receive(timeout=2)
            except mailslot.Timeout:
                # Idle: done once everything was delivered and nothing is left on the server
                # (an ack that raised may have landed).
                if not producing and led.all_delivered() and await _mail_left(receiver, "sink") == 0:
                    return
                continue
            except mailslot.MailslotError as exc:
                receive_errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.2)
                continue
            i = m.json()
            led.deliver(i)
            if i not in led.acked:
                await led.ack(m, i)

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

    # Every send that returned was delivered; nothing came back after its ack; nothing is
    # left unacked on the server; the receive loop raised nothing.
    led.check(N)
    assert await _mail_left_settled(receiver, "sink") == 0
    assert receive_errors == []
    # Sending resumed within 15 s of the kill.
    times = sorted(led.sent.values())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 15.0, f"longest pause in sending {max(gaps):.1f} s"

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
        f"\nfailover: {len(led.sent)} sent, {len(led.acked)} acked, longest send pause "
        f"{max(gaps):.1f} s, total {time.monotonic() - started:.1f} s, acks that raised "
        f"{len(led.unconfirmed)} ({len(set(led.unconfirmed) - led.acked)} of them had landed)"
    )
    await mb.close()


# -- 3,000 messages of mixed priority, two successive leader kills ------------------------------

TOTAL = 3000
BURST = 200  # queued while the receiver is held, just before each kill
PHASES = (1000, BURST, 800, BURST, 800)  # sent freely, burst, kill 1, freely, burst, kill 2, freely


async def test_two_leader_kills_lose_nothing_and_keep_strict_priority(cluster, tmp_path):
    creds = cluster.credentials.write(tmp_path / "c.json")
    sender = await mailslot.connect(
        cluster.urls, credentials=creds, settings=R3, name="sender2", publish_retry_for=30
    )
    receiver = await mailslot.connect(cluster.urls, credentials=creds, settings=R3, name="recv2")
    try:
        await _two_kills(cluster, sender, receiver)
    finally:
        await sender.close()
        await receiver.close()


async def _two_kills(cluster: NatsCluster, sender: mailslot.Mailslot, receiver: mailslot.Mailslot) -> None:
    mb = await receiver.open("sink2", ttl=120, ack_wait=10)
    rng = random.Random(7)
    led = _Ledger()
    held = asyncio.Event()  # the receiver waits between two messages while this is clear
    parked = asyncio.Event()
    held.set()
    loop_errors: list[BaseException] = []

    async def consume() -> None:
        try:
            async for m in mb:  # the README's loop: it must never raise
                i = m.json()
                led.deliver(i)
                if i not in led.acked:
                    await led.ack(m, i)
                if not held.is_set():
                    parked.set()
                    await held.wait()
                    parked.clear()
        except BaseException as exc:
            loop_errors.append(exc)
            raise

    async def send(count: int) -> None:
        for _ in range(count):
            i = len(led.sent) + len(led.send_errors)
            prio = rng.choice(p.PRIORITIES)
            try:
                await sender.send("sink2", i, priority=prio)
                led.sent[i] = time.monotonic()
                led.priority[i] = prio
            except mailslot.MailslotError as exc:
                led.send_errors.append(f"{i}: {type(exc).__name__}: {exc}")

    async def kill_with_mail_queued() -> tuple[float, set[int], int, NatsServer]:
        """Hold the receiver, queue a burst, kill the node leading the stream and (moved
        there first, where they exist) the mailbox's critical and urgent consumers, let the
        receiver go."""
        held.clear()
        await send(BURST)
        await asyncio.wait_for(parked.wait(), 30)
        leader = (await receiver.js.stream_info(p.MAIL_STREAM)).cluster.leader
        for prio in (p.Priority.CRITICAL, p.Priority.URGENT):
            # A level the loop has not reached yet (busy with mail above it) has no consumer
            # (lazy levels): it is created after the kill, which is a failover path too.
            if await _has_consumer(receiver, p.consumer_name("sink2", prio)):
                await move_consumer_leader(receiver, p.consumer_name("sink2", prio), leader)
        await asyncio.sleep(0.5)  # everything queued is stored on every replica
        queued = set(led.sent) - set(led.delivered)
        delivered_before = len(led.order)
        node = cluster.node(leader)
        await asyncio.to_thread(node.kill)
        killed = time.monotonic()
        held.set()
        return killed, queued, delivered_before, node

    consumer = asyncio.ensure_future(consume())
    kills: list[tuple[float, set[int], int, NatsServer]] = []
    try:
        await send(PHASES[0])
        kills.append(await kill_with_mail_queued())
        await send(PHASES[2])
        await asyncio.to_thread(start_node_server, kills[0][3])
        await wait_until_healthy(receiver)
        kills.append(await kill_with_mail_queued())
        await send(PHASES[4])
        deadline = time.monotonic() + 60
        while not (led.all_delivered() and await _mail_left(receiver, "sink2") == 0):
            assert not consumer.done(), loop_errors
            assert time.monotonic() < deadline, f"{sum(not led.delivered[i] for i in led.sent)} undelivered"
            await asyncio.sleep(0.25)
    finally:
        await mb.close()  # ends the async for
        await asyncio.wait_for(consumer, 10)
    assert loop_errors == []
    led.check(TOTAL)

    # Strict priority among mail queued before each kill: their first deliveries after the
    # kill come critical first, low last (mail sent after the kill may come in between).
    for k, (killed, queued, delivered_before, _) in enumerate(kills):
        seen: set[int] = set()
        levels = []
        for i in led.order[delivered_before:]:
            if i in queued and i not in seen:
                seen.add(i)
                levels.append(int(led.priority[i]))
        assert seen == queued
        inversions = [(a, b) for a, b in itertools.pairwise(levels) if b < a]
        assert not inversions, f"kill {k + 1}: priorities out of order, e.g. {inversions[:5]}"
        first = min(t for t in led.received_at if t >= killed)
        print(f"\nkill {k + 1}: {len(queued)} queued, first delivery {first - killed:.1f} s after it")
    times = sorted(led.sent.values())
    print(
        f"two kills: {len(led.sent)} sent, longest send pause "
        f"{max(b - a for a, b in itertools.pairwise(times)):.1f} s, acks that raised "
        f"{len(led.unconfirmed)}"
    )
