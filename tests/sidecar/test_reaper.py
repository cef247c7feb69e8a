"""Lease reaper: a mailbox whose retention ran out after its lease lapsed is reclaimed (its
unread mail to dead letters) and an event is published."""

from __future__ import annotations

import asyncio
import json

import mailslot
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from testsupport import wait_for

from .conftest import leader_of


async def _gone(ms: mailslot.Mailslot, address: str) -> bool:
    info = await ms.js.stream_info(p.MAIL_STREAM, subjects_filter=p.mail_subject_all_priorities(address))
    if sum((info.state.subjects or {}).values()):
        return False
    for prio in p.PRIORITIES:
        try:
            await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))
            return False
        except jserr.NotFoundError:
            pass
    for bucket in (p.AGENTS_BUCKET, p.MAILBOXES_BUCKET):  # no lease, no record
        kv = await ms.js.key_value(bucket)
        try:
            await kv.get(address)
            return False
        except jserr.KeyNotFoundError:
            pass
    return True


async def _events(ms: mailslot.Mailslot) -> list[dict]:
    got: list[dict] = []

    async def cb(msg) -> None:
        got.append(json.loads(msg.data))

    await ms.nc.subscribe(p.topic_subject(p.system_topic(p.EVENT_AGENT_RECLAIMED)), cb=cb)
    return got


async def test_lapsed_lease_is_reclaimed_and_announced(ms, make_sidecar) -> None:
    sc = await leader_of(await make_sidecar())
    events = await _events(ms)
    mb = await ms.open("reap-me", ttl=2, keep=1)
    await ms.send("reap-me", "one")
    await ms.send("reap-me", "two", priority="urgent")
    await mb.close()  # stop renewing: the lease lapses ~2 s later, retention 1 s after
    kept = await ms.open("keep-me", ttl=2)  # renewed: must survive
    destroyed = await ms.open("destroy-me", ttl=30)
    await destroyed.destroy()  # reclaimed by its owner: not a lapsed lease, no event
    await wait_for(lambda: any(e["address"] == "reap-me" for e in events), timeout=20)
    assert await wait_for(lambda: _gone(ms, "reap-me"), timeout=10)
    ev = next(e for e in events if e["address"] == "reap-me")
    assert ev["unread"] == 2
    dead = await ms.dead_letters.list("reap-me")
    assert sorted(d.text() for d in dead) == ["one", "two"]
    assert {d.reason for d in dead} == {p.REASON_RECLAIMED}
    assert [e.address for e in sc.reclaims] == ["reap-me"]
    assert sc.metrics.values()["mailslot_leases_reclaimed_total"] == 1
    await asyncio.sleep(1.0)
    assert not any(e["address"] in ("keep-me", "destroy-me") for e in events)
    assert not await _gone(ms, "keep-me")
    await kept.close()


async def test_leases_that_expired_while_the_sidecar_was_down(ms, make_sidecar) -> None:
    events = await _events(ms)
    for name in ("down-a", "down-b"):
        mb = await ms.open(name, ttl=1, keep=1)
        await ms.send(name, "waiting")
        await mb.close()
    never_opened = await ms.send("nobody-home", "keep me")  # no record: mail must wait
    kv = await ms.js.key_value(p.AGENTS_BUCKET)

    async def lapsed() -> bool:
        for name in ("down-a", "down-b"):
            try:
                e = await kv.get(name)
                if e.value:
                    return False
            except jserr.KeyNotFoundError:
                pass
        return True

    await wait_for(lapsed, timeout=15)
    # Purge the expiry markers too, so only the start-up sweep can find them (no watch event).
    for name in ("down-a", "down-b"):
        await ms.js.purge_stream(f"KV_{p.AGENTS_BUCKET}", subject=f"$KV.{p.AGENTS_BUCKET}.{name}")
    sc = await leader_of(await make_sidecar())
    await wait_for(lambda: {e.address for e in sc.reclaims} == {"down-a", "down-b"}, timeout=15)
    assert await _gone(ms, "down-a") and await _gone(ms, "down-b")
    await wait_for(lambda: len(events) == 2, timeout=10)
    peek = await ms.inspect("nobody-home").peek()
    assert [m.id for m in peek] == [never_opened.id]
