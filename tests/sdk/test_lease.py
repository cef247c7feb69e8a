"""The lease: renewed with one conditional write, shared by replicas of one agent."""

from __future__ import annotations

import asyncio

import mailslot
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from testsupport import unique


async def test_renewals_keep_one_agent_online(shared_ms: mailslot.Mailslot) -> None:
    address = unique("lease")
    box = await shared_ms.open(address, ttl=1.5)
    try:
        await asyncio.sleep(4.0)  # over two lease lifetimes (renewed every ttl/3 = 0.5 s)
        assert address in [a.address for a in await shared_ms.agents()]
    finally:
        await box.close()


async def test_two_replicas_of_one_agent_both_renew(shared_server: NatsServer) -> None:
    """Each replica's held revision goes stale whenever the other renews: the fallback read
    keeps both renewing, and the lease alive after either one leaves."""
    c = shared_server.credentials
    address = unique("replicas")
    a = await mailslot.connect(shared_server.url, user=c.user, password=c.password)
    b = await mailslot.connect(shared_server.url, user=c.user, password=c.password)
    try:
        box_a = await a.open(address, ttl=1.5)
        box_b = await b.open(address, ttl=1.5)
        await asyncio.sleep(3.2)
        assert box_a._lease is not None and box_b._lease is not None
        assert box_a._lease.renewals >= 4 and box_b._lease.renewals >= 4
        await box_a.close()
        await asyncio.sleep(3.0)  # two lease lifetimes: only b keeps it alive now
        assert address in [x.address for x in await b.agents()]
        await box_b.send(address, "still here")
        got = await box_b.receive(timeout=5)
        assert got is not None and got.text() == "still here"
        await got.ack()
    finally:
        await a.close()
        await b.close()


async def _api_total(ms: mailslot.Mailslot) -> int:
    return int((await ms.js.account_info()).api.total)


async def test_a_renewal_of_a_live_lease_costs_no_api_request(ms: mailslot.Mailslot) -> None:
    """An idle mailbox, blocked in receive: its renewals (one KV write each) and its waiting
    pulls make no JetStream API request (consumers are not re-added on every renewal)."""
    box = await ms.open(unique("idle"), ttl=1.5)
    waiting = asyncio.ensure_future(box.receive())
    try:
        await asyncio.sleep(0.5)
        before, renewals = await _api_total(ms), box._lease.renewals if box._lease else 0
        await asyncio.sleep(3.0)
        assert box._lease is not None and box._lease.renewals - renewals >= 5
        assert await _api_total(ms) - before <= 1  # the account_info call itself
    finally:
        waiting.cancel()
        await box.close()


async def test_a_lapsed_lease_is_re_created_with_its_consumers(ms: mailslot.Mailslot) -> None:
    """What the sidecar does when a lease lapses (the key goes, so do the consumers): the next
    renewal re-creates the lease and brings the consumers back, with nobody receiving."""
    address = unique("lapsed")
    for prio in p.PRIORITIES:  # mail at every level: all four consumers are bound at open
        await ms.send(address, "held", priority=prio.label)
    box = await ms.open(address, ttl=1.5)
    try:
        await (await ms.js.key_value(p.AGENTS_BUCKET)).delete(address)
        for prio in p.PRIORITIES:
            await ms.js.delete_consumer(p.MAIL_STREAM, p.consumer_name(address, prio))
        await asyncio.sleep(1.5)  # over two renewals
        for prio in p.PRIORITIES:
            await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))
        assert address in [a.address for a in await ms.agents()]
    finally:
        await box.close()
