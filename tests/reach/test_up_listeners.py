"""``mailslot up --mqtt --websocket`` and the cluster: the listeners come up with the broker
and log in the same users as ``nats://``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import mailslot
from mailslot_broker.cluster import start_local_cluster, stop_local_cluster
from mailslot_broker.config import Credentials
from mailslot_broker.ports import free_port
from reach_support import Device
from testsupport import mailslot_cli


async def _logins(mqtt_port: int, ws_url: str, creds: Credentials) -> None:
    # The server answers an MQTT CONNECT once it has the account's MQTT streams; on a cluster
    # that has just formed, creating them waits for JetStream's leaders (seen: no CONNACK in
    # 5 s on a busy host). A refusal is an answer and fails at once; silence is asked again.
    results = []
    for _ in range(6):
        dev = await asyncio.to_thread(Device, mqtt_port, creds.user, creds.password, client_id="cli-check")
        try:
            results.append(dev.result)
        finally:
            await asyncio.to_thread(dev.close)
        if dev.result is not None:
            break
    assert results[-1] == "Success", results
    ms = await mailslot.connect(ws_url, user=creds.user, password=creds.password)
    try:
        mb = await ms.open("listener-check")
        await ms.send("listener-check", "over ws")
        msg = await mb.receive(timeout=5)
        assert msg.text() == "over ws"
        await msg.ack()
        await mb.destroy()
    finally:
        await ms.close()


async def test_up_detached_with_mqtt_and_websocket() -> None:
    port = free_port()  # a port implies its listener: --mqtt-port N is --mqtt --mqtt-port N
    r = await asyncio.to_thread(
        mailslot_cli, "up", "--detach", "--mqtt-port", str(port), "--websocket", "--json"
    )
    try:
        state = json.loads(r.stdout)
        assert state["mqtt_port"] == port and state["websocket_port"]
        creds = Credentials.read(state["credentials_path"])
        host = state["url"].split("://")[1].rsplit(":", 1)[0]
        await _logins(state["mqtt_port"], f"ws://{host}:{state['websocket_port']}", creds)
        # a config reload (a new tenant) keeps both listeners
        await asyncio.to_thread(mailslot_cli, "tenant", "add", "second")
        await _logins(state["mqtt_port"], f"ws://{host}:{state['websocket_port']}", creds)
        # asking an already running broker for a listener it lacks is an error, not a no-op
        again = await asyncio.to_thread(
            mailslot_cli, "up", "--detach", "--mqtt", "--mqtt-port", "1", check=False
        )
        assert again.returncode != 0 and "MQTT listener" in again.stdout + again.stderr
    finally:
        await asyncio.to_thread(mailslot_cli, "down")


async def test_cluster_nodes_have_mqtt_and_websocket(tmp_path: Path) -> None:
    nodes, state = await asyncio.to_thread(start_local_cluster, tmp_path, 3, mqtt=True, websocket=True)
    try:
        assert all(n.mqtt_port and n.websocket_port for n in state.nodes)
        assert state.cluster().nodes[1].config.mqtt_port == state.nodes[1].mqtt_port  # kept for restarts
        node = nodes.nodes[1]
        await _logins(node.mqtt_port, node.websocket_url, nodes.credentials)
    finally:
        await asyncio.to_thread(stop_local_cluster, tmp_path, nodes)
