"""Replication is a property of the deployment: no client with default settings lowers it.

Before, provisioning treated ``num_replicas`` as upgradable with a default of 1, so one
default-settings ``mailslot send`` against an R3 cluster turned every stream back to R1.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster
from mailslot_broker.provision import provision
from mailslot_broker.replicas import FULL_COUNT_WAIT
from testsupport import PYTHON, ROOT

STREAMS = (p.MAIL_STREAM, p.TOPICS_STREAM, p.DLQ_STREAM)
BUCKETS = tuple(f"KV_{b}" for b in (p.AGENTS_BUCKET, p.MAILBOXES_BUCKET, p.SIDECAR_BUCKET))


@pytest.fixture
def cluster(tmp_path: Path):
    c = NatsCluster(tmp_path / "cluster", size=3)
    c.start()
    try:
        yield c
    finally:
        c.stop(grace=5.0)


async def _replicas(ms: mailslot.Mailslot) -> dict[str, int]:
    return {name: (await ms.js.stream_info(name)).config.num_replicas or 1 for name in STREAMS + BUCKETS}


async def test_default_clients_create_r3_and_never_lower_it(cluster, tmp_path) -> None:
    creds = cluster.credentials.write(tmp_path / "c.json")
    # The first client ever, with default settings: the deployment decides (3 nodes -> R3).
    async with mailslot.connect(cluster.urls, credentials=creds) as ms:
        # A fallback below the deployment's size is reported: shown if this ever fails.
        assert set((await _replicas(ms)).values()) == {3}, ms.provisioned.warnings
        assert set(ms.provisioned.replicas.values()) == {3}
    # A default-settings CLI command (what broke it before).
    env = dict(os.environ, MAILSLOT_URL=",".join(cluster.urls), MAILSLOT_CREDENTIALS=str(creds))
    out = await asyncio.to_thread(
        subprocess.run,
        [PYTHON, "-m", "mailslot", "send", "x", "hello"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    # A client asking for fewer changes nothing; one asking for more is told, not obeyed.
    async with mailslot.connect(cluster.urls, credentials=creds, settings=p.StreamSettings(replicas=1)) as ms:
        assert set((await _replicas(ms)).values()) == {3}
        assert ms.provisioned.warnings == []
        assert (await (await ms.open("x")).receive(timeout=10)).text() == "hello"


async def test_raising_replicas_is_an_operator_action(cluster, tmp_path) -> None:
    creds = cluster.credentials.write(tmp_path / "c.json")
    async with mailslot.connect(cluster.urls, credentials=creds, settings=p.StreamSettings(replicas=1)) as ms:
        # Created at R1 because an operator asked for R1.
        assert set((await _replicas(ms)).values()) == {1}
    async with mailslot.connect(cluster.urls, credentials=creds, settings=p.StreamSettings(replicas=3)) as ms:
        assert set((await _replicas(ms)).values()) == {1}
        assert any(p.MAIL_STREAM in w and "operator" in w for w in ms.provisioned.warnings)
        report = await provision(ms.js, p.StreamSettings(replicas=3), raise_replicas=True)
        assert report.warnings == [] or all("KV_" in w for w in report.warnings)
        for name in STREAMS:
            assert (await ms.js.stream_info(name)).config.num_replicas == 3, name


async def test_a_two_node_cluster_gets_two_replicas(tmp_path) -> None:
    """The deployment decides: three replicas are refused on two nodes, two are taken."""
    small = NatsCluster(tmp_path / "two", size=2)
    small.start()
    try:
        creds = small.credentials.write(tmp_path / "c.json")
        async with mailslot.connect(small.urls, credentials=creds) as ms:
            assert set((await _replicas(ms)).values()) == {2}
    finally:
        small.stop(grace=5.0)


async def test_a_refused_full_count_costs_one_wait_and_is_reported(tmp_path) -> None:
    """Three nodes, one without JetStream: the deployment counts three but can place two.
    A refusal of the full count is first taken for a node not placeable yet (a cluster still
    forming) and retried for a while; then the streams get two replicas (mail is not held
    hostage), the operator is told, and only the first create waited."""
    mixed = NatsCluster(tmp_path / "mixed", size=3)
    mixed.nodes[2].config.jetstream = False
    mixed.start()
    try:
        creds = mixed.credentials.write(tmp_path / "c.json")
        started = time.monotonic()
        async with mailslot.connect(mixed.urls[:2], credentials=creds) as ms:
            elapsed = time.monotonic() - started
            assert set((await _replicas(ms)).values()) == {2}
            assert len(ms.provisioned.warnings) == len(STREAMS + BUCKETS), ms.provisioned.warnings
            assert all("refused 3" in w and "operator" in w for w in ms.provisioned.warnings)
    finally:
        mixed.stop(grace=5.0)
    assert FULL_COUNT_WAIT <= elapsed < 2 * FULL_COUNT_WAIT + 10, elapsed
