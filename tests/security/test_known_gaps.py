"""What agent credentials do not stop yet, kept as strict xfails so that they flip (and fail)
the day they are fixed. See docs/deploy.md §8, "Open: rollup headers".

NATS permissions look at subjects, not headers. The mail stream and the lease / record
buckets accept ``Nats-Rollup`` (message schedules and KV need it), so a credential that may
publish one subject of them may roll it up: ``sub`` replaces what waits on that subject,
``all`` empties the whole stream."""

from __future__ import annotations

import pytest
from mailslot_broker import protocol as p


@pytest.mark.xfail(strict=True, reason="rollup headers are not covered by subject permissions")
async def test_a_send_cannot_roll_up_the_recipients_mailbox(principals):
    tenant = await principals.connect("tenant", name="ops")
    await tenant.send("alice", "unread")
    raw = await principals.raw("bob")
    await raw.nc.jetstream().publish(
        p.mail_subject(p.Priority.NORMAL, "alice"), b"x", headers={"Nats-Rollup": "sub"}, timeout=5
    )
    assert "unread" in [m.text() for m in await tenant.inspect("alice").peek()]


@pytest.mark.xfail(strict=True, reason="rollup headers are not covered by subject permissions")
async def test_an_agents_lease_write_cannot_wipe_other_leases(principals):
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=30)
    raw = await principals.raw("bob")
    await raw.nc.jetstream().publish(
        p.kv_subject(p.AGENTS_BUCKET, "bob"), b"{}", headers={"Nats-Rollup": "all"}, timeout=5
    )
    tenant = await principals.connect("tenant", name="ops")
    kv = await tenant.js.key_value(p.AGENTS_BUCKET)
    try:
        assert "alice" in await kv.keys()
    finally:
        await mb.close()
