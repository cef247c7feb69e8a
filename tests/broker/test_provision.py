"""Streams and buckets are created at the deployment's replica count on the first try: the
cluster size comes from the server's INFO, so a single server or a two-node cluster is not
first asked for replicas it must refuse. JetStream counts every refused API request in the
account's ``api.errors``, which is what these tests read (before, a single server refused 12
creates and a two-node cluster 6)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from mailslot_broker import natscompat, provision
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster, start_node_server
from mailslot_broker.ports import PortReservation
from mailslot_broker.replicas import cluster_size
from nats.aio.client import Client
from nats.js.errors import APIError
from testsupport import wait_for

STREAMS = (p.MAIL_STREAM, p.TOPICS_STREAM, p.DLQ_STREAM)
BUCKETS = (p.AGENTS_BUCKET, p.MAILBOXES_BUCKET, p.SIDECAR_BUCKET)
NAMES = (*STREAMS, *(f"KV_{b}" for b in BUCKETS))


async def _answers(nc: Client) -> bool:
    """JetStream answers this connection's account requests (one short try)."""
    try:
        await nc.jetstream(timeout=2).account_info()
    except Exception:
        return False
    return True


async def _refused_during_provision(nc: Client) -> tuple[dict[str, int], int]:
    """The replicas created and the API requests refused, besides the one "not found" info
    of each stream or bucket that tells provisioning to create it."""
    js = nc.jetstream()
    before = (await js.account_info()).api.errors
    report = await provision(js)
    after = (await js.account_info()).api.errors
    assert sorted(report.created) == sorted(NAMES)
    for name in NAMES:
        assert (await js.stream_info(name)).config.num_replicas == report.replicas[name]
    return report.replicas, after - before - len(NAMES)


async def test_a_single_server_gets_one_replica_without_a_refusal(nc: Client) -> None:
    replicas, refused = await _refused_during_provision(nc)
    assert set(replicas.values()) == {1}
    assert refused == 0


async def test_a_two_node_cluster_gets_two_replicas_without_a_refusal(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "two", size=2) as cluster:
        c = cluster.credentials
        nc = await nats.connect(cluster.urls, user=c.user, password=c.password)
        try:
            assert cluster_size(natscompat.server_info(nc)) == 2
            # A meta leader is elected before the account's JetStream answers: on a loaded
            # host the first request of a fresh cluster timed out (1 run in 8 here).
            await wait_for(lambda: _answers(nc), timeout=30)
            replicas, refused = await _refused_during_provision(nc)
        finally:
            await nc.close()
    assert set(replicas.values()) == {2}
    assert refused == 0


async def test_a_node_that_joined_after_connect_counts(tmp_path: Path) -> None:
    """A new cluster of three elects no JetStream leader until all three are up. A client
    that connected before the third arrived has an INFO naming two: the third, known from
    the server's later INFO updates, must count, or the streams would get two replicas for
    good."""
    reservation = PortReservation("127.0.0.1", 6)
    ports = list(zip(reservation.ports[::2], reservation.ports[1::2], strict=True))
    reservation.close()
    cluster = NatsCluster(tmp_path / "forming", size=3, ports=ports)
    *early, late = cluster.nodes
    c = cluster.credentials
    try:
        for n in early:
            await asyncio.to_thread(start_node_server, n)

        async def routed() -> Client | None:
            nc = await nats.connect(early[0].url, user=c.user, password=c.password)
            if len(natscompat.server_info(nc).get("connect_urls") or ()) == 2:
                return nc
            await nc.close()
            return None

        nc = await wait_for(routed, timeout=20)
        try:
            await asyncio.to_thread(start_node_server, late)
            await asyncio.to_thread(cluster.wait_for_meta_leader, timeout=30)
            await wait_for(lambda: _answers(nc), timeout=30)  # a loaded host: the account settles later
            replicas, refused = await _refused_during_provision(nc)
        finally:
            await nc.close()
    finally:
        cluster.stop(grace=5.0)
    assert set(replicas.values()) == {3}
    assert refused == 0


async def test_an_operator_count_is_not_capped_by_the_size(nc: Client) -> None:
    """Replicas an operator asked for are tried as asked: the server refuses them."""
    with pytest.raises(APIError) as refused:
        await provision(nc.jetstream(), p.StreamSettings(replicas=3))
    assert p.jsapi.is_replicas_refused(refused.value)


def test_cluster_size_from_info() -> None:
    assert cluster_size({"server_id": "x", "jetstream": True}) == 1
    assert cluster_size({"cluster": "c", "connect_urls": ["a:1", "b:2", "c:3", "a:1"]}) == 3
    assert cluster_size({"cluster": "c", "connect_urls": ["a:1", "b:2"]}, known=["a:1", "c:3"]) == 3
    # A cluster that does not advertise its nodes, or a node with no route yet: unknown,
    # every count is tried from 3.
    assert cluster_size({"cluster": "c"}, known=["a:1"]) is None
