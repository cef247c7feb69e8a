"""An agent's keep-latest waits for its own message to leave the outbox, not for the whole
outbox: a message the mover keeps retrying holds up no other send, and keep-latest requests
waiting for the mover have slots of their own, so they never hold the other views' slots."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats
from mailslot_broker import protocol as p
from mailslot_broker.config import nats_login
from mailslot_broker.sidecar import views as views_module
from mailslot_broker.sidecar.outbox import OutboxMover
from mailslot_broker.tasks import cancel_and_wait

from .conftest import Principals, until

V = p.views


class HoldingMover(OutboxMover):
    """The sidecar's mover, except that it never manages to move mail to ``stuck``: what it
    does with a message the mail stream keeps refusing (nak, again later)."""

    async def move(self, msgs: list[Any]) -> int:
        held = [m for m in msgs if m.subject.endswith(".stuck")]
        for m in held:
            await m.nak(delay=0.2)
        return await super().move([m for m in msgs if not m.subject.endswith(".stuck")])


async def _holding_mover(principals: Principals) -> asyncio.Task[None]:
    await principals.stop_mover()
    login = nats_login(principals.spec.credentials.write(principals.tmp / "holding.json"))
    nc = await nats.connect(principals.srv.url, **login.options)
    principals._open.append(nc)
    mover = HoldingMover(nc.jetstream(), is_leader=lambda: True, idle=0.5)
    return asyncio.create_task(mover.run())


async def _texts(tenant: Any, address: str) -> list[str]:
    return [m.text() for m in await tenant.inspect(address).peek(limit=100)]


async def _is(tenant: Any, address: str, texts: list[str]) -> bool:
    return await _texts(tenant, address) == texts


async def test_a_message_the_mover_keeps_retrying_holds_up_no_other_keep_latest(
    principals, tenant, monkeypatch
):
    monkeypatch.setattr(p.views, "SUPERSEDE_MOVE_WAIT", 3.0)
    task = await _holding_mover(principals)
    try:
        bob = await principals.connect("bob")
        await bob.send("stuck", "held in the outbox")
        await bob.send("alice", "v1", replace_key="status")
        started = time.monotonic()
        await bob.send("alice", "v2", replace_key="status")
        assert time.monotonic() - started < 2.0
        assert await _texts(tenant, "alice") == ["v2"]
        assert (await tenant.js.stream_info(p.agent_writes.OUTBOX_STREAM)).state.messages == 1
    finally:
        await cancel_and_wait([task])


async def test_keep_latest_waiting_for_the_mover_leaves_the_other_views_their_slots(
    principals, tenant, monkeypatch
):
    """More keep-latest requests than CONCURRENCY wait for a message that does not move;
    a peek is answered meanwhile, and beyond SUPERSEDE_QUEUE one is turned away at once."""
    monkeypatch.setattr(p.views, "SUPERSEDE_MOVE_WAIT", 3.0)
    monkeypatch.setattr(views_module, "SUPERSEDE_QUEUE", views_module.CONCURRENCY + 4)
    task = await _holding_mover(principals)
    try:
        bob = await principals.connect("bob")
        stuck = await bob.send("stuck", "held in the outbox")
        raw = await principals.raw("bob")
        request = json.dumps(
            {"op": V.OP_SUPERSEDE, "to": "alice", "key": "k", "outbox_seq": stuck.seq}
        ).encode()
        n = views_module.CONCURRENCY + 6
        asks = [
            asyncio.create_task(raw.nc.request(V.view_subject("bob"), request, timeout=10)) for _ in range(n)
        ]
        await until(lambda: _in_hand(principals, views_module.CONCURRENCY + 4), within=3.0)
        await tenant.send("bob", "note")
        started = time.monotonic()
        assert [m.text() for m in await bob.inspect("bob").peek()] == ["note"]
        assert time.monotonic() - started < 1.0  # not after the keep-latest waits (3 s)
        answers = await asyncio.gather(*asks)
        codes = [(a.headers or {}).get(V.STATUS_HEADER) for a in answers]
        assert codes == [V.STATUS_TIMEOUT] * n
        busy = [a for a in answers if "too many" in (a.headers or {}).get(V.DESCRIPTION_HEADER, "")]
        assert len(busy) == 2
        assert principals.views is not None and principals.views.busy == 2
    finally:
        await cancel_and_wait([task])


async def _in_hand(principals: Principals, n: int) -> bool:
    views = principals.views
    return views is not None and len(views._supersedes) == n
