"""The device bridge rides out a broker restart: device mail flows both ways afterwards, and
device mail published while the bridge was away is forwarded when it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import mailslot
from mailslot import DeviceBridge
from mailslot_broker import NatsServer
from mailslot_broker.config import DEFAULT_TENANT, Credentials, TenantSpec
from mailslot_broker.protocol import devices as dp
from reach_support import client, device, device_password
from testsupport import wait_for

DEVICE = "meter-9"


async def test_bridge_after_a_broker_restart(tmp_path: Path) -> None:
    spec = TenantSpec.generate(DEFAULT_TENANT)
    spec.device_users = [Credentials(tenant=spec.name, user=DEVICE, password=device_password(DEVICE))]
    srv = NatsServer(tmp_path / "nats", tenants=[spec], mqtt_port=0)
    srv.start()
    ms: mailslot.Mailslot | None = None
    try:
        ms = await client(srv, srv.url)
        agent = await ms.open("restart-agent")
        async with DeviceBridge(ms, [DEVICE]) as bridge:
            dev = await device(srv.mqtt_port, DEVICE, clean=False)
            await asyncio.to_thread(dev.subscribe, dp.downlink_topic_filter(DEVICE), 1)
            assert await asyncio.to_thread(dev.publish, dp.uplink_topic(DEVICE, 2, agent.address), b"before")
            assert (await agent.receive(timeout=10)).data == b"before"
            await asyncio.to_thread(dev.close)

            port = srv.mqtt_port
            await asyncio.to_thread(srv.restart)
            assert srv.mqtt_port == port  # devices find it where it was
            dev = await device(srv.mqtt_port, DEVICE, clean=False)
            try:
                assert dev.session_present
                assert await asyncio.to_thread(
                    dev.publish, dp.uplink_topic(DEVICE, 0, agent.address), b"after"
                )
                msg = await agent.receive(timeout=20)
                assert (msg.data, msg.priority) == (b"after", mailslot.Priority.CRITICAL)
                await msg.ack()
                await bridge.wait_online(DEVICE, timeout=20)
                await agent.send(DEVICE, "still there?")
                got = await wait_for(dev.received, timeout=20)
                assert got[-1][2] == b"still there?"
            finally:
                await asyncio.to_thread(dev.close)
        # the bridge is gone: device mail waits in the mail stream for the next one
        dev = await device(srv.mqtt_port, DEVICE)
        try:
            assert await asyncio.to_thread(
                dev.publish, dp.uplink_topic(DEVICE, 2, agent.address), b"meanwhile"
            )
        finally:
            await asyncio.to_thread(dev.close)
        async with DeviceBridge(ms, [DEVICE]):
            msg = await agent.receive(timeout=10)
            assert (msg.data, msg.sender) == (b"meanwhile", DEVICE)
            await msg.ack()
        await agent.destroy()
    finally:
        if ms is not None:
            await ms.close()
        srv.stop()
