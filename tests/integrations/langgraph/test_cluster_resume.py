"""On a 3-node cluster: a graph paused in process A (state in MailslotCheckpointer, R3), the
node leading the state store's stream killed, the thread resumed in process B. The
processes share nothing but the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import mailslot
from cluster.conftest import serving_cluster  # noqa: F401  (the 3-node cluster fixture)
from lg_helpers import HERE, assert_empty, run_child
from mailslot_broker import protocol as p
from mailslot_broker.cluster import NatsCluster

STATE_STREAM = f"KV_{p.STATE_BUCKET}"


async def _wait_for_new_leaders(ms: mailslot.Mailslot, killed: str, *, timeout: float = 60.0) -> None:
    """Until the meta leader answers and every stream is led by a node still running (the
    killed one stays down, so its replicas stay offline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with contextlib.suppress(Exception):
            infos = await ms.js.streams_info()
            if infos and all(si.cluster and si.cluster.leader not in (None, killed) for si in infos):
                return
        assert asyncio.get_running_loop().time() < deadline, "no new leaders"
        await asyncio.sleep(0.25)


async def test_pause_kill_state_leader_resume_elsewhere(serving_cluster: NatsCluster, tmp_path: Path) -> None:  # noqa: F811
    cluster = serving_cluster
    creds = cluster.credentials.write(tmp_path / "c.json")
    env = dict(os.environ, MAILSLOT_URL=",".join(cluster.urls), MAILSLOT_CREDENTIALS=str(creds))
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    for var in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2"):
        env.pop(var, None)
    async with mailslot.connect(cluster.urls, credentials=creds, name="coder") as ms:
        coder = await ms.open("coder", ttl=60)
        start = await asyncio.to_thread(run_child, ["start", "mailslot:cluster", "th-c"], env)
        assert len(start["interrupts"]) == 1
        req = await coder.receive(timeout=30)
        assert req.id == start["interrupts"][0]["correlation_id"]
        await req.reply({"n": req.json()["q"] * 2})
        await req.ack()
        info = await ms.js.stream_info(STATE_STREAM)
        assert info.config.num_replicas == 3
        leader = info.cluster.leader
        assert leader
        await asyncio.to_thread(cluster.node(leader).kill)
        await _wait_for_new_leaders(ms, leader)
        # Process B, on the two nodes left: finds the thread, takes the reply, resumes.
        done = await asyncio.to_thread(run_child, ["resume", "mailslot:cluster", "th-c"], env)
        assert done["waits"] == 1 and done["error"] == "None", done
        assert done["value"]["answer"] == {"n": 42}
        await assert_empty(coder)  # the request went out once
        assert (await ms.js.stream_info(STATE_STREAM)).cluster.leader != leader
        await coder.close()
