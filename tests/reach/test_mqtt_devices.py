"""MQTT devices and agents, both ways, through nats-server's MQTT listener and the device bridge:
real paho-mqtt 3.1.1 clients, a real server, the SDK on the agent side."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import mailslot
import pytest
from mailslot import DeviceBridge
from mailslot_broker import NatsServer
from mailslot_broker.protocol import devices as dp
from reach_support import client, device, server_log
from testsupport import unique, wait_for


@pytest.fixture
async def bridge(reach_ms: mailslot.Mailslot) -> AsyncIterator[DeviceBridge]:
    async with DeviceBridge(reach_ms) as b:
        yield b


async def test_device_sends_mail_to_an_agent(
    reach_server: NatsServer, reach_ms: mailslot.Mailslot, bridge: DeviceBridge
) -> None:
    await bridge.add_device("sensor.kitchen")
    agent = unique("planner")
    mb = await reach_ms.open(agent)
    dev = await device(reach_server.mqtt_port, "sensor.kitchen")
    try:
        assert dev.result == "Success"
        assert await asyncio.to_thread(
            dev.publish, dp.uplink_topic("sensor.kitchen", "urgent", agent), b"21.5C"
        )
        msg = await mb.receive(timeout=10)
        assert msg.data == b"21.5C"
        assert msg.sender == "sensor.kitchen"
        assert msg.priority == mailslot.Priority.URGENT
        assert msg.content_type == "application/octet-stream"
        assert re.fullmatch(r"[0-9a-f]{32}", msg.id)
        await msg.ack()
        # the priority level may be a name too; the card says how the device is reached
        assert await asyncio.to_thread(dev.publish, f"mbox/dev/sensor.kitchen/low/{agent}", b"low one")
        msg = await mb.receive(timeout=10)
        assert (msg.text(), msg.priority) == ("low one", mailslot.Priority.LOW)
        await msg.ack()
        cards = {a.address: a for a in await reach_ms.agents()}
        assert cards["sensor.kitchen"].metadata["transport"] == "mqtt"
    finally:
        await asyncio.to_thread(dev.close)
        await mb.destroy()


async def _subscribe_then_leave(port: int, name: str, bridge: DeviceBridge) -> None:
    """A device's first session: subscribe to its downlink (QoS 1, persistent), go offline."""
    dev = await device(port, name, clean=False)
    await asyncio.to_thread(dev.subscribe, dp.downlink_topic_filter(name), 1)
    await bridge.wait_online(name, timeout=10)
    await asyncio.to_thread(dev.close)
    await wait_for(lambda: not bridge.online(name), timeout=10)


async def test_agent_mail_reaches_a_device_that_was_offline(
    reach_server: NatsServer, reach_ms: mailslot.Mailslot, bridge: DeviceBridge
) -> None:
    await bridge.add_device("sensor.garage")
    await _subscribe_then_leave(reach_server.mqtt_port, "sensor.garage", bridge)
    agent = await reach_ms.open(unique("controller"))
    receipt = await agent.send("sensor.garage", "open the door", priority="critical")
    await asyncio.sleep(0.5)
    assert bridge.stats.downlinked == 0  # the device is away: its mail waits in its mailbox
    dev = await device(reach_server.mqtt_port, "sensor.garage", clean=False)
    try:
        assert dev.session_present
        got = await wait_for(dev.received, timeout=10)
        topic, qos, payload = got[0]
        assert payload == b"open the door"
        assert qos == 1
        assert topic == f"devmail/sensor.garage/0/{agent.address}/{receipt.id}"
        # online now: the next one goes straight through
        await agent.send("sensor.garage", "close it")
        got = await wait_for(lambda: len(dev.received()) == 2 and dev.received(), timeout=5)
        assert got[1][2] == b"close it"
    finally:
        await asyncio.to_thread(dev.close)
        await agent.destroy()


async def test_offline_device_gets_its_mail_in_priority_order(
    reach_server: NatsServer, reach_ms: mailslot.Mailslot, bridge: DeviceBridge
) -> None:
    await bridge.add_device("valve-1")
    await _subscribe_then_leave(reach_server.mqtt_port, "valve-1", bridge)
    for prio in ("low", "normal", "critical", "urgent", "low", "critical"):
        await reach_ms.send("valve-1", prio, priority=prio)
    dev = await device(reach_server.mqtt_port, "valve-1", clean=False)
    try:
        got = await wait_for(lambda: len(dev.received()) == 6 and dev.received(), timeout=10)
        assert [m[2].decode() for m in got] == ["critical", "critical", "urgent", "normal", "low", "low"]
        assert [m[0].split("/")[2] for m in got] == ["0", "0", "1", "2", "3", "3"]
        assert {m[0].split("/")[3] for m in got} == {"tester"}
    finally:
        await asyncio.to_thread(dev.close)


async def test_device_receives_broadcast(reach_server: NatsServer, reach_ms: mailslot.Mailslot) -> None:
    dev = await device(reach_server.mqtt_port, "meter-1")
    try:
        topic = unique("alerts")
        await asyncio.to_thread(dev.subscribe, f"topic/{topic}/#", 0)
        await reach_ms.publish(f"{topic}.fire", "evacuate")
        await reach_ms.publish(f"{topic}.drill", {"n": 1}, durable=True)
        got = await wait_for(lambda: len(dev.received()) == 2 and dev.received(), timeout=10)
        assert [(t, body) for t, _, body in got] == [
            (f"topic/{topic}/fire", b"evacuate"),
            (f"topic/{topic}/drill", b'{"n":1}'),
        ]
    finally:
        await asyncio.to_thread(dev.close)


async def test_wrong_credentials_are_refused(reach_server: NatsServer) -> None:
    wrong = await device(reach_server.mqtt_port, "meter-1", "not-its-password")
    anon = await device(reach_server.mqtt_port, None)
    stranger = await device(reach_server.mqtt_port, "no-such-device", "pw")
    try:
        assert wrong.result == anon.result == stranger.result == "Not authorized"
    finally:
        for d in (wrong, anon, stranger):
            await asyncio.to_thread(d.close)


async def test_device_mail_that_maps_to_no_mailbox_is_dead_lettered(
    reach_server: NatsServer, reach_ms: mailslot.Mailslot, bridge: DeviceBridge
) -> None:
    await bridge.add_device("meter-2")
    nobody = unique("nobody")
    dev = await device(reach_server.mqtt_port, "meter-2")
    try:
        assert await asyncio.to_thread(
            dev.publish, dp.uplink_topic("meter-2", "normal", nobody), b"to nobody"
        )
        assert await asyncio.to_thread(dev.publish, f"mbox/dev/meter-2/9/{nobody}", b"bad priority")
        assert await asyncio.to_thread(dev.publish, "mbox/dev/meter-2/2", b"no recipient")
        await wait_for(lambda: len(bridge.stats.rejected) == 3, timeout=10)
        dead = {d.data: d for d in await reach_ms.dead_letters.list(nobody)}
        assert dead[b"to nobody"].reason == dp.REASON_NO_MAILBOX
        assert dead[b"to nobody"].headers[dp.DEAD_SUBJECT_HEADER] == f"mbox.dev.meter-2.2.{nobody}"
        assert dead[b"bad priority"].reason == dp.REASON_MALFORMED_TOPIC
        assert "priority" in dead[b"bad priority"].headers[dp.DEAD_DETAIL_HEADER]
        rejects = {d.data: d for d in await reach_ms.dead_letters.list(dp.REJECT_ADDRESS)}
        assert rejects[b"no recipient"].reason == dp.REASON_MALFORMED_TOPIC
        # outside the device topics: the server refuses it (permissions) and logs why
        await asyncio.to_thread(dev.publish, "elsewhere/x", b"nowhere")
        await wait_for(lambda: 'Publish Violation - Subject "elsewhere.x"' in server_log(reach_server))
        # a device cannot write as another device: its uplink is its own sender level only
        await asyncio.to_thread(dev.publish, dp.uplink_topic("meter-1", "normal", nobody), b"forged")
        await wait_for(lambda: f'Subject "mbox.dev.meter-1.2.{nobody}"' in server_log(reach_server))
    finally:
        await asyncio.to_thread(dev.close)


async def test_oversize_device_mail_is_refused_or_dead_lettered(
    reach_server: NatsServer, reach_ms: mailslot.Mailslot, bridge: DeviceBridge
) -> None:
    await bridge.add_device("valve-2")
    agent = await reach_ms.open(unique("big"))
    limit = reach_ms.max_payload
    dev = await device(reach_server.mqtt_port, "valve-2")
    try:
        # above the server's max_payload: refused by the server, connection closed
        assert not await asyncio.to_thread(
            dev.publish, dp.uplink_topic("valve-2", 2, agent.address), b"x" * (limit + 1)
        )
        await wait_for(lambda: dev.disconnected is not None)
        assert "maximum payload exceeded" in server_log(reach_server)
    finally:
        await asyncio.to_thread(dev.close)
    dev = await device(reach_server.mqtt_port, "valve-2")
    try:
        # fits the server but not once Mailslot's headers are added: dead-lettered, with a reason
        assert await asyncio.to_thread(
            dev.publish, dp.uplink_topic("valve-2", 2, agent.address), b"y" * (limit - 64)
        )
        await wait_for(lambda: bridge.stats.rejected, timeout=10)
        [dead] = await reach_ms.dead_letters.list(agent.address)
        assert dead.reason == dp.REASON_OVERSIZE and dead.body_lost
        assert bridge.stats.uplinked == 0
    finally:
        await asyncio.to_thread(dev.close)
        await agent.destroy()


async def test_ws_client_sees_device_mail(reach_server: NatsServer, bridge: DeviceBridge) -> None:
    """An agent connected over ws:// receives device mail like any other."""
    await bridge.add_device("meter-1")
    ws = await client(reach_server, reach_server.websocket_url, name="ws-agent")
    dev = await device(reach_server.mqtt_port, "meter-1")
    try:
        mb = await ws.open(unique("ws-agent"))
        assert await asyncio.to_thread(
            dev.publish, dp.uplink_topic("meter-1", "normal", mb.address), b"hello ws"
        )
        msg = await mb.receive(timeout=10)
        assert (msg.data, msg.sender) == (b"hello ws", "meter-1")
        await msg.ack()
        await mb.destroy()
    finally:
        await asyncio.to_thread(dev.close)
        await ws.close()


async def test_bridge_refuses_a_device_that_is_no_address(reach_ms: mailslot.Mailslot) -> None:
    with pytest.raises(mailslot.InvalidAddress):
        DeviceBridge(reach_ms, ["no spaces"])
    async with DeviceBridge(reach_ms) as bridge:
        with pytest.raises(mailslot.InvalidAddress):
            await bridge.add_device("a..b")
        with pytest.raises(mailslot.InvalidInput):
            await bridge.wait_online("never-added", timeout=0.1)
