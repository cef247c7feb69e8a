"""The audit off records nothing; bodies only when asked; retention honoured; mail with a TTL
or a delay is recorded like any other."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import mailslot
import pytest
from mailslot import sync
from mailslot_broker import NatsServer
from mailslot_broker.protocol import audit as pa
from testsupport import wait_for


async def _streams(ms: mailslot.Mailslot) -> set[str]:
    return {s.config.name for s in await ms.js.streams_info() if s.config.name}


async def _settle(box: mailslot.Mailbox, n: int) -> None:
    for _ in range(n):
        msg = await box.receive(timeout=5)
        await msg.ack()


async def test_off_records_nothing(ms: mailslot.Mailslot) -> None:
    box = await ms.open("bob")
    try:
        assert (await ms.audit.status()).enabled is False
        with pytest.raises(mailslot.AuditDisabled):
            await ms.audit.query()
        await ms.send("bob", "before", sender="alice")
        await _settle(box, 1)
        assert not {pa.AUDIT_STREAM, pa.AUDIT_CAPTURE_STREAM} & await _streams(ms)

        await ms.audit.enable()
        r = await ms.send("bob", "during", sender="alice")
        await _settle(box, 1)
        await wait_for(lambda: ms.audit.query(message_id=r.id))
        assert await ms.audit.disable() is True
        assert await ms.audit.disable() is False
        assert not {pa.AUDIT_STREAM, pa.AUDIT_CAPTURE_STREAM} & await _streams(ms)
        with pytest.raises(mailslot.AuditDisabled):
            await ms.audit.query()

        off = await ms.send("bob", "while off", sender="alice")
        await _settle(box, 1)
        await ms.audit.enable()
        assert await ms.audit.query() == []  # neither the old records nor what was sent while off
        assert (await ms.audit.status()).records == 0
        assert off.id
    finally:
        await box.close()


async def test_bodies_only_when_asked(server: NatsServer, ms: mailslot.Mailslot) -> None:
    box = await ms.open("bob")
    try:
        await ms.audit.enable()
        plain = await ms.send("bob", b"secret", sender="alice")
        await ms.audit.enable(bodies=True)
        assert (await ms.audit.status()).bodies is True
        kept = await ms.send("bob", b"kept body", sender="alice")
        # A client connecting provisions the streams again: the bell keeps its body.
        c = server.credentials
        async with await mailslot.connect(server.url, user=c.user, password=c.password) as other:
            again = await other.send("bob", b"kept too", sender="carol")
        await _settle(box, 3)  # receivers work the same with bodies on the bell
        await ms.audit.enable(bodies=False)
        after = await ms.send("bob", b"not kept", sender="alice")
        await _settle(box, 1)

        async def stored() -> dict[str, bytes | None]:
            rs = await ms.audit.query(kinds=["stored"])
            got = {r.message_id: r.body for r in rs}
            sizes.update({r.message_id: r.size for r in rs})
            return got if len(got) == 4 else {}

        sizes: dict[str | None, int | None] = {}
        bodies = await wait_for(stored)
        assert sizes == {plain.id: 6, kept.id: 9, again.id: 8, after.id: 8}
        assert bodies == {plain.id: None, kept.id: b"kept body", again.id: b"kept too", after.id: None}
        mail = await ms.js.stream_info("MAILSLOT_MAIL")
        assert mail.config.republish is not None and mail.config.republish.headers_only is True
    finally:
        await box.close()


async def test_retention_honoured(ms: mailslot.Mailslot) -> None:
    status = await ms.audit.enable(retention=2)
    assert status.retention == 2
    r = await ms.send("bob", "short-lived record", sender="alice")
    await wait_for(lambda: ms.audit.query(message_id=r.id))
    await asyncio.sleep(2.5)

    async def gone() -> bool:
        return await ms.audit.query(message_id=r.id) == []

    await wait_for(gone, timeout=10)
    assert (await ms.audit.enable(retention=3600)).retention == 3600


async def test_ttl_and_delayed_mail_recorded(ms: mailslot.Mailslot) -> None:
    await ms.audit.enable()
    short = await ms.send("bob", "gone in a second", sender="alice", ttl=1)
    later = await ms.send("bob", "in a second", sender="alice", delay=1, thread_id="th")

    async def both() -> list[mailslot.AuditRecord]:
        rs = await ms.audit.query(kinds=["stored"])
        return rs if len(rs) == 2 else []

    await asyncio.sleep(2.5)  # the TTL'd mail (and its capture copy) expired meanwhile
    rs = {r.message_id: r for r in await wait_for(both)}
    assert rs[short.id].sender == "alice" and rs[short.id].recipient == "bob"
    assert rs[later.id].thread_id == "th"


def test_sync_twin(server: NatsServer) -> None:
    c = server.credentials
    with sync.connect(server.url, user=c.user, password=c.password, name="tester") as ms:
        assert ms.audit.status().enabled is False
        with pytest.raises(mailslot.AuditDisabled):
            ms.audit.query()
        assert ms.audit.enable(retention=timedelta(days=2)).retention == 2 * 86400
        box = ms.open("bob")
        r = ms.send("bob", "hi", sender="alice", thread_id="t")
        box.receive(timeout=5).ack()
        box.close()

        def history() -> list[str]:
            return [x.kind for x in ms.audit.query(message_id=r.id)]

        deadline = time.monotonic() + 10
        while history() != ["stored", "acked"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert history() == ["stored", "acked"]
        assert [x.thread_id for x in ms.audit.query(sender="alice", recipient="bob")] == ["t", "t"]
        assert ms.audit.disable() is True


async def test_requeue_and_reclaim_histories(ms: mailslot.Mailslot) -> None:
    """A requeued message is stored again under its id (``requeued`` 1); mail in a destroyed
    mailbox dies as ``mailbox reclaimed``, written by the system."""
    await ms.audit.enable()
    box = await ms.open("bob")
    back = await ms.send("bob", "try again", sender="alice")
    await (await box.receive(timeout=5)).term(reason="later")
    dead = await ms.dead_letters.get(back.id)
    await ms.dead_letters.requeue(dead)
    await (await box.receive(timeout=5)).ack()
    left = await ms.send("bob", "never read", sender="carol")
    await box.destroy()

    async def histories() -> dict[str, list[mailslot.AuditRecord]]:
        rs: dict[str, list[mailslot.AuditRecord]] = {}
        for r in await ms.audit.query():
            rs.setdefault(r.message_id or "", []).append(r)
        return rs if len(rs.get(back.id, [])) == 5 and len(rs.get(left.id, [])) == 2 else {}

    h = await wait_for(histories)
    assert [r.kind for r in h[back.id]] == ["stored", "dead", "termed", "stored", "acked"]
    assert [r.requeued for r in h[back.id] if r.kind == "stored"] == [None, 1]
    assert h[back.id][3].seq != h[back.id][0].seq and h[back.id][4].seq == h[back.id][3].seq
    assert [(r.kind, r.reason, r.by) for r in h[left.id]] == [
        ("stored", None, "carol"),
        ("dead", "mailbox reclaimed", "mailslot"),
    ]
