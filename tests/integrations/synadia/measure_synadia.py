"""Measure the Synadia bridge on a throwaway nats-server (not a test; run it directly):

    .tools/bin/uv run --no-sync python tests/integrations/synadia/measure_synadia.py [--runs 50] [--vouch]

Prompt -> first response chunk, as a protocol caller (``synadia-ai-agents``) sees it, median,
p90 and max of ``--runs`` prompts after a warm-up, on the same server:

1. direct: an ``AgentService`` echo agent;
2. through the bridge: a Mailslot agent (receive, reply) exposed as ``mailslot/bench/echo``;
   the prompt becomes mail and the reply comes back as the chunk;
3. the other way, for reference: Mailslot ``ask`` to ``sap.demo.bench.echo``, which the bridge
   prompts to the direct agent; ask -> reply.

``--vouch`` gives the bridge a signing key (``signing_seed``, granted ``sap.>``): every mail it
sends is signed, and the Mailslot agent checks the signatures of what it receives.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import mailslot
import nats
from mailslot import signing
from mailslot_broker import NatsServer
from mailslot_broker.agents import new_seed
from mailslot_synadia import Bridge
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Agent, Agents, DiscoverFilter, Envelope, ResponseChunk

warnings.filterwarnings("ignore", category=DeprecationWarning)


async def echo(envelope: Envelope, stream: PromptStream) -> None:
    await stream.send(f"echo: {envelope.prompt}")


async def first_chunk(agent: Agent, text: str) -> float:
    t0 = time.perf_counter()
    first = None
    async for m in agent.prompt(text, timeout=30):
        if isinstance(m, ResponseChunk) and first is None:
            first = time.perf_counter() - t0
    assert first is not None
    return first * 1000


async def find(agents: Agents, **flt: str) -> Agent:
    for _ in range(100):
        hits = await agents.discover(filter=DiscoverFilter(**flt), max_wait=0.5)
        if hits:
            return hits[0]
    raise RuntimeError(f"not discovered: {flt}")


def summary(name: str, ms_list: list[float]) -> str:
    qs = statistics.quantiles(ms_list, n=10)
    return (
        f"{name}: median {statistics.median(ms_list):.2f} ms, p90 {qs[-1]:.2f} ms, "
        f"max {max(ms_list):.2f} ms ({len(ms_list)} prompts)"
    )


async def mailslot_echo(mb: mailslot.Mailbox) -> None:
    async for msg in mb:
        await msg.reply({"text": f"echo: {msg.json()['prompt']}"})
        await msg.ack()


async def main(runs: int, vouch: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="synadia-measure-"))
    server = NatsServer(work / "nats")
    server.start()
    c = server.credentials
    conns = [await nats.connect(server.url, user=c.user, password=c.password) for _ in range(3)]
    host_nc, caller_nc, bridge_nc = conns
    bridge_ms = await mailslot.connect(server.url, user=c.user, password=c.password, name="bridge")
    agent_ms = await mailslot.connect(server.url, user=c.user, password=c.password, name="echo")
    svc = AgentService(agent="demo", owner="bench", session_name="echo", nc=host_nc)
    svc.on_prompt(echo)
    await svc.start()
    seed = None
    if vouch:
        seed, public = new_seed()
        await signing.grant_vouching(
            agent_ms, "synadia.bridge.mailslot.bench", public_key=public, speaks_for=["sap.>"]
        )
    bridge = await Bridge(bridge_ms, bridge_nc, owner="bench", signing_seed=seed).start()
    mb = await agent_ms.open("echo")
    loop_task = asyncio.create_task(mailslot_echo(mb))
    agents = Agents(nc=caller_nc)
    try:
        direct = await find(agents, agent="demo", owner="bench", session_name="echo")
        bridged = await find(agents, agent="mailslot", owner="bench", session_name="echo")
        for agent in (direct, bridged):  # warm-up
            for _ in range(5):
                await first_chunk(agent, "warm")
        d, b = [], []
        for i in range(runs):  # interleaved, so both see the same machine load
            d.append(await first_chunk(direct, f"p{i}"))
            b.append(await first_chunk(bridged, f"p{i}"))
        print(summary("direct protocol call      ", d))
        print(summary("through the bridge (mail) ", b))
        asker = await agent_ms.open("asker")
        await asker.ask("sap.demo.bench.echo", "warm", timeout=30)
        r = []
        for i in range(runs):
            t0 = time.perf_counter()
            reply = await asker.ask("sap.demo.bench.echo", f"p{i}", timeout=30)
            r.append((time.perf_counter() - t0) * 1000)
            assert reply.json()["text"] == f"echo: p{i}"
        print(summary("mail ask -> protocol agent", r))
        await asker.close()
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        await agents.close()
        await bridge.close()
        await svc.stop()
        await mb.close()
        for ms in (agent_ms, bridge_ms):
            await ms.close()
        for nc in conns:
            await nc.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--vouch", action="store_true", help="the bridge signs its mail (signing_seed)")
    args = ap.parse_args()
    asyncio.run(main(args.runs, args.vouch))
