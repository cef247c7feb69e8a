"""An agent credential's lease and mailbox record go through ``MAILSLOT_AGENT_WRITES``,
which the agents and mailboxes buckets source (``protocol.agent_writes``): the lease still
holds while the agent runs, lapses when it stops, is shared by its replicas and re-created
after a lapse; the tenant's own writes go straight to the buckets as before."""

from __future__ import annotations

import asyncio

import pytest
from mailslot_broker import protocol as p
from mailslot_broker.provision import provision_agent_writes
from nats.js import errors as jserr

from .conftest import until

AW = p.agent_writes


def _lease_subject(address: str) -> str:
    return AW.agent_write_subject(p.AGENTS_BUCKET, address)


async def _live(kv, key: str) -> bool:
    try:
        entry = await kv.get(key)
    except jserr.KeyNotFoundError:
        return False
    return bool(entry.value)


async def test_an_agents_lease_holds_while_it_runs_and_lapses_after(principals, tenant):
    leases = await tenant.js.key_value(p.AGENTS_BUCKET)
    records = await tenant.js.key_value(p.MAILBOXES_BUCKET)
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=1.5, card={"description": "alice's card"})
    try:
        await until(lambda: _live(leases, "alice"), within=2.0)
        assert b"alice's card" in (await leases.get("alice")).value
        await until(lambda: _live(records, "alice"), within=2.0)  # each bucket sources it
        assert p.MailboxRecord.decode((await records.get("alice")).value).keep == mb.keep
        await asyncio.sleep(4.0)  # over two lease lifetimes: renewed every 0.5 s
        assert mb._lease is not None and mb._lease.renewals >= 5
        assert await _live(leases, "alice")
        # written by the agent through its writes stream, not into the bucket
        got = await tenant.js.get_last_msg(AW.AGENT_WRITES_STREAM, _lease_subject("alice"))
        assert got.seq == mb._lease._revision
    finally:
        await mb.close()
    await until(lambda: _not(_live(leases, "alice")), within=4.0)  # ttl 1.5 s, ceil 2 s
    assert "alice" in [a.address for a in await tenant.agents(include_offline=True)]


async def _not(aw) -> bool:
    return not await aw


async def test_an_agent_opens_again_after_its_lease_lapsed(principals, tenant):
    leases = await tenant.js.key_value(p.AGENTS_BUCKET)
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=1.0)
    await until(lambda: _live(leases, "alice"), within=2.0)  # sourced into the bucket
    await mb.close()
    await until(lambda: _not(_live(leases, "alice")), within=4.0)
    again = await alice.open("alice", ttl=1.0)
    try:
        assert not again.resumed
        await until(lambda: _live(leases, "alice"), within=2.0)
        await tenant.send("alice", "after the lapse")
        got = await again.receive(timeout=5)
        assert got is not None and got.text() == "after the lapse"
        await got.ack()
    finally:
        await again.close()


async def test_two_replicas_of_an_agent_share_its_lease(principals):
    one, two = await principals.connect("alice"), await principals.connect("alice")
    a = await one.open("alice", ttl=1.5)
    b = await two.open("alice", ttl=1.5)
    try:
        assert b.resumed
        await asyncio.sleep(3.2)
        assert a._lease is not None and b._lease is not None
        assert a._lease.renewals >= 4 and b._lease.renewals >= 4
        await a.close()
        await asyncio.sleep(3.0)  # two lease lifetimes: only b keeps it alive now
        tenant = await principals.connect("tenant", name="ops")
        assert await _live(await tenant.js.key_value(p.AGENTS_BUCKET), "alice")
    finally:
        await b.close()


async def test_a_tenant_credential_still_writes_the_buckets_directly(tenant):
    mb = await tenant.open("ops-box", ttl=5)
    try:
        entry = await (await tenant.js.key_value(p.AGENTS_BUCKET)).get("ops-box")
        assert entry.value
        with pytest.raises(jserr.NotFoundError):
            await tenant.js.get_last_msg(AW.AGENT_WRITES_STREAM, _lease_subject("ops-box"))
    finally:
        await mb.close()


async def test_provisioning_the_writes_stream_is_idempotent(tenant):
    """Issuing (apply_on_tenant) made it; again changes nothing; the buckets source it."""
    report = await provision_agent_writes(tenant.js)
    assert not report.changed
    for bucket in AW.UPLINKED_BUCKETS:
        info = await tenant.js.stream_info(p.kv_stream(bucket))
        assert [s.name for s in info.config.sources or []] == [AW.AGENT_WRITES_STREAM]
    info = await tenant.js.stream_info(AW.AGENT_WRITES_STREAM)
    assert info.config.allow_rollup_hdrs is False
