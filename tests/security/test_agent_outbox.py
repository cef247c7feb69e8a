"""An agent credential's mail goes through ``MAILSLOT_OUTBOX`` and the sidecar's mover
(``sidecar/outbox.py``) into the mailboxes: priority order, dedupe, TTL and signatures hold;
mail sent while the sidecar is down waits in the outbox and arrives once when it is back."""

from __future__ import annotations

import asyncio

import pytest
from mailslot_broker import protocol as p
from mailslot_broker.sidecar import Sidecar, SidecarConfig
from mailslot_broker.sidecar.outbox import OutboxMover, remaining_ttl

from .conftest import until

AW = p.agent_writes


async def _waiting(tenant, address: str) -> list:
    return await tenant.inspect(address).peek(limit=100)


async def _outbox_count(tenant) -> int:
    return int((await tenant.js.stream_info(AW.OUTBOX_STREAM)).state.messages)


async def test_an_agents_mail_arrives_in_priority_order_deduped_signed(principals, tenant):
    bob = await principals.connect("bob")
    order = [("low", "l"), ("normal", "n"), ("urgent", "u"), ("critical", "c")]
    for prio, text in order:
        await bob.send("alice", text, priority=prio, ttl=600)
    first = await bob.send("alice", "once", idempotency_key="k1")
    again = await bob.send("alice", "once", idempotency_key="k1")
    assert not first.duplicate and again.duplicate  # the outbox dedupes the send
    await until(lambda: _count_is(tenant, "alice", 5), within=5.0)
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=30)
    try:
        got = []
        for _ in range(5):
            m = await mb.receive(timeout=5)
            got.append(m)
            await m.ack()
        assert [m.text() for m in got] == ["c", "u", "n", "once", "l"]  # FIFO within normal
        assert all(m.sender == "bob" and m.sender_verified for m in got)
        assert all(not k.startswith("Nats-Stream") for m in got for k in m.headers)
        assert got[0].ttl is not None and 590 <= got[0].ttl <= 600
    finally:
        await mb.close()
    assert await _outbox_count(tenant) == 0


async def _count_is(tenant, address: str, n: int) -> bool:
    return len(await _waiting(tenant, address)) == n


async def test_a_move_done_twice_stores_the_mail_once(principals, tenant):
    """What a sidecar that crashed between the copy and the ack does: the outbox delivers
    again and the copy, with the same Nats-Msg-Id, is dropped by the mail stream."""
    await principals.stop_mover()
    bob = await principals.connect("bob")
    await bob.send("alice", "twice?")
    mover = OutboxMover(tenant.js, is_leader=lambda: True)
    psub = await mover._bind()
    msgs = await psub.fetch(10, timeout=2)
    assert await mover.move(msgs) == 1
    for m in msgs:
        m._ackd = False  # as if the ack was lost and the outbox delivered it again
    assert await mover.move(msgs) == 1  # published again: a duplicate
    await asyncio.sleep(0.2)
    assert [m.text() for m in await _waiting(tenant, "alice")] == ["twice?"]
    await psub.unsubscribe()


async def test_mail_sent_while_the_sidecar_is_down_arrives_once_when_it_is_back(principals, tenant):
    await principals.stop_mover()
    bob = await principals.connect("bob")
    for i in range(3):
        rec = await bob.send("alice", f"while down {i}", priority="urgent")
        assert rec.seq > 0  # acked: stored in the outbox
    await asyncio.sleep(1.0)
    assert await _waiting(tenant, "alice") == []
    assert await _outbox_count(tenant) == 3
    creds = principals.spec.credentials.write(principals.tmp / "sidecar.json")
    config = SidecarConfig(url=principals.srv.url, credentials=creds, http_port=None, leader_ttl=1.0)
    sidecar = Sidecar(config)
    await sidecar.start()
    try:
        await until(lambda: _count_is(tenant, "alice", 3), within=10.0)
        await asyncio.sleep(0.5)
        texts = [m.text() for m in await _waiting(tenant, "alice")]
        assert texts == [f"while down {i}" for i in range(3)]
        assert await _outbox_count(tenant) == 0
    finally:
        await sidecar.stop()


async def test_a_subject_naming_no_mailbox_is_not_moved(tenant):
    """A device uplink (``mout.dev.<from>...``) or a made-up priority, published with the
    tenant's credential (an agent's is refused ``mout.dev.>``): dropped, never moved."""
    for subject in ("mout.dev.bob.2.alice", "mout.7.alice"):
        await tenant.js.publish(subject, b"forged")
    await until(lambda: _outbox_empty(tenant), within=5.0)
    assert await _waiting(tenant, "alice") == []
    stream = await tenant.js.stream_info(p.MAIL_STREAM, subjects_filter="mbox.dev.>")
    assert not stream.state.subjects


async def _outbox_empty(tenant) -> bool:
    return await _outbox_count(tenant) == 0


async def test_an_agent_cannot_publish_a_device_uplink_through_the_outbox(principals):
    raw = await principals.raw("bob")
    subject = "mout.dev.alice.2.carol"

    async def go():
        await raw.nc.publish(subject, b"x")
        await raw.nc.flush()

    assert await raw.denied(subject, go) == []


@pytest.mark.parametrize(
    ("value", "age", "want"),
    [("60s", 10.2, "50s"), ("60", 0.0, "60s"), ("5s", 4.5, "1s"), ("5s", 6.0, "0"), ("never", 99.0, "never")],
)
def test_a_moved_copy_keeps_the_rest_of_its_ttl(value, age, want):
    assert remaining_ttl(value, 1000.0, 1000.0 + age) == want


async def test_the_tenant_credential_still_sends_straight_to_the_mailbox(principals, tenant):
    await principals.stop_mover()
    await tenant.send("alice", "direct")
    assert [m.text() for m in await _waiting(tenant, "alice")] == ["direct"]


async def test_an_idle_fetch_running_out_is_not_a_failure(principals, tenant, caplog):
    """nats-py's fetch raises a plain asyncio TimeoutError when its deadline runs out between
    its two pull requests (its no-wait probe answered, the lingering pull not sent): nothing
    to move, so no warning, no unbind and no retry wait. A tiny ``idle`` makes that happen
    often (this test failed on the mover before the fix), not every time."""
    await principals.stop_mover()
    mover = OutboxMover(tenant.js, is_leader=lambda: True, idle=0.0005, retry_wait=5.0)
    try:
        assert await mover.step() == 0  # binds
        bound = mover._psub
        assert bound is not None
        started = asyncio.get_running_loop().time()
        for _ in range(100):
            assert await mover.step() == 0
        assert asyncio.get_running_loop().time() - started < 5.0  # never slept retry_wait
        assert mover._psub is bound
        assert "outbox move failed" not in caplog.text
    finally:
        await mover._unbind()
