"""Senders that cannot be forged: mail an agent credential sends is signed; a sender header
that names somebody else, or a message altered on the way, reads unverified, and a mailbox
opened with ``require_verified=True`` dead-letters it with the reason."""

from __future__ import annotations

import mailslot
from mailslot_broker import protocol as p
from mailslot_broker.protocol import principals as pp


async def _receive_all(mb, n: int) -> list[mailslot.Message]:
    out = []
    for _ in range(n):
        m = await mb.receive(timeout=5)
        await m.ack()
        out.append(m)
    return out


async def test_only_the_agents_own_signature_verifies(principals):
    alice = await principals.connect("alice")
    bob = await principals.connect("bob")
    tenant = await principals.connect("tenant", name="ops")
    await bob.send("alice", "really bob")
    await bob.send("alice", "claims to be alice", sender="alice")  # signed with bob's key
    await bob.send("alice", "claims to be carol", sender="carol")
    await tenant.send("alice", "tenant says bob", sender="bob")  # a tenant credential signs nothing
    mb = await alice.open("alice", ttl=30)
    got = {m.text(): (m.sender, m.sender_verified, m.unverified_reason) for m in await _receive_all(mb, 4)}
    assert got == {
        "really bob": ("bob", True, None),
        "claims to be alice": ("alice", False, "signature does not match"),
        "claims to be carol": ("carol", False, "signature does not match"),
        "tenant says bob": ("bob", False, "unsigned"),
    }
    await mb.close()


async def test_a_signed_message_altered_by_a_raw_client_reads_unverified(principals):
    """Copy bob's signed message with another body, recipient or time: each reads unverified."""
    bob = await principals.connect("bob")
    tenant = await principals.connect("tenant", name="ops")
    await bob.send("spool", "original")
    [orig] = await tenant.inspect("spool").peek()
    hdrs = dict(orig.headers)
    assert pp.SIGNATURE_HEADER in hdrs
    # Without the dedupe id (a copy with it is dropped within the dedupe window). An exact
    # copy still verifies: a signature does not stop a replay (docs/deploy.md).
    del hdrs[p.Header.NATS_MSG_ID]
    js = tenant.js
    await js.publish(p.mail_subject(p.Priority.NORMAL, "spool"), b"original", headers=hdrs)  # untouched copy
    await js.publish(p.mail_subject(p.Priority.NORMAL, "spool"), b"altered", headers=hdrs)
    await js.publish(p.mail_subject(p.Priority.NORMAL, "alice"), b"original", headers=hdrs)  # re-addressed
    later = {**hdrs, p.Header.SENT_AT: "2030-01-01T00:00:00+00:00"}
    await js.publish(p.mail_subject(p.Priority.NORMAL, "spool"), b"original", headers=later)
    mb = await tenant.open("spool", ttl=30)
    verdicts = sorted((m.text(), m.sender_verified) for m in await _receive_all(mb, 4))
    assert verdicts == [("altered", False), ("original", False), ("original", True), ("original", True)]
    alice = await tenant.open("alice", ttl=30)
    [moved] = await _receive_all(alice, 1)
    assert (moved.sender, moved.sender_verified) == ("bob", False)
    await mb.close()
    await alice.close()


async def test_require_verified_dead_letters_unverified_mail_with_the_reason(principals):
    alice = await principals.connect("alice")
    bob = await principals.connect("bob")
    tenant = await principals.connect("tenant", name="ops")
    await bob.send("alice", "forged", sender="carol")
    await tenant.send("alice", "unsigned", sender="bob")
    await bob.send("alice", "genuine")
    mb = await alice.open("alice", ttl=30, require_verified=True)
    [m] = await mb.receive_batch(max=10, timeout=5)
    assert (m.text(), m.sender_verified) == ("genuine", True)
    await m.ack()
    dead = {d.reason for d in await tenant.dead_letters.list("alice")}
    assert dead == {"sender not verified: signature does not match", "sender not verified: unsigned"}
    await mb.close()


async def test_a_revoked_agents_key_is_withdrawn(principals):
    """After revocation (the key leaves the bucket) bob's earlier signed mail reads unverified
    for a receiver that had not cached the key."""
    bob = await principals.connect("bob")
    await bob.send("alice", "signed before")
    await bob.close()
    from mailslot_broker.agents import apply_on_tenant

    await apply_on_tenant(principals.srv.url, principals.spec.credentials, None, "bob")
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=30)
    [m] = await _receive_all(mb, 1)
    assert (m.sender_verified, m.unverified_reason) == (False, "no public key for the sender")
    await mb.close()
