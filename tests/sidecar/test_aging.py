"""Priority aging: starving mail climbs one level per ``age_after``, never duplicated."""

from __future__ import annotations

import asyncio

import mailslot
from mailslot_broker import protocol as p
from testsupport import wait_for

from .conftest import leader_of


async def test_aging_moves_up_keeps_id_and_never_duplicates(ms, make_sidecar) -> None:
    mb = await ms.open("starving", ack_wait=30)
    busy = await ms.send("starving", "in flight", priority="low")
    waiting = await ms.send("starving", "waiting", priority="low", ttl=600)
    offline = await ms.send("offline-box", "offline", priority="normal")
    held = await mb.receive(timeout=5)  # delivered, not acked: must stay where it is
    assert held.id == busy.id
    copies: list[int] = []

    async def watch_copies() -> None:  # at no moment may two copies be in the stream
        while True:
            info = await ms.js.stream_info(p.MAIL_STREAM)
            copies.append(info.state.messages)
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_copies())
    sc = await leader_of(await make_sidecar(age_after=1.0))

    async def level(address: str, msg_id: str) -> list[p.Priority]:
        return [m.priority for m in await ms.inspect(address).peek(50) if m.id == msg_id]

    # low -> normal -> urgent -> critical, one copy at every moment.
    await wait_for(lambda: _is(level("starving", waiting.id), [p.Priority.CRITICAL]), timeout=25)
    await wait_for(lambda: _is(level("offline-box", offline.id), [p.Priority.CRITICAL]), timeout=25)
    watcher.cancel()
    assert copies and max(copies) == 3, copies
    assert await level("starving", busy.id) == [p.Priority.LOW]
    peeked = [m for m in await ms.inspect("starving").peek(50) if m.id == waiting.id]
    assert peeked[0].headers[p.Header.AGED_FROM] == "urgent"
    assert peeked[0].ttl == 600
    assert sc.metrics.values()["mailslot_messages_aged_total"] == 5
    await held.ack()
    m = await mb.receive(timeout=5)
    assert (m.id, m.priority, m.text()) == (waiting.id, p.Priority.CRITICAL, "waiting")
    await m.ack()
    try:
        extra = await mb.receive(timeout=2)
    except mailslot.Timeout:
        extra = None
    assert extra is None, f"delivered twice: {extra!r}"
    await mb.close()


async def _is(coro, want) -> bool:
    got = await coro
    await asyncio.sleep(0)
    return got == want
