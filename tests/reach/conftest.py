"""Reach fixtures: a nats-server with the MQTT and WebSocket listeners on free 127.0.0.1 ports,
device users in the tenant's account, and clients over ``nats://`` and ``ws://``."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator

import mailslot
import pytest
from mailslot_broker import NatsServer
from mailslot_broker.config import DEFAULT_TENANT, Credentials, TenantSpec
from reach_support import DEVICES, client, device_password


@pytest.fixture(scope="module")
def reach_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    spec = TenantSpec.generate(DEFAULT_TENANT)
    spec.device_users = [Credentials(tenant=spec.name, user=d, password=device_password(d)) for d in DEVICES]
    srv = NatsServer(
        tmp_path_factory.mktemp("reach") / "nats",
        tenants=[spec],
        mqtt_port=0,
        websocket_port=0,
        max_payload=64 * 1024,
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def reach_ms(reach_server: NatsServer) -> AsyncIterator[mailslot.Mailslot]:
    ms = await client(reach_server, reach_server.url)
    try:
        yield ms
    finally:
        await ms.close()


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """A transport or socket left open is reported by the test that left it (as an error,
    warnings being errors), not by whichever later test the garbage collector runs in."""
    yield
    gc.collect()
