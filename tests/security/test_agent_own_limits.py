"""What an agent credential stores at the edge of the server's ``max_payload`` never costs the
sidecar its connection: the outbox leaves room for what the mover adds (and an outbox message
without that room is dead-lettered, not moved forever), and a registry card too large to
answer with its headers comes without its body, the listing going on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

import mailslot
import nats
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.config import nats_login
from mailslot_broker.provision import provision_agent_writes
from mailslot_broker.sidecar.outbox import OutboxMover
from mailslot_broker.sidecar.views import MailboxViews
from mailslot_broker.tasks import cancel_and_wait
from nats.js import errors as jserr

from .conftest import Principals, until

AW = p.agent_writes


async def _tenant_nc(principals: Principals, events: list[str]) -> Any:
    async def disconnected() -> None:
        events.append("disconnected")

    async def error(exc: Exception) -> None:
        events.append(f"error {exc!r}")

    login = nats_login(principals.spec.credentials.write(principals.tmp / "own-limits.json"))
    nc = await nats.connect(principals.srv.url, disconnected_cb=disconnected, error_cb=error, **login.options)
    principals._open.append(nc)
    return nc


def _oversize(nc: Any) -> tuple[dict[str, str], bytes]:
    """A message of ``max_payload - 5`` bytes with its headers: fits the server, not once moved."""
    headers = {p.Header.FROM: "alice"}
    body = b"x" * (int(nc.max_payload) - p.views.message_size(headers, b"") - 5)
    return headers, body


async def _mailbox(tenant: mailslot.Mailslot, address: str) -> list[str]:
    return [m.text() for m in await tenant.inspect(address).peek(limit=100)]


async def test_the_outbox_refuses_what_would_not_fit_once_moved(principals, tenant):
    raw = await principals.raw("alice")
    info = await tenant.js.stream_info(AW.OUTBOX_STREAM)
    assert info.config.max_msg_size == int(raw.nc.max_payload) - p.views.OUTBOX_MOVE_ROOM
    headers, body = _oversize(raw.nc)
    with pytest.raises(jserr.APIError):
        await raw.nc.jetstream().publish("mout.2.bob", body, headers=headers, timeout=5)
    alice = await principals.connect("alice")
    await alice.send("bob", "after")
    await until(lambda: _has(tenant, "bob", ["after"]), within=5.0)


async def _has(tenant: mailslot.Mailslot, address: str, texts: list[str]) -> bool:
    return await _mailbox(tenant, address) == texts


async def test_an_outbox_message_too_large_to_move_is_dead_lettered_not_retried(principals, tenant, caplog):
    """An outbox made before it left the mover room (max_msg_size unset) holds a message that
    fits max_payload but not with Mailslot-Outbox-Seq: the mover dead-letters it without its
    body, the mail after it moves, and the mover's connection stays up. Provisioning then
    gives the outbox its room back."""
    await principals.stop_mover()
    have = (await tenant.js.stream_info(AW.OUTBOX_STREAM)).config
    await tenant.js.update_stream(dataclasses.replace(have, max_msg_size=-1))
    raw = await principals.raw("alice")
    headers, body = _oversize(raw.nc)
    ack = await raw.nc.jetstream().publish("mout.2.bob", body, headers=headers, timeout=5)
    alice = await principals.connect("alice")
    await alice.send("bob", "after")

    events: list[str] = []
    nc = await _tenant_nc(principals, events)
    mover = OutboxMover(nc.jetstream(), is_leader=lambda: True, idle=0.5)
    caplog.set_level(logging.WARNING, "mailslot.sidecar.outbox")
    task = asyncio.create_task(mover.run())
    try:
        await until(lambda: _has(tenant, "bob", ["after"]), within=10.0)
        await until(lambda: _outbox_empty(tenant), within=5.0)
        assert mover.oversize == 1 and mover.moved == 1
        dead = await tenant.dead_letters.list("bob")
        assert len(dead) == 1
        assert dead[0].headers[p.Header.DEAD_REASON] == p.views.REASON_OUTBOX_OVERSIZE
        assert dead[0].headers[p.Header.DEAD_SEQ] == str(ack.seq)
        assert p.Header.DEAD_BODY_LOST in dead[0].headers
        await asyncio.sleep(1.0)  # nothing comes back
        assert mover.oversize == 1
        assert events == [] and nc.is_connected
        assert any("over max_payload" in r.getMessage() for r in caplog.records)
    finally:
        await cancel_and_wait([task])

    report = await provision_agent_writes(tenant.js)
    assert AW.OUTBOX_STREAM in report.updated
    info = await tenant.js.stream_info(AW.OUTBOX_STREAM)
    assert info.config.max_msg_size == int(nc.max_payload) - p.views.OUTBOX_MOVE_ROOM
    again = await provision_agent_writes(tenant.js)
    assert AW.OUTBOX_STREAM in again.unchanged and not again.changed


async def _outbox_empty(tenant: mailslot.Mailslot) -> bool:
    return int((await tenant.js.stream_info(AW.OUTBOX_STREAM)).state.messages) == 0


async def test_a_card_too_large_to_answer_leaves_the_listing_whole(principals, tenant, caplog):
    """A card near max_payload is answered without its body (the views connection stays up)
    and listed by no one; every other card is."""
    events: list[str] = []
    await principals.stop_views()
    nc = await _tenant_nc(principals, events)
    views = MailboxViews(nc.jetstream())
    await views.start()
    try:
        raw = await principals.raw("alice")
        pad = int(raw.nc.max_payload) - 12 - 40
        card = json.dumps({"name": "A", "metadata": {"pad": "x" * pad}}, separators=(",", ":")).encode()
        await raw.nc.jetstream().publish(AW.agent_write_subject(p.AGENTS_BUCKET, "alice"), card, timeout=5)
        carol = await principals.connect("carol")
        cmb = await carol.open("carol", ttl=30, card={"description": "writes poems"})
        bob = await principals.connect("bob")
        caplog.set_level(logging.WARNING, "mailslot")
        await until(lambda: _listed(bob, ["carol"]), within=5.0)
        assert any("alice" in r.getMessage() and "too large" in r.getMessage() for r in caplog.records)
        assert [c.address for c in await tenant.agents()] == ["alice", "carol"]
        assert events == [] and nc.is_connected
        await cmb.close()
    finally:
        await views.stop()


async def _listed(ms: mailslot.Mailslot, addresses: list[str]) -> bool:
    return [c.address for c in await ms.agents()] == addresses


async def test_an_agent_send_too_large_once_moved_is_refused_typed_before_sending(principals, tenant):
    """The SDK checks an agent's mail against what its outbox takes (``max_payload`` less
    the mover's room), so a send near the limit fails with PayloadTooLarge before anything
    is published, not with the stream's generic refusal after."""
    bob = await principals.connect("bob")
    room = p.views.OUTBOX_MOVE_ROOM
    body = b"x" * (bob.max_payload - room // 2 - 400)  # fits max_payload with Mailslot's headers
    with pytest.raises(mailslot.PayloadTooLarge):
        await bob.send("alice", body)
    with pytest.raises(mailslot.PayloadTooLarge):
        await bob.send_many([{"to": "alice", "payload": body}])
    assert (await tenant.inspect("alice").stats()).total == 0
    await tenant.send("alice", body)  # a tenant credential has the whole max_payload
    small = await bob.send("alice", b"x" * (bob.max_payload - room - 600))
    assert small.stream == p.agent_writes.OUTBOX_STREAM
