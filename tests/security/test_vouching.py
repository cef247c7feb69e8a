"""Vouching: a service with a delegation the operator granted (the Synadia bridge for
``sap.>`` senders) signs mail in its callers' names; receivers see the caller as a verified
sender and who vouched. Without the delegation, or with another key, the mail reads
unverified."""

from __future__ import annotations

import mailslot
import pytest
from mailslot import signing
from mailslot_broker import protocol as p
from mailslot_broker.agents import new_seed

BRIDGE = "synadia.bridge.mailslot.acme"


async def _voucher(
    principals, *, speaks_for: list[str] | None = None, address: str = BRIDGE
) -> mailslot.Mailslot:
    """A tenant-credential client that vouches as ``address``, its key granted ``speaks_for``
    (None: no grant, the key is in no record)."""
    seed, public = new_seed()
    tenant = await principals.connect("tenant", name="ops")
    if speaks_for is not None:
        await signing.grant_vouching(tenant, address, public_key=public, speaks_for=speaks_for)
    bridge = await principals.connect("tenant", name=address)
    signing.vouch(bridge, address, seed)
    return bridge


async def test_vouched_sender_is_verified_and_names_its_voucher(principals):
    bridge = await _voucher(principals, speaks_for=["sap.>"])
    alice = await principals.connect("alice")
    inbox = await alice.open("alice", ttl=30)
    box = await bridge.open(BRIDGE, ttl=30)
    receipt = await box.request("alice", "from w1", sender="sap.demo.alice.w1")
    await box.request("alice", "the bridge itself")
    got = {}
    for _ in range(2):
        m = await inbox.receive(timeout=5)
        got[m.text()] = (m.sender, m.sender_verified, m.verified_by, m.unverified_reason)
        if m.text() == "from w1":
            assert m.reply_to == p.reply_address(BRIDGE)  # the reply still goes to the bridge
            await m.reply("hello w1")
        await m.ack()
    assert got == {
        "from w1": ("sap.demo.alice.w1", True, BRIDGE, None),
        "the bridge itself": (BRIDGE, True, None, None),
    }
    reply = await box.reply_for(receipt.correlation_id, timeout=5)  # a tenant's reply box
    assert (reply.text(), reply.sender, reply.sender_verified) == ("hello w1", "alice", True)
    await box.close()
    await inbox.close()


async def test_vouching_outside_the_delegation_or_without_one_reads_unverified(principals):
    bridge = await _voucher(principals, speaks_for=["sap.>"])
    box = await bridge.open(BRIDGE, ttl=30)
    await box.request("alice", "as bob", sender="bob")  # bob is not under sap.>
    other_key = await _voucher(principals)  # BRIDGE's record holds another key
    await (await other_key.open("other", ttl=30)).request("alice", "other key", sender="sap.x.y.z")
    rogue = await _voucher(principals, address="rogue")  # no record at all
    await (await rogue.open("rogue", ttl=30)).request("alice", "rogue", sender="sap.x.y.z")
    alice = await principals.connect("alice")
    inbox = await alice.open("alice", ttl=30, require_verified=True)
    assert await inbox.receive_batch(max=10, timeout=2) == []
    tenant = await principals.connect("tenant", name="ops2")
    dead = {d.reason for d in await tenant.dead_letters.list("alice")}
    assert dead == {
        "sender not verified: the voucher may not speak for the sender",
        "sender not verified: signature does not match",
        "sender not verified: no public key for the voucher",
    }
    await inbox.close()


async def test_a_forged_voucher_header_reads_unverified(principals):
    """A raw client copies the bridge's vouched mail, or names the bridge on mail signed by
    an agent's key: neither verifies."""
    bridge = await _voucher(principals, speaks_for=["sap.>"])
    box = await bridge.open(BRIDGE, ttl=30)
    await box.request("spool", "vouched", sender="sap.demo.alice.w1")
    bob = await principals.connect("bob")
    await bob.send("spool", "bob as w1", sender="sap.demo.alice.w1")  # bob's own key
    tenant = await principals.connect("tenant", name="ops")
    peeked = {m.text(): dict(m.headers) for m in await tenant.inspect("spool").peek()}
    assert signing.VOUCHED_BY_HEADER not in peeked["bob as w1"]  # an agent's signer vouches for no one
    forged = {**peeked["bob as w1"], signing.VOUCHED_BY_HEADER: BRIDGE}
    del forged[p.Header.NATS_MSG_ID]
    await tenant.js.publish(p.mail_subject(p.Priority.NORMAL, "spool"), b"bob as w1", headers=forged)
    altered = {**peeked["vouched"]}
    del altered[p.Header.NATS_MSG_ID]
    await tenant.js.publish(p.mail_subject(p.Priority.NORMAL, "spool"), b"altered", headers=altered)
    mb = await tenant.open("spool", ttl=30)
    got = []
    for _ in range(4):
        m = await mb.receive(timeout=5)
        got.append((m.text(), m.sender_verified, m.verified_by, m.unverified_reason))
        await m.ack()
    assert sorted(got) == [
        ("altered", False, None, "signature does not match"),
        ("bob as w1", False, None, "no public key for the sender"),  # bob's own, in w1's name
        ("bob as w1", False, None, "signature does not match"),  # the same, naming the bridge
        ("vouched", True, BRIDGE, None),
    ]
    await mb.close()


async def test_grant_refuses_bad_patterns_and_keys(principals):
    tenant = await principals.connect("tenant", name="ops")
    _, public = new_seed()
    with pytest.raises(mailslot.InvalidInput):
        await signing.grant_vouching(tenant, BRIDGE, public_key=public, speaks_for=[])
    with pytest.raises(mailslot.InvalidInput):
        await signing.grant_vouching(tenant, BRIDGE, public_key=public, speaks_for=["sap.>.x"])
    with pytest.raises(ValueError):
        await signing.grant_vouching(tenant, BRIDGE, public_key="Anotakey", speaks_for=["sap.>"])


def test_patterns_match_as_nats_subjects():
    m = signing.matches
    assert m("sap.>", "sap.a.b.c") and not m("sap.>", "sap") and not m("sap.>", "sapx.a")
    assert m("sap.*.team.*", "sap.demo.team.w1") and not m("sap.*.team.*", "sap.demo.other.w1")
    assert m(">", "alice") and m("alice", "alice") and not m("alice", "alice.x")
