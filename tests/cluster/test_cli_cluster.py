"""``mailslot up --cluster 3``: a foreground 3-node cluster a client reaches through its seed
URLs (comma-separated in MAILSLOT_URL), visible in ``mailslot status``, with single nodes
restarted by ``mailslot node stop|start``, and stopped cleanly (every node) by SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.cluster import read_cluster_state
from mailslot_broker.launcher import pid_alive


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "mailslot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),  # MAILSLOT_HOME from the isolated fixture
    )
    if check:
        assert r.returncode == 0, f"mailslot {' '.join(args)}: {r.stdout}\n{r.stderr}"
    return r


async def acli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, *args, check=check)


async def cluster_status() -> dict[str, Any]:
    info = json.loads((await acli("status", "--json")).stdout)
    assert "cluster" in info, info
    return info["cluster"]


@pytest.fixture
def cli_cluster(_isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailslot", "up", "--cluster", "3", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    pids: set[int] = set()
    try:
        buf = ""
        info = None
        deadline = time.monotonic() + 60
        while info is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"mailslot up --cluster exited: {proc.stderr.read()}"  # type: ignore[union-attr]
            buf += line
            try:
                info = json.loads(buf)
            except ValueError:
                continue
        assert info is not None and len(info["urls"]) == 3
        pids.update(info["pids"])
        monkeypatch.setenv("MAILSLOT_URL", ",".join(info["urls"]))
        monkeypatch.setenv("MAILSLOT_CREDENTIALS", info["credentials"])
        yield info
    finally:
        state = read_cluster_state(_isolated_home)
        if state is not None:  # nodes restarted by `node start` have new pids
            pids.update(n.pid for n in state.nodes if n.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    for pid in pids:
        assert not pid_alive(pid)
    assert read_cluster_state(_isolated_home) is None


async def test_up_cluster_serves_replicated_mail(cli_cluster: dict[str, Any]) -> None:
    async with mailslot.connect(settings=p.StreamSettings(replicas=3)) as ms:
        assert (await ms.js.stream_info(p.MAIL_STREAM)).config.num_replicas == 3
        mb = await ms.open("c", ttl=30)
        await ms.send("c", "replicated")
        m = await mb.receive(timeout=10)
        assert m.text() == "replicated"
        await m.ack()
        await mb.close()


async def roundtrip(ms: mailslot.Mailslot, mb: Any, text: str) -> None:
    await ms.send("c", text)
    m = await mb.receive(timeout=20)
    assert m.text() == text
    await m.ack()


async def test_status_shows_the_cluster_and_a_stopped_node_rejoins(cli_cluster: dict[str, Any]) -> None:
    settings = p.StreamSettings(replicas=3)
    async with mailslot.connect(settings=settings, publish_retry_for=30) as ms:
        mb = await ms.open("c", ttl=60)
        await roundtrip(ms, mb, "before")

        st = await cluster_status()
        assert st["size"] == 3 and st["credentials"] == cli_cluster["credentials"]
        assert [n["pid"] for n in st["nodes"]] == cli_cluster["pids"]
        assert [n["url"] for n in st["nodes"]] == cli_cluster["urls"]
        mail = st["streams"][p.MAIL_STREAM]
        assert mail["replicas"] == 3 and mail["leader"] in cli_cluster["nodes"]
        assert len(mail["peers"]) == 2
        assert st["warnings"] == []

        # Stop the mail stream's leader: the other two keep serving.
        victim = mail["leader"]
        short = victim.removeprefix("mailslot-")
        await acli("node", "stop", short)
        await roundtrip(ms, mb, "while a node is down")
        st = await cluster_status()
        node = next(n for n in st["nodes"] if n["name"] == victim)
        assert node["stopped"] and not node["running"] and node["pid"] is None
        assert any(victim in w for w in st["warnings"])
        assert st["streams"][p.MAIL_STREAM]["leader"] != victim

        # Start it again: same URL, and the stream shows it current again.
        started = json.loads((await acli("node", "start", short, "--json")).stdout)
        assert started["url"] == node["url"] and started["pid"]
        deadline = time.monotonic() + 45
        while True:
            si = await ms.js.stream_info(p.MAIL_STREAM)
            assert si.cluster is not None
            peers = {r.name: r for r in si.cluster.replicas or []}
            back = si.cluster.leader == victim or (
                victim in peers and peers[victim].current and not peers[victim].offline
            )
            if back and all(r.current and not r.offline for r in peers.values()):
                break
            assert time.monotonic() < deadline, f"{victim} did not rejoin: {si.cluster}"
            await asyncio.sleep(0.2)
        await roundtrip(ms, mb, "after")
        st = await cluster_status()
        assert st["warnings"] == []
        node = next(n for n in st["nodes"] if n["name"] == victim)
        assert node["running"] and node["pid"] == started["pid"]
        await mb.close()


async def test_status_warns_about_streams_with_fewer_replicas_than_nodes(
    cli_cluster: dict[str, Any],
) -> None:
    async with mailslot.connect(settings=p.StreamSettings(replicas=1)):
        pass
    st = await cluster_status()
    assert st["streams"][p.MAIL_STREAM]["replicas"] == 1
    assert any(p.MAIL_STREAM in w and "1 replica" in w for w in st["warnings"])
    text = await acli("status")
    assert "cluster mailslot" in text.stdout and "warning:" in text.stderr
