"""The device topic layout (protocol.devices) on its own: what a device writes, what the
server makes of it, and what the bridge reads back."""

from __future__ import annotations

from pathlib import Path

import pytest
from mailslot_broker import protocol as p
from mailslot_broker.config import Credentials, ServerConfig, TenantSpec, device_permissions
from mailslot_broker.protocol import devices as dp


def test_uplink_topic_and_subject() -> None:
    assert (
        dp.uplink_topic("sensor.kitchen", "urgent", "planner.main")
        == "mbox/dev/sensor.kitchen/1/planner.main"
    )
    subject = dp.uplink_subject("sensor.kitchen", "urgent", "planner.main")
    assert subject == "mbox.dev.sensor//kitchen.1.planner//main"  # what nats-server makes of it
    assert dp.parse_uplink(subject) == ("sensor.kitchen", p.Priority.URGENT, "planner.main")
    assert dp.parse_uplink("mbox.dev.s.low.a") == ("s", p.Priority.LOW, "a")


@pytest.mark.parametrize(
    "subject",
    [
        "mbox.dev.s.2",  # no recipient
        "mbox.dev.s.2.a.b",  # recipient written as two levels
        "mbox.dev.s.9.a",  # no such priority
        "mbox.dev.s.2.a////b",  # empty token inside the address
        "mbox.2.s.2.a",  # not an uplink
    ],
)
def test_malformed_uplinks_say_why(subject: str) -> None:
    with pytest.raises(dp.DeviceTopicError) as exc:
        dp.parse_uplink(subject)
    assert exc.value.reason == dp.REASON_MALFORMED_TOPIC
    assert isinstance(exc.value, ValueError)


def test_uplinks_are_never_mail_subjects() -> None:
    """No mailbox consumer (mbox.<digit>.<address>) can see an uplink subject."""
    with pytest.raises(ValueError):
        p.parse_mail_subject(dp.uplink_subject("s", 2, "a"))


def test_downlink_subject() -> None:
    assert dp.downlink_subject("sensor.kitchen", p.Priority.CRITICAL, "planner", "ab12") == (
        "devmail.sensor//kitchen.0.planner.ab12"
    )
    assert dp.downlink_subject("d", p.Priority.LOW, None, "x").split(".")[3] == dp.NO_SENDER
    odd = dp.downlink_subject("d", p.Priority.LOW, "s", "has space.and dot")
    assert len(odd.split(".")) == 5 and " " not in odd
    assert dp.mqtt_session_subject("devmail.d.0.s.x") == "$MQTT.msgs.devmail.d.0.s.x"
    assert dp.downlink_topic_filter("sensor.kitchen") == "devmail/sensor.kitchen/#"


def test_device_of_session_filter() -> None:
    assert dp.device_of_session_filter("$MQTT.msgs.devmail.sensor//kitchen.>") == "sensor.kitchen"
    assert dp.device_of_session_filter("$MQTT.msgs.devmail.valve-1") == "valve-1"
    assert dp.device_of_session_filter("$MQTT.msgs.devmail.valve-1.0.>") == "valve-1"
    assert dp.device_of_session_filter("$MQTT.msgs.devmail.*.>") is None
    assert dp.device_of_session_filter("$MQTT.msgs.topic.x") is None


def test_config_renders_listeners_and_device_users(tmp_path: Path) -> None:
    spec = TenantSpec.generate("MAIL")
    spec.device_users = [Credentials(tenant="MAIL", user="sensor.kitchen", password="pw")]
    text = ServerConfig(store_dir=tmp_path, tenants=[spec], mqtt_port=0, websocket_port=8080).render()
    assert 'mqtt { host: "127.0.0.1", port: -1 }' in text
    assert 'websocket { host: "127.0.0.1", port: 8080, no_tls: true }' in text
    assert '"mbox.dev.sensor//kitchen.>"' in text and '"devmail.sensor//kitchen.>"' in text
    perms = device_permissions("sensor.kitchen")
    assert perms.publish_allow == ["mbox.dev.sensor//kitchen.>", "topic.>"]
    off = ServerConfig(store_dir=tmp_path, tenants=[spec]).render()
    assert "mqtt {" not in off and "websocket {" not in off
