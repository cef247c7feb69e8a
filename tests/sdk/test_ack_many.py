"""``Mailbox.ack_many()`` rides out a broker restart as ``Message.ack()`` does.

What must hold: every ``ack_many()`` either returns, and then none of its messages comes
again, or raises a typed error and leaves the messages it could not confirm unsettled, so
that acking them again works.
"""

from __future__ import annotations

import asyncio
import os
import signal

import mailslot
import pytest
from mailslot_broker import NatsServer


class _Batches:
    """Every ack_many of one test: which messages it confirmed, what it raised."""

    def __init__(self) -> None:
        self.confirmed: set[int] = set()
        self.raised: list[mailslot.MailslotError] = []

    async def ack_many(self, mb: mailslot.Mailbox, batch: list[mailslot.Message]) -> None:
        try:
            await mb.ack_many(batch)
        except mailslot.MailslotError as exc:
            self.raised.append(exc)
            self.confirmed |= {m.json() for m in batch if m.settled}
            return
        assert all(m.settled for m in batch)
        self.confirmed |= {m.json() for m in batch}


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_ack_many_rides_out_a_broker_restart(server: NatsServer, kill: bool) -> None:
    """Batches (two consumers each: urgent and normal mail) are acked while the broker is
    frozen (SIGSTOP), then stopped and restarted, and while it restarts. After a clean stop
    every ack_many returns; after ``kill -9`` one may raise Timeout (a delivery the restored
    consumer forgot) with what it could not confirm unsettled. Only unconfirmed mail comes
    again, and acking the unsettled mail again works."""
    n, size = 60, 6
    address = f"ack-many-{'kill' if kill else 'term'}"
    c = server.credentials
    async with mailslot.connect(server.url, user=c.user, password=c.password) as ms:
        mb = await ms.open(address, ttl=120, ack_wait=2, prefetch=n)
        mb.failover_timeout = 10
        await ms.send_many(
            [{"to": address, "payload": i, "priority": "urgent" if i % 2 else "normal"} for i in range(n)]
        )
        msgs: list[mailslot.Message] = []
        while len(msgs) < n:
            msgs += await mb.receive_batch(max=n, timeout=10)
        msgs.sort(key=lambda m: m.json())
        batches = [msgs[i : i + size] for i in range(0, n, size)]
        acks = _Batches()
        await acks.ack_many(mb, batches[0])  # confirmed before anything happens

        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)  # the +ACKs below reach its socket, not the server
        frozen = [asyncio.ensure_future(acks.ack_many(mb, b)) for b in batches[1:5]]
        await asyncio.sleep(0.3)
        if not kill:
            os.kill(server.pid, signal.SIGTERM)  # handled as it thaws, racing the +ACKs
            os.kill(server.pid, signal.SIGCONT)
        restart = asyncio.ensure_future(asyncio.to_thread(server.restart, kill=kill))
        during = []
        for b in batches[5:]:  # while it restarts, and just after
            during.append(asyncio.ensure_future(acks.ack_many(mb, b)))
            await asyncio.sleep(0.1)
        await restart
        await asyncio.wait_for(asyncio.gather(*frozen, *during), 40)
        assert ms.reconnects >= 1
        if not kill:
            assert not acks.raised, acks.raised
        for exc in acks.raised:
            assert isinstance(exc, mailslot.Timeout), repr(exc)
        print(f"\n{len(acks.confirmed)} acks confirmed, {len(acks.raised)} ack_many raised")
        unsettled = [m for m in msgs if not m.settled]
        assert {m.json() for m in unsettled} == set(range(n)) - acks.confirmed
        if unsettled:  # left ackable: acking them again is refused for no other reason
            await acks.ack_many(mb, unsettled)
        # What comes again is only what no ack confirmed before.
        again: list[int] = []
        while True:
            try:
                m = await mb.receive(timeout=3)  # beyond the ack wait
            except mailslot.Timeout:
                break
            again.append(m.json())
            await m.ack()
        assert not set(again) & (acks.confirmed - {m.json() for m in unsettled}), again
        assert (await ms.inspect(address).stats()).total == 0
