"""Protocol agent -> reachable by mail: mail to ``sap.<agent>.<owner>.<name>``."""

from __future__ import annotations

import asyncio

import mailslot
import pytest
from conftest import BridgeFactory, ClientFactory, NatsFactory
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Envelope
from testsupport import wait_for

ADDRESS = "sap.demo.alice.w1"


async def _echo(envelope: Envelope, stream: PromptStream) -> None:
    await stream.send("echo: ")
    await stream.send(envelope.prompt)
    await stream.send(f" ({envelope.extras.get('priority')})")


async def _protocol_agent(nc: object, handler=_echo) -> AgentService:  # type: ignore[no-untyped-def]
    svc = AgentService(agent="demo", owner="alice", session_name="w1", nc=nc, heartbeat_interval_s=1)  # type: ignore[arg-type]
    svc.on_prompt(handler)
    await svc.start()
    return svc


async def test_mail_to_a_down_agent_waits_and_its_reply_lands_once(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    bridge = await make_bridge()
    planner_ms = await client("planner")
    planner = await planner_ms.open("planner")
    receipt = await planner.request(ADDRESS, "hello from a mailbox", priority="urgent")
    await asyncio.sleep(3.0)  # the agent is down: nothing delivers, nothing naks
    stats = await planner_ms.inspect(ADDRESS).stats()
    assert stats.total == 1
    assert not await planner_ms.dead_letters.list()

    svc = await _protocol_agent(await nats_conn())
    reply = await planner.reply_for(receipt.correlation_id, timeout=20)
    assert reply.json()["text"] == "echo: hello from a mailbox (urgent)"
    assert reply.json()["agent"] == "agents.prompt.demo.alice.w1"
    with pytest.raises(mailslot.Timeout):  # exactly once
        await planner.reply_for(receipt.correlation_id, timeout=2)
    await wait_for(lambda: _settled(planner_ms))
    assert bridge.reach is not None
    worker = bridge.reach.workers["agents.prompt.demo.alice.w1"]
    assert worker.delivered == [1]  # delivered once, on its first delivery: no nak while away
    await svc.stop()
    await planner.close()


async def _settled(ms: mailslot.Mailslot) -> bool:
    return (await ms.inspect(ADDRESS).stats()).total == 0


async def test_agent_leaves_and_comes_back_mail_waits_without_dead_letters(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    bridge = await make_bridge()
    planner_ms = await client("planner")
    planner = await planner_ms.open("planner")
    nc = await nats_conn()
    svc = await _protocol_agent(nc)
    first = await planner.ask(ADDRESS, "one", timeout=20)
    assert first.json()["text"] == "echo: one (normal)"
    await svc.stop()
    assert bridge.reach is not None
    await wait_for(lambda: "agents.prompt.demo.alice.w1" not in bridge.reach.workers, timeout=15)  # type: ignore[union-attr]
    receipt = await planner.request(ADDRESS, "two")
    await asyncio.sleep(2.0)
    assert (await planner_ms.inspect(ADDRESS).stats()).total == 1
    svc = await _protocol_agent(nc)
    second = await planner.reply_for(receipt.correlation_id, timeout=20)
    assert second.json()["text"] == "echo: two (normal)"
    assert not await planner_ms.dead_letters.list()
    await svc.stop()
    await planner.close()


async def test_protocol_agent_asks_the_mail_sender(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge()

    async def confirm(envelope: Envelope, stream: PromptStream) -> None:
        answer = await stream.ask("Really delete?", timeout=15)
        await stream.send(f"you answered {answer.prompt}")

    svc = await _protocol_agent(await nats_conn(), confirm)
    planner_ms = await client("planner")
    planner = await planner_ms.open("planner")
    receipt = await planner.request(ADDRESS, "delete the branch")
    question = await planner.receive(timeout=20)
    assert question.json()["query"] == "Really delete?"
    await question.reply("yes")
    await question.ack()
    reply = await planner.reply_for(receipt.correlation_id, timeout=20)
    assert reply.json()["text"] == "you answered yes"
    await svc.stop()
    await planner.close()


async def test_refused_by_the_agent_the_sender_hears_why(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge()
    svc = await _protocol_agent(await nats_conn())
    planner_ms = await client("planner")
    planner = await planner_ms.open("planner")
    reply = await planner.ask(ADDRESS, {"prompt": ""}, timeout=20)  # empty prompt: 400
    assert reply.json()["error"] == 400
    await svc.stop()
    await planner.close()
