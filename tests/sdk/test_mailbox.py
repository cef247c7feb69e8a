"""Priority mailboxes on a real nats-server: order, retries, TTL, delay, dedupe, leases."""

import asyncio
import random
import time

import mailslot
import pytest
from mailslot import Priority
from mailslot_broker import protocol as p
from pydantic import BaseModel
from testsupport import unique


class FixBug(BaseModel):
    issue: int


async def test_typed_payloads_and_metadata(shared_ms):
    coder = unique("coder")
    r = await shared_ms.send(
        coder,
        FixBug(issue=7),
        priority="urgent",
        ttl=600,
        reply_to="planner",
        correlation_id="c-1",
        thread_id="t-1",
        headers={"X-Trace": "abc"},
    )
    mb = await shared_ms.open(coder)
    m = await mb.receive(timeout=5)
    assert m.id == r.id and m.seq == r.seq
    assert m.model(FixBug) == FixBug(issue=7)
    assert m.json() == {"issue": 7}
    assert m.content_type == "application/json"
    assert (m.sender, m.reply_to, m.correlation_id, m.thread_id) == ("tester", "planner", "c-1", "t-1")
    assert m.priority is Priority.URGENT and m.ttl == 600 and m.delivery_count == 1
    assert m.sent_at is not None and m.user_headers == {"X-Trace": "abc"}
    await m.ack()
    await shared_ms.send(coder, "plain")
    await shared_ms.send(coder, b"\x00raw")
    a, b = await mb.receive(timeout=5), await mb.receive(timeout=5)
    assert (a.text(), a.content_type.startswith("text/plain")) == ("plain", True)
    assert (b.data, b.content_type) == (b"\x00raw", "application/octet-stream")
    await a.ack()
    await b.ack()


async def test_strict_priority_fifo_within_level(shared_ms):
    prio = unique("prio")
    rng = random.Random(7)
    sent = [(rng.choice(list(Priority)), i) for i in range(1000)]
    await shared_ms.send_many([{"to": prio, "payload": i, "priority": pr} for pr, i in sent])
    mb = await shared_ms.open(prio)
    got = []
    while len(got) < len(sent):
        m = await mb.receive(timeout=10)
        got.append((m.priority, m.json()))
        await m.ack()
    assert got == sorted(sent)


async def test_urgent_behind_ten_thousand_normal(shared_ms):
    busy = unique("busy")
    await shared_ms.send_many([{"to": busy, "payload": i} for i in range(10_000)])
    await shared_ms.send(busy, "jump the queue", priority="urgent")
    mb = await shared_ms.open(busy, prefetch=50)
    first = await mb.receive(timeout=10)
    assert first.text() == "jump the queue"
    await first.ack()
    # and an urgent message arriving while normals are being consumed overtakes the buffer
    batch = [await mb.receive(timeout=10) for _ in range(3)]
    await shared_ms.send(busy, "again", priority="critical")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if mb._receiver.levels.maybe[Priority.CRITICAL]:
            break
    nxt = await mb.receive(timeout=10)
    assert nxt.text() == "again"
    for m in [*batch, nxt]:
        await m.ack()


async def test_receive_batch_and_iteration(shared_ms):
    bulk = unique("bulk")
    await shared_ms.send_many(
        [{"to": bulk, "payload": i, "priority": "low" if i % 2 else "normal"} for i in range(20)]
    )
    mb = await shared_ms.open(bulk)
    batch = await mb.receive_batch(max=15, timeout=5)
    assert 1 <= len(batch) <= 15
    assert [m.priority for m in batch] == sorted(m.priority for m in batch)
    await asyncio.gather(*(m.ack() for m in batch))
    seen = len(batch)
    async for m in mb:
        await m.ack()
        seen += 1
        if seen == 20:
            break
    assert await mb.receive_batch(max=5, timeout=0.3) == []


async def test_receive_timeout(shared_ms):
    quiet = unique("quiet")
    mb = await shared_ms.open(quiet)
    t0 = time.monotonic()
    with pytest.raises(mailslot.Timeout):
        await mb.receive(timeout=0.5)
    assert 0.4 < time.monotonic() - t0 < 3


async def test_wakes_on_new_mail_without_polling(shared_ms):
    sleeper = unique("sleeper")
    mb = await shared_ms.open(sleeper)
    task = asyncio.create_task(mb.receive(timeout=30))
    await asyncio.sleep(0.5)
    before = mb.pull_requests
    t0 = time.monotonic()
    await shared_ms.send(sleeper, "wake up")
    m = await task
    assert m.text() == "wake up" and time.monotonic() - t0 < 2
    assert mb.pull_requests - before <= 2
    await m.ack()


async def test_idle_receiver_sends_no_jetstream_requests(ms):
    mb = await ms.open("idle", ttl=60)
    task = asyncio.create_task(mb.receive())
    await asyncio.sleep(1.0)
    before = (await ms.js.account_info()).api.total
    await asyncio.sleep(5.0)
    after = (await ms.js.account_info()).api.total
    assert after - before == 1  # the second account_info call itself
    assert not task.done()
    await mb.close()
    with pytest.raises(mailslot.MailboxClosed):
        await task


async def test_competing_receivers_get_disjoint_sets(shared_server):
    shared = unique("shared")
    c = shared_server.credentials
    clients = [await mailslot.connect(shared_server.url, user=c.user, password=c.password) for _ in range(3)]
    try:
        await clients[0].send_many([{"to": shared, "payload": i} for i in range(300)])
        boxes = [await cl.open(shared, ack_wait=30) for cl in clients]
        assert boxes[1].resumed and boxes[2].resumed

        async def drain(mb):
            got = []
            while True:
                try:
                    m = await mb.receive(timeout=1.5)
                except mailslot.Timeout:
                    return got
                got.append(m.json())
                await m.ack()

        results = await asyncio.gather(*(drain(mb) for mb in boxes))
        flat = [x for r in results for x in r]
        assert sorted(flat) == list(range(300))
        assert sum(1 for r in results if r) >= 2  # the work was actually shared
    finally:
        for cl in clients:
            await cl.close()


async def test_nak_with_delay_redelivers_later(shared_ms):
    retry = unique("retry")
    await shared_ms.send(retry, "again")
    mb = await shared_ms.open(retry)
    m = await mb.receive(timeout=5)
    t0 = time.monotonic()
    await m.nak(delay=1.5)
    m2 = await mb.receive(timeout=10)
    assert 1.3 < time.monotonic() - t0 < 5
    assert m2.id == m.id and m2.delivery_count == 2
    await m2.ack()


async def test_unacked_comes_back_after_ack_wait_and_in_progress_extends(shared_ms):
    slow = unique("slow")
    await shared_ms.send(slow, "work")
    mb = await shared_ms.open(slow, ack_wait=2)
    m = await mb.receive(timeout=5)
    for _ in range(3):  # 3 s of work, kept alive
        await asyncio.sleep(1)
        await m.in_progress()
    with pytest.raises(mailslot.Timeout):
        await mb.receive(timeout=1.0)
    # now stop heart-beating: it is redelivered after the ack wait
    m2 = await mb.receive(timeout=10)
    assert m2.id == m.id and m2.delivery_count == 2
    await m2.ack()
    with pytest.raises(mailslot.AlreadyAcknowledged):
        await m2.nak()


async def test_backoff_and_max_deliveries_keep_the_message(shared_ms):
    fragile = unique("fragile")
    await shared_ms.send(fragile, "poison")
    mb = await shared_ms.open(fragile, ack_wait=1, max_deliver=3, backoff=[0.5, 1.0])
    counts = []
    for _ in range(3):
        m = await mb.receive(timeout=10)
        counts.append(m.delivery_count)
        await m.nak()
    assert counts == [1, 2, 3]
    with pytest.raises(mailslot.Timeout):
        await mb.receive(timeout=2.5)
    # exhausted, not vanished: it waits for the dead-letter handling
    assert (await shared_ms.inspect(fragile).stats()).total == 1


async def test_term_removes_from_delivery(shared_ms):
    bad = unique("bad")
    await shared_ms.send(bad, "nope")
    mb = await shared_ms.open(bad, ack_wait=1)
    m = await mb.receive(timeout=5)
    await m.term(reason="cannot parse")
    with pytest.raises(mailslot.Timeout):
        await mb.receive(timeout=2.0)


async def test_ttl_expiry_never_delivered(shared_ms):
    ephemeral = unique("ephemeral")
    await shared_ms.send(ephemeral, "gone soon", ttl=1)
    await shared_ms.send(ephemeral, "stays")
    await asyncio.sleep(2.5)
    mb = await shared_ms.open(ephemeral)
    m = await mb.receive(timeout=5)
    assert m.text() == "stays"
    await m.ack()
    with pytest.raises(mailslot.Timeout):
        await mb.receive(timeout=1)


async def test_delayed_delivery_uses_server_schedule(shared_ms):
    later = unique("later")
    mb = await shared_ms.open(later)
    r = await shared_ms.send(later, "tick", delay=2)
    assert r.scheduled
    with pytest.raises(mailslot.Timeout):
        await mb.receive(timeout=0.8)
    m = await mb.receive(timeout=6)
    assert m.text() == "tick" and m.id == r.id
    await m.ack()


async def test_idempotent_send(shared_ms):
    dedupe = unique("dedupe")
    a = await shared_ms.send(dedupe, "once", idempotency_key="order-42")
    b = await shared_ms.send(dedupe, "once", idempotency_key="order-42")
    c = await shared_ms.send(dedupe, "other", idempotency_key="order-43")
    assert a.id == b.id and b.duplicate and not a.duplicate and c.id != a.id
    assert (await shared_ms.inspect(dedupe).stats()).total == 2


async def test_peek_and_stats_do_not_consume(shared_ms):
    look = unique("look")
    await shared_ms.send(look, "n1")
    await shared_ms.send(look, "u1", priority="urgent")
    await shared_ms.send(look, "l1", priority="low")
    view = shared_ms.inspect(look)
    stats = await view.stats()
    assert stats.counts == {"critical": 0, "urgent": 1, "normal": 1, "low": 1} and stats.total == 3
    assert stats.oldest["urgent"] is not None and stats.oldest["critical"] is None
    peeked = await view.peek(limit=10)
    assert [m.text() for m in peeked] == ["u1", "n1", "l1"]
    with pytest.raises(mailslot.MessageError):
        await peeked[0].ack()
    assert [m.text() for m in await view.peek(limit=2)] == ["u1", "n1"]
    mb = await shared_ms.open(look)
    assert (await mb.receive(timeout=5)).text() == "u1"


async def test_fresh_identity_and_card(shared_ms):
    a = await shared_ms.open(card={"name": "planner", "capabilities": ["plan"]})
    b = await shared_ms.open()
    assert a.address != b.address and a.address.startswith("agent-")
    kv = await shared_ms.js.key_value("MAILSLOT_AGENTS")
    entry = await kv.get(a.address)
    card = mailslot.AgentCard.model_validate_json(entry.value)
    assert card.name == "planner" and card.capabilities == ["plan"] and card.address == a.address


async def test_reopen_resumes_with_mail_sent_while_away(shared_ms):
    returning = unique("returning")
    mb = await shared_ms.open(returning, ttl=30)
    await mb.close()
    await shared_ms.send(returning, "while you were out")
    again = await shared_ms.open(returning, ttl=30)
    assert again.resumed
    m = await again.receive(timeout=5)
    assert m.text() == "while you were out"
    await m.ack()
    with pytest.raises(mailslot.MailboxClosed):
        await mb.receive(timeout=1)


async def test_destroy_reclaims_now(ms):
    mb = await ms.open("doomed")
    await ms.send("doomed", "x")
    await mb.destroy()
    with pytest.raises(mailslot.MailboxDestroyed):
        await mb.receive(timeout=1)
    assert (await ms.inspect("doomed").stats()).total == 0
    names = [c.name async for c in _consumers(ms)]
    assert not any(n.startswith("mbx-") for n in names)


async def _consumers(ms):
    for info in await ms.js.consumers_info("MAILSLOT_MAIL"):
        yield info


async def test_sending_to_never_opened_address_waits(ms):
    from mailslot_broker import reclaim_expired

    await ms.send("not-yet", "patience")
    assert await reclaim_expired(ms.js, grace=0) == []  # no lease ever: not reclaimed
    mb = await ms.open("not-yet")
    assert (await mb.receive(timeout=5)).text() == "patience"


async def test_idle_pulls_do_not_swallow_mail_after_close(shared_ms):
    """An idle receiver keeps waiting pulls at the server; closing must drop them so mail
    sent afterwards goes to the next receiver at once, not after the ack wait."""
    closer = unique("closer")
    mb = await shared_ms.open(closer, ack_wait=30)
    await shared_ms.send(closer, "binds the level", priority="low")
    await (await mb.receive(timeout=5)).ack()
    with pytest.raises(mailslot.Timeout):
        await mb.receive(timeout=0.5)  # idle: a waiting pull on every level it has bound
    assert set(mb._receiver.pulls.waiting) == {p.Priority.LOW}
    await mb.close()
    await shared_ms.send(closer, "after close", priority="low")
    again = await shared_ms.open(closer, ack_wait=30)
    t0 = time.monotonic()
    m = await again.receive(timeout=5)
    assert m.text() == "after close" and m.delivery_count == 1
    assert time.monotonic() - t0 < 2
    await m.ack()


async def test_idle_pull_delivers_without_a_bell_round_trip(shared_ms):
    pushed = unique("pushed")
    mb = await shared_ms.open(pushed)
    await shared_ms.send(pushed, "binds the level", priority="urgent")
    await (await mb.receive(timeout=5)).ack()
    waiter = asyncio.create_task(mb.receive(timeout=10))
    await asyncio.sleep(0.3)
    before = mb.pull_requests
    await shared_ms.send(pushed, "x", priority="urgent")
    m = await waiter
    assert m.text() == "x"
    # delivered by the idle pull; at most the bell's confirmation pull follows
    assert mb.pull_requests - before <= 1
    await m.ack()


@pytest.mark.parametrize("receiving", [True, False], ids=["while-receiving", "then-receive"])
async def test_consumers_deleted_behind_its_back_come_back(shared_ms, receiving):
    """A consumer can vanish without the lease lapsing (its inactivity threshold, where no
    sidecar runs; an operator). Renewals do not re-add consumers: the receive path does, when
    a pull is refused for want of one, and the mail sent meanwhile is received."""
    address = unique("vanish")
    mb = await shared_ms.open(address)
    for prio in p.PRIORITIES:  # every level bound (its consumer created by the first bell)
        await shared_ms.send(address, "binds", priority=prio.label)
        await (await mb.receive(timeout=5)).ack()
    waiting = asyncio.ensure_future(mb.receive(timeout=15)) if receiving else None
    await asyncio.sleep(0.3)  # idle: a waiting pull per bound level at the server
    for prio in p.PRIORITIES:
        await shared_ms.js.delete_consumer(p.MAIL_STREAM, p.consumer_name(address, prio))
    await asyncio.sleep(0.3)
    await shared_ms.send(address, "still delivered", priority="low")
    got = await (waiting if waiting is not None else mb.receive(timeout=15))
    assert got.text() == "still delivered"
    await got.ack()
    await shared_ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, p.Priority.LOW))
    await mb.close()
