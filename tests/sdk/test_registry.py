"""The agent registry: list live cards, filter them, watch joins and leaves."""

from __future__ import annotations

import time

import mailslot
from mailslot import AgentCard


async def test_list_and_filter(ms: mailslot.Mailslot) -> None:
    assert await ms.agents() == []
    await ms.open("coder", card=AgentCard(name="Coder", capabilities=["python"], tags=["dev"]))
    await ms.open("tester", card={"name": "Tester", "capabilities": ["pytest"], "tags": ["dev", "qa"]})
    await ms.open()  # anonymous agents are listed too, with an empty card
    cards = await ms.agents()
    assert len(cards) == 3
    assert [c.address for c in await ms.agents(capability="python")] == ["coder"]
    assert [c.address for c in await ms.agents(tag="dev")] == ["coder", "tester"]
    assert [c.name for c in await ms.agents(tag="qa", capability="pytest")] == ["Tester"]
    assert await ms.agents(tag="nope") == []


async def test_watch_join_and_leave_on_lapse_and_destroy(ms: mailslot.Mailslot) -> None:
    await ms.open("already-here")
    async with ms.watch_agents() as watch:
        assert set(watch.known) == {"already-here"}
        short = await ms.open("short-lived", ttl=2, card=AgentCard(name="S"))
        ev = await watch.next(timeout=10)
        assert (ev.kind, ev.address, ev.card and ev.card.name) == ("join", "short-lived", "S")
        await short.close()  # stops renewing: the lease lapses ~2 s later
        t0 = time.monotonic()
        ev = await watch.next(timeout=15)
        assert (ev.kind, ev.address) == ("leave", "short-lived")
        assert time.monotonic() - t0 > 1.0
        assert [c.address for c in await ms.agents()] == ["already-here"]

        doomed = await ms.open("doomed", ttl=30)
        assert (await watch.next(timeout=10)).kind == "join"
        await doomed.destroy()
        ev = await watch.next(timeout=10)
        assert (ev.kind, ev.address) == ("leave", "doomed")
        assert [c.address for c in await ms.agents()] == ["already-here"]
        # renewals of a live lease are not events
        keeper = await ms.open("keeper", ttl=1.5)
        assert (await watch.next(timeout=10)).address == "keeper"
        try:
            ev = await watch.next(timeout=2.5)
            raise AssertionError(f"unexpected event {ev}")
        except mailslot.Timeout:
            pass
        await keeper.close()


async def test_watch_initial_reports_live_agents(ms: mailslot.Mailslot) -> None:
    await ms.open("a1")
    await ms.open("a2")
    watch = await ms.watch_agents(initial=True)
    try:
        got = {(await watch.next(timeout=5)).address for _ in range(2)}
        assert got == {"a1", "a2"}
    finally:
        await watch.close()
    seen = [ev async for ev in watch]  # closed: iteration ends
    assert seen == []


def test_sync_twin_agents_and_watch(server) -> None:  # type: ignore[no-untyped-def]
    from mailslot import sync

    c = server.credentials
    with sync.connect(server.url, user=c.user, password=c.password) as ms, ms.watch_agents() as watch:
        ms.open("sync-agent", card={"capabilities": ["sql"]})
        ev = watch.next(timeout=10)
        assert (ev.kind, ev.address) == ("join", "sync-agent")
        assert [a.address for a in ms.agents(capability="sql")] == ["sync-agent"]
