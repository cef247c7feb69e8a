"""Two reclaimers of one mailbox (the sidecar and an operator's reclaim_expired, or two
sidecar replicas) never fail each other: the second finds the mail gone, not an error."""

from __future__ import annotations

import asyncio

from mailslot_broker import protocol as p
from mailslot_broker import provision, reclaim_mailbox
from mailslot_broker.deadletters import delete_stored
from nats.aio.client import Client


async def test_concurrent_reclaims_of_one_mailbox_both_succeed(nc: Client) -> None:
    js = nc.jetstream()
    await provision(js)
    for i in range(20):
        await js.publish(
            p.mail_subject(p.Priority.NORMAL, "racy"), f"m{i}".encode(), headers={p.Header.MSG_ID: f"id-{i}"}
        )
    reports = await asyncio.gather(*(reclaim_mailbox(js, "racy") for _ in range(3)))
    assert sum(r.messages_dead_lettered for r in reports) >= 20
    info = await js.stream_info(p.MAIL_STREAM)
    assert info.state.messages == 0
    dlq = await js.stream_info(p.DLQ_STREAM)
    assert dlq.state.messages == 20  # one dead letter each, however many reclaimers moved it


async def test_delete_stored_says_gone_instead_of_raising(nc: Client) -> None:
    js = nc.jetstream()
    await provision(js)
    ack = await js.publish(p.mail_subject(p.Priority.LOW, "gone"), b"x")
    assert await delete_stored(js, p.MAIL_STREAM, ack.seq) is True
    assert await delete_stored(js, p.MAIL_STREAM, ack.seq) is False
