"""A reply is taken only from the reply sub-address, whatever rings its bell.

A bell (``bell.<p>.<address>._replies``) carries a correlation id and a stream sequence, and
the reply box used to take the message at that sequence if its correlation id matched,
wherever it was stored. A publisher allowed on the bell subject, or a push consumer delivering
there (its deliver subject is in the request body, which no permission checks; what it
delivers keeps the subject it was stored on), could so hand an asker mail planted in another
mailbox as its reply. Now a bell counts only on a bell subject of the reply address, and a
reply is taken only if it is stored in the reply sub-address."""

from __future__ import annotations

import asyncio

import mailslot
import nats
import pytest
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from testsupport import unique


async def test_a_bell_naming_mail_of_another_mailbox_hands_over_nothing(
    ms: mailslot.Mailslot, server: NatsServer
) -> None:
    asker, victim = unique("asker"), unique("victim")
    mb = await ms.open(asker)
    c = server.credentials
    raw = await nats.connect(server.url, user=c.user, password=c.password)
    try:
        corr = (await mb.request(unique("nobody"), "question")).id
        planted = await ms.send(victim, "not a reply", correlation_id=corr)
        waiting = asyncio.create_task(mb.reply_for(corr, timeout=3))
        await asyncio.sleep(0.5)  # the reply box waits for a bell before the fake one rings
        await raw.publish(
            f"{p.BELL_PREFIX}.0.{p.reply_address(asker)}",
            b"",
            headers={p.Header.CORRELATION_ID: corr, p.Header.NATS_SEQUENCE: str(planted.seq)},
        )
        with pytest.raises(mailslot.Timeout):
            await waiting
        assert (await ms.inspect(victim).stats()).total == 1  # the planted message stays
        answer = await ms.send(p.reply_address(asker), "the real reply", correlation_id=corr)
        got = await mb.reply_for(corr, timeout=5)
        assert got.text() == "the real reply" and got.seq == answer.seq
    finally:
        await raw.close()
        await mb.close()
