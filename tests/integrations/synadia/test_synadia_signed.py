"""The bridge's own prompts, signed (direction 2): a bridge whose NATS user is an NKEY user
signs ``Agent-Sender`` with that key, and the same key signs its mail (one key, one identity
in both worlds). A protocol agent that accepts only signed senders answers it and sees the
bridge's verified identity; without the key it refuses."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BridgeFactory, ClientFactory, NatsFactory
from mailslot import signing
from mailslot_broker import NatsServer
from mailslot_broker.agents import new_seed
from mailslot_synadia import Bridge
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Envelope, Identity, VerifiedSender, signer_from_seed
from testsupport import PYTHON, client_env

ADDRESS = "sap.demo.alice.w1"
BRIDGE = "synadia.bridge.mailslot.team"
SEED, PUBLIC = new_seed()

# Each test's server (conftest) lets the bridge's NKEY user in besides the password user.
pytestmark = pytest.mark.parametrize("server", [[PUBLIC]], indirect=True, ids=["nkey"])


class _SignedOnlyAgent:
    """Starts protocol agents demo/alice/w1 that accept only signed senders and answer
    ``signed hi, <prompt>``; ``seen`` is each prompt's (sender, extras)."""

    def __init__(self, nats_conn: NatsFactory) -> None:
        self.nats_conn = nats_conn
        self.services: list[AgentService] = []
        self.seen: list[tuple[Any, dict[str, Any]]] = []

    async def start(self) -> AgentService:
        async def answer(envelope: Envelope, stream: PromptStream) -> None:
            self.seen.append((stream.sender, envelope.extras))
            await stream.send(f"signed hi, {envelope.prompt}")

        svc = AgentService(
            agent="demo",
            owner="alice",
            session_name="w1",
            nc=await self.nats_conn(),
            heartbeat_interval_s=1,
            min_sender_trust="signed",
        )
        svc.on_prompt(answer)
        await svc.start()
        self.services.append(svc)
        return svc


@pytest.fixture
async def agent(nats_conn: NatsFactory) -> AsyncIterator[_SignedOnlyAgent]:
    """Its services stop before the test's connections close."""
    agents = _SignedOnlyAgent(nats_conn)
    try:
        yield agents
    finally:
        for svc in reversed(agents.services):
            await svc.stop()


async def _bridge(make_bridge: BridgeFactory, **options: Any) -> Bridge:
    """A bridge logged in as the NKEY user, not exposing mailboxes, with a short prompt bound."""
    return await make_bridge(login={"nkeys_seed_str": SEED}, expose=False, prompt_timeout=10, **options)


async def test_signed_only_agent_accepts_the_bridges_signed_prompt(
    client: ClientFactory, make_bridge: BridgeFactory, agent: _SignedOnlyAgent
) -> None:
    ops = await client("ops")
    await signing.grant_vouching(ops, BRIDGE, public_key=PUBLIC, speaks_for=["sap.>"])
    await _bridge(make_bridge, identity=Identity(signer=signer_from_seed(SEED)), signing_seed=SEED)
    await agent.start()
    planner = await (await client("planner")).open("planner")
    reply = await planner.ask(ADDRESS, "hello", timeout=30)
    assert reply.json()["text"] == "signed hi, hello"
    # Mailslot's view of the reply: sent by the bridge mailbox for w1, vouched by the bridge.
    assert (reply.sender, reply.sender_verified) == (ADDRESS, True)
    assert reply.verified_by == BRIDGE
    [(sender, extras)] = agent.seen
    assert isinstance(sender, VerifiedSender)
    assert (sender.id.user, sender.id.account) == (PUBLIC, "MAILSLOT")  # the bridge's key
    assert extras["mailslot_sender"] == "planner"
    assert extras["mailslot_sender_verified"] is False  # a tenant client signs nothing
    await planner.close()


async def test_without_its_key_the_bridges_prompt_is_refused(
    client: ClientFactory, make_bridge: BridgeFactory, agent: _SignedOnlyAgent
) -> None:
    await _bridge(make_bridge)  # the NKEY login, but no signer: an unsigned claim at most
    await agent.start()
    planner = await (await client("planner")).open("planner")
    reply = await planner.ask(ADDRESS, "hello", timeout=30)
    assert reply.json()["error"] == 401
    assert not agent.seen
    await planner.close()


async def test_cli_bridge_with_an_nkey_seed_signs_both_ways(
    client: ClientFactory, agent: _SignedOnlyAgent, server: NatsServer, tmp_path: Path
) -> None:
    """``mailslot-synadia bridge --nkey-seed FILE``: the same, from the command line."""
    seed_file = tmp_path / "bridge.nk"
    seed_file.write_text(SEED + "\n")
    os.chmod(seed_file, 0o600)
    ops = await client("ops")
    await signing.grant_vouching(ops, BRIDGE, public_key=PUBLIC, speaks_for=["sap.>"])
    argv = [PYTHON, "-m", "mailslot_synadia", "bridge", "--owner", "team", "--heartbeat", "1"]
    argv += ["--no-expose", "--nkey-seed", str(seed_file)]
    proc = subprocess.Popen(argv, env=client_env(server), stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60)
        assert "agents.prompt" in line, line
        await agent.start()
        planner = await (await client("planner")).open("planner")
        reply = await planner.ask(ADDRESS, "from the CLI", timeout=30)
        assert reply.json()["text"] == "signed hi, from the CLI"
        assert (reply.sender_verified, reply.verified_by) == (True, BRIDGE)
        [(sender, _)] = agent.seen
        assert isinstance(sender, VerifiedSender) and sender.id.user == PUBLIC
        await planner.close()
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        if proc.stderr:
            proc.stderr.close()
