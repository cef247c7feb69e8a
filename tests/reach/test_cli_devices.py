"""``mailslot devices ADDRESS...``: the bridge as a process, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import mailslot
from mailslot_broker import NatsServer
from mailslot_broker.protocol import devices as dp
from reach_support import device
from testsupport import PYTHON, ROOT, client_env, unique


async def test_devices_command_bridges_until_sigterm(
    reach_server: NatsServer, reach_ms: mailslot.Mailslot
) -> None:
    agent = await reach_ms.open(unique("cli-agent"))
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "mailslot",
        "devices",
        "meter-2",
        env=client_env(reach_server),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "bridging 1 MQTT device(s): meter-2" in line, line
        dev = await device(reach_server.mqtt_port, "meter-2")
        try:
            topic = dp.uplink_topic("meter-2", "urgent", agent.address)
            assert await asyncio.to_thread(dev.publish, topic, b"via cli")
            msg = await agent.receive(timeout=10)
            assert (msg.data, msg.sender) == (b"via cli", "meter-2")
            await msg.ack()
        finally:
            await asyncio.to_thread(dev.close)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
        await agent.destroy()
