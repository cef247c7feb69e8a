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

import mailslot
import nats
import pytest
from mailslot import signing
from mailslot_broker import NatsServer, TenantSpec
from mailslot_broker.agents import new_seed
from mailslot_broker.config import NkeyUser
from mailslot_synadia import Bridge
from synadia_ai.agent_service import AgentService, PromptStream
from synadia_ai.agents import Envelope, Identity, VerifiedSender, signer_from_seed
from testsupport import PYTHON, client_env

ADDRESS = "sap.demo.alice.w1"
BRIDGE = "synadia.bridge.mailslot.team"
SEED, PUBLIC = new_seed()


@pytest.fixture
async def nkey_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A server whose tenant has the bridge's NKEY user besides its password user."""
    spec = TenantSpec.generate("MAILSLOT")
    spec.nkey_users.append(NkeyUser(PUBLIC))
    srv = NatsServer(tmp_path / "nats", tenants=[spec])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class _Opened:
    def __init__(self, srv: NatsServer) -> None:
        self.srv, self.conns, self.seen = srv, [], []  # type: ignore[var-annotated]

    async def nats(self, **login: Any) -> Any:
        c = self.srv.credentials
        nc = await nats.connect(self.srv.url, **(login or {"user": c.user, "password": c.password}))
        self.conns.append(nc)
        return nc

    async def mailslot(self, name: str) -> mailslot.Mailslot:
        c = self.srv.credentials
        ms = await mailslot.connect(self.srv.url, user=c.user, password=c.password, name=name)
        self.conns.append(ms)
        return ms

    async def agent(self) -> AgentService:
        async def answer(envelope: Envelope, stream: PromptStream) -> None:
            self.seen.append((stream.sender, envelope.extras))
            await stream.send(f"signed hi, {envelope.prompt}")

        svc = AgentService(
            agent="demo",
            owner="alice",
            session_name="w1",
            nc=await self.nats(),
            heartbeat_interval_s=1,
            min_sender_trust="signed",
        )
        svc.on_prompt(answer)
        await svc.start()
        self.conns.append(svc)
        return svc


@pytest.fixture
async def opened(nkey_server: NatsServer) -> AsyncIterator[_Opened]:
    o = _Opened(nkey_server)
    try:
        yield o
    finally:
        for c in reversed(o.conns):
            await (c.stop() if isinstance(c, AgentService) else c.close())


async def _bridge(o: _Opened, **options: Any) -> Bridge:
    bridge = Bridge(
        await o.mailslot("synadia-bridge"),
        await o.nats(nkeys_seed_str=SEED),
        owner="team",
        heartbeat_interval=1,
        keepalive=0.5,
        expose=False,
        prompt_timeout=10,
        **options,
    )
    o.conns.append(bridge)
    return await bridge.start()


async def test_signed_only_agent_accepts_the_bridges_signed_prompt(opened: _Opened) -> None:
    ops = await opened.mailslot("ops")
    await signing.grant_vouching(ops, BRIDGE, public_key=PUBLIC, speaks_for=["sap.>"])
    await _bridge(opened, identity=Identity(signer=signer_from_seed(SEED)), signing_seed=SEED)
    await opened.agent()
    planner = await (await opened.mailslot("planner")).open("planner")
    reply = await planner.ask(ADDRESS, "hello", timeout=30)
    assert reply.json()["text"] == "signed hi, hello"
    # Mailslot's view of the reply: sent by the bridge mailbox for w1, vouched by the bridge.
    assert (reply.sender, reply.sender_verified) == (ADDRESS, True)
    assert reply.verified_by == BRIDGE
    [(sender, extras)] = opened.seen
    assert isinstance(sender, VerifiedSender)
    assert (sender.id.user, sender.id.account) == (PUBLIC, "MAILSLOT")  # the bridge's key
    assert extras["mailslot_sender"] == "planner"
    assert extras["mailslot_sender_verified"] is False  # a tenant client signs nothing
    await planner.close()


async def test_without_its_key_the_bridges_prompt_is_refused(opened: _Opened) -> None:
    await _bridge(opened)  # the NKEY login, but no signer: an unsigned claim at most
    await opened.agent()
    planner = await (await opened.mailslot("planner")).open("planner")
    reply = await planner.ask(ADDRESS, "hello", timeout=30)
    assert reply.json()["error"] == 401
    assert not opened.seen
    await planner.close()


async def test_cli_bridge_with_an_nkey_seed_signs_both_ways(
    opened: _Opened, nkey_server: NatsServer, tmp_path: Path
) -> None:
    """``mailslot-synadia bridge --nkey-seed FILE``: the same, from the command line."""
    seed_file = tmp_path / "bridge.nk"
    seed_file.write_text(SEED + "\n")
    os.chmod(seed_file, 0o600)
    ops = await opened.mailslot("ops")
    await signing.grant_vouching(ops, BRIDGE, public_key=PUBLIC, speaks_for=["sap.>"])
    argv = [PYTHON, "-m", "mailslot_synadia", "bridge", "--owner", "team", "--heartbeat", "1"]
    argv += ["--no-expose", "--nkey-seed", str(seed_file)]
    proc = subprocess.Popen(argv, env=client_env(nkey_server), stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stderr.readline), 60)
        assert "agents.prompt" in line, line
        await opened.agent()
        planner = await (await opened.mailslot("planner")).open("planner")
        reply = await planner.ask(ADDRESS, "from the CLI", timeout=30)
        assert reply.json()["text"] == "signed hi, from the CLI"
        assert (reply.sender_verified, reply.verified_by) == (True, BRIDGE)
        [(sender, _)] = opened.seen
        assert isinstance(sender, VerifiedSender) and sender.id.user == PUBLIC
        await planner.close()
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        if proc.stderr:
            proc.stderr.close()
