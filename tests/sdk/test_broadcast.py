"""Broadcast: wildcards, queue groups, durable vs ephemeral, replay and the history->live switch."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone

import mailslot
import pytest
from mailslot import Broadcast
from testsupport import unique


async def take(sub: mailslot.TopicSubscription, n: int) -> list[Broadcast]:
    """Exactly ``n`` events (generous timeout), then nothing more."""
    got = [await sub.next(timeout=10) for _ in range(n)]
    extra = await drain(sub)
    assert extra == [], extra
    return got


async def drain(sub: mailslot.TopicSubscription, *, quiet: float = 0.5) -> list[Broadcast]:
    """Everything that arrives until ``quiet`` seconds pass with nothing new."""
    out = []
    while True:
        try:
            out.append(await sub.next(timeout=quiet))
        except mailslot.Timeout:
            return out


async def test_wildcards_and_payload_accessors(shared_ms: mailslot.Mailslot) -> None:
    t = unique("topics")  # a topic prefix of its own on the shared server
    star = await shared_ms.subscribe(f"{t}.build.*")
    tail = await shared_ms.subscribe(f"{t}.build.>")
    exact = await shared_ms.subscribe(f"{t}.build.done")
    try:
        await shared_ms.publish(f"{t}.build.done", {"ok": True}, headers={"x-run": "7"})
        await shared_ms.publish(f"{t}.build.step.lint", "linted")
        await shared_ms.publish(f"{t}.deploy.done", b"\x00")
        ev = await star.next(timeout=5)
        assert ev.topic == f"{t}.build.done" and ev.json() == {"ok": True}
        assert ev.user_headers == {"x-run": "7"} and ev.sender == "tester"
        assert not ev.durable and ev.seq is None and not ev.replayed
        got = [(e.topic, e.data) for e in [await tail.next(timeout=5), await tail.next(timeout=5)]]
        assert got == [(f"{t}.build.done", b'{"ok":true}'), (f"{t}.build.step.lint", b"linted")]
        assert (await exact.next(timeout=5)).topic == f"{t}.build.done"
        assert await drain(star) == [] and await drain(exact) == [] and await drain(tail) == []
    finally:
        for s in (star, tail, exact):
            await s.close()


async def test_queue_group_shares_the_load(shared_ms: mailslot.Mailslot) -> None:
    t = unique("topics")  # a topic prefix of its own on the shared server
    a = await shared_ms.subscribe(f"{t}.jobs.>", queue="workers")
    b = await shared_ms.subscribe(f"{t}.jobs.>", queue="workers")
    solo = await shared_ms.subscribe(f"{t}.jobs.>")
    try:
        for i in range(200):
            await shared_ms.publish(f"{t}.jobs.new", i)
        got_solo = [(await solo.next(timeout=10)).json() for _ in range(200)]
        got_a = [e.json() for e in await drain(a)]
        got_b = [e.json() for e in await drain(b)]
        assert got_solo == list(range(200))
        assert sorted(got_a + got_b) == list(range(200))  # each exactly once across the group
        assert got_a and got_b
    finally:
        for s in (a, b, solo):
            await s.close()


async def test_durable_reaches_live_and_is_replayable_ephemeral_is_not(shared_ms: mailslot.Mailslot) -> None:
    t = unique("topics")  # a topic prefix of its own on the shared server
    async with shared_ms.subscribe(f"{t}.news.>") as live:
        p1 = await shared_ms.publish(f"{t}.news.a", "kept", durable=True)
        p2 = await shared_ms.publish(f"{t}.news.a", "gone")
        assert p1.durable and p1.seq and not p2.durable and p2.seq is None
        e1, e2 = await live.next(timeout=5), await live.next(timeout=5)
        assert (e1.text(), e1.durable, e1.seq) == ("kept", True, p1.seq)
        assert (e2.text(), e2.durable) == ("gone", False)
    await shared_ms.publish(f"{t}.news.a", "nobody listens")  # dropped: no subscriber, not stored
    async with shared_ms.subscribe(f"{t}.news.>", replay="all") as late:
        got = await take(late, 1)
    assert [(e.text(), e.replayed) for e in got] == [("kept", True)]


async def test_replay_last_and_since(shared_ms: mailslot.Mailslot) -> None:
    t = unique("topics")  # a topic prefix of its own on the shared server
    for i in range(3):
        await shared_ms.publish(f"{t}.metrics.cpu", i, durable=True)
        await shared_ms.publish(f"{t}.metrics.mem", 10 + i, durable=True)
    await asyncio.sleep(0.05)
    cut = datetime.now(timezone.utc)
    await asyncio.sleep(0.05)
    await shared_ms.publish(f"{t}.metrics.cpu", 3, durable=True)
    async with shared_ms.subscribe(f"{t}.metrics.*", replay="last") as last:
        got = {e.topic: e.json() for e in await take(last, 2)}
    assert got == {f"{t}.metrics.cpu": 3, f"{t}.metrics.mem": 12}
    async with shared_ms.subscribe(f"{t}.metrics.*", replay=cut) as since:
        assert [e.json() for e in await take(since, 1)] == [3]
    async with shared_ms.subscribe(f"{t}.metrics.mem", replay="all") as everything:
        assert [e.json() for e in await take(everything, 3)] == [10, 11, 12]
    async with shared_ms.subscribe(f"{t}.nothing.here", replay="all") as empty:
        await shared_ms.publish(f"{t}.nothing.here", "live", durable=True)
        assert [e.text() for e in await take(empty, 1)] == ["live"]


async def test_history_to_live_switch_has_no_gap_and_no_duplicate(ms: mailslot.Mailslot) -> None:
    n = 500

    async def producer() -> None:
        for i in range(n):
            await ms.publish("seq.counter", i, durable=True)

    for i in range(50):  # some history before anyone subscribes
        await ms.publish("seq.warmup", i, durable=True)
    task = asyncio.create_task(producer())
    while True:  # subscribe while the producer is mid-way
        info = await ms.js.stream_info("MAILSLOT_TOPICS")
        if info.state.last_seq >= 50 + 100:
            break
        await asyncio.sleep(0.01)
    sub = await ms.subscribe("seq.counter", replay="all")
    try:
        await task
        got = []
        while len(got) < n:
            got.append((await sub.next(timeout=15)).json())
        assert got == list(range(n))
        assert 0 < sub.replayed < n  # part came from history, the rest live
        print(f"replayed {sub.replayed}, live duplicates dropped {sub.skipped}")
        assert await drain(sub) == []
    finally:
        await sub.close()


async def test_bad_input(shared_ms: mailslot.Mailslot) -> None:
    with pytest.raises(mailslot.InvalidTopic):
        await shared_ms.publish("a.*", 1)
    with pytest.raises(mailslot.InvalidTopic):
        shared_ms.subscribe("a.>.b")
    with pytest.raises(mailslot.InvalidInput):
        shared_ms.subscribe("a", replay="first")  # type: ignore[arg-type]
    with pytest.raises(mailslot.InvalidInput):
        shared_ms.subscribe("a", replay="all", queue="q")
    with pytest.raises(mailslot.InvalidInput):
        await shared_ms.publish("a", 1, ttl=5)  # ttl needs durable=True
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.publish("a", 1, durable=True, ttl=0.5)


async def test_publish_checks_payload_and_size_as_send_does(shared_ms: mailslot.Mailslot) -> None:
    t = unique("topics")
    with pytest.raises(mailslot.PayloadTooLarge, match=f"broadcast on {t}.big is"):
        await shared_ms.publish(f"{t}.big", b"x" * shared_ms.max_payload)
    for payload in ({"x": math.nan}, "\ud800 lone surrogate", object()):
        with pytest.raises(mailslot.InvalidPayload):
            await shared_ms.publish(f"{t}.bad", payload, durable=True)
    with pytest.raises(mailslot.InvalidHeader, match="reserved"):
        await shared_ms.publish(f"{t}.bad", 1, headers={"Mailslot-From": "evil"})
    async with await shared_ms.subscribe(f"{t}.>", replay="all") as sub:
        assert await drain(sub, quiet=0.3) == []  # nothing was stored


async def test_async_for_ends_on_close(shared_ms: mailslot.Mailslot) -> None:
    t = unique("topics")  # a topic prefix of its own on the shared server
    sub = await shared_ms.subscribe(f"{t}.stop.>")
    await shared_ms.publish(f"{t}.stop.now", 1)
    seen = []
    async for ev in sub:
        seen.append(ev.json())
        await sub.close()
    assert seen == [1]


def test_sync_twin_publish_subscribe(shared_server) -> None:  # type: ignore[no-untyped-def]
    from mailslot import sync

    t = unique("topics")  # a topic prefix of its own on the shared server
    c = shared_server.credentials
    with sync.connect(shared_server.url, user=c.user, password=c.password, name="sync-pub") as ms:
        ms.publish(f"{t}.sync.t", "old", durable=True)
        with ms.subscribe(f"{t}.sync.>", replay="all") as sub:
            ms.publish(f"{t}.sync.t", "new")
            first, second = sub.next(timeout=5), next(iter(sub))
            assert (first.text(), first.replayed) == ("old", True)
            assert (second.text(), second.durable) == ("new", False)
            with pytest.raises(mailslot.Timeout):
                sub.next(timeout=0.3)
        assert list(sub) == []  # closed: iteration ends


async def test_closing_the_client_ends_iteration(server) -> None:  # type: ignore[no-untyped-def]
    c = server.credentials
    client = await mailslot.connect(server.url, user=c.user, password=c.password)
    sub = await client.subscribe("any.>")
    watch = await client.watch_agents()

    async def consume(it) -> list:  # type: ignore[no-untyped-def]
        return [x async for x in it]

    tasks = [asyncio.create_task(consume(sub)), asyncio.create_task(consume(watch))]
    await asyncio.sleep(0.1)
    await client.close()
    assert await asyncio.wait_for(asyncio.gather(*tasks), 10) == [[], []]
