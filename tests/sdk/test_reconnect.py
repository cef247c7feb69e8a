"""Clients ride out a broker restart, and fail fast and typed while it is down.

Real nats-server, restarted on the same port and store (``NatsServer.restart``) while a
connected client keeps working, with no reconnect code on the user's side. Run with ``-s``
to see the measured times.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import mailslot
import pytest
from mailslot import sync
from mailslot_broker import NatsServer
from testsupport import login as _creds
from testsupport import wait_for

PRIOS = ["critical", "urgent", "normal", "low"]


class _Ledger:
    """What a producer and a consumer saw: every send that returned, every delivery, every
    confirmed ack (a message whose ack was not confirmed may legitimately come again)."""

    def __init__(self) -> None:
        self.sent: dict[int, float] = {}
        self.send_errors: list[str] = []
        self.delivered: Counter[int] = Counter()
        self.acked: set[int] = set()
        self.after_ack: list[int] = []  # delivered again after a confirmed ack: must stay empty
        self.unconfirmed: list[str] = []
        self.recv_times: list[float] = []
        self.producing = True
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def sending(self, i: int) -> Iterator[None]:
        """Around the send of ``i``: a send that returned is timed, one that raised is noted
        and the producer goes on."""
        try:
            yield
        except mailslot.MailslotError as exc:
            self.send_errors.append(f"{i}: {type(exc).__name__}: {exc}")
        else:
            self.sent[i] = time.monotonic()

    @contextlib.contextmanager
    def acking(self, i: int) -> Iterator[None]:
        """Around the ack of ``i``: an ack that raised is not confirmed (``i`` may come again)."""
        try:
            yield
        except mailslot.MailslotError as exc:
            self.unconfirmed.append(f"{i}: {type(exc).__name__}")
        else:
            self.acked.add(i)

    def deliver(self, i: int) -> None:
        with self.lock:
            self.delivered[i] += 1
            self.recv_times.append(time.monotonic())
            if i in self.acked:
                self.after_ack.append(i)

    def accounted(self) -> bool:
        """Every sent message was delivered, and acked (or its ack is in doubt)."""
        with self.lock:
            return not self.producing and all(self.delivered[i] for i in self.sent)

    def report(self, label: str, restarted_at: float) -> tuple[float, float]:
        send_after = min(t for t in self.sent.values() if t >= restarted_at) - restarted_at
        recv_after = min(t for t in self.recv_times if t >= restarted_at) - restarted_at
        times = sorted(self.sent.values())
        pause = max(b - a for a, b in itertools.pairwise(times))
        print(
            f"\n[{label}] {len(self.sent)} sent, {sum(self.delivered.values())} deliveries, "
            f"{len(self.acked)} confirmed acks, {len(self.unconfirmed)} unconfirmed; "
            f"broker ready -> first send {send_after * 1000:.0f} ms, first receive "
            f"{recv_after * 1000:.0f} ms; longest pause in sending {pause:.2f} s"
        )
        return send_after, recv_after

    def check(self, n: int) -> None:
        assert not self.send_errors, self.send_errors[:5]
        assert sorted(self.sent) == list(range(n))
        lost = [i for i in self.sent if not self.delivered[i]]
        assert not lost, f"{len(lost)} sent messages never delivered, e.g. {lost[:5]}"
        assert self.after_ack == [], f"delivered again after a confirmed ack: {self.after_ack[:5]}"


# -- a producer and a consumer on one client, through a restart ------------------------------


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_traffic_rides_out_a_broker_restart(server: NatsServer, kill: bool) -> None:
    n = 2000
    url = server.url
    log = _Ledger()
    third = asyncio.Event()
    restarted_at = 0.0
    async with mailslot.connect(url, **_creds(server), name="stress") as ms:
        mb = await ms.open("stress", ack_wait=3)

        async def produce() -> None:
            try:
                for i in range(n):
                    with log.sending(i):
                        await ms.send("stress", i, priority=PRIOS[i % 4])
                    if len(log.sent) == n // 3:
                        third.set()
            finally:
                log.producing = False

        async def consume() -> None:
            async for m in mb:  # no timeout, no reconnect code: ends when the box is closed
                i = m.json()
                log.deliver(i)
                with log.acking(i):
                    await m.ack()

        async def restart() -> None:
            nonlocal restarted_at
            await third.wait()
            await asyncio.to_thread(server.restart, kill=kill)
            restarted_at = time.monotonic()

        async def finish() -> None:
            # Done once everything is delivered and nothing is left stored (an ack in doubt
            # either landed or its message comes back after the ack wait).
            while True:
                if log.accounted() and (await ms.inspect("stress").stats()).total == 0:
                    break
                await asyncio.sleep(0.25)
            await mb.close()

        await asyncio.wait_for(asyncio.gather(produce(), consume(), restart(), finish()), 120)
        assert ms.url == url and server.url == url
        assert ms.reconnects >= 1 and ms.connected
        send_after, recv_after = log.report("kill -9" if kill else "SIGTERM", restarted_at)
    log.check(n)
    assert send_after < 5.0 and recv_after < 5.0


def test_sync_twin_rides_out_a_broker_restart(server: NatsServer) -> None:
    n = 300
    url = server.url
    log = _Ledger()
    third = threading.Event()
    with sync.connect(url, **_creds(server), name="sync-stress") as ms:
        mb = ms.open("sync-stress", ack_wait=3)

        def produce() -> None:
            try:
                for i in range(n):
                    with log.sending(i):
                        ms.send("sync-stress", i, priority=PRIOS[i % 4])
                    if len(log.sent) == n // 3:
                        third.set()
            finally:
                log.producing = False

        def consume() -> None:
            for m in mb:
                i = m.json()
                log.deliver(i)
                with log.acking(i):
                    m.ack()

        threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
        for t in threads:
            t.start()
        assert third.wait(60)
        server.restart()
        restarted_at = time.monotonic()
        deadline = time.monotonic() + 90
        while not (log.accounted() and ms.inspect("sync-stress").stats().total == 0):
            assert time.monotonic() < deadline, "sync traffic did not complete"
            time.sleep(0.25)
        mb.close()
        for t in threads:
            t.join(30)
            assert not t.is_alive()
        assert ms.url == url and ms.connected
        send_after, recv_after = log.report("sync, SIGTERM", restarted_at)
    log.check(n)
    assert send_after < 5.0 and recv_after < 5.0


# -- recovery time -------------------------------------------------------------------------


async def test_recovery_time_over_five_restarts(server: NatsServer) -> None:
    async with mailslot.connect(server.url, **_creds(server)) as ms:
        mb = await ms.open("phoenix", ttl=3)  # renewed every second
        await ms.send("phoenix", "warm-up")
        await (await mb.receive(timeout=5)).ack()
        recoveries = []
        for k in range(5):
            await asyncio.to_thread(server.restart)
            ready = time.monotonic()
            await ms.send("phoenix", k)  # no retry loop here: the client waits for itself
            m = await mb.receive(timeout=10)
            recoveries.append(time.monotonic() - ready)
            assert m.json() == k
            await m.ack()
        renewals = mb._lease.renewals if mb._lease else 0
        await asyncio.sleep(1.5)
        assert mb._lease is not None and mb._lease.renewals > renewals, "the lease stopped renewing"
        assert ms.reconnects == 5
    med = statistics.median(recoveries)
    print(
        f"\nrecovery (broker ready -> send + receive done) over 5 restarts: median {med * 1000:.0f} ms, "
        f"all {[round(r * 1000) for r in recoveries]} ms"
    )
    assert max(recoveries) < 5.0


# -- with the broker down: fail fast and typed -------------------------------------------------


async def _timed(coro: Any) -> tuple[float, BaseException | None]:
    t = time.monotonic()
    try:
        await coro
    except BaseException as exc:  # the test inspects what came out
        return time.monotonic() - t, exc
    return time.monotonic() - t, None


async def test_broker_down_fails_fast_and_typed(server: NatsServer) -> None:
    ms = await mailslot.connect(server.url, **_creds(server))
    patient = await mailslot.connect(server.url, **_creds(server), receive_outage_timeout=2.0)
    try:
        mb = await ms.open("down-box")
        mb2 = await patient.open("down-box-2")
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(0.2)
        assert not ms.connected

        results: dict[str, tuple[float, BaseException | None]] = {}
        results["send"] = await _timed(ms.send("down-box", "x"))
        results["receive(timeout=3)"] = await _timed(mb.receive(timeout=3))
        results["receive() (receive_outage_timeout=2)"] = await _timed(mb2.receive())
        results["open"] = await _timed(ms.open("another"))
        results["publish"] = await _timed(ms.publish("news.x", "y"))
        results["send_many"] = await _timed(ms.send_many([{"to": "down-box", "payload": 1}]))
        print()
        for name, (dt, exc) in results.items():
            print(f"broker down: {name:40s} {dt:6.2f} s  {type(exc).__name__ if exc else 'ok'}")

        for name in ("send", "open", "publish", "send_many"):
            dt, exc = results[name]
            assert isinstance(exc, mailslot.Disconnected), (name, exc)
            assert 4.5 <= dt < 6.5, (name, dt)  # outage_timeout=5 s
        dt, exc = results["receive(timeout=3)"]
        assert isinstance(exc, mailslot.Disconnected) and 2.9 <= dt < 3.6, (dt, exc)
        dt, exc = results["receive() (receive_outage_timeout=2)"]
        assert isinstance(exc, mailslot.Disconnected) and 1.9 <= dt < 2.6, (dt, exc)
        assert isinstance(exc, mailslot.BrokerUnreachable)  # the documented parent

        # closing while down: no raw socket error, bounded
        dt, exc = await _timed(mb.close())
        assert exc is None and dt < 2.0, (dt, exc)
        dt, exc = await _timed(patient.close())
        assert exc is None and dt < 7.0, (dt, exc)
        print(f"broker down: {'close (client)':40s} {dt:6.2f} s")
    finally:
        dt, exc = await _timed(ms.close())
    assert exc is None and dt < 7.0, (dt, exc)


async def test_prefetched_mail_waits_while_down_if_a_level_above_it_rang(server: NatsServer) -> None:
    """Low mail prefetched before the broker went down is not handed out while it is down if
    critical mail rang meanwhile: strict priority asks the critical level first once the
    broker is back (seen on a cluster: buffered low mail handed out during the reconnect,
    before the critical burst queued at the killed node)."""
    async with mailslot.connect(server.url, **_creds(server), receive_outage_timeout=30) as ms:
        mb = await ms.open("buffered-low", prefetch=3)
        for i in range(3):
            await ms.send("buffered-low", f"l{i}", priority="low")
        first = await mb.receive(timeout=5)  # pulls all three, hands out one
        assert first.text() == "l0"
        await first.ack()
        await ms.send("buffered-low", "c", priority="critical")
        # Its bell says the critical level may hold mail (the receive loop's own state).
        await wait_for(lambda: mb._receiver.levels.maybe[mailslot.Priority.CRITICAL], timeout=5)
        await asyncio.to_thread(server.kill)
        await wait_for(lambda: not ms.connected, timeout=5)

        dt, exc = await _timed(mb.receive(timeout=1))
        assert dt < 2.0, dt
        assert isinstance(exc, mailslot.Disconnected), exc  # not l1: the critical level comes first

        await asyncio.to_thread(server.start)
        order: list[str] = []  # first deliveries (after a kill -9 an ack may go unconfirmed
        while len(order) < 3:  # and its message come again)
            m = await mb.receive(timeout=30)
            if m.text() not in order:
                order.append(m.text())
            with contextlib.suppress(mailslot.Timeout):
                await m.ack()
        assert order == ["c", "l1", "l2"]


async def test_prefetched_mail_is_handed_out_while_down_if_nothing_above_it_rang(
    server: NatsServer,
) -> None:
    """A level above the prefetched mail that was drained before the drop (still bound, so
    the drop flags it) does not hold the mail back: only what was known before the drop
    counts, and nothing rang there."""
    async with mailslot.connect(server.url, **_creds(server), receive_outage_timeout=30) as ms:
        mb = await ms.open("buffered-low-2", prefetch=3)
        await ms.send("buffered-low-2", "n", priority="normal")
        m = await mb.receive(timeout=5)
        assert m.text() == "n"
        await m.ack()  # normal drained, its consumer still bound
        for i in range(3):
            await ms.send("buffered-low-2", f"l{i}", priority="low")
        first = await mb.receive(timeout=5)
        assert first.text() == "l0"
        await first.ack()
        await asyncio.to_thread(server.kill)
        await wait_for(lambda: not ms.connected, timeout=5)
        got = await mb.receive(timeout=1)  # while down: mail already here is ours to hand out
        assert got.text() == "l1" and not ms.connected
        await asyncio.to_thread(server.start)
        # After a kill -9 the server may have lost this delivery's state: the ack is then
        # not confirmed and l1 comes again, which is not a loss.
        with contextlib.suppress(mailslot.Timeout):
            await got.ack()
        rest: list[str] = []
        while "l2" not in rest:
            m = await mb.receive(timeout=30)
            rest.append(m.text())
            with contextlib.suppress(mailslot.Timeout):  # likewise
                await m.ack()
        assert set(rest) <= {"l1", "l2"}, rest


async def test_leaving_async_with_while_down_is_clean(server: NatsServer) -> None:
    async with mailslot.connect(server.url, **_creds(server), outage_timeout=1.0) as ms:
        mb = await ms.open("leaving")
        await ms.send("leaving", "unread")
        await ms.send("leaving", "prefetched")
        assert (await mb.receive(timeout=5)).text() == "unread"  # held, never acked
        sub = await ms.subscribe("leaving.>")
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(0.2)
        with pytest.raises(mailslot.Disconnected):
            await ms.send("leaving", "x")
        t = time.monotonic()
    assert time.monotonic() - t < 7.0
    assert sub.closed and mb.closed and ms.closed


def test_sync_twin_fails_fast_and_typed(server: NatsServer) -> None:
    ms = sync.connect(server.url, **_creds(server), outage_timeout=1.0)
    mb = ms.open("sync-down")
    server.stop()
    t = time.monotonic()
    with pytest.raises(mailslot.Disconnected):
        ms.send("sync-down", "x")
    assert time.monotonic() - t < 2.5
    t = time.monotonic()
    with pytest.raises(mailslot.Disconnected):
        mb.receive(timeout=1)
    assert time.monotonic() - t < 2.0
    t = time.monotonic()
    ms.close()
    assert time.monotonic() - t < 7.0
