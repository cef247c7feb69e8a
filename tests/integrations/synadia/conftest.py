"""Fixtures for the Synadia bridge tests: plain NATS connections for the protocol side (the
Synadia SDKs' transport), more Mailslot clients, and a bridge on the test's own server.

``server`` is tests/conftest.py's (a fresh nats-server of the test's own) with one parameter:
parametrized indirectly with NKEY public keys, its tenant also has those NKEY users besides its
password user (``pytest.mark.parametrize("server", [[public_key]], indirect=True)``), so a
test can log a connection or a bridge in with the seed (``nats_conn(nkeys_seed_str=seed)``,
``make_bridge(login={"nkeys_seed_str": seed})``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import mailslot
import nats
import pytest
from mailslot_broker import NatsServer, TenantSpec
from mailslot_broker.config import DEFAULT_TENANT, NkeyUser
from mailslot_synadia import Bridge
from nats.aio.client import Client as NatsClient

ClientFactory = Callable[[str], Awaitable[mailslot.Mailslot]]
BridgeFactory = Callable[..., Awaitable[Bridge]]


class NatsFactory(Protocol):
    """Opens a plain NATS connection: the tenant's password user, or the ``login`` given
    (``nats.connect`` options, e.g. ``nkeys_seed_str=``)."""

    def __call__(self, **login: Any) -> Awaitable[NatsClient]: ...


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server (port 0, 127.0.0.1, JetStream in tmp_path), stopped afterwards; an
    indirect parameter is a list of NKEY public keys its tenant also lets in."""
    spec = TenantSpec.generate(DEFAULT_TENANT)
    spec.nkey_users += [NkeyUser(key) for key in getattr(request, "param", [])]
    srv = NatsServer(tmp_path / "nats", tenants=[spec])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class _Opened:
    """Connections of one test (each a process's), all closed at its end."""

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.conns: list[NatsClient | mailslot.Mailslot] = []

    async def nats(self, **login: Any) -> NatsClient:
        c = self.server.credentials
        login = login or {"user": c.user, "password": c.password}
        self.conns.append(nc := await nats.connect(self.server.url, **login))
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
    at the end. ``login`` logs the bridge's NATS connection in otherwise (``nats_conn``)."""
    bridges: list[Bridge] = []

    async def start(*, login: dict[str, Any] | None = None, **options: Any) -> Bridge:
        options = {"heartbeat_interval": 1, "keepalive": 0.5, "owner": "team", **options}
        bridge = Bridge(await client("synadia-bridge"), await nats_conn(**(login or {})), **options)
        bridges.append(bridge)
        return await bridge.start()

    try:
        yield start
    finally:
        for bridge in bridges:
            await bridge.close()
