"""On a 3-node cluster the audit streams get the mail stream's replicas and record what
clients on every node send and ack (bells and acks travel the routes to the capture's leader)."""

from __future__ import annotations

from pathlib import Path

import mailslot
from cluster.conftest import serving_cluster  # noqa: F401  (a 3-node cluster serving)
from mailslot_broker.cluster import NatsCluster
from mailslot_broker.protocol import audit as pa
from testsupport import wait_for


async def test_cluster_records_every_node(serving_cluster: NatsCluster, tmp_path: Path) -> None:  # noqa: F811
    creds = serving_cluster.credentials.write(tmp_path / "c.json")
    clients = [await mailslot.connect(url, credentials=creds) for url in serving_cluster.urls]
    try:
        first = clients[0]
        await first.audit.enable()
        for name in (pa.AUDIT_CAPTURE_STREAM, pa.AUDIT_STREAM):
            assert (await first.js.stream_info(name)).config.num_replicas == 3
        box = await clients[1].open("bob")
        sent = []
        for i in range(30):
            sent.append((await clients[i % 3].send("bob", f"m{i}", sender=f"node{i % 3}")).id)
        for _ in sent:
            await (await box.receive(timeout=10)).ack()
        await box.close()

        async def complete() -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for r in await clients[2].audit.query():
                out.setdefault(r.message_id or "", []).append(r.kind)
            ok = len(out) == 30 and all(k == ["stored", "acked"] for k in out.values())
            return out if ok else {}

        history = await wait_for(complete, timeout=30)
        assert set(history) == set(sent)
    finally:
        for c in clients:
            await c.close()
