"""Sidecar fixtures: in-process sidecars on the test's real nats-server, and helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from mailslot_broker import NatsServer
from mailslot_broker.sidecar import Sidecar, SidecarConfig


async def wait_for(
    cond: Callable[[], Awaitable[Any] | Any], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll ``cond`` until truthy; fail with a clear message after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


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
