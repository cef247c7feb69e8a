"""Mailbox -> protocol agent: a protocol caller prompts a Mailslot agent through the bridge."""

from __future__ import annotations

import asyncio

import mailslot
import pytest
from conftest import BridgeFactory, ClientFactory, NatsFactory
from integrations.conftest import Children
from mailslot_broker import NatsServer
from mailslot_synadia import PromptMail
from synadia_ai.agents import Agent, Agents, Envelope, ProtocolError, Query, ResponseChunk, StatusChunk
from synadia_support import discover, gone
from testsupport import PYTHON, client_env, wait_for


async def _answer_streamed(ms: mailslot.Mailslot, address: str, *, after: float) -> str:
    """Come online ``after`` seconds, take one prompt, stream two chunks and a final reply."""
    await asyncio.sleep(after)
    async with await ms.open(address) as mb:
        msg = await mb.receive(timeout=20)
        pm = PromptMail(msg, mb)
        await pm.send("first ")
        await pm.send("second ")
        await pm.finish(f"done with {pm.prompt!r}")
        return msg.priority.label


async def _seen_then_offline(ms: mailslot.Mailslot, agents: Agents, address: str) -> Agent:
    """The protocol handle of ``address``, discovered while its agent was online; the agent
    then goes offline (lease gone, mailbox kept) and its registration goes with it."""
    mb = await ms.open(address, ttl=2, card={"description": "writes code"})
    agent = await discover(agents, address)
    await mb.close()
    await gone(agents, address, timeout=20)
    return agent


async def test_offline_agent_comes_up_and_caller_gets_whole_stream(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    bridge = await make_bridge()
    coder = await client("coder")
    agents = Agents(nc=await nats_conn())
    agent = await _seen_then_offline(coder, agents, "coder")
    assert agent.agent == "mailslot" and agent.owner == "team"
    assert agent.metadata["protocol_version"] == "0.3"
    assert agent.metadata["mailslot_address"] == "coder"
    assert "coder" not in bridge.exposer.served  # type: ignore[union-attr]
    status = await agent.status()  # answered from presence, by the bridge, while it is away
    assert status.extras["mailslot"] == {"address": "coder", "presence": "offline"}

    answering = asyncio.create_task(_answer_streamed(coder, "coder", after=2.0))
    texts, acks = [], 0
    async for m in agent.prompt(Envelope(prompt="review PR 7", priority="urgent"), timeout=3):
        if isinstance(m, ResponseChunk):
            texts.append(m.text)
        elif isinstance(m, StatusChunk):
            acks += 1
    assert texts == ["first ", "second ", "done with 'review PR 7'"]
    assert acks >= 3  # the leading ack and keep-alives while the agent was away (inactivity 3 s)
    assert await answering == "urgent"
    await agents.close()


async def test_beyond_the_bound_caller_gets_504_and_the_mail_waits(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge(wait_online=1.5)
    coder = await client("coder")
    agents = Agents(nc=await nats_conn())
    agent = await _seen_then_offline(coder, agents, "coder")
    with pytest.raises(ProtocolError, match="service error 504"):
        async for _ in agent.prompt("still there?", timeout=5):
            pass
    assert (await coder.inspect("coder").stats()).total == 1
    assert not await coder.dead_letters.list()
    async with await coder.open("coder") as mb:  # the agent comes back: the prompt is there
        msg = await mb.receive(timeout=10)
        assert msg.json()["prompt"] == "still there?"
        await msg.ack()
    await agents.close()


async def test_query_round_trip(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge()
    coder = await client("coder")
    mb = await coder.open("coder")

    async def agent_side() -> None:
        msg = await mb.receive(timeout=20)
        pm = PromptMail(msg, mb)
        answer = await pm.ask("Delete branch? (yes/no)", timeout=10)
        await pm.finish(f"you said {answer}")

    task = asyncio.create_task(agent_side())
    agents = Agents(nc=await nats_conn())
    agent = await discover(agents, "coder")
    status = await agent.status()
    assert status.extras["mailslot"] == {"address": "coder", "presence": "online"}
    texts, questions = [], []
    async for m in agent.prompt("clean up", timeout=10):
        if isinstance(m, Query):
            questions.append(m.prompt)
            await m.reply("yes")
        elif isinstance(m, ResponseChunk):
            texts.append(m.text)
    await task
    assert questions == ["Delete branch? (yes/no)"]
    assert texts == ["you said yes"]
    await mb.close()
    await agents.close()


LEASED = """
import asyncio, sys, mailslot
async def main():
    ms = await mailslot.connect()
    await ms.open("coder", ttl=2)
    print("RESULT {}", flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_heartbeats_stop_when_the_lease_lapses(
    make_bridge: BridgeFactory, nats_conn: NatsFactory, server: NatsServer, children: Children
) -> None:
    await make_bridge()
    nc = await nats_conn()
    beats: list[float] = []

    async def on_beat(_msg: object) -> None:
        beats.append(asyncio.get_running_loop().time())

    await nc.subscribe("agents.hb.mailslot.team.coder", cb=on_beat)
    proc = children.spawn([PYTHON, "-c", LEASED], client_env(server))
    await children.result(proc, timeout=60)
    await wait_for(lambda: len(beats) >= 2, timeout=10)
    children.kill(proc)  # no close: the lease lapses (ttl 2 s) without anyone removing it
    agents = Agents(nc=await nats_conn())
    await gone(agents, "coder", timeout=15)
    last = len(beats)
    await asyncio.sleep(3.5)  # more than three heartbeat intervals
    assert len(beats) == last
    await agents.close()


async def test_card_names_the_protocol_tokens(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge()
    ms = await client("team.reviewer")
    card = {"metadata": {"synadia": {"owner": "ops", "name": "reviewer"}}}
    hidden = {"metadata": {"synadia": {"expose": False}}}
    mb = await ms.open("team.reviewer", card=card)
    await ms.open("team.private", card=hidden)
    agents = Agents(nc=await nats_conn())
    agent = await discover(agents, "reviewer")
    assert (agent.agent, agent.owner, agent.prompt_subject) == (
        "mailslot",
        "ops",
        "agents.prompt.mailslot.ops.reviewer",
    )
    assert agent.metadata["mailslot_address"] == "team.reviewer"
    assert not [
        a for a in await agents.discover(max_wait=0.5) if a.metadata.get("mailslot_address") == "team.private"
    ]

    async def answer() -> None:
        msg = await mb.receive(timeout=20)
        await msg.reply({"text": f"reviewed {msg.json()['prompt']}"})
        await msg.ack()

    task = asyncio.create_task(answer())
    texts = [m.text async for m in agent.prompt("PR 9", timeout=10) if isinstance(m, ResponseChunk)]
    await task
    assert texts == ["reviewed PR 9"]
    await agents.close()
