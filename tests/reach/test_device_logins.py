"""``mailslot device issue|list|revoke`` on the detached local broker with its MQTT listener:
an issued device logs in as its address, the server lets it send only as itself, revoking
closes its session and refuses it after, and nobody else is disturbed."""

from __future__ import annotations

import asyncio
import json
import os

import mailslot
import pytest
from mailslot_broker import Credentials, stop_local_broker
from mailslot_broker.launcher import pid_alive
from mailslot_broker.protocol import devices as dp
from mailslot_broker.tenants import load_or_init
from reach_support import device
from testsupport import mailslot_cli, unique


@pytest.fixture
def mqtt_broker(_isolated_home):
    """The detached local broker with its MQTT listener and device bridge, as
    `mailslot up --mqtt --detach`."""
    try:
        yield json.loads(mailslot_cli("up", "--mqtt", "--detach", "--json").stdout)
    finally:
        mailslot_cli("down", check=False)  # the bridge too
        stop_local_broker(_isolated_home)


async def _until(check, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


async def test_issued_device_sends_only_as_itself_until_revoked(mqtt_broker, _isolated_home) -> None:
    """The whole flow a user has: `up --mqtt --detach` (which runs the bridge for the issued
    logins), `device issue`, a device with only an MQTT client, `device revoke`, `down`."""
    port = mqtt_broker["mqtt_port"]
    bridge_pid = int((_isolated_home / "devices.pid").read_text())
    issued = json.loads(mailslot_cli("device", "issue", "meter-9", "--json").stdout)
    path = issued["credentials"]
    assert path == str(_isolated_home / "credentials.devices" / "meter-9.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert json.loads(mailslot_cli("device", "list", "--json").stdout) == [
        {"tenant": "MAILSLOT", "address": "meter-9"}
    ]
    creds = Credentials.read(path)
    assert creds.user == "meter-9"

    async with mailslot.connect(name="ops") as ms:  # zero config, as before
        agent = await ms.open(unique("meter-reader"), ttl=30)

        async def bridged() -> bool:
            return "meter-9" in {c.address for c in await ms.agents()}

        for _ in range(200):  # the bridge follows the issued logins (every 2 s)
            if await bridged():
                break
            await asyncio.sleep(0.05)
        assert await bridged(), "the bridge of `up --mqtt` did not take up the issued device"
        dev = await device(port, "meter-9", creds.password)
        try:
            assert dev.result == "Success"
            await asyncio.to_thread(dev.subscribe, dp.downlink_topic_filter("meter-9"))
            forged = dp.uplink_topic("meter-8", "normal", agent.address)  # another's sender level
            await asyncio.to_thread(dev.publish, forged, b"as meter-8", 1, 2.0)
            mine = dp.uplink_topic("meter-9", "normal", agent.address)
            assert await asyncio.to_thread(dev.publish, mine, b"as me")
            msg = await agent.receive(timeout=10)
            assert (msg.data, msg.sender) == (b"as me", "meter-9")
            await msg.ack()
            with pytest.raises(mailslot.Timeout):  # the forged one never became mail
                await agent.receive(timeout=1.5)
            await ms.send("meter-9", b"close the valve", priority="urgent")
            await _until(
                lambda: any(m[2] == b"close the valve" for m in dev.received()), "mail reaches the device"
            )

            wrong = await device(port, "meter-9", "not-its-password")
            try:
                assert wrong.result == "Not authorized"
            finally:
                await asyncio.to_thread(wrong.close)

            second = mailslot_cli("devices", "meter-7", check=False)  # one bridge per tenant
            assert second.returncode == 1 and "mailslot device issue" in second.stderr

            mailslot_cli("device", "revoke", "meter-9")
            await _until(lambda: dev.disconnected is not None, "the revoked device is disconnected")
            assert ms.connected and ms.reconnects == 0  # the tenant's connection stays
        finally:
            await asyncio.to_thread(dev.close)
        again = await device(port, "meter-9", creds.password)
        try:
            assert again.result == "Not authorized"
        finally:
            await asyncio.to_thread(again.close)
        await agent.destroy()
    assert not await asyncio.to_thread(os.path.exists, path)
    assert json.loads(mailslot_cli("device", "list", "--json").stdout) == []
    assert mailslot_cli("device", "revoke", "meter-9", check=False).returncode == 1
    mailslot_cli("down")
    assert not pid_alive(bridge_pid, marker="devices --issued"), "down leaves no bridge behind"


def test_device_issue_refuses_bad_addresses_and_taken_names(_isolated_home) -> None:
    bad = mailslot_cli("device", "issue", "no spaces", check=False)
    assert bad.returncode == 1 and "invalid device address" in bad.stderr
    assert not (_isolated_home / "credentials.devices").exists()
    tenant_user = load_or_init(_isolated_home).tenants[0].credentials.user
    taken = mailslot_cli("device", "issue", tenant_user, check=False)
    assert taken.returncode == 1 and "taken" in taken.stderr
