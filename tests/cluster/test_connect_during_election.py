"""A client that connects while a stream is electing a leader rides it out.

A stream whose leader node was just killed answers nothing until the cluster elected another
(seconds). A connected client waits that out (``failover_timeout``); a client connecting in
that moment used to fail on its first unanswered request: ``connect()`` with ``Timeout`` from
provisioning (the mail stream's leader killed), a state read with ``Timeout`` (the state
bucket's). Now both wait, for up to ``failover_timeout``.
"""

from __future__ import annotations

import asyncio
import time

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster
from testsupport import unique


@pytest.mark.parametrize("stream", [p.MAIL_STREAM, p.kv_stream(p.STATE_BUCKET)])
async def test_connect_and_read_while_a_stream_elects_its_leader(
    serving_cluster: NatsCluster, stream: str
) -> None:
    cluster, cr = serving_cluster, serving_cluster.credentials
    to, ns = unique("elect"), unique("elect")
    async with await mailslot.connect(cluster.urls, user=cr.user, password=cr.password) as ms:
        await ms.state(ns).put("k", b"before the kill")
        await ms.send(to, {"n": 1})
        leader = (await ms.js.stream_info(stream)).cluster.leader
    assert leader
    killed = cluster.node(leader)
    alive = [n.url for n in cluster.nodes if n is not killed]
    await asyncio.to_thread(killed.kill)
    started = time.monotonic()
    async with await mailslot.connect(alive, user=cr.user, password=cr.password, failover_timeout=45) as ms:
        connected = time.monotonic() - started
        entry = await ms.state(ns).get("k")
        assert entry is not None and entry.value == b"before the kill"
        box = await ms.open(to)
        msg = await box.receive(timeout=45)
        assert msg.json() == {"n": 1}
        await msg.ack()
        await box.close()
    done = time.monotonic() - started
    print(f"{stream}: connected {connected:.2f} s after the kill, read and received by {done:.2f} s")
