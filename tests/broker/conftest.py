"""Broker fixtures: a plain nats-py connection to the test's server (no Mailslot client)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from mailslot_broker import NatsServer
from nats.aio.client import Client


@pytest.fixture
async def nc(server: NatsServer) -> AsyncIterator[Client]:
    c = server.credentials
    conn = await nats.connect(server.url, user=c.user, password=c.password)
    try:
        yield conn
    finally:
        await conn.close()
