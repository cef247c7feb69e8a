"""The device bridge from sync code (``mailslot.sync``): both directions, blocking calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mailslot import sync
from mailslot_broker import NatsServer
from mailslot_broker.protocol import devices as dp
from reach_support import Device, device_password
from testsupport import unique


def _until(cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)
    return value


def test_sync_bridge_both_ways(reach_server: NatsServer) -> None:
    c = reach_server.credentials
    with sync.connect(reach_server.url, user=c.user, password=c.password, name="sync-tester") as ms:
        agent = ms.open(unique("sync-agent"))
        with sync.SyncDeviceBridge(ms, ["valve-2"]) as bridge:
            dev = Device(reach_server.mqtt_port, "valve-2", device_password("valve-2"), clean=False)
            try:
                dev.subscribe(dp.downlink_topic_filter("valve-2"), 1)
                bridge.wait_online("valve-2", timeout=10)
                assert dev.publish(dp.uplink_topic("valve-2", "low", agent.address), b"from sync")
                msg = agent.receive(timeout=10)
                assert (msg.data, msg.sender) == (b"from sync", "valve-2")
                msg.ack()
                agent.send("valve-2", "to the valve")
                got = _until(dev.received)
                assert got[0][2] == b"to the valve"
                # The bridge counts a downlink once the device's QoS 1 ack is back, which can
                # come after the device already has the message.
                _until(lambda: bridge.stats.downlinked == 1)
                assert bridge.stats.uplinked == 1
            finally:
                dev.close()
        agent.destroy()
