"""Several bridges on one account, and a bridge that stops or is killed mid-prompt.

Two bridges serve the same addresses (NATS queue groups give each prompt to one of them;
each has an inbox of its own for its callers' chunks): every prompt is answered once, with
its chunks, and becomes one mail. A bridge process killed while it prompts a protocol agent
leaves the mail unacked: it comes back (ack_wait) to the next bridge and is answered once in
the sender's mailbox. A caller whose prompt is in flight when a bridge stops gets 503 (or,
when the process is killed, a stream that stalls: its SDK's inactivity timeout); the mail
waits either way."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import mailslot
import pytest
from conftest import BridgeFactory, ClientFactory, NatsFactory
from mailslot_broker import NatsServer
from mailslot_synadia import Bridge, PromptMail
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Envelope
from synadia_support import error_of
from testsupport import PYTHON, client_env, wait_for

SUBJECT = "agents.prompt.mailslot.team.coder"
ADDRESS = "sap.demo.alice.w1"
PROMPTS = 8


def _texts(frames: list[tuple[dict[str, str], bytes]]) -> str:
    """The concatenated ``response`` chunks of one stream."""
    out = []
    for _, data in frames:
        if data:
            chunk = json.loads(data)
            if chunk.get("type") == "response":
                out.append(chunk["data"])
    return "".join(out)


async def _stream(nc: Any, subject: str, data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Frames of one prompt, up to its terminator (TimeoutError if it stalls for 5 s)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    frames: list[tuple[dict[str, str], bytes]] = []
    try:
        await nc.publish(subject, data, reply=inbox)
        while True:
            msg = await sub.next_msg(timeout=5)
            frames.append((dict(msg.headers or {}), msg.data))
            if not msg.data and not msg.headers:
                return frames
    finally:
        await sub.unsubscribe()


async def test_two_bridges_answer_each_prompt_once_with_its_chunks(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    bridges = [await make_bridge(), await make_bridge()]
    assert bridges[0].inbox and bridges[1].inbox
    assert bridges[0].inbox.address != bridges[1].inbox.address
    coder = await client("coder")
    mb = await coder.open("coder")
    seen: list[str] = []

    async def serve() -> None:
        async for msg in mb:
            pm = PromptMail(msg, mb)
            seen.append(pm.prompt)
            await pm.send("one ")
            await pm.send("two ")
            await pm.finish(f"done {pm.prompt}")

    serving = asyncio.create_task(serve())
    await wait_for(
        lambda: all(b.exposer is not None and "coder" in b.exposer.served for b in bridges), timeout=20
    )
    nc = await nats_conn()
    streams = await asyncio.gather(*(_stream(nc, SUBJECT, f"p{i}".encode()) for i in range(PROMPTS)))
    assert [_texts(f) for f in streams] == [f"one two done p{i}" for i in range(PROMPTS)]
    assert sorted(seen) == sorted(f"p{i}" for i in range(PROMPTS))  # one mail per prompt
    assert (await coder.inspect("coder").stats()).total == 0
    serving.cancel()
    await mb.close()


async def _protocol_agent(nc: Any, handler: Callable[[Envelope, PromptStream], Any]) -> AgentService:
    svc = AgentService(agent="demo", owner="alice", session_name="w1", nc=nc, heartbeat_interval_s=1)
    svc.on_prompt(handler)
    await svc.start()
    return svc


async def test_two_bridges_deliver_each_mail_to_a_protocol_agent_once(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    await make_bridge()
    await make_bridge()
    prompts: list[str] = []

    async def echo(envelope: Envelope, stream: PromptStream) -> None:
        prompts.append(envelope.prompt)
        await stream.send(f"echo {envelope.prompt}")

    svc = await _protocol_agent(await nats_conn(), echo)
    planner_ms = await client("planner")
    planner = await planner_ms.open("planner")
    receipts = [await planner.request(ADDRESS, f"m{i}") for i in range(PROMPTS)]
    for i, r in enumerate(receipts):
        reply = await planner.reply_for(r.correlation_id, timeout=30)
        assert reply.json()["text"] == f"echo m{i}"
    assert sorted(prompts) == sorted(f"m{i}" for i in range(PROMPTS))  # each prompted once
    with pytest.raises(mailslot.Timeout):
        await planner.reply_for(receipts[0].correlation_id, timeout=1)
    await svc.stop()
    await planner.close()


@pytest.fixture
async def bridge_process(server: NatsServer) -> AsyncIterator[Callable[..., Any]]:
    """Start ``mailslot-synadia bridge`` as a process of its own; each is killed at the end."""
    procs: list[subprocess.Popen[str]] = []

    async def start(*extra: str) -> subprocess.Popen[str]:
        argv = [PYTHON, "-m", "mailslot_synadia", "bridge", "--owner", "team", "--heartbeat", "1", *extra]
        proc = subprocess.Popen(argv, env=client_env(server), stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
        procs.append(proc)
        assert proc.stderr is not None
        lines: list[str] = []
        while not lines or "agents.prompt" not in lines[-1]:  # printed once it serves
            lines.append(await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60))
            assert lines[-1], f"the bridge process ended: {lines}"
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
            if proc.stderr:
                proc.stderr.close()


async def test_bridge_killed_mid_prompt_the_mail_comes_back_and_is_answered_once(
    bridge_process: Callable[..., Any],
    make_bridge: BridgeFactory,
    client: ClientFactory,
    nats_conn: NatsFactory,
) -> None:
    """Direction 2: the mail was handed to a bridge that died before the agent answered."""
    first = asyncio.Event()
    release = asyncio.Event()
    prompts: list[str] = []

    async def slow(envelope: Envelope, stream: PromptStream) -> None:
        prompts.append(envelope.prompt)
        if len(prompts) == 1:
            first.set()
            await release.wait()  # the bridge that asked is gone by now
        await stream.send(f"answer {len(prompts)}")

    svc = await _protocol_agent(await nats_conn(), slow)
    proc = await bridge_process("--no-expose")
    planner_ms = await client("planner")
    planner = await planner_ms.open("planner")
    receipt = await planner.request(ADDRESS, "hello")
    await asyncio.wait_for(first.wait(), 30)
    proc.kill()  # SIGKILL: no goodbye, the delivery is left unacked
    await asyncio.to_thread(proc.wait, 10)
    release.set()
    await make_bridge(expose=False)  # the next bridge (ack_wait 10 s brings the mail back)
    reply = await planner.reply_for(receipt.correlation_id, timeout=40)
    assert reply.json()["text"] == "answer 2"
    with pytest.raises(mailslot.Timeout):  # answered exactly once in the sender's mailbox
        await planner.reply_for(receipt.correlation_id, timeout=2)
    assert prompts == ["hello", "hello"]  # at least once towards the agent: it was asked again
    assert not await planner_ms.dead_letters.list()
    assert (await planner_ms.inspect(ADDRESS).stats()).total == 0
    await svc.stop()
    await planner.close()


async def _offline(client: ClientFactory, address: str) -> mailslot.Mailslot:
    """A kept mailbox whose agent is away (lease lapsed)."""
    ms = await client(address)
    mb = await ms.open(address, ttl=2)
    await mb.close()
    return ms


async def test_bridge_killed_while_a_caller_waits_the_mail_still_waits(
    bridge_process: Callable[..., Any], client: ClientFactory, nats_conn: NatsFactory
) -> None:
    """Direction 1: the caller's stream stalls (its SDK's inactivity timeout is the error);
    the prompt is mail already and waits for the agent."""
    coder = await _offline(client, "coder")
    proc = await bridge_process("--no-reach")
    nc = await nats_conn()
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(SUBJECT, b"are you there?", reply=inbox)
    ack = await sub.next_msg(timeout=20)  # the leading ack: the prompt is mail now
    assert json.loads(ack.data) == {"type": "status", "data": "ack"}
    await wait_for(lambda: _waiting(coder, "coder"), timeout=10)
    proc.kill()
    await asyncio.to_thread(proc.wait, 10)
    with pytest.raises(TimeoutError):  # nothing more: no answer, no terminator
        while True:
            await sub.next_msg(timeout=3)
    async with await coder.open("coder") as mb:
        msg = await mb.receive(timeout=10)
        assert msg.json()["prompt"] == "are you there?"
        await msg.ack()


async def _waiting(ms: mailslot.Mailslot, address: str, n: int = 1) -> bool:
    return (await ms.inspect(address).stats()).total == n


@pytest.mark.parametrize("online", [False, True], ids=["offline", "online-busy"])
async def test_bridge_stopping_tells_a_waiting_caller_and_the_mail_waits(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory, online: bool
) -> None:
    """Whichever path took the prompt (the front, or the agent's own ``AgentService`` while
    its lease lives), the caller gets 503 ``bridge_stopping``."""
    if online:  # online but not receiving: the prompt waits as mail
        coder = await client("coder")
        held = await coder.open("coder")
    else:
        coder = await _offline(client, "coder")
    bridge: Bridge = await make_bridge(reach=False)
    assert bridge.exposer is not None
    exposer = bridge.exposer
    want = "online" if online else "offline"
    await wait_for(lambda: exposer.presence("coder") == want, timeout=20)
    if online:
        await wait_for(lambda: "coder" in exposer.served, timeout=20)
    nc = await nats_conn()
    streams = [asyncio.create_task(_stream(nc, SUBJECT, f"still there {i}?".encode())) for i in range(4)]
    await wait_for(lambda: _waiting(coder, "coder", 4), timeout=10)
    await bridge.close()
    for streaming in streams:
        err = error_of(await streaming)
        assert err is not None and err[0] == 503 and err[1].startswith("bridge_stopping"), err
    if online:
        await held.close()
    async with await coder.open("coder") as mb:
        got = sorted([(await mb.receive(timeout=10)).json()["prompt"] for _ in range(4)])
        assert got == [f"still there {i}?" for i in range(4)]


async def test_agent_going_offline_mid_prompt_never_ends_a_stream_empty(
    make_bridge: BridgeFactory, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    """The agent's lease lapses while prompts wait: those its ``AgentService`` took get 503
    ``agent_left`` (the service stops under them), those the front took keep waiting (504
    after ``wait_online``); no stream ends without a word, and every prompt is mail."""
    coder = await client("coder")
    held = await coder.open("coder", ttl=2)
    bridge = await make_bridge(reach=False, wait_online=8.0)
    assert bridge.exposer is not None
    exposer = bridge.exposer
    await wait_for(lambda: "coder" in exposer.served, timeout=20)
    nc = await nats_conn()
    streams = [asyncio.create_task(_stream(nc, SUBJECT, f"q{i}".encode())) for i in range(6)]
    await wait_for(lambda: _waiting(coder, "coder", 6), timeout=10)
    await held.close()  # the lease lapses: the bridge stops the agent's service
    await wait_for(lambda: "coder" not in exposer.served, timeout=20)
    codes = []
    for streaming in streams:
        err = error_of(await streaming)
        assert err is not None, "a stream ended without an answer or an error"
        codes.append((err[0], err[1].split(":")[0]))
    assert set(codes) <= {(503, "agent_left"), (504, "agent_unavailable")}, codes
    assert (await coder.inspect("coder").stats()).total == 6
