"""Fixtures for agents as principals: one real nats-server, tenant ACME with a tenant user
and three agent credentials (alice, bob, and carol who may send to alice only); ``tenant``
is the tenant's own SDK client on it, and ``until`` waits for an async condition."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mailslot
import nats
import pytest
from mailslot_broker import NatsServer, TenantSpec
from mailslot_broker.agents import AgentRecord, apply_on_tenant, issue_record
from mailslot_broker.config import nats_login
from mailslot_broker.sidecar.outbox import OutboxMover
from mailslot_broker.sidecar.views import MailboxViews
from mailslot_broker.tasks import cancel_and_wait

TENANT = "ACME"


@dataclass
class Principals:
    srv: NatsServer
    spec: TenantSpec
    agents: dict[str, AgentRecord]
    paths: dict[str, Path]
    tmp: Path
    _open: list[Any] = field(default_factory=list)
    #: What the sidecar does for agent mail (sidecar/outbox.py): moves it from the outbox.
    _mover: asyncio.Task[None] | None = None
    #: What the sidecar does for agents' reads of their own mailbox (sidecar/views.py).
    views: MailboxViews | None = None

    async def start_mover(self) -> None:
        login = nats_login(self.spec.credentials.write(self.tmp / "mover.json"))
        nc = await nats.connect(self.srv.url, **login.options)
        self._open.append(nc)
        mover = OutboxMover(nc.jetstream(), is_leader=lambda: True, idle=0.5)
        self._mover = asyncio.create_task(mover.run())

    async def start_views(self) -> None:
        login = nats_login(self.spec.credentials.write(self.tmp / "views.json"))
        nc = await nats.connect(self.srv.url, **login.options)
        self._open.append(nc)
        self.views = MailboxViews(nc.jetstream())
        await self.views.start()

    async def stop_views(self) -> None:
        if self.views is not None:
            await self.views.stop()
            self.views = None

    async def stop_mover(self) -> None:
        if self._mover is not None:
            await cancel_and_wait([self._mover])
            self._mover = None

    async def connect(self, who: str, **kw: Any) -> mailslot.Mailslot:
        """An SDK client: an agent's credential file, or ``tenant`` for the tenant's own."""
        path = self.paths[who] if who != "tenant" else self.spec.credentials.write(self.tmp / "tenant.json")
        ms = await mailslot.connect(self.srv.url, credentials=path, **kw)
        self._open.append(ms)
        return ms

    async def raw(self, who: str) -> RawClient:
        """A plain nats-py connection with an agent's login, recording the server's errors."""
        client = RawClient()
        login = nats_login(self.paths[who])
        client.nc = await nats.connect(
            self.srv.url, error_cb=client.on_error, max_reconnect_attempts=0, **login.options
        )
        self._open.append(client.nc)
        return client

    def revoke(self, who: str) -> None:
        """What ``revoke_agent`` does to the server: drop the user, reload."""
        user = self.agents[who].credentials.user
        self.spec.agent_users = [a for a in self.spec.agent_users if a.credentials.user != user]
        self.srv.write_config()
        self.srv.reload()


async def until(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    """Wait until ``await check()`` is true, polling every 50 ms; fail after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.05)


class RawClient:
    nc: Any

    def __init__(self) -> None:
        self.errors: list[str] = []

    async def on_error(self, exc: Exception) -> None:
        self.errors.append(str(exc).lower())

    async def denied(
        self, subject: str, action: Callable[[], Awaitable[Any]], *, within: float = 3.0
    ) -> list[Any]:
        """Run ``action`` and wait for the server's permissions violation naming ``subject``;
        returns whatever the action got (it must get nothing)."""
        got: list[Any] = []
        try:
            res = await asyncio.wait_for(action(), within)
            if res is not None:
                got.append(res)
        except Exception:  # a request that is dropped times out; a subscription gets nothing
            pass
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        while not any("permissions violation" in e and subject.lower() in e for e in self.errors):
            if loop.time() > until:
                raise AssertionError(f"no permissions violation for {subject}; errors: {self.errors}")
            await asyncio.sleep(0.02)
        return got


@pytest.fixture
async def principals(tmp_path: Path) -> AsyncIterator[Principals]:
    spec = TenantSpec.generate(TENANT)
    agents = {
        "alice": issue_record(TENANT, "alice"),
        "bob": issue_record(TENANT, "bob"),
        "carol": issue_record(TENANT, "carol", can_send=["alice"], topics=["carol.>"]),
    }
    spec.agent_users += [a.user() for a in agents.values()]
    srv = NatsServer(tmp_path / "nats", tenants=[spec])
    srv.start()
    pr = Principals(srv, spec, agents, {}, tmp_path)
    try:
        # The tenant's client provisions the streams (an agent credential cannot), and the
        # issuer publishes the public keys.
        async with mailslot.connect(srv.url, credentials=spec.credentials.write(tmp_path / "t.json")):
            pass
        for name, rec in agents.items():
            await apply_on_tenant(srv.url, spec.credentials, rec, name)
            pr.paths[name] = rec.credentials.write(tmp_path / f"{name}.json")
        await pr.start_mover()
        await pr.start_views()
        yield pr
    finally:
        await pr.stop_views()
        await pr.stop_mover()
        for c in reversed(pr._open):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 10)
        srv.stop()


@pytest.fixture
async def tenant(principals: Principals) -> mailslot.Mailslot:
    """The tenant's own SDK client (``ops``) on the principals' server, closed with them."""
    return await principals.connect("tenant", name="ops")
