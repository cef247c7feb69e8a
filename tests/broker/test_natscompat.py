"""The nats-py internals Mailslot relies on (mailslot_broker.natscompat), checked against a real
server: when nats-py changes one of them this fails, not production."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
from importlib.metadata import version

import pytest
from mailslot_broker import NatsServer, kvscan, natscompat
from mailslot_broker import protocol as p
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import errors as jserr
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue


def test_installed_nats_py_is_the_tested_minor() -> None:
    assert version("nats-py").startswith(natscompat.TESTED_NATS_PY + ".")


def test_private_signatures_are_unchanged() -> None:
    params = inspect.signature(KeyValue._update).parameters
    assert list(params)[:4] == ["self", "key", "value", "last"]
    assert "msg_ttl" in params
    assert "_client" in {f.name for f in Msg.__dataclass_fields__.values()}
    nc = Client()
    assert hasattr(nc, "_resp_map") and hasattr(nc, "_resp_sub_prefix")
    # deliver_subjects_only stands in for the reader's per-message call
    assert list(inspect.signature(Client._process_msg).parameters) == [
        "self",
        "sid",
        "subject",
        "reply",
        "data",
        "headers",
    ]
    assert "self.nc._process_msg(" in inspect.getsource(importlib.import_module("nats.protocol.parser"))


async def test_kv_update_is_a_conditional_write_with_a_ttl(nc: Client) -> None:
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="T", history=1, direct=True, limit_marker_ttl=1))
    rev = await natscompat.kv_update(kv, "k", b"1", last=0, msg_ttl=60)
    assert rev == 1
    raw = await js.get_msg("KV_T", seq=rev)
    assert (raw.headers or {}).get("Nats-TTL") == "60"
    rev = await natscompat.kv_update(kv, "k", b"2", last=rev, msg_ttl=1)
    with pytest.raises(jserr.KeyWrongLastSequenceError):
        await natscompat.kv_update(kv, "k", b"3", last=rev - 1, msg_ttl=60)
    assert (await kv.get("k")).value == b"2"
    for _ in range(50):  # the 1 s TTL really applies
        await asyncio.sleep(0.1)
        try:
            await kv.get("k")
        except (jserr.KeyNotFoundError, jserr.KeyDeletedError):
            break
    else:
        pytest.fail("a per-message TTL written by kv_update did not expire")


async def test_kv_handle_reads_and_writes_a_bucket_without_a_lookup(nc: Client) -> None:
    js = nc.jetstream()
    made = await js.create_key_value(KeyValueConfig(bucket="H", history=1, direct=True))
    kv = natscompat.kv_handle(js, bucket="H", stream="KV_H", prefix="$KV.H.")
    rev = await kv.create("k", b"1")
    assert (await kv.get("k")).value == b"1" and (await made.get("k")).revision == rev
    with pytest.raises(jserr.KeyWrongLastSequenceError):
        await kv.create("k", b"2")
    assert list(inspect.signature(KeyValue.__init__).parameters)[1:6] == [
        "name",
        "stream",
        "pre",
        "js",
        "direct",
    ]


def test_public_kv_update_has_no_ttl() -> None:
    """Why kv_update exists: the public update() takes no msg_ttl (drop it when it does)."""
    assert "msg_ttl" not in inspect.signature(KeyValue.update).parameters


async def test_reply_map_is_a_dict_keyed_by_token_under_the_prefix(nc: Client) -> None:
    assert natscompat.response_prefix(nc) is None  # no request yet
    seen: dict[str, object] = {}

    async def responder(msg: Msg) -> None:
        prefix = natscompat.response_prefix(nc)
        assert prefix and msg.reply.startswith(prefix)
        live = natscompat.pending_responses(nc)
        assert isinstance(live, dict)
        token = msg.reply[len(prefix) :]
        seen["future"] = live.get(token)
        await msg.respond(b"pong")

    await nc.subscribe("svc.ping", cb=responder)
    reply = await nc.request("svc.ping", b"", timeout=5)
    assert reply.data == b"pong"
    assert isinstance(seen["future"], asyncio.Future)
    assert natscompat.response_prefix(nc) is not None

    # Failing a pending future fails the request (what PermissionGuard does).
    async def silent(msg: Msg) -> None:
        prefix = natscompat.response_prefix(nc)
        assert prefix
        fut = natscompat.pending_responses(nc)[msg.reply[len(prefix) :]]
        fut.set_exception(RuntimeError("refused"))

    await nc.subscribe("svc.silent", cb=silent)
    with pytest.raises(RuntimeError, match="refused"):
        await nc.request("svc.silent", b"", timeout=5)


async def test_keep_reconnecting_sets_the_options(nc: Client) -> None:
    assert {"max_reconnect_attempts", "reconnect_time_wait"} <= set(nc.options)
    natscompat.keep_reconnecting(nc, wait=0.25)
    assert nc.options["max_reconnect_attempts"] == -1
    assert nc.options["reconnect_time_wait"] == 0.25


async def test_server_info_is_the_connected_servers_info(nc: Client, server: NatsServer) -> None:
    assert natscompat.js_connection(nc.jetstream()) is nc
    info = natscompat.server_info(nc)
    assert info["server_name"] == server.config.server_name
    assert info["jetstream"] is True and info["version"] == server.version
    assert "cluster" not in info and "connect_urls" not in info  # a single server says neither
    info["server_name"] = "changed"
    assert natscompat.server_info(nc)["server_name"] == server.config.server_name


async def test_ack_reply_layout_and_msg_client(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name="A", subjects=["a.>"])
    await js.publish("a.x", b"0")
    sub = await js.pull_subscribe("a.>", durable="worker", stream="A")
    first = (await sub.fetch(1, timeout=5))[0]
    ack = natscompat.parse_ack_reply(first.reply)
    assert (ack.stream, ack.consumer, ack.delivered, ack.stream_seq, ack.consumer_seq) == (
        "A",
        "worker",
        1,
        1,
        1,
    )
    assert ack.stream == first.metadata.stream and ack.consumer == first.metadata.consumer
    await first.nak()
    again = (await sub.fetch(1, timeout=5))[0]
    ack = natscompat.parse_ack_reply(again.reply)
    assert (ack.stream_seq, ack.delivered) == (1, 2)
    assert natscompat.msg_client(again) is nc
    await natscompat.msg_client(again).publish(again.reply, b"+TERM")
    await nc.flush()
    await js.publish("a.x", b"1")
    second = (await sub.fetch(1, timeout=5))[0]
    assert natscompat.parse_ack_reply(second.reply).stream_seq == 2  # seq 1 was termed
    v2 = "$JS.ACK.hub.ACCHASH.A.worker.3.7.5.1700000000000000000.0.rand"
    assert natscompat.parse_ack_reply(v2) == natscompat.AckReply("A", "worker", 3, 7, 5)
    for bad in ("", "_INBOX.x.y", "$JS.ACK.A.worker.x.1.1.1.0", "$JS.ACK.A.worker.1.1"):
        with pytest.raises(ValueError):
            natscompat.parse_ack_reply(bad)


async def test_stored_msg(nc: Client) -> None:
    msg = natscompat.stored_msg(nc, subject="s", data=b"d", headers={"h": "v"})
    assert (msg.subject, msg.reply, msg.data, msg.headers) == ("s", "", b"d", {"h": "v"})
    assert natscompat.msg_client(msg) is nc


async def test_a_replaced_watch_consumer_is_reported_and_deleted(nc: Client) -> None:
    """nats-py replaces a watcher's ordered consumer after two missed heartbeats (a loaded
    machine) and abandons the old one; kvscan.watch deletes it at once instead of leaving it
    to its inactive threshold. The reset is driven through nats-py's own reset routine."""
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="W", history=1))
    watcher = await kvscan.watch(js, kv, inactive_threshold=60)
    try:
        first = natscompat.watcher_consumer(watcher)
        assert first is not None and first[0] == "KV_W"
        assert [c.name for c in await js.consumers_info("KV_W")] == [first[1]]
        await watcher._sub._sub._jsi.reset_ordered_consumer(1)
        for _ in range(100):
            now = natscompat.watcher_consumer(watcher)
            names = [c.name for c in await js.consumers_info("KV_W")]
            if now != first and names == [now[1]]:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the abandoned consumer was kept: {names}, watcher on {now}")
        await kv.put("k", b"v")  # the replacement still delivers
        for _ in range(3):
            entry = await watcher.updates(timeout=5)
            if entry is not None and entry.key == "k":
                break
        else:
            pytest.fail("the replaced watcher delivered nothing")
    finally:
        await kvscan.stop_watch(js, watcher)
    assert await js.consumers_info("KV_W") == []


async def test_a_watch_stopped_while_its_consumer_is_being_replaced_leaves_none(nc: Client) -> None:
    """nats-py makes the replacement consumer in a background task. A watch stopped before that
    task ends used to delete only the consumer it was leaving, and the replacement appeared
    after, with nothing subscribed to it, until its inactive threshold (seen as a registry
    watch's consumer outliving its close in the idle-deployment consumer count)."""
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="R", history=1))
    await kv.put("k", b"v")
    for _ in range(5):
        watcher = await kvscan.watch(js, kv, inactive_threshold=60)
        await watcher._sub._sub._jsi.reset_ordered_consumer(1)  # the replacement is in flight
        await kvscan.stop_watch(js, watcher)
        for _ in range(40):
            names = [c.name for c in await js.consumers_info("KV_R")]
            if not names:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"a consumer outlived its watch: {names}")


async def test_delete_msg_leaves_out_the_erase_unless_asked(nc: Client) -> None:
    """nats-py's ``delete_msg`` always asks the server to overwrite the bytes first (about 8x
    slower on a file store); natscompat's sends ``no_erase`` unless told to erase. The request
    bodies are read off the API subject by a plain subscriber, and the errors are the ones
    nats-py's own delete raises."""
    js = nc.jetstream()
    await js.add_stream(name="ER", subjects=["er.>"])
    for i in range(3):
        await js.publish(f"er.{i}", b"x")
    seen: list[dict[str, object]] = []

    async def note(msg: Msg) -> None:
        seen.append(json.loads(msg.data))

    sub = await nc.subscribe("$JS.API.STREAM.MSG.DELETE.ER", cb=note)
    await natscompat.delete_msg(js, "ER", 1)
    await natscompat.delete_msg(js, "ER", 2, erase=True)
    await nc.flush()
    await sub.unsubscribe()
    assert seen == [{"seq": 1, "no_erase": True}, {"seq": 2}]
    for seq in (1, 2):
        with pytest.raises(jserr.NotFoundError):
            await js.get_msg("ER", seq)
    assert (await js.get_msg("ER", 3)).data == b"x"
    with pytest.raises(jserr.APIError) as gone:
        await natscompat.delete_msg(js, "ER", 1)
    with pytest.raises(jserr.APIError) as gone_too:
        await js.delete_msg("ER", 1)
    assert (type(gone.value), gone.value.err_code) == (type(gone_too.value), gone_too.value.err_code)
    assert p.jsapi.is_already_gone(gone.value)
    with pytest.raises(jserr.NotFoundError):
        await natscompat.delete_msg(js, "NOPE", 1)


async def test_api_request_and_prefix(nc: Client) -> None:
    js = nc.jetstream()
    assert natscompat.api_prefix(js) == "$JS.API"
    await js.add_stream(name="AR", subjects=["ar.>"])
    await js.publish("ar.a", b"1")
    await js.publish("ar.b", b"2")
    body = json.dumps({"subjects_filter": "ar.a"}).encode()
    resp = await natscompat.api_request(js, "STREAM.INFO.AR", body, timeout=5)
    assert resp["state"]["subjects"] == {"ar.a": 1}
    with pytest.raises(jserr.NotFoundError):
        await natscompat.api_request(js, "STREAM.INFO.NONE", b"", timeout=5)


async def test_pending_publishes_are_the_live_futures_of_publish_async(nc: Client) -> None:
    js = nc.jetstream()
    await js.add_stream(name="PP", subjects=["pp"])
    assert len(natscompat.pending_publishes(js)) == 0
    fut = await js.publish_async("pp", b"1")
    pending = natscompat.pending_publishes(js)
    assert list(pending.values()) == [fut]  # failing it here fails the publish
    await fut
    assert len(pending) == 0
    second = await js.publish_async("pp", b"2")
    pending[next(iter(pending))].set_exception(RuntimeError("lost"))
    with pytest.raises(RuntimeError, match="lost"):
        await second


def test_marker_msg() -> None:
    m = natscompat.marker_msg(headers={"Status": "000"})
    assert isinstance(m, Msg) and m.headers == {"Status": "000"} and m.subject == "" and m.data == b""
