"""Connect options: one checked set, shared by ``connect`` and ``sync.connect``."""

from __future__ import annotations

import math

import mailslot
import pytest
from mailslot import sync
from testsupport import unique


async def test_failover_timeout_is_a_connect_option_a_mailbox_can_override(shared_server):
    c = shared_server.credentials
    async with (
        mailslot.connect(shared_server.url, user=c.user, password=c.password) as ms,
        await ms.open(unique("fo-default")) as mb,
    ):
        assert mb.failover_timeout == 30.0
    async with (
        mailslot.connect(shared_server.url, user=c.user, password=c.password, failover_timeout=7) as ms,
        await ms.open(unique("fo-seven")) as mb,
        await ms.open(unique("fo-other")) as other,
    ):
        assert mb.failover_timeout == 7.0
        mb.failover_timeout = math.inf
        assert mb.failover_timeout == math.inf and other.failover_timeout == 7.0


def test_sync_connect_takes_it_too(shared_server):
    c = shared_server.credentials
    with (
        sync.connect(shared_server.url, user=c.user, password=c.password, failover_timeout=4) as ms,
        ms.open(unique("fo-sync")) as mb,
    ):
        assert mb.aio.failover_timeout == 4.0


@pytest.mark.parametrize("bad", [-1, "30", True, math.nan])
def test_bad_failover_timeout_is_refused_before_connecting(bad):
    # No server at all: the options are checked when connect() is called.
    with pytest.raises(mailslot.InvalidInput, match="failover_timeout"):
        mailslot.connect("nats://127.0.0.1:1", failover_timeout=bad)
    with pytest.raises(mailslot.InvalidInput, match="failover_timeout"):
        sync.connect("nats://127.0.0.1:1", failover_timeout=bad)
