"""MQTT device <-> agent latency through the device bridge, on a private nats-server.

    .tools/bin/uv run --no-sync python -m bench.measure_mqtt_latency [--n 200]

device -> agent: a paho-mqtt 3.1.1 client publishes at QoS 1 to its uplink topic; the time
runs until the agent's ``receive()`` returns it (server stores it, the bridge forwards it as
mail, the agent's consumer delivers it). agent -> device: ``send()`` to the device's address
until paho's on_message (the bridge receives it from the device's mailbox and republishes it
into the device's MQTT session). One message in flight at a time: latency, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path

import mailslot
import paho.mqtt.client as mqtt
from mailslot_broker import NatsServer
from mailslot_broker.config import DEFAULT_TENANT, Credentials, TenantSpec
from mailslot_broker.protocol import devices as dp

DEVICE = "bench.sensor"


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _summary(name: str, ms: list[float]) -> str:
    return (
        f"{name}: n={len(ms)} p50={statistics.median(ms):.2f} ms p90={_pct(ms, 0.9):.2f} ms "
        f"p99={_pct(ms, 0.99):.2f} ms max={max(ms):.2f} ms"
    )


def _device(port: int) -> tuple[mqtt.Client, list[float], threading.Event]:
    arrived: list[float] = []
    got = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sensor", clean_session=False)
    c.username_pw_set(DEVICE, "bench")
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()

    def on_message(*_: object) -> None:
        arrived.append(time.perf_counter())
        got.set()

    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not connected.wait(5):
        raise SystemExit("device could not connect")
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.subscribe(dp.downlink_topic_filter(DEVICE), qos=1)
    done.wait(5)
    return c, arrived, got


async def run(n: int) -> None:
    spec = TenantSpec.generate(DEFAULT_TENANT)
    spec.device_users = [Credentials(tenant=spec.name, user=DEVICE, password="bench")]
    with tempfile.TemporaryDirectory() as tmp, NatsServer(Path(tmp), tenants=[spec], mqtt_port=0) as srv:
        c = srv.credentials
        ms = await mailslot.connect(srv.url, user=c.user, password=c.password, name="bench-agent")
        try:
            agent = await ms.open("bench.agent")
            async with mailslot.DeviceBridge(ms, [DEVICE]) as bridge:
                dev, arrived, got = await asyncio.to_thread(_device, srv.mqtt_port)
                try:
                    await bridge.wait_online(DEVICE, timeout=10)
                    topic = dp.uplink_topic(DEVICE, "normal", agent.address)
                    up: list[float] = []
                    for i in range(n + 10):  # 10 warm-up rounds
                        t0 = time.perf_counter()
                        dev.publish(topic, f"reading {i}".encode(), qos=1)
                        msg = await agent.receive(timeout=10)
                        t1 = time.perf_counter()
                        await msg.ack()
                        if i >= 10:
                            up.append((t1 - t0) * 1000)
                    down: list[float] = []
                    for i in range(n + 10):
                        got.clear()
                        t0 = time.perf_counter()
                        await agent.send(DEVICE, f"command {i}")
                        if not await asyncio.to_thread(got.wait, 10):
                            raise SystemExit("device got nothing")
                        if i >= 10:
                            down.append((arrived[-1] - t0) * 1000)
                finally:
                    dev.disconnect()
                    dev.loop_stop()
                    dev._reset_sockets()  # paho keeps its wake-up socket pair open otherwise
            await agent.destroy()
        finally:
            await ms.close()
    print(_summary("MQTT device -> agent", up))
    print(_summary("agent -> MQTT device", down))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    asyncio.run(run(ap.parse_args().n))


if __name__ == "__main__":
    main()
