"""MQTT devices: the topic layout a device with only an MQTT 3.1.1 client uses.

nats-server maps an MQTT topic to a NATS subject level by level (``/`` becomes ``.``) and a
``.`` inside a level to ``//``. An address is written as **one** MQTT level with its dots
(``planner.main``), so it reaches NATS as one token (``planner//main``) and a topic can
carry two addresses without ambiguity. MQTT 3.1.1 carries no headers, so what Mailslot puts
in headers (sender, message id) rides in topic levels.

- **uplink** (device sends mail): MQTT ``mbox/dev/<from>/<priority>/<to>``, NATS
  ``mbox.dev.<from>.<p>.<to>``. It lies under ``mbox.>``, so the mail stream stores it
  durably (a QoS 1 publish is acked by the server once stored); the device bridge validates
  it and moves it to ``mbox.<p>.<to>`` with ordinary Mailslot headers, or dead-letters it
  with a reason. ``<priority>`` is a digit or a name (``urgent``).
- **downlink** (device receives mail): MQTT ``devmail/<device>/<p>/<from>/<id>``, published
  by the bridge into the server's MQTT session stream (``$MQTT.msgs.<subject>`` with
  ``Nmqtt-Pub: 1``), the only way a persistent session that is offline gets it later.
  ``<from>`` is ``~`` when the mail names no sender. The bridge forwards only while a
  session consumer of the device is push-bound (the device is connected), so mail waits in
  the device's mailbox, and reaches the device in priority order when it reconnects.
- **broadcast**: ``topic/<name levels>`` (``topic.a.b`` is ``topic/a/b``), live, QoS 0.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import ProtocolViolation
from .names import MAIL_PREFIX, TOPIC_PREFIX
from .values import Priority, parse_priority, validate_address

#: Second token of an uplink subject; never a digit, so no mailbox consumer ever sees it.
UPLINK_TOKEN = "dev"
DOWNLINK_PREFIX = "devmail"
#: The server's stream of QoS 1 messages for MQTT sessions (interest retention: one consumer
#: per session subscription, push-bound while the client is connected) and its subjects.
MQTT_SESSION_STREAM = "$MQTT_msgs"
MQTT_SESSION_PREFIX = "$MQTT.msgs"
#: Header nats-server sets on MQTT publishes (the QoS) and needs on ``$MQTT.msgs`` ones.
MQTT_PUB_HEADER = "Nmqtt-Pub"
#: Stands for "no sender" in a downlink topic (not an address character).
NO_SENDER = "~"
#: Durable consumer of the device bridge on the uplink subjects of the mail stream.
UPLINK_CONSUMER = "mailslot-devices-uplink"
#: ``Mailslot-Content-Type`` of device mail: MQTT 3.1.1 has no content type.
DEVICE_CONTENT_TYPE = "application/octet-stream"
#: Where rejected device mail whose topic names no valid recipient is dead-lettered.
REJECT_ADDRESS = "mailslot.devices"
#: Card field a device mailbox advertises.
TRANSPORT_MQTT = "mqtt"

#: Headers of a device dead letter, beside the usual ``Mailslot-Dead-*``: the detail of the
#: reason and the NATS subject the device published to.
DEAD_DETAIL_HEADER = "Mailslot-Dead-Detail"
DEAD_SUBJECT_HEADER = "Mailslot-Dead-Subject"

REASON_MALFORMED_TOPIC = "device topic malformed"
REASON_UNKNOWN_SENDER = "device sender unknown"
REASON_NO_MAILBOX = "no such mailbox"
REASON_OVERSIZE = "device mail too large"

_ID_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class DeviceTopicError(ProtocolViolation):
    """An uplink subject that maps to no mail; ``reason`` is the dead letter's reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def to_mqtt_level(address: str) -> str:
    """An address as one NATS token of an MQTT level: dots become ``//``."""
    return address.replace(".", "//")


def from_mqtt_level(token: str) -> str:
    return token.replace("//", ".")


def uplink_subject_all() -> str:
    return f"{MAIL_PREFIX}.{UPLINK_TOKEN}.>"


def uplink_topic(sender: str, priority: Priority | str | int, to: str) -> str:
    """The MQTT topic a device publishes mail to."""
    return f"{MAIL_PREFIX}/{UPLINK_TOKEN}/{sender}/{int(parse_priority(priority))}/{to}"


def uplink_subject(sender: str, priority: Priority | str | int, to: str) -> str:
    """What nats-server makes of :func:`uplink_topic`."""
    p = int(parse_priority(priority))
    return f"{MAIL_PREFIX}.{UPLINK_TOKEN}.{to_mqtt_level(sender)}.{p}.{to_mqtt_level(to)}"


def parse_uplink(subject: str) -> tuple[str, Priority, str]:
    """``(sender, priority, to)`` of an uplink subject; :class:`DeviceTopicError` otherwise."""
    tokens = subject.split(".")
    if len(tokens) != 5 or tokens[:2] != [MAIL_PREFIX, UPLINK_TOKEN]:
        raise DeviceTopicError(REASON_MALFORMED_TOPIC, f"{subject!r} is not mbox.dev.<from>.<priority>.<to>")
    try:
        sender = validate_address(from_mqtt_level(tokens[2]))
        priority = parse_priority(tokens[3])
        to = validate_address(from_mqtt_level(tokens[4]))
    except ValueError as exc:
        raise DeviceTopicError(REASON_MALFORMED_TOPIC, str(exc)) from None
    return sender, priority, to


def uplink_msg_id(stream_seq: int) -> str:
    """``Mailslot-Id`` (and dedupe id) of device mail: derived from where the device's publish
    was stored, so a bridge that crashes between forwarding and acking forwards it once."""
    return f"mqtt-{stream_seq}"


def downlink_topic_filter(device: str) -> str:
    """The MQTT topic filter a device subscribes to (QoS 1, persistent session)."""
    return f"{DOWNLINK_PREFIX}/{device}/#"


def downlink_subject(device: str, priority: Priority, sender: str | None, msg_id: str) -> str:
    """The NATS subject of the downlink topic; ids that are not one safe token are hashed."""
    if not _ID_TOKEN.fullmatch(msg_id):
        msg_id = hashlib.sha256(msg_id.encode()).hexdigest()[:32]
    who = to_mqtt_level(sender) if sender else NO_SENDER
    return f"{DOWNLINK_PREFIX}.{to_mqtt_level(device)}.{int(priority)}.{who}.{msg_id}"


def mqtt_session_subject(subject: str) -> str:
    """Where a JetStream publish must go to wait for an offline persistent MQTT session."""
    return f"{MQTT_SESSION_PREFIX}.{subject}"


def session_consumers_api() -> str:
    """JetStream API subject listing the MQTT session consumers (``offset`` pages them)."""
    return f"$JS.API.CONSUMER.LIST.{MQTT_SESSION_STREAM}"


def device_of_session_filter(filter_subject: str) -> str | None:
    """The device whose downlink an MQTT session consumer follows (its ``filter_subject``,
    e.g. ``$MQTT.msgs.devmail.sensor//kitchen.>``), or None for any other subscription."""
    prefix = f"{MQTT_SESSION_PREFIX}.{DOWNLINK_PREFIX}."
    if not filter_subject.startswith(prefix):
        return None
    token = filter_subject[len(prefix) :].split(".", 1)[0]
    if token in ("", "*", ">"):
        return None
    return from_mqtt_level(token)


def device_publish_allow(device: str | None = None) -> list[str]:
    """Publish permissions of a device user: uplink (as ``device`` only, so the server
    vouches for the sender level) and broadcast. Anything else is a publish violation the
    server drops and logs; MQTT 3.1.1 has no negative PUBACK to tell the client."""
    up = f"{MAIL_PREFIX}.{UPLINK_TOKEN}.{to_mqtt_level(device)}.>" if device else uplink_subject_all()
    return [up, f"{TOPIC_PREFIX}.>"]


def device_subscribe_allow(device: str | None = None) -> list[str]:
    """Subscribe permissions of a device user: its own downlink (every device's when None)
    and broadcast topics."""
    own = f"{DOWNLINK_PREFIX}.{to_mqtt_level(device)}" if device else DOWNLINK_PREFIX
    return [own, f"{own}.>", f"{TOPIC_PREFIX}.>"]


__all__ = [
    "DEAD_DETAIL_HEADER",
    "DEAD_SUBJECT_HEADER",
    "DEVICE_CONTENT_TYPE",
    "DOWNLINK_PREFIX",
    "MQTT_PUB_HEADER",
    "MQTT_SESSION_PREFIX",
    "MQTT_SESSION_STREAM",
    "NO_SENDER",
    "REASON_MALFORMED_TOPIC",
    "REASON_NO_MAILBOX",
    "REASON_OVERSIZE",
    "REASON_UNKNOWN_SENDER",
    "REJECT_ADDRESS",
    "TRANSPORT_MQTT",
    "UPLINK_CONSUMER",
    "UPLINK_TOKEN",
    "DeviceTopicError",
    "device_of_session_filter",
    "device_publish_allow",
    "device_subscribe_allow",
    "downlink_subject",
    "downlink_topic_filter",
    "from_mqtt_level",
    "mqtt_session_subject",
    "parse_uplink",
    "session_consumers_api",
    "to_mqtt_level",
    "uplink_msg_id",
    "uplink_subject",
    "uplink_subject_all",
    "uplink_topic",
]
