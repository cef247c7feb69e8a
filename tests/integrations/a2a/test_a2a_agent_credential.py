"""The A2A runner and HTTP front connected with an agent credential (docs/deploy.md §8), on a
server of their own with tenant ACME and agent credentials for ``alice`` and ``bob``, and the
sidecar's outbox mover running (an agent's sends go through its outbox).

A credential for ``bob`` cannot serve ``alice``'s mailbox (typed ``PermissionDenied`` at
once, alice's mail left waiting). On its own credential the runner and the front keep A2A
tasks in bob's own part of the state store (``ms.state("a2a")`` on an agent credential,
sdk/_agent_state.py), and the front, which may not list the registry, reads bob's card by its
address and fronts bob alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mailslot
import nats
import pytest
from a2a_support import V1, EchoExecutor, agent_card, free_port, rpc, send_params, serving
from mailslot_a2a import A2ARunner
from mailslot_a2a.front import Front
from mailslot_broker import NatsServer, TenantSpec
from mailslot_broker.agents import apply_on_tenant, issue_record
from mailslot_broker.config import nats_login
from mailslot_broker.sidecar.outbox import OutboxMover
from mailslot_broker.tasks import cancel_and_wait
from testsupport import PYTHON, wait_for

TENANT = "ACME"
#: How fast a refusal must come: the server's permissions violation, not a timeout.
FAST = 3.0


@dataclass
class Agents:
    srv: NatsServer
    paths: dict[str, Path]
    tenant_path: Path
    opened: list[Any] = field(default_factory=list)

    async def connect(self, who: str) -> mailslot.Mailslot:
        """An SDK client with ``who``'s agent credential, or the tenant's for ``tenant``."""
        path = self.tenant_path if who == "tenant" else self.paths[who]
        ms = await mailslot.connect(self.srv.url, credentials=path)
        self.opened.append(ms)
        return ms


@pytest.fixture
async def agents(tmp_path: Path) -> AsyncIterator[Agents]:
    spec = TenantSpec.generate(TENANT)
    records = {name: issue_record(TENANT, name) for name in ("alice", "bob")}
    spec.agent_users += [r.user() for r in records.values()]
    srv = NatsServer(tmp_path / "nats", tenants=[spec])
    srv.start()
    mover: asyncio.Task[None] | None = None
    nc = None
    tenant_path = spec.credentials.write(tmp_path / "tenant.json")
    found = Agents(srv, {}, tenant_path)
    try:
        # The tenant's client provisions (an agent credential cannot); the issuer publishes
        # the public keys.
        async with mailslot.connect(srv.url, credentials=tenant_path):
            pass
        for name, rec in records.items():
            await apply_on_tenant(srv.url, spec.credentials, rec, name)
            found.paths[name] = rec.credentials.write(tmp_path / f"{name}.json")
        nc = await nats.connect(srv.url, **nats_login(tenant_path).options)
        mover = asyncio.create_task(OutboxMover(nc.jetstream(), is_leader=lambda: True, idle=0.5).run())
        yield found
    finally:
        if mover is not None:
            await cancel_and_wait([mover])
        for client in reversed(found.opened):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 10)
        if nc is not None:
            await nc.close()
        srv.stop()


def _new_tasks(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t not in before and not t.done()]


async def test_another_agents_credential_cannot_serve_its_mailbox(agents: Agents) -> None:
    tenant = await agents.connect("tenant")
    await tenant.send("alice", "for alice only")
    bob = await agents.connect("bob")
    runner = A2ARunner(bob, EchoExecutor(), agent_card("alice"), address="alice")
    started = time.monotonic()
    with pytest.raises(mailslot.PermissionDenied) as denied:
        await runner.start()
    assert time.monotonic() - started < FAST
    assert "alice" in str(denied.value)
    await runner.close()
    assert [m.text() for m in await tenant.inspect("alice").peek()] == ["for alice only"]


async def test_runner_on_its_own_credential_keeps_tasks_in_its_own_state_and_stops(agents: Agents) -> None:
    """The runner starts on bob's credential (its task store and cancel watch are bob's own
    state), and closing it leaves nothing running."""
    bob = await agents.connect("bob")
    await asyncio.sleep(0)
    before = set(asyncio.all_tasks())
    runner = A2ARunner(bob, EchoExecutor(), agent_card("bob"), address="bob")
    started = time.monotonic()
    await runner.start()
    assert time.monotonic() - started < FAST
    await runner.close()
    await asyncio.sleep(0.1)
    assert _new_tasks(before) == []  # no lease renewal, no receive loop, no watch left behind


async def test_front_on_an_agent_credential_fronts_that_agent_only(agents: Agents) -> None:
    """Bob's front serves bob's card (read by its address, not by listing the registry: bob's
    tasks live in bob's own state, so the front fronts bob only), lists bob alone, and refuses
    alice (unknown here, though registered) before writing anything."""
    tenant = await agents.connect("tenant")
    alice_runner = A2ARunner(tenant, EchoExecutor(), agent_card("alice"), address="alice")
    await alice_runner.start()
    await alice_runner.close()  # alice is registered, offline
    bob = await agents.connect("bob")
    bob_box = await bob.open("bob", ttl=30, card=mailslot.AgentCard(name="bob the echo"))
    port = free_port()
    front = Front(bob, base_url=f"http://127.0.0.1:{port}", name="bob")
    await front.start()
    try:
        async with serving(front.app, port) as base, httpx.AsyncClient(base_url=base, headers=V1) as http:
            card = (await http.get("/agents/bob/.well-known/agent-card.json")).json()
            assert card["name"] == "bob the echo"
            assert (await http.get("/agents/alice/.well-known/agent-card.json")).status_code == 404
            assert [a["address"] for a in (await http.get("/agents")).json()] == ["bob"]
            refused = (await http.post("/agents/alice", json=rpc("SendMessage", send_params("hi")))).json()
            assert refused["error"]["code"] == -32602
    finally:
        await front.close()
        await bob_box.close()
    assert await tenant.state("a2a", agent="bob").keys() == []


async def test_cli_front_with_an_agent_credential_serves_its_agent(agents: Agents, children: Any) -> None:
    bob = await agents.connect("bob")
    box = await bob.open("bob", ttl=30)
    env = {**os.environ, "MAILSLOT_URL": agents.srv.url, "MAILSLOT_CREDENTIALS": str(agents.paths["bob"])}
    port = free_port()
    proc = children.spawn(
        [PYTHON, "-m", "mailslot_a2a", "serve", "--http", f"127.0.0.1:{port}", "--name", "bob"], env
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=V1) as http:

            async def card() -> Any:
                try:
                    r = await http.get("/agents/bob/.well-known/agent-card.json")
                except httpx.TransportError:
                    assert proc.poll() is None, children.stderr(proc)
                    return None
                return r.json() if r.status_code == 200 else None

            found = await wait_for(card, timeout=60, interval=0.2)
            assert found["supportedInterfaces"][0]["url"].endswith("/agents/bob")
            sent = (await http.post("/agents/bob", json=rpc("SendMessage", send_params("queued")))).json()
            assert sent["result"]["task"]["status"]["state"] == "TASK_STATE_SUBMITTED"
    finally:
        await box.close()


async def test_a2a_round_trip_with_the_agents_own_credential(agents: Agents) -> None:
    """What should work: bob's runner and an HTTP front for bob, both on bob's credential;
    a plain JSON-RPC SendMessage to the front comes back COMPLETED with bob's reply, and a
    streamed send yields the task's events to the end."""
    runner_ms = await agents.connect("bob")
    front_ms = await agents.connect("bob")
    port = free_port()
    front = Front(front_ms, base_url=f"http://127.0.0.1:{port}", name="bob")
    async with A2ARunner(runner_ms, EchoExecutor(), agent_card("bob"), address="bob"):
        await front.start()
        try:
            async with serving(front.app, port) as base, httpx.AsyncClient(base_url=base, headers=V1) as http:
                sent = (await http.post("/agents/bob", json=rpc("SendMessage", send_params("hi")))).json()
                task_id = sent["result"]["task"]["id"]

                async def completed() -> Any:
                    got = (await http.post("/agents/bob", json=rpc("GetTask", {"id": task_id}, 2))).json()
                    done = got["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
                    return got["result"] if done else None

                result = await wait_for(completed, timeout=20)
                assert result["artifacts"][0]["parts"][0]["text"] == "echo: hi"
                stream = rpc("SendStreamingMessage", send_params("streamed", returnImmediately=False), 3)
                async with http.stream("POST", "/agents/bob", json=stream) as resp:
                    lines = [line async for line in resp.aiter_lines() if line.startswith("data:")]
                assert "TASK_STATE_COMPLETED" in lines[-1]
        finally:
            await front.close()
