"""What an agent credential's send gives back, and keep-latest for it.

An agent's mail is stored in its outbox (``MAILSLOT_OUTBOX``) and moved into the mailbox by
the sidecar, so its ``Receipt.seq`` counts in the outbox, which ``Receipt.stream`` says (a
tenant credential's still counts in the mail stream). ``send(..., replace_key=...)`` compared
that outbox sequence with mail-stream sequences and deleted by sequence, which an agent may
not do (it failed with PermissionDenied after the message was sent); the sidecar now does it
once the message has moved (``mview.<address>`` op ``supersede``), removing only older mail
with the key that the asking agent sent, never another sender's."""

from __future__ import annotations

import time

import mailslot
import pytest
from mailslot_broker import protocol as p

from .conftest import until

AW = p.agent_writes
V = p.views


async def _texts(tenant, address: str) -> list[str]:
    return sorted(m.text() for m in await tenant.inspect(address).peek(limit=100))


async def test_an_agents_receipt_says_its_seq_counts_in_the_outbox(principals, tenant):
    bob = await principals.connect("bob")
    rec = await bob.send("alice", "from bob")
    assert rec.stream == AW.OUTBOX_STREAM and not rec.in_mailbox
    assert isinstance(rec.seq, int) and rec.seq >= 1
    await until(lambda: _arrived(tenant, "alice", 1), within=5.0)
    (stored,) = await tenant.inspect("alice").peek()
    assert stored.id == rec.id  # found in the mailbox by id; its seq is the mail stream's
    assert stored.headers[V.OUTBOX_SEQ_HEADER] == str(rec.seq)  # the mover's note of where it was
    # a tenant credential's receipt: unchanged, the mail stream's sequence
    trec = await tenant.send("alice", "from ops")
    assert trec.stream == p.MAIL_STREAM and trec.in_mailbox
    assert type(trec.seq) is int
    assert trec.seq in [m.seq for m in await tenant.inspect("alice").peek()]
    [many] = await bob.send_many([{"to": "alice", "payload": "batch"}])
    assert many.stream == AW.OUTBOX_STREAM


async def _arrived(tenant, address: str, n: int) -> bool:
    return len(await tenant.inspect(address).peek(limit=100)) >= n


async def test_an_agents_keep_latest_send_replaces_its_own_older_mail(principals, tenant):
    await tenant.send("alice", "ops status", replace_key="status")  # another sender: stays
    bob = await principals.connect("bob")
    await bob.send("alice", "bob other", replace_key="other")
    await bob.send("alice", "bob v1", replace_key="status", priority="low")
    assert await _texts(tenant, "alice") == ["bob other", "bob v1", "ops status"]
    started = time.monotonic()
    await bob.send("alice", "bob v2", replace_key="status", priority="urgent")
    took = time.monotonic() - started
    # when the send returns the new one is in the mailbox and the older one of bob's is gone
    assert await _texts(tenant, "alice") == ["bob other", "bob v2", "ops status"]
    assert principals.views is not None and principals.views.superseded == 1
    await bob.send_many(
        [
            {"to": "alice", "payload": "bob v3", "replace_key": "status"},
            {"to": "alice", "payload": "bob v4", "replace_key": "status"},
        ]
    )
    assert await _texts(tenant, "alice") == ["bob other", "bob v4", "ops status"]
    # an idempotent retry (a duplicate) replaces nothing
    rec = await bob.send("alice", "bob v5", replace_key="status", idempotency_key="once")
    again = await bob.send("alice", "bob v5", replace_key="status", idempotency_key="once")
    assert not rec.duplicate and again.duplicate
    assert await _texts(tenant, "alice") == ["bob other", "bob v5", "ops status"]
    print(f"agent keep-latest send: {took * 1000:.1f} ms")


async def test_an_agent_cannot_replace_another_senders_mail(principals, tenant):
    """carol may send to alice; naming bob as the sender with bob's key replaces nothing of
    bob's: the sidecar deletes only mail of the agent that asked."""
    bob = await principals.connect("bob")
    await bob.send("alice", "bob status", replace_key="status")
    carol = await principals.connect("carol")
    await carol.send("alice", "carol status", replace_key="status", sender="bob")
    await carol.send("alice", "carol again", replace_key="status", sender="bob")
    assert await _texts(tenant, "alice") == ["bob status", "carol again", "carol status"]
    # bob replacing his own also takes what claims to be his (forged in his name), nothing else
    await tenant.send("alice", "ops as bob", replace_key="status", sender="bob")  # not via an outbox
    await bob.send("alice", "bob status 2", replace_key="status")
    assert await _texts(tenant, "alice") == ["bob status 2", "ops as bob"]


async def test_an_agents_own_mailbox_keeps_latest_too(principals, tenant):
    bob = await principals.connect("bob")
    await bob.send("bob", "note 1", replace_key="note")
    await bob.send("bob", "note 2", replace_key="note")
    assert [m.text() for m in await bob.inspect("bob").peek()] == ["note 2"]


async def test_keep_latest_without_a_sidecar_says_the_mail_was_sent(principals, tenant):
    await principals.stop_views()
    bob = await principals.connect("bob")
    with pytest.raises(mailslot.Unavailable, match="was sent, but older mail"):
        await bob.send("alice", "unreplaced", replace_key="k")
    await until(lambda: _arrived(tenant, "alice", 1), within=5.0)  # the mover still moved it


async def test_keep_latest_while_nothing_moves_the_outbox_times_out_typed(principals, tenant, monkeypatch):
    monkeypatch.setattr(p.views, "SUPERSEDE_MOVE_WAIT", 0.5)
    await principals.stop_mover()
    bob = await principals.connect("bob")
    started = time.monotonic()
    with pytest.raises(mailslot.Unavailable, match="not moved within"):
        await bob.send("alice", "stuck", replace_key="k")
    assert time.monotonic() - started < 3.0
    assert await tenant.inspect("alice").peek() == []
    await principals.start_mover()
    await until(lambda: _arrived(tenant, "alice", 1), within=5.0)


async def test_keep_latest_finds_older_mail_past_one_scan_page(principals, tenant):
    await tenant.send_many([{"to": "alice", "payload": f"m{i}"} for i in range(V.MAX_SCAN_BATCH + 20)])
    bob = await principals.connect("bob")
    await bob.send("alice", "bob v1", replace_key="status")
    await bob.send("alice", "bob v2", replace_key="status")
    keyed = await tenant.inspect("alice").query(key="status")
    assert [m.text() for m in keyed] == ["bob v2"]
    assert len(await tenant.inspect("alice").peek(limit=1000)) == V.MAX_SCAN_BATCH + 21
