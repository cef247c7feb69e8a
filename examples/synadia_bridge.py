"""The Synadia Agent Protocol over Mailslot, both ways, with nothing but a local broker.

1. A Mailslot agent ``coder`` is a protocol agent (``agents.prompt.mailslot.local.coder``)
   through the bridge. A protocol caller (``synadia-ai-agents``) prompts it while it is
   offline: the caller is kept waiting with keep-alive acks, ``coder`` comes online, finds the
   prompt in its mailbox and streams its answer back (``PromptMail``); the caller gets it all.
2. A protocol agent (``synadia-ai-agent-service``) is reachable by mail at
   ``sap.demo.alice.w1``: a planner mails it while it is down; the mail waits; the agent
   registers, the bridge sees its heartbeat, prompts it, and the planner gets the reply.

Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else starts its own nats-server
in a temp dir and stops it at the end (``_broker.py`` beside this file).
"""

from __future__ import annotations

import asyncio
import json
import os

import mailslot
import nats
from _broker import broker
from mailslot_synadia import Bridge, PromptMail
from nats.aio.client import Client as NatsClient
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Agent, Agents, DiscoverFilter, Envelope, ResponseChunk, StatusChunk


def login() -> dict[str, str]:
    with open(os.environ["MAILSLOT_CREDENTIALS"]) as fh:
        creds = json.load(fh)
    return {"user": creds["user"], "password": creds["password"]}


async def plain_nats() -> NatsClient:
    """A protocol peer's own connection (here: the example broker's login)."""
    return await nats.connect(os.environ["MAILSLOT_URL"], **login())


async def discover(agents: Agents, *, present: bool = True, **identity: str) -> Agent | None:
    """The agent once discovery finds it (``present=False``: once it no longer does)."""
    for _ in range(100):
        found = await agents.discover(filter=DiscoverFilter(**identity), max_wait=0.5)
        if bool(found) == present:
            return found[0] if found else None
        await asyncio.sleep(0.2)
    raise TimeoutError(f"discovery of {identity} never became {present}")


async def coder_comes_online(ms: mailslot.Mailslot, after: float) -> None:
    await asyncio.sleep(after)
    async with await ms.open("coder") as mb:
        print("coder: online")
        pm = PromptMail(await mb.receive(timeout=30), mb)
        print(f"coder: got {pm.prompt!r} at priority {pm.msg.priority.label}")
        await pm.send("Looked at it. ")
        await pm.finish("LGTM.")


async def echo(envelope: Envelope, stream: PromptStream) -> None:
    await stream.send(f"w1 says: {envelope.prompt}")


async def main() -> None:
    async with mailslot.connect(name="bridge") as bridge_ms, mailslot.connect(name="coder") as coder_ms:
        bridge = await Bridge(bridge_ms, heartbeat_interval=1, keepalive=0.5).start()
        caller_nc, host_nc = await plain_nats(), await plain_nats()
        agents = Agents(nc=caller_nc)
        try:
            # 1. mailbox -> protocol agent, prompted while it is offline
            await (await coder_ms.open("coder", ttl=2, card={"description": "reviews code"})).close()
            coder = await discover(agents, agent="mailslot", session_name="coder")
            assert coder is not None
            print(f"caller: discovered {coder.prompt_subject}")
            await discover(agents, present=False, session_name="coder")  # its lease lapsed: unregistered
            print("caller: coder is offline; prompting anyway")
            comes = asyncio.create_task(coder_comes_online(coder_ms, after=1.5))
            text, acks = "", 0
            async for m in coder.prompt(Envelope(prompt="review PR 7", priority="urgent"), timeout=5):
                if isinstance(m, ResponseChunk):
                    text += m.text
                elif isinstance(m, StatusChunk):
                    acks += 1
            await comes
            print(f"caller: answer {text!r} after {acks} keep-alive acks")

            # 2. protocol agent -> reachable by mail, mailed while it is down
            planner = await bridge_ms.open("planner")
            receipt = await planner.request("sap.demo.alice.w1", "hello from a mailbox")
            print("planner: mailed sap.demo.alice.w1 while it is down")
            await asyncio.sleep(1.0)
            w1 = AgentService(
                agent="demo", owner="alice", session_name="w1", nc=host_nc, heartbeat_interval_s=1
            )
            w1.on_prompt(echo)
            await w1.start()
            print("w1: registered")
            reply = await planner.reply_for(receipt.correlation_id, timeout=30)
            print(f"planner: reply {reply.json()['text']!r}")
            await w1.stop()
            await planner.close()
            assert text == "Looked at it. LGTM." and reply.json()["text"] == "w1 says: hello from a mailbox"
            print("example: OK")
        finally:
            await agents.close()
            await bridge.close()
            for nc in (caller_nc, host_nc):
                await nc.close()


if __name__ == "__main__":
    with broker():
        asyncio.run(main())
