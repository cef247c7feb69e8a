"""connect() while a cluster is still forming: JetStream does not answer until the routes are
up and a meta leader is elected. connect asks again for a while, then raises a typed error
(never nats-py's raw TimeoutError)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import NatsServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_block(own: int, peers: list[int]) -> str:
    routes = ", ".join(f'"nats://127.0.0.1:{p}"' for p in peers)
    return f'cluster {{\n  name: "forming"\n  host: "127.0.0.1"\n  port: {own}\n  routes: [{routes}]\n}}'


async def test_a_leaderless_cluster_raises_jetstream_unavailable(tmp_path: Path) -> None:
    a, b, c = _free_port(), _free_port(), _free_port()
    with NatsServer(tmp_path, cluster=_cluster_block(a, [b, c]), server_name="lonely") as srv:
        cr = srv.credentials
        started = time.monotonic()
        # First unanswered, later refused (503, as a server without JetStream answers).
        with pytest.raises(mailslot.JetStreamUnavailable) as info:
            await mailslot.connect(srv.url, user=cr.user, password=cr.password, timeout=1, failover_timeout=6)
        assert time.monotonic() - started >= 5  # it asked again, not just once
        assert not isinstance(info.value, TimeoutError)


async def test_connect_rides_out_the_routes_settling(tmp_path: Path) -> None:
    a, b = _free_port(), _free_port()
    first = NatsServer(tmp_path / "a", cluster=_cluster_block(a, [b]), server_name="a")
    second = NatsServer(tmp_path / "b", cluster=_cluster_block(b, [a]), server_name="b")
    with first:
        cr = first.credentials
        dialing = asyncio.ensure_future(
            mailslot.connect(
                first.url, user=cr.user, password=cr.password, timeout=1, provision_streams=False
            )
        )
        await asyncio.sleep(2)  # JetStream on the first node cannot answer yet
        assert not dialing.done()
        with second:
            ms = await asyncio.wait_for(dialing, 60)
            async with ms:
                assert ms.connected
