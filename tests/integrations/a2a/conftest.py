"""Fixtures for the A2A tests: clients of the test's nats-server for the requester and the
agent (separate connections, as separate processes would have), and a runner factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import mailslot
import pytest
from a2a.client import Client
from a2a_support import agent_card, free_port, serving
from mailslot_a2a import A2ARunner, client_factory
from mailslot_a2a.front import Front
from mailslot_broker import NatsServer
from testsupport import unique

Connect = Callable[..., Awaitable[mailslot.Mailslot]]


@pytest.fixture
async def connect(shared_server: NatsServer) -> AsyncIterator[Connect]:
    """Open more clients of the shared server (each a process's connection); all closed at
    the end."""
    opened: list[mailslot.Mailslot] = []

    async def open_client(name: str = "tester") -> mailslot.Mailslot:
        c = shared_server.credentials
        client = await mailslot.connect(shared_server.url, user=c.user, password=c.password, name=name)
        opened.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in opened:
            await client.close()


@pytest.fixture
async def a2a_client(connect: Connect) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """``await a2a_client(address, requester=...)``: an a2a-sdk Client on the MAILSLOT binding,
    on a connection of its own (closing it is a client restart)."""
    made: list[Client] = []

    async def make(address: str, *, requester: str, **config: Any) -> Client:
        ms = await connect(requester)
        client = client_factory(ms, requester=requester).create(agent_card(address))
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.close()


@pytest.fixture
async def runner(connect: Connect) -> AsyncIterator[Callable[..., Awaitable[A2ARunner]]]:
    """``await runner(address, executor, **options)``: an agent serving from its mailbox, on a
    connection of its own; closed at the end."""
    started: list[A2ARunner] = []

    async def start(address: str, executor: Any, **options: Any) -> A2ARunner:
        ms = await connect(address)
        r = await A2ARunner(ms, executor, agent_card(address), address=address, **options).start()
        started.append(r)
        return r

    try:
        yield start
    finally:
        for r in started:
            await r.close()


@pytest.fixture
async def front(connect: Connect) -> AsyncIterator[tuple[Front, str]]:
    """The A2A HTTP front on a connection of its own, served on a free port."""
    ms = await connect("a2a-front")
    port = free_port()
    app = Front(ms, base_url=f"http://127.0.0.1:{port}", name=unique("front"))
    try:
        async with serving(app.app, port) as url:
            yield app, url
    finally:
        await app.close()
