"""Cluster fixtures: a 3-node JetStream cluster from the project's launcher, serving through
every node before the test starts, stopped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mailslot_broker.cluster import NatsCluster

from .measure_failover import wait_until_serving


@pytest.fixture
async def serving_cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    c = NatsCluster(tmp_path / "cluster", size=3)
    c.start()
    try:
        await wait_until_serving(c)
        yield c
    finally:
        c.stop(grace=5.0)
