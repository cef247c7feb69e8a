"""Consumers exist only for levels that may hold mail (issue 16, "Scale").

An open mailbox creates a level's consumer when the level holds mail at open, or when its bell
rings; the server removes a drained level's consumer by its inactivity threshold (never one
with deliveries awaiting an ack). Every test runs against a real nats-server.
"""

from __future__ import annotations

import asyncio
import time

import mailslot
import pytest
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from testsupport import unique, wait_for


async def _levels_with_consumers(ms: mailslot.Mailslot, address: str) -> set[p.Priority]:
    out: set[p.Priority] = set()
    for prio in p.PRIORITIES:
        try:
            await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))
        except jserr.NotFoundError:
            continue
        out.add(prio)
    return out


async def test_an_idle_open_mailbox_without_mail_has_no_consumers(shared_ms: mailslot.Mailslot) -> None:
    address = unique("idle-none")
    mb = await shared_ms.open(address)
    try:
        with pytest.raises(mailslot.Timeout):
            await mb.receive(timeout=1.0)  # idle, blocked in receive
        assert await _levels_with_consumers(shared_ms, address) == set()
        assert mb.pull_requests == 0  # nothing to pull, nothing waiting at the server
    finally:
        await mb.close()


async def test_open_binds_only_the_levels_holding_mail(shared_ms: mailslot.Mailslot) -> None:
    address = unique("held")
    for i in range(5):
        await shared_ms.send(address, f"n{i}", priority="normal")
    await shared_ms.send(address, "u", priority="urgent")
    mb = await shared_ms.open(address)
    try:
        assert await _levels_with_consumers(shared_ms, address) == {p.Priority.URGENT, p.Priority.NORMAL}
        first = await mb.receive(timeout=5)  # strict priority: the urgent one first
        assert first.text() == "u"
        await first.ack()
        texts = []
        for _ in range(5):
            m = await mb.receive(timeout=5)
            texts.append(m.text())
            await m.ack()
        assert texts == [f"n{i}" for i in range(5)]
    finally:
        await mb.close()


async def test_mail_at_a_level_creates_its_consumer_and_is_received_promptly(
    shared_ms: mailslot.Mailslot,
) -> None:
    address = unique("bell-binds")
    mb = await shared_ms.open(address)
    try:
        waiter = asyncio.ensure_future(mb.receive(timeout=10))
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        await shared_ms.send(address, "first urgent", priority="urgent")
        m = await waiter
        assert m.text() == "first urgent"
        assert time.monotonic() - t0 < 1.0  # woken by the bell, not by a heartbeat
        await m.ack()
        assert await _levels_with_consumers(shared_ms, address) == {p.Priority.URGENT}
        # A level bound later still yields to a higher one: strict priority holds.
        await shared_ms.send(address, "low", priority="low")
        await shared_ms.send(address, "critical", priority="critical")
        await asyncio.sleep(0.2)
        got = [await mb.receive(timeout=5) for _ in range(2)]
        assert [g.text() for g in got] == ["critical", "low"]
        for g in got:
            await g.ack()
    finally:
        await mb.close()


async def test_a_drained_levels_consumer_goes_away_and_comes_back_on_its_bell(
    shared_ms: mailslot.Mailslot,
) -> None:
    address = unique("drained")
    mb = await shared_ms.open(address, heartbeat=1)
    receiving: asyncio.Future[mailslot.Message] | None = None
    try:
        await shared_ms.send(address, "one", priority="normal")
        await (await mb.receive(timeout=5)).ack()
        assert await _levels_with_consumers(shared_ms, address) == {p.Priority.NORMAL}
        receiving = asyncio.ensure_future(mb.receive(timeout=30))  # idle receiver
        # Let go after a heartbeat drained; the server removes it 3 heartbeats after the
        # last waiting pull expired.
        await wait_for(lambda: _gone(shared_ms, address), timeout=15, interval=0.5)
        assert not receiving.done()
        t0 = time.monotonic()
        await shared_ms.send(address, "two", priority="normal")
        m = await receiving
        assert m.text() == "two" and m.delivery_count == 1
        assert time.monotonic() - t0 < 1.0
        await m.ack()
    finally:
        if receiving is not None and not receiving.done():
            receiving.cancel()
        await mb.close()


async def _gone(ms: mailslot.Mailslot, address: str) -> bool:
    return await _levels_with_consumers(ms, address) == set()


async def test_a_delivery_awaiting_its_ack_keeps_its_consumer(shared_ms: mailslot.Mailslot) -> None:
    """The server keeps a consumer with acks pending past its inactivity threshold, so a
    message handed out and not acked is redelivered with its count (never from 1 again)."""
    address = unique("held-out")
    mb = await shared_ms.open(address, heartbeat=1, ack_wait=30)
    try:
        await shared_ms.send(address, "slow work", priority="normal")
        m = await mb.receive(timeout=5)
        assert m.delivery_count == 1
        await asyncio.sleep(5.0)  # > 3 x heartbeat without a pull: the threshold passed
        assert await _levels_with_consumers(shared_ms, address) == {p.Priority.NORMAL}
        with pytest.raises(mailslot.Timeout):
            await mb.receive(timeout=2.5)  # still ours: nothing else to hand out
        assert await _levels_with_consumers(shared_ms, address) == {p.Priority.NORMAL}
        await m.nak()
        again = await mb.receive(timeout=5)
        assert again.text() == "slow work" and again.delivery_count == 2
        await again.ack()
    finally:
        await mb.close()


async def test_competing_replicas_share_lazily_created_consumers(shared_server) -> None:
    c = shared_server.credentials
    address = unique("replicas")
    one = await mailslot.connect(shared_server.url, user=c.user, password=c.password, name="r1")
    two = await mailslot.connect(shared_server.url, user=c.user, password=c.password, name="r2")
    a = await one.open(address)
    b = await two.open(address)
    seen: list[str] = []

    async def work(mb: mailslot.Mailbox) -> None:
        while True:
            try:
                m = await mb.receive(timeout=2.0)
            except mailslot.Timeout:
                return
            seen.append(m.text())
            await m.ack()

    try:
        workers = [asyncio.ensure_future(work(a)), asyncio.ensure_future(work(b))]
        await asyncio.sleep(0.2)
        sent = [f"m{i}" for i in range(40)]
        for i, text in enumerate(sent):
            await one.send(address, text, priority=("urgent", "normal", "low")[i % 3])
        await asyncio.gather(*workers)
        assert sorted(seen) == sorted(sent)  # every one, none twice
    finally:
        await a.close()
        await b.close()
        await one.close()
        await two.close()


async def test_bells_are_read_by_subject_alone_and_forgotten_on_close(shared_ms: mailslot.Mailslot) -> None:
    """A bell carries every header of the mail it rings for; the mailbox reads only its
    subject, so nats-py does not parse them (natscompat.deliver_subjects_only)."""
    from mailslot_broker import natscompat

    address = unique("bell-subject")
    mb = await shared_ms.open(address)
    nc = shared_ms.nc
    bells = p.bell_subject_all_priorities(address)
    (sub,) = [s for s in mb._subs if s.subject == bells]
    try:
        assert natscompat.subject_only_callbacks(nc)[sub._id] == mb._receiver.bell
        waiting = asyncio.create_task(mb.receive(timeout=20))
        await asyncio.sleep(0.3)  # blocked, nothing to pull: only the bell can wake it
        sent_at = time.monotonic()
        await shared_ms.send(address, "rung", priority="urgent", headers={"X-Many": "y" * 200})
        m = await waiting
        assert m.text() == "rung" and time.monotonic() - sent_at < 5
        await m.ack()
    finally:
        await mb.close()
    assert sub._id not in natscompat.subject_only_callbacks(nc)
