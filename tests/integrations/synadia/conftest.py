"""Fixtures for the Synadia bridge tests: plain NATS connections for the protocol side (the
Synadia SDKs' transport), more Mailslot clients, and a bridge on the test's own server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import mailslot
import nats
import pytest
from mailslot_broker import NatsServer
from mailslot_synadia import Bridge
from nats.aio.client import Client as NatsClient

NatsFactory = Callable[[], Awaitable[NatsClient]]
ClientFactory = Callable[[str], Awaitable[mailslot.Mailslot]]
BridgeFactory = Callable[..., Awaitable[Bridge]]


class _Opened:
    """Connections of one test (each a process's), all closed at its end."""

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.conns: list[NatsClient | mailslot.Mailslot] = []

    async def nats(self) -> NatsClient:
        c = self.server.credentials
        self.conns.append(nc := await nats.connect(self.server.url, user=c.user, password=c.password))
        return nc

    async def mailslot(self, name: str) -> mailslot.Mailslot:
        c = self.server.credentials
        ms = await mailslot.connect(self.server.url, user=c.user, password=c.password, name=name)
        self.conns.append(ms)
        return ms


@pytest.fixture
async def _opened(server: NatsServer) -> AsyncIterator[_Opened]:
    opened = _Opened(server)
    try:
        yield opened
    finally:
        for conn in reversed(opened.conns):
            await conn.close()


@pytest.fixture
def nats_conn(_opened: _Opened) -> NatsFactory:
    """Open plain NATS connections to the test's server (the protocol side)."""
    return _opened.nats


@pytest.fixture
def client(_opened: _Opened) -> ClientFactory:
    """Open more Mailslot clients of the test's server."""
    return _opened.mailslot


@pytest.fixture
async def make_bridge(nats_conn: NatsFactory, client: ClientFactory) -> AsyncIterator[BridgeFactory]:
    """Start bridges (own Mailslot client and NATS connection each, short timings); closed
    at the end."""
    bridges: list[Bridge] = []

    async def start(**options: Any) -> Bridge:
        options = {"heartbeat_interval": 1, "keepalive": 0.5, "owner": "team", **options}
        bridge = Bridge(await client("synadia-bridge"), await nats_conn(), **options)
        bridges.append(bridge)
        return await bridge.start()

    try:
        yield start
    finally:
        for bridge in bridges:
            await bridge.close()
