"""An agent credential's own mailbox works fully; its send policy is enforced typed and fast;
revoking it disconnects it and refuses it afterwards, others unaffected."""

from __future__ import annotations

import asyncio
import time

import mailslot
import pytest

PROMPT = 3.0


async def _until(condition, timeout: float) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_own_mailbox_open_receive_ack_nak_term_and_reply(principals):
    bob = await principals.connect("bob")
    assert bob.name == "bob"  # the credential's address is the default sender
    tenant = await principals.connect("tenant", name="ops")
    mb = await bob.open("bob", ttl=30)
    await tenant.send("bob", "one", priority="low")
    await tenant.send("bob", "two", priority="urgent")
    m = await mb.receive(timeout=5)
    assert m.text() == "two"
    await m.ack()
    m = await mb.receive(timeout=5)
    await m.nak()
    m = await mb.receive(timeout=5)
    assert (m.text(), m.delivery_count) == ("one", 2)
    await m.term(reason="not for me")  # dead letter of its own mail
    assert [d.reason for d in await tenant.dead_letters.list("bob")] == ["not for me"]
    # Requests to bob: he answers to the asker's reply sub-address.
    asker = await principals.connect("tenant", name="planner")
    planner = await asker.open("planner", ttl=30)
    ask = asyncio.ensure_future(planner.ask("bob", {"q": 1}, timeout=10))
    req = await mb.receive(timeout=5)
    await req.reply({"a": 2})
    await req.ack()
    reply = await ask
    assert reply.json() == {"a": 2}
    assert reply.sender == "bob" and reply.sender_verified
    # Mail to bob's own reply sub-address rings his reply bell (he may subscribe to it).
    sub = await bob.nc.subscribe("bell.*.bob._replies")
    await bob.nc.flush()
    await tenant.send("bob._replies", "late reply", correlation_id="c1")
    bell = await sub.next_msg(timeout=5)
    assert (bell.headers or {}).get("Mailslot-Correlation-Id") == "c1"
    await sub.unsubscribe()
    await mb.close()
    await planner.close()


async def test_agent_to_agent_request_reply(principals):
    """An agent credential asks too: its replies come through its reply consumer (the reads
    by sequence a tenant credential uses are not granted to it)."""
    alice = await principals.connect("alice")
    bob = await principals.connect("bob")
    asker = await alice.open("alice", ttl=30)
    worker = await bob.open("bob", ttl=30)

    async def answer(n: int) -> None:
        for _ in range(n):
            req = await worker.receive(timeout=10)
            await req.reply({"echo": req.json()["q"]})
            await req.ack()

    answering = asyncio.ensure_future(answer(3))
    first, second = await asyncio.gather(
        asker.ask("bob", {"q": 1}, timeout=10), asker.ask("bob", {"q": 2}, timeout=10)
    )
    assert (first.json(), second.json()) == ({"echo": 1}, {"echo": 2})
    assert first.sender == "bob" and first.sender_verified
    # A reply that arrives while nobody waits is found later by its correlation id.
    receipt = await asker.request("bob", {"q": 3})
    await answering
    late = await asker.reply_for(receipt.correlation_id or receipt.id, timeout=10)
    assert late.json() == {"echo": 3}
    with pytest.raises(mailslot.InvalidInput):
        await asker.reply_for("other", timeout=1, keep=True)
    # Bob cannot pull alice's replies.
    raw = await principals.raw("bob")
    name = principals_consumer("alice")
    await raw.denied(
        name, lambda: raw.nc.request(f"$JS.API.CONSUMER.MSG.NEXT.MAILSLOT_MAIL.{name}", b"{}", timeout=1)
    )
    await asker.close()
    await worker.close()


def principals_consumer(address: str) -> str:
    from mailslot_broker.protocol import principals as pp

    return pp.reply_consumer_name(address)


async def test_can_send_pattern_excludes_an_address_typed_and_fast(principals):
    carol = await principals.connect("carol")
    await carol.send("alice", "allowed")  # her policy: alice only
    for to in ("bob", "alice.team", "alice._replies"):
        started = time.monotonic()
        with pytest.raises(mailslot.PermissionDenied):
            await carol.send(to, "not allowed")
        assert time.monotonic() - started < PROMPT
    for who in (carol, await principals.connect("bob")):  # no delayed sends (see principals.py)
        with pytest.raises(mailslot.PermissionDenied):
            await who.send("alice", "later", delay=60)
    await carol.publish("carol.news", "ok", durable=True)  # her topics: carol.>
    with pytest.raises(mailslot.PermissionDenied):
        await carol.publish("other.news", "no", durable=True)
    tenant = await principals.connect("tenant", name="ops")
    assert [m.text() for m in await tenant.inspect("alice").peek()] == ["allowed"]
    assert await tenant.inspect("bob").peek() == []


async def test_revoking_disconnects_the_agent_and_refuses_it_others_unaffected(principals):
    bob = await principals.connect("bob")
    alice = await principals.connect("alice")
    await bob.send("alice", "before")
    raw = await principals.raw("bob")
    alice_reconnects = alice.reconnects
    await asyncio.to_thread(principals.revoke, "bob")
    await _until(lambda: not raw.nc.is_connected, 10)  # the reload closed bob's connection
    await _until(lambda: not bob.connected, 10)  # the SDK client's too (it keeps retrying)
    with pytest.raises(mailslot.AuthenticationFailed):
        await principals.connect("bob")
    # Alice kept her connection and her mail.
    assert alice.connected and alice.reconnects == alice_reconnects
    await alice.send("alice", "still here")
    mb = await alice.open("alice", ttl=30)
    texts = [(await mb.receive(timeout=5)).text() for _ in range(2)]
    assert sorted(texts) == ["before", "still here"]
    await mb.close()


async def test_topics_policy_live_and_replay(principals):
    """A narrow --topics allows live subscriptions and durable publishes within it; replaying
    history needs an ordered consumer whose filter is in the request body, so only an agent
    allowed every topic may replay."""
    tenant = await principals.connect("tenant", name="ops")
    await tenant.publish("carol.hist", "old", durable=True)
    carol = await principals.connect("carol")
    live = await carol.subscribe("carol.>")
    await live.start()
    await tenant.publish("carol.now", "new")
    assert (await live.next(timeout=5)).text() == "new"
    await live.close()
    for pattern, replay in (("other.>", None), ("carol.>", "all")):
        started = time.monotonic()
        sub = None
        with pytest.raises(mailslot.PermissionDenied):
            sub = await carol.subscribe(pattern, replay=replay)
            await sub.next(timeout=PROMPT)  # the history ("old") is there to replay
        assert time.monotonic() - started < PROMPT + 1
        if sub is not None:
            await sub.close()
    bob = await principals.connect("bob")  # the default policy: every topic, history too
    sub = await bob.subscribe("carol.>", replay="all")
    assert (await sub.next(timeout=5)).text() == "old"
    await sub.close()
