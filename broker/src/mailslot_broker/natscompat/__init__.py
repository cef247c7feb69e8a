"""Every use of nats-py internals, in one place.

nats-py has no public API for some things Mailslot needs: a KV compare-and-set that carries
a per-message TTL, the request/reply mux (to fail a request the server refused at once), the
connection behind a message, the server's INFO, reconnect options changed after connecting,
the layout of a JetStream ack reply subject, a message delete without secure erase, the
JetStream API request behind nats-py's methods and its in-flight ``publish_async`` futures. They
live here, and only here, so that a nats-py upgrade breaks one package;
``tests/broker/test_natscompat.py`` checks each against a real server and fails loudly when
nats-py changes them. The nats-py pin in ``pyproject.toml`` is the range that test covers
(:data:`TESTED_NATS_PY`).
"""

from .connection import keep_reconnecting, server_info
from .jetstream import api_prefix, api_request, delete_msg, js_connection, pending_publishes
from .kv import kv_handle, kv_update, on_consumer_replaced, replacements_settled, watcher_consumer
from .messages import AckReply, marker_msg, msg_client, parse_ack_reply, stored_msg
from .reader import deliver_subjects_only, forget_subjects_only, subject_only_callbacks
from .websocket import patch_websocket_transport
from .wire import (
    WireHeaders,
    encode_headers,
    jetstream_publish,
    pending_responses,
    publish_wire,
    response_prefix,
)

#: The nats-py minor version(s) this package was checked against.
TESTED_NATS_PY = "2.16"

__all__ = [
    "TESTED_NATS_PY",
    "AckReply",
    "WireHeaders",
    "api_prefix",
    "api_request",
    "delete_msg",
    "deliver_subjects_only",
    "encode_headers",
    "forget_subjects_only",
    "jetstream_publish",
    "js_connection",
    "keep_reconnecting",
    "kv_handle",
    "kv_update",
    "marker_msg",
    "msg_client",
    "on_consumer_replaced",
    "parse_ack_reply",
    "patch_websocket_transport",
    "pending_publishes",
    "pending_responses",
    "publish_wire",
    "replacements_settled",
    "response_prefix",
    "server_info",
    "stored_msg",
    "subject_only_callbacks",
    "watcher_consumer",
]
