"""Rollup headers from an agent credential, once the known gap of agent credentials (see
docs/deploy.md §8, "Rollup headers").

NATS permissions look at subjects, not headers. The mail stream and the lease / record
buckets accept ``Nats-Rollup`` (message schedules and KV limit markers force it on), so a
credential that may publish one subject of them may roll it up: ``sub`` replaces what waits
on that subject, ``all`` empties the whole stream. Agent credentials therefore publish into
streams of their own that refuse the header (``protocol.agent_writes``): the outbox, moved to
the mailboxes by the sidecar, and the writes stream the buckets source."""

from __future__ import annotations

import mailslot
import pytest
from mailslot_broker import protocol as p
from nats.js.errors import APIError

#: The server's answer to a rollup header on a stream without allow_rollup_hdrs.
ROLLUP_NOT_PERMITTED = 10111


async def test_a_send_cannot_roll_up_the_recipients_mailbox(principals):
    """An agent's mail goes through its outbox, never straight into the mail stream: the
    mailbox subject is refused by the server's permissions, the outbox refuses the header
    (10111). Alice's unread mail stays, and so does everything else in the stream."""
    tenant = await principals.connect("tenant", name="ops")
    await tenant.send("alice", "unread")
    raw = await principals.raw("bob")
    js = raw.nc.jetstream()
    into = p.mail_subject(p.Priority.NORMAL, "alice")
    await raw.denied(into, lambda: js.publish(into, b"x", headers={"Nats-Rollup": "sub"}, timeout=1))
    for rollup in ("sub", "all"):
        with pytest.raises(APIError) as refused:
            await js.publish(
                p.agent_writes.outbox_subject(into), b"x", headers={"Nats-Rollup": rollup}, timeout=5
            )
        assert refused.value.err_code == ROLLUP_NOT_PERMITTED
    assert "unread" in [m.text() for m in await tenant.inspect("alice").peek()]


async def test_an_agents_lease_write_cannot_wipe_other_leases(principals):
    """An agent publishes its lease and record through the agent writes stream, never into
    the buckets: the bucket subject is refused by the server's permissions, the writes
    stream refuses the header (10111). Alice's lease and record stay."""
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=30)
    raw = await principals.raw("bob")
    js = raw.nc.jetstream()
    try:
        for bucket in p.agent_writes.UPLINKED_BUCKETS:
            into = p.kv_subject(bucket, "bob")
            await raw.denied(
                into, lambda into=into: js.publish(into, b"{}", headers={"Nats-Rollup": "all"}, timeout=1)
            )
            for rollup in ("sub", "all"):
                with pytest.raises(APIError) as refused:
                    await js.publish(
                        p.agent_writes.agent_write_subject(bucket, "bob"),
                        b"{}",
                        headers={"Nats-Rollup": rollup},
                        timeout=5,
                    )
                assert refused.value.err_code == ROLLUP_NOT_PERMITTED
        tenant = await principals.connect("tenant", name="ops")
        for bucket in p.agent_writes.UPLINKED_BUCKETS:
            kv = await tenant.js.key_value(bucket)
            assert "alice" in await kv.keys()
    finally:
        await mb.close()


async def test_a_jetstream_answer_sent_to_a_mailbox_reads_unverified_and_can_be_refused(principals):
    """Known gap: NATS checks a publisher's subject, never its reply subject, and JetStream
    answers a request (here: the ack of an outbox publish) on whatever reply subject the
    requester chose. So an agent can make the server store its answer in any mailbox, past
    its send policy: a headerless JSON body of the server's making (``{"stream": ...,
    "seq": ...}``), never the agent's content. It reads as mail with no sender, unverified,
    and a ``require_verified`` mailbox dead-letters it."""
    tenant = await principals.connect("tenant", name="ops")
    raw = await principals.raw("alice")
    into = p.mail_subject(p.Priority.CRITICAL, "bob")
    await raw.nc.publish(
        p.agent_writes.outbox_subject(p.mail_subject(p.Priority.NORMAL, "alice")), b"x", reply=into
    )
    await raw.nc.flush()
    bob = await principals.connect("bob")
    mb = await bob.open("bob", ttl=30, require_verified=True)
    try:
        with pytest.raises(mailslot.Timeout):  # nothing verified arrived
            await mb.receive(timeout=1)
        [dead] = await tenant.dead_letters.list("bob")
        assert dead.reason == "sender not verified: no sender"
        assert dead.sender is None and dead.json()["stream"] == p.agent_writes.OUTBOX_STREAM
    finally:
        await mb.close()
