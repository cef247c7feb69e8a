"""Sidecar fixtures: in-process sidecars on the test's real nats-server, and helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from mailslot_broker import NatsServer
from mailslot_broker.sidecar import Sidecar, SidecarConfig
from testsupport import wait_for


@pytest.fixture
async def make_sidecar(server: NatsServer) -> AsyncIterator[Callable[..., Awaitable[Sidecar]]]:
    started: list[Sidecar] = []

    async def _make(**kw: Any) -> Sidecar:
        c = server.credentials
        cfg = SidecarConfig(
            url=server.url,
            user=c.user,
            password=c.password,
            leader_ttl=kw.pop("leader_ttl", 1.5),
            sweep_interval=kw.pop("sweep_interval", 30.0),
            metrics_interval=kw.pop("metrics_interval", 0.5),
            reclaim_grace=kw.pop("reclaim_grace", 0.5),
            **kw,
        )
        sc = Sidecar(cfg)
        started.append(sc)
        await sc.start()
        return sc

    yield _make
    for sc in started:
        await sc.stop()


async def leader_of(sc: Sidecar, timeout: float = 10.0) -> Sidecar:
    await wait_for(lambda: sc.is_leader, timeout=timeout)
    return sc
