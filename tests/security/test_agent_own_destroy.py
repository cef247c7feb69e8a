"""An agent credential destroys its own mailbox through the sidecar (``mview.<address>``, op
``destroy``, ``sidecar/views.py``): the same reclaim a tenant credential's ``destroy()`` runs
(consumers, unread mail to dead letters with reason ``mailbox reclaimed``, lease, record),
for its own mailbox only; a request answered elsewhere than its own inbox is not acted on.
Reclaiming (destroy, or retention running out) also removes the agent's own writes of its
lease and record (``kvup.<bucket>.<address>`` in ``MAILSLOT_AGENT_WRITES``), and the agent
opens again afterwards as a fresh mailbox."""

from __future__ import annotations

import asyncio
import json
import time

import mailslot
import pytest
from mailslot import _agent_views
from mailslot_broker import protocol as p
from mailslot_broker.protocol import principals as principals_wire
from mailslot_broker.reclaim import lease_alive, reclaim_expired
from nats.js import errors as jserr

from .conftest import until

AW = p.agent_writes
V = p.views


async def _writes_of(tenant, address: str) -> dict[str, int]:
    """What the agent writes stream holds for ``address`` (subject -> messages)."""
    info = await tenant.js.stream_info(AW.AGENT_WRITES_STREAM, subjects_filter=f"{AW.AGENT_WRITES_PREFIX}.>")
    subjects = info.state.subjects or {}
    return {s: n for s, n in subjects.items() if s.endswith(f".{address}")}


async def _key(tenant, bucket: str, key: str) -> bytes | None:
    kv = await tenant.js.key_value(bucket)
    try:
        entry = await kv.get(key)
    except jserr.KeyNotFoundError:
        return None
    return entry.value or None


async def _consumers_of(tenant, address: str) -> list[str]:
    names = [p.consumer_name(address, prio) for prio in p.PRIORITIES]
    names.append(principals_wire.reply_consumer_name(address))
    out = []
    for name in names:
        try:
            await tenant.js.consumer_info(p.MAIL_STREAM, name)
        except jserr.NotFoundError:
            continue
        out.append(name)
    return out


async def _dead(tenant, address: str) -> list[tuple[str, str]]:
    return sorted((d.text(), d.reason) for d in await tenant.dead_letters.list(address))


async def _open_and_fill(ms, tenant, address: str):
    mb = await ms.open(address, ttl=30, card={"description": f"{address}'s card"})
    await until(lambda: _has(tenant, p.AGENTS_BUCKET, address), within=3.0)  # sourced
    await until(lambda: _has(tenant, p.MAILBOXES_BUCKET, address), within=3.0)
    await tenant.send(address, "unread one")
    await tenant.send(address, "unread two", priority="urgent", notify_undelivered=True, sender="ops")
    return mb


async def _has(tenant, bucket: str, key: str) -> bool:
    return await _key(tenant, bucket, key) is not None


async def test_an_agent_destroys_its_own_mailbox_as_a_tenant_destroy_would(principals, tenant):
    bob = await principals.connect("bob")
    mb = await _open_and_fill(bob, tenant, "bob")
    # a reply consumer of its own (made by a reply_for), which the destroy removes too
    request = await mb.request("alice", "a question nobody answers")
    with pytest.raises(mailslot.Timeout):
        await mb.reply_for(request.correlation_id, timeout=0.3)
    assert principals_wire.reply_consumer_name("bob") in await _consumers_of(tenant, "bob")
    assert await _writes_of(tenant, "bob")  # its lease and record went through the writes stream
    started = time.monotonic()
    await mb.destroy()
    took = time.monotonic() - started
    assert principals.views is not None and principals.views.destroyed == 1
    with pytest.raises(mailslot.MailboxDestroyed):
        await mb.receive(timeout=0.1)
    # what the tenant's destroy of the same mailbox leaves: the same, checked side by side
    ops = await principals.connect("tenant", name="ops2")
    twin = await _open_and_fill(ops, tenant, "twin")
    await twin.destroy()
    for address in ("bob", "twin"):
        assert await tenant.inspect(address).peek() == []
        assert await _dead(tenant, address) == [
            ("unread one", p.REASON_RECLAIMED),
            ("unread two", p.REASON_RECLAIMED),
        ]
        assert await _consumers_of(tenant, address) == []
        assert not await lease_alive(tenant.js, address)
        assert await _key(tenant, p.MAILBOXES_BUCKET, address) is None
        assert address not in [a.address for a in await tenant.agents(include_offline=True)]
    # bounce notices where the sender asked, for both
    bounced = [m for m in await tenant.inspect("ops").peek() if m.bounce is not None]
    assert sorted(m.bounce.to for m in bounced) == ["bob", "twin"]
    # nothing of bob is left in the writes stream (issue: reclaim left kvup.* entries)
    assert await _writes_of(tenant, "bob") == {}
    print(f"agent destroy of a mailbox with 2 messages: {took * 1000:.1f} ms")


async def test_an_agent_opens_again_after_destroying_its_mailbox(principals, tenant):
    bob = await principals.connect("bob")
    mb = await bob.open("bob", ttl=1.5)
    await until(lambda: _has(tenant, p.AGENTS_BUCKET, "bob"), within=3.0)
    await mb.destroy()
    again = await bob.open("bob", ttl=1.5)
    try:
        # a fresh mailbox: the old lease is not in the writes stream to be resumed
        assert not again.resumed
        await until(lambda: _has(tenant, p.AGENTS_BUCKET, "bob"), within=3.0)
        await asyncio.sleep(2.0)  # renewals (every 0.5 s) are conditional writes: they hold
        assert again._lease is not None and again._lease.renewals >= 2
        got = await tenant.js.get_last_msg(
            AW.AGENT_WRITES_STREAM, AW.agent_write_subject(p.AGENTS_BUCKET, "bob")
        )
        assert got.seq == again._lease.revision
        await tenant.send("bob", "after the destroy")
        m = await again.receive(timeout=5)
        assert m.text() == "after the destroy"
        await m.ack()
    finally:
        await again.close()


async def test_an_agent_cannot_destroy_another_mailbox(principals, tenant):
    alice = await principals.connect("alice")
    amb = await _open_and_fill(alice, tenant, "alice")
    try:
        bob = await principals.connect("bob")
        for address in ("alice", p.reply_address("alice"), "alice.more"):
            started = time.monotonic()
            with pytest.raises(mailslot.PermissionDenied):
                await _agent_views.destroy(bob._link, address)
            assert time.monotonic() - started < 3.0
        # bob may not open alice's mailbox either, so no Mailbox of alice's to destroy
        with pytest.raises(mailslot.PermissionDenied):
            await bob.open("alice", ttl=5)
        assert principals.views is not None and principals.views.destroyed == 0
        assert sorted(m.text() for m in await tenant.inspect("alice").peek()) == ["unread one", "unread two"]
        assert await lease_alive(tenant.js, "alice")
        assert await _key(tenant, p.MAILBOXES_BUCKET, "alice") is not None
        assert await tenant.dead_letters.list("alice") == []
    finally:
        await amb.close()


async def test_a_destroy_answered_elsewhere_than_the_agents_inbox_is_not_done(principals, tenant):
    """The reply subject is the requester's choice: a destroy whose answer would go anywhere
    but the agent's own inbox (another agent's inbox, the tenant's, a mailbox, none) is
    dropped unanswered and not acted on."""
    bob = await principals.connect("bob")
    mb = await _open_and_fill(bob, tenant, "bob")
    raw = await principals.raw("bob")
    tenant_inbox = tenant.nc.new_inbox()
    answered: list[object] = []

    async def heard(m: object) -> None:
        answered.append(m)

    sub = await tenant.nc.subscribe(tenant_inbox, cb=heard)
    assert principals.views is not None
    before = principals.views.refused
    try:
        body = json.dumps({"op": V.OP_DESTROY}).encode()
        for reply in (
            tenant_inbox,
            principals_wire.inbox_prefix("alice") + ".x",
            p.mail_subject(p.Priority.CRITICAL, "alice"),
        ):
            await raw.nc.publish(V.view_subject("bob"), body, reply=reply)
        await raw.nc.publish(V.view_subject("bob"), body)  # no reply subject at all
        await raw.nc.flush()
        await until(lambda: _refused(principals, before + 4), within=5.0)
        await tenant.nc.flush()
        assert answered == []
        assert principals.views.destroyed == 0
        assert sorted(m.text() for m in await tenant.inspect("bob").peek()) == ["unread one", "unread two"]
        assert await tenant.inspect("alice").peek() == []
        assert await lease_alive(tenant.js, "bob")
    finally:
        await sub.unsubscribe()
        await mb.close()


async def _refused(principals, n: int) -> bool:
    return principals.views is not None and principals.views.refused >= n


async def test_a_reply_sub_address_is_not_destroyed_on_its_own(principals, tenant):
    bob = await principals.connect("bob")
    with pytest.raises(mailslot.BrokerFailure, match="reply sub-address"):
        await _agent_views.destroy(bob._link, p.reply_address("bob"))


async def test_destroy_without_a_sidecar_is_unavailable_and_can_be_redone(principals, tenant):
    bob = await principals.connect("bob")
    mb = await _open_and_fill(bob, tenant, "bob")
    await principals.stop_views()
    started = time.monotonic()
    with pytest.raises(mailslot.Unavailable, match="sidecar"):
        await mb.destroy()
    assert time.monotonic() - started < 3.0
    assert len(await tenant.inspect("bob").peek()) == 2  # nothing was done
    await principals.start_views()
    await mb.destroy()  # again, once a sidecar answers
    assert await tenant.inspect("bob").peek() == []
    assert len(await tenant.dead_letters.list("bob")) == 2


async def test_a_reclaim_removes_the_agents_writes_and_the_agent_opens_again(principals, tenant):
    """Retention running out (what the sidecar's reaper runs: ``apply_retention`` ->
    ``reclaim_mailbox``) removes the agent's lease and record from the writes stream too;
    the agent's next open creates its lease afresh and renews it."""
    bob = await principals.connect("bob")
    mb = await bob.open("bob", ttl=1.0, keep=0)
    await until(lambda: _has(tenant, p.AGENTS_BUCKET, "bob"), within=3.0)
    await tenant.send("bob", "never read")
    await mb.close()
    await until(lambda: _not(lease_alive(tenant.js, "bob")), within=5.0)
    assert AW.agent_write_subject(p.MAILBOXES_BUCKET, "bob") in await _writes_of(tenant, "bob")

    async def reclaimed() -> bool:
        reports = await reclaim_expired(tenant.js, grace=0.0)  # first pass: offline; then reclaim
        return any(r.address == "bob" for r in reports)

    await until(reclaimed, within=5.0)
    assert await _writes_of(tenant, "bob") == {}
    assert await _dead(tenant, "bob") == [("never read", p.REASON_RECLAIMED)]
    again = await bob.open("bob", ttl=1.5)
    try:
        assert not again.resumed
        await asyncio.sleep(1.2)
        assert again._lease is not None and again._lease.renewals >= 1
        await until(lambda: lease_alive(tenant.js, "bob"), within=3.0)
        assert await _key(tenant, p.MAILBOXES_BUCKET, "bob") is not None
    finally:
        await again.close()


async def _not(aw) -> bool:
    return not await aw


async def test_the_sidecars_reaper_reclaims_an_agents_mailbox_and_its_writes(principals, tenant):
    """End to end: the sidecar service (its reaper acting on the lapsed lease, retention 0)
    reclaims the agent's mailbox and leaves nothing of it in the writes stream."""
    from mailslot_broker.sidecar import Sidecar, SidecarConfig

    creds = principals.spec.credentials.write(principals.tmp / "sidecar.json")
    config = SidecarConfig(
        url=principals.srv.url, credentials=creds, http_port=None, leader_ttl=1.0, reclaim_grace=0.0
    )
    sidecar = Sidecar(config)
    await sidecar.start()
    try:
        bob = await principals.connect("bob")
        mb = await bob.open("bob", ttl=1.0, keep=0)
        await until(lambda: _has(tenant, p.MAILBOXES_BUCKET, "bob"), within=3.0)
        await tenant.send("bob", "left unread")
        await mb.close()

        async def gone() -> bool:
            return await _writes_of(tenant, "bob") == {} and await tenant.dead_letters.list("bob") != []

        await until(gone, within=15.0)
        assert await _dead(tenant, "bob") == [("left unread", p.REASON_RECLAIMED)]
        assert await _key(tenant, p.MAILBOXES_BUCKET, "bob") is None
        again = await bob.open("bob", ttl=5)
        assert not again.resumed
        await again.close()
    finally:
        await sidecar.stop()
