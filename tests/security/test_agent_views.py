"""An agent credential reads its own mailbox through the sidecar (``mview.<address>``,
``protocol/views.py``, ``sidecar/views.py``): peek, stats, query and last_seq give what a
tenant credential sees and consume nothing; another mailbox's subject is refused by the
server; no sidecar answering is ``Unavailable``."""

from __future__ import annotations

import time

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.protocol import principals as principals_wire
from mailslot_broker.sidecar.views import relayed

from .conftest import until

V = p.views


async def _fill(tenant) -> None:
    await tenant.send("alice", "n1", tags=["x"])
    await tenant.send("alice", "low", priority="low")
    await tenant.send("alice", "crit", priority="critical", tags=["x"])
    await tenant.send("alice", "n2")


async def test_an_agent_peeks_and_stats_its_own_mailbox_and_nothing_is_consumed(principals, tenant):
    await _fill(tenant)
    alice = await principals.connect("alice")
    view = alice.inspect("alice")
    want = [m.text() for m in await tenant.inspect("alice").peek()]
    assert want == ["crit", "n1", "n2", "low"]
    got = await view.peek()
    assert [m.text() for m in got] == want
    assert [m.seq for m in got] == [m.seq for m in await tenant.inspect("alice").peek()]
    assert [m.text() for m in await view.peek(limit=2)] == ["crit", "n1"]
    assert await view.peek(limit=0) == []
    assert all(m.sender == "ops" for m in got)
    stats = await view.stats()
    theirs = await tenant.inspect("alice").stats()
    assert stats.counts == theirs.counts == {"critical": 1, "urgent": 0, "normal": 2, "low": 1}
    assert stats.oldest == theirs.oldest and stats.oldest["urgent"] is None
    assert [m.text() for m in await view.query(tags=["x"])] == ["crit", "n1"]
    assert [m.text() for m in await view.query(priority="normal", limit=1)] == ["n1"]
    assert await view.last_seq() == await tenant.inspect("alice").last_seq() == max(m.seq for m in got)
    # the reply sub-address is a mailbox of its own: readable too
    assert await alice.inspect(p.reply_address("alice")).peek() == []
    # nothing was consumed: receiving afterwards gets all of it, in order
    mb = await alice.open("alice", ttl=30)
    try:
        assert [m.text() for m in await mb.peek()] == want  # Mailbox.peek: the same path
        assert (await mb.stats()).total == 4
        texts = []
        for _ in range(4):
            m = await mb.receive(timeout=5)
            texts.append(m.text())
            await m.ack()
        assert texts == want
        await until(lambda: _empty(mb), within=5.0)
        assert (await mb.stats()).total == 0 and await mb.last_seq() == 0
    finally:
        await mb.close()


async def _empty(mb) -> bool:
    return await mb.peek() == []


async def test_a_peek_pages_past_one_sidecar_answer(principals, tenant):
    n = V.MAX_SCAN_BATCH + 40
    await tenant.send_many([{"to": "alice", "payload": f"m{i}"} for i in range(n)])
    alice = await principals.connect("alice")
    got = await alice.inspect("alice").peek(limit=n + 10)
    assert [m.text() for m in got] == [f"m{i}" for i in range(n)]


async def test_an_agent_cannot_peek_another_mailbox(principals, tenant):
    await tenant.send("alice", "secret for alice")
    bob = await principals.connect("bob")
    for op in (lambda: bob.inspect("alice").peek(), lambda: bob.inspect("alice").stats()):
        started = time.monotonic()
        with pytest.raises(mailslot.PermissionDenied):
            await op()
        assert time.monotonic() - started < 3.0
    with pytest.raises(mailslot.PermissionDenied):
        await bob.inspect(p.reply_address("alice")).query()
    with pytest.raises(mailslot.PermissionDenied):
        await bob.inspect("alice.more").peek()  # a longer address is another mailbox
    raw = await principals.raw("bob")
    subject = V.view_subject("alice")
    inbox = raw.nc.new_inbox()
    sub = await raw.nc.subscribe(inbox)
    got = await raw.denied(
        subject, lambda: raw.nc.publish(subject, b'{"op": "scan", "batch": 10}', reply=inbox)
    )
    assert got == []
    with pytest.raises(Exception):  # noqa: B017 - nothing answers a refused request
        await sub.next_msg(timeout=0.5)
    assert [m.text() for m in await tenant.inspect("alice").peek()] == ["secret for alice"]


async def test_no_sidecar_answering_is_unavailable(principals, tenant):
    await principals.stop_views()
    alice = await principals.connect("alice")
    with pytest.raises(mailslot.Unavailable, match="sidecar"):
        await alice.inspect("alice").peek()
    with pytest.raises(mailslot.Unavailable, match="sidecar"):
        await alice.inspect("alice").stats()


async def test_a_bad_request_is_answered_with_400(principals, tenant):
    nc = (await principals.connect("alice")).nc
    for body in (b"not json", b'{"op": "nope"}', b'{"op": "scan", "priority": 9}'):
        reply = await nc.request(V.view_subject("alice"), body, timeout=5)
        assert reply.headers["Status"] == "400"


async def test_answers_go_only_to_the_requesting_agents_own_inbox(principals, tenant):
    """The reply subject is the requester's choice and the sidecar publishes with the
    tenant's rights: a reply subject that is not the agent's own inbox gets no answer at all
    (not mail to bob, not a purge of the mail stream, not an answer to another inbox)."""
    await tenant.send("bob", "bob's mail")
    await tenant.send("alice", "alice's mail")
    alice = await principals.connect("alice")
    bob_mail = p.mail_subject(p.Priority.CRITICAL, "bob")
    purge = f"$JS.API.STREAM.PURGE.{p.MAIL_STREAM}"
    tenant_inbox = tenant.nc.new_inbox()
    answered: list[object] = []

    async def heard(m: object) -> None:
        answered.append(m)

    async def all_refused() -> bool:
        return principals.views is not None and principals.views.refused == before + 4

    sub = await tenant.nc.subscribe(tenant_inbox, cb=heard)
    try:
        assert principals.views is not None
        before = principals.views.refused
        for reply, body in [
            (bob_mail, b'{"op": "stats"}'),
            (purge, b'{"op": "scan"}'),
            (tenant_inbox, b'{"op": "scan"}'),
            (principals_wire.inbox_prefix("bob") + ".x", b'{"op": "last"}'),  # another agent's inbox
        ]:
            await alice.nc.publish(V.view_subject("alice"), body, reply=reply)
        await alice.nc.flush()
        await until(all_refused, within=5)
        await tenant.nc.flush()
        assert answered == []
        assert [m.text() for m in await tenant.inspect("bob").peek()] == ["bob's mail"]
        assert [m.text() for m in await tenant.inspect("alice").peek()] == ["alice's mail"]
        # Its own inbox is still answered.
        assert [m.text() for m in await alice.inspect("alice").peek()] == ["alice's mail"]
    finally:
        await sub.unsubscribe()


async def test_the_sidecar_service_serves_the_views(principals, tenant):
    from mailslot_broker.sidecar import Sidecar, SidecarConfig

    await principals.stop_views()
    await tenant.send("alice", "via the service")
    creds = principals.spec.credentials.write(principals.tmp / "sidecar.json")
    config = SidecarConfig(url=principals.srv.url, credentials=creds, http_port=None, leader_ttl=1.0)
    sidecar = Sidecar(config)
    await sidecar.start()
    try:
        alice = await principals.connect("alice")
        assert [m.text() for m in await alice.inspect("alice").peek()] == ["via the service"]
    finally:
        await sidecar.stop()


def test_a_relayed_message_that_would_not_fit_loses_its_body_not_the_answer():
    from mailslot_broker import natscompat

    headers = {"Nats-Subject": "mbox.2.alice", "Nats-Sequence": "7", "Nats-Stream": "MAILSLOT_MAIL"}
    msg = natscompat.stored_msg(None, subject="x", data=b"y" * 1000, headers=headers)  # type: ignore[arg-type]
    h, data = relayed(msg, 2000)
    assert data == b"y" * 1000 and "Nats-Stream" not in h and h["Nats-Sequence"] == "7"
    h, data = relayed(msg, 1000)
    assert data == b"" and h[V.BODY_OMITTED] == "1000"


async def test_a_message_too_big_for_a_sidecar_answer_is_peeked_without_its_body(principals, tenant):
    """Near max_payload, the relay's headers would not fit: the agent's peek shows the message
    (id, sender, priority) and reading its body raises DecodeError; receiving gets it whole."""
    size = tenant.max_payload
    while True:  # the largest body a send takes (its headers count towards max_payload)
        body = "z" * size
        try:
            await tenant.send("alice", body)
            break
        except mailslot.PayloadTooLarge:
            size -= 16
    alice = await principals.connect("alice")
    (peeked,) = await alice.inspect("alice").peek()
    assert peeked.sender == "ops" and peeked.headers[V.BODY_OMITTED] == str(len(body))
    for read in (lambda: peeked.text(), peeked.json, lambda: peeked.model(str), lambda: peeked.data):
        with pytest.raises(mailslot.DecodeError, match="left out of the peek"):
            read()
    (whole,) = await tenant.inspect("alice").peek()  # a tenant credential reads it directly
    assert whole.text() == body
    mb = await alice.open("alice", ttl=30)
    try:
        m = await mb.receive(timeout=5)
        assert m.text() == body
        await m.ack()
    finally:
        await mb.close()


async def test_peek_round_trip_agent_vs_tenant(principals, tenant, capsys):
    """Not a benchmark: the numbers for the report (both must work; no ratio asserted)."""
    await tenant.send("alice", "timed")
    alice = await principals.connect("alice")
    out = {}
    for who, ms in (("tenant", tenant), ("agent", alice)):
        view = ms.inspect("alice")
        await view.peek()
        times = []
        for _ in range(30):
            t = time.perf_counter()
            assert len(await view.peek()) == 1
            times.append((time.perf_counter() - t) * 1000)
        out[who] = sorted(times)[len(times) // 2]
    with capsys.disabled():
        print(f"\npeek(1 msg) p50 ms: tenant {out['tenant']:.2f}, agent {out['agent']:.2f}")
