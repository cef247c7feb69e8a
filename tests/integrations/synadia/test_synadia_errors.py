"""Protocol errors of the bridge, as a caller sees them on the wire: the error headers and a
JSON body, then the terminator."""

from __future__ import annotations

import mailslot
from conftest import BridgeFactory, ClientFactory, NatsFactory
from synadia_ai.agents import Agents
from synadia_support import discover, error_of, gone, raw_prompt

SUBJECT = "agents.prompt.mailslot.team.coder"


async def test_empty_prompt_is_400(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge()
    coder = await client("coder")
    async with await coder.open("coder"):
        agents = Agents(nc=await nats_conn())
        await discover(agents, "coder")
        nc = await nats_conn()
        for _ in range(4):  # the agent's own service or the front: either answers 400
            err = error_of(await raw_prompt(nc, SUBJECT, b""))
            assert err is not None and err[0] == 400
        assert (await coder.inspect("coder").stats()).total == 0
        await agents.close()


async def test_unknown_mailbox_is_404(make_bridge: BridgeFactory, nats_conn: NatsFactory) -> None:
    await make_bridge()
    frames = await raw_prompt(await nats_conn(), "agents.prompt.mailslot.team.nobody", b"hello?")
    err = error_of(frames)
    assert err is not None and err[0] == 404
    assert err[1].startswith("unknown_agent")
    assert frames[-1] == ({}, b"")


async def test_prompt_over_the_mail_limit_is_413(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    bridge = await make_bridge()
    coder = await client("coder")
    await (await coder.open("coder", ttl=2)).close()  # offline: the front answers
    nc = await nats_conn()
    # Fits a NATS message, but not the mail it would become (the mail's headers add to it).
    big = b"x" * (bridge.ms.max_payload - 64)
    err = error_of(await raw_prompt(nc, SUBJECT, big))
    assert err is not None and err[0] == 413, err
    assert err[1].startswith("payload_too_large")
    assert (await coder.inspect("coder").stats()).total == 0
    assert isinstance(bridge.ms, mailslot.Mailslot)


async def test_unknown_priority_is_400(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge()
    coder = await client("coder")
    await (await coder.open("coder", ttl=2)).close()
    err = error_of(await raw_prompt(await nats_conn(), SUBJECT, b'{"prompt": "hi", "priority": "asap"}'))
    assert err is not None and err[0] == 400 and err[1].startswith("bad_priority")


async def test_status_of_unknown_mailbox_is_404(make_bridge: BridgeFactory, nats_conn: NatsFactory) -> None:
    await make_bridge()
    reply = await (await nats_conn()).request("agents.status.mailslot.team.nobody", b"", timeout=5)
    assert (reply.headers or {}).get("Nats-Service-Error-Code") == "404"


async def test_reclaimed_mailbox_is_404(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    bridge = await make_bridge()
    coder = await client("coder")
    mb = await coder.open("coder", ttl=2)
    agents = Agents(nc=await nats_conn())
    await discover(agents, "coder")
    assert await bridge.exposer.resolve("coder") == "coder"  # type: ignore[union-attr]
    await mb.destroy()  # reclaimed: mailbox and mail gone
    await gone(agents, "coder", timeout=20)
    err = error_of(await raw_prompt(await nats_conn(), SUBJECT, b"anyone?"))
    assert err is not None and err[0] == 404, err
    await agents.close()
