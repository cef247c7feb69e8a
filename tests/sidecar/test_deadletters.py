"""Dead letters: max deliveries and term reach the DLQ; requeue puts them back."""

from __future__ import annotations

import asyncio
import contextlib

import mailslot
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from testsupport import wait_for

from .conftest import leader_of


async def _exhaust(mb: mailslot.Mailbox, *, until: float = 15.0) -> int:
    """Receive without acking until the server gives up (each pull lets it notice)."""
    seen = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + until
    while loop.time() < end:
        try:
            await mb.receive(timeout=1.5)
            seen += 1
        except mailslot.Timeout:
            if seen:
                return seen
    return seen


async def _in_mail_stream(ms: mailslot.Mailslot, seq: int) -> bool:
    try:
        await ms.js.get_msg(p.MAIL_STREAM, seq=seq)
        return True
    except jserr.NotFoundError:
        return False


async def test_max_deliveries_goes_to_dlq_and_requeue_round_trip(ms, make_sidecar) -> None:
    sc = await leader_of(await make_sidecar())
    mb = await ms.open("flaky", max_deliver=2, ack_wait=1)
    r = await ms.send("flaky", {"job": 1}, priority="urgent", sender="boss")
    assert await _exhaust(mb) == 2
    await wait_for(lambda: len(sc.dead) == 1, timeout=20)
    assert not await _in_mail_stream(ms, r.seq)
    dead = await ms.dead_letters.list()
    assert len(dead) == 1
    d = dead[0]
    assert (d.id, d.address, d.priority, d.reason, d.deliveries, d.mail_seq) == (
        r.id,
        "flaky",
        p.Priority.URGENT,
        "max deliveries",
        2,
        r.seq,
    )
    assert d.json() == {"job": 1} and d.sender == "boss" and not d.body_lost
    assert (await ms.dead_letters.get(d.id)).seq == d.seq
    assert (await ms.dead_letters.get(d.seq)).id == r.id
    # A replay of the same advisory must not duplicate the dead letter.
    sc._advisories.put_nowait(
        {"mail_seq": r.seq, "deliveries": 2, "reason": "max deliveries", "consumer": None}
    )
    await asyncio.sleep(0.5)
    assert await ms.dead_letters.count() == 1
    # Requeue: same id and priority, received again, gone from the DLQ.
    await mb.close()
    mb2 = await ms.open("flaky", max_deliver=2, ack_wait=1)
    receipt = await ms.dead_letters.requeue(d.id)
    assert receipt is not None
    assert receipt.id == r.id and receipt.priority == p.Priority.URGENT and not receipt.duplicate
    # A retried requeue (by id, by sequence, by the object) is a no-op, not an error.
    assert await ms.dead_letters.requeue(d.id) is None
    assert await ms.dead_letters.requeue(d.seq) is None
    assert await ms.dead_letters.requeue(d) is None
    m = await mb2.receive(timeout=10)
    assert (m.id, m.priority, m.json()) == (r.id, p.Priority.URGENT, {"job": 1})
    assert m.headers[p.Header.REQUEUED] == "1"
    await m.ack()
    assert await ms.dead_letters.count() == 0
    await mb2.close()


async def test_term_goes_to_dlq(ms, make_sidecar) -> None:
    sc = await leader_of(await make_sidecar())
    mb = await ms.open("picky", max_deliver=5, ack_wait=5)
    plain = await ms.send("picky", "raw term")
    coop = await ms.send("picky", "cooperative term")
    m1 = await mb.receive(timeout=5)
    assert m1.id == plain.id
    # a foreign client's plain +TERM: the server deletes the body at once
    await ms.nc.publish(m1._msg.reply, b"+TERM bad")
    m2 = await mb.receive(timeout=5)
    assert m2.id == coop.id
    await m2.term(reason="worse")  # Mailslot's term keeps the body
    await wait_for(lambda: len(sc.dead) >= 1, timeout=15)
    await asyncio.sleep(0.5)
    dead = {d.mail_seq: d for d in await ms.dead_letters.list("picky")}
    assert set(dead) == {plain.seq, coop.seq}
    lost, kept = dead[plain.seq], dead[coop.seq]
    assert lost.reason == "bad" and lost.body_lost and lost.address == "picky"
    assert kept.reason == "worse" and not kept.body_lost and kept.text() == "cooperative term"
    assert kept.id == coop.id
    with contextlib.suppress(mailslot.MessageError):
        await ms.dead_letters.requeue(lost.seq)
        raise AssertionError("a body-less dead letter must not be requeued")
    assert await ms.dead_letters.purge("picky") == 2
    assert await ms.dead_letters.list() == []
    await mb.close()


async def test_missed_advisory_is_found_by_the_sweep(ms, make_sidecar) -> None:
    mb = await ms.open("nobody-watching", max_deliver=2, ack_wait=1)
    r = await ms.send("nobody-watching", "lost advisory")
    assert await _exhaust(mb) == 2  # no sidecar: the advisory goes nowhere
    await wait_for(lambda: _in_mail_stream(ms, r.seq))
    ci = await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name("nobody-watching", p.Priority.NORMAL))
    assert ci.num_ack_pending == 0
    sc = await leader_of(await make_sidecar())
    await wait_for(lambda: len(sc.dead) == 1, timeout=15)
    assert sc.dead[0].mail_seq == r.seq
    assert not await _in_mail_stream(ms, r.seq)
    assert [d.id for d in await ms.dead_letters.list()] == [r.id]
    await mb.close()


async def test_sync_twin(server, ms, make_sidecar) -> None:
    from mailslot import sync

    await leader_of(await make_sidecar())
    mb = await ms.open("sync-box", max_deliver=5, ack_wait=5)
    r = await ms.send("sync-box", "for the sync twin")
    m = await mb.receive(timeout=5)
    await ms.dead_letters.term(m, reason="sync")
    c = server.credentials

    def use_sync() -> tuple[list[str], str, int]:
        with sync.connect(server.url, user=c.user, password=c.password) as sms:
            ids = [d.id for d in sms.dead_letters.list("sync-box")]
            receipt = sms.dead_letters.requeue(r.id)
            assert receipt is not None
            assert sms.dead_letters.requeue(r.id) is None
            return ids, receipt.id, sms.dead_letters.count()

    ids, requeued, left = await asyncio.to_thread(use_sync)
    assert ids == [r.id] and requeued == r.id and left == 0
    again = await mb.receive(timeout=5)
    assert again.id == r.id
    await again.ack()
    await mb.close()
