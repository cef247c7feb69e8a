"""Fixtures for the mq9 gateway tests: a gateway replica on the test's server (or the shared
one) and an mq9 client on a plain NATS connection, as the mq9 SDK has."""

from __future__ import annotations

from collections.abc import AsyncIterator

import mailslot
import pytest
from mailslot_mq9 import Gateway
from mq9_support import Mq9, connect


async def _mq9_on(server) -> AsyncIterator[tuple[Mq9, mailslot.Mailslot, Gateway]]:
    c = server.credentials
    ms = await mailslot.connect(server.url, user=c.user, password=c.password, name="tester")
    nc = await connect(server)
    gw = await Gateway(ms).start()
    try:
        yield Mq9(nc), ms, gw
    finally:
        await gw.close()
        await nc.close()
        await ms.close()


@pytest.fixture
async def mq9(shared_server) -> AsyncIterator[tuple[Mq9, mailslot.Mailslot, Gateway]]:
    """(mq9 client, Mailslot client, gateway) on the shared server: use unique addresses."""
    async for x in _mq9_on(shared_server):
        yield x


@pytest.fixture
async def mq9_fresh(server) -> AsyncIterator[tuple[Mq9, mailslot.Mailslot, Gateway]]:
    """The same on a fresh server (for listings of the whole account)."""
    async for x in _mq9_on(server):
        yield x
