"""The nats-py internals Mailslot relies on (mailslot_broker.natscompat), checked against a real
server: when nats-py changes one of them this fails, not production."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
from collections.abc import Awaitable, Callable
from importlib.metadata import version

import nats
import nats.errors as nerr
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


_WIRE = {
    "Mailslot-Id": "0f" * 16,
    "Nats-Msg-Id": "0f" * 16,
    "Mailslot-To": "ops.alice",
    "Content-Type": "application/octet-stream",
    "X-Empty": "",
}


async def _frames(nc: Client, send: Callable[[], Awaitable[None]]) -> list[bytes]:
    """The commands ``send`` queues on ``nc`` (read off its pending buffer before the flush)."""
    before = len(nc._pending)
    queue, nc._flush_queue = nc._flush_queue, None  # hold the flusher back for one look
    try:
        await send()
        return [bytes(c) for c in nc._pending[before:]]
    finally:
        nc._flush_queue = queue
        await nc.flush()


async def test_publish_wire_writes_the_frame_nats_py_writes(nc: Client) -> None:
    """Same HPUB bytes, same counters, same delivery as ``nc.publish`` for the same headers."""
    got: list[Msg] = []

    async def keep(m: Msg) -> None:
        got.append(m)

    await nc.subscribe("wire.t", cb=keep)
    await nc.flush()
    ours = await _frames(
        nc,
        lambda: natscompat.publish_wire(
            nc, "wire.t", b"body", "r.1", natscompat.WireHeaders(_WIRE), nc.publish
        ),
    )
    theirs = await _frames(nc, lambda: nc.publish("wire.t", b"body", reply="r.1", headers=dict(_WIRE)))
    assert ours == theirs and len(ours) == 1
    out = nc.stats["out_msgs"]
    await natscompat.publish_wire(nc, "wire.t", b"body", "", natscompat.WireHeaders(_WIRE), nc.publish)
    assert nc.stats["out_msgs"] == out + 1
    await nc.flush()
    for _ in range(50):
        if len(got) == 3:
            break
        await asyncio.sleep(0.05)
    assert [m.headers for m in got] == [dict(_WIRE)] * 3 and {m.data for m in got} == {b"body"}


async def test_publish_wire_leaves_the_odd_cases_to_nats_py(nc: Client) -> None:
    """A value with a line break, an oversize payload, a bad subject and a closed connection
    behave exactly as nats-py's own publish (its escaping, its errors)."""
    assert natscompat.encode_headers({"A": "x\r\nPUB evil 0"}) is None
    broken = natscompat.WireHeaders({"A": "x\r\nPUB evil 0"})
    ours = await _frames(nc, lambda: natscompat.publish_wire(nc, "wire.t", b"", "", broken, nc.publish))
    theirs = await _frames(nc, lambda: nc.publish("wire.t", b"", headers={"A": "x\r\nPUB evil 0"}))
    assert ours == theirs and b"x  PUB evil 0" in ours[0]
    with pytest.raises(nerr.MaxPayloadError):
        await natscompat.publish_wire(
            nc, "wire.t", b"x" * (nc.max_payload + 1), "", natscompat.WireHeaders(_WIRE), nc.publish
        )
    with pytest.raises(nerr.BadSubjectError):
        await natscompat.publish_wire(nc, "bad subject", b"", "", natscompat.WireHeaders(_WIRE), nc.publish)
    with pytest.raises(nerr.BadSubjectError):
        await natscompat.publish_wire(nc, "", b"", "", natscompat.WireHeaders(_WIRE), nc.publish)
    await nc.close()
    with pytest.raises(nerr.ConnectionClosedError):
        await natscompat.publish_wire(nc, "wire.t", b"", "", natscompat.WireHeaders(_WIRE), nc.publish)


def test_publish_wire_reads_attributes_nats_py_still_has() -> None:
    nc = Client()
    for name in ("_pending", "_flush_queue", "_max_payload", "_skip_subject_validation", "stats"):
        assert hasattr(nc, name), name
    assert {"out_msgs", "out_bytes"} <= set(nc.stats)
    assert list(inspect.signature(Client._send_command).parameters)[:2] == ["self", "cmd"]


async def test_deliver_subjects_only_skips_the_msg_and_keeps_other_subscriptions(
    nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    parsed: list[Msg] = []
    plain: list[Msg] = []
    subjects: list[str] = []

    async def parsed_cb(msg: Msg) -> None:
        parsed.append(msg)

    async def plain_cb(msg: Msg) -> None:
        plain.append(msg)

    def on_subject(subject: str) -> None:
        subjects.append(subject)
        if subject.endswith("boom"):
            raise RuntimeError("boom")

    bells = await nc.subscribe("bells.>", cb=parsed_cb)
    other = await nc.subscribe("other.>", cb=plain_cb)
    natscompat.deliver_subjects_only(bells, on_subject)
    before = nc.stats["in_msgs"]
    for subject in ("bells.a", "bells.boom", "bells.b", "other.x"):
        await nc.publish(subject, b"", headers={"Nats-Sequence": "7", "X": "y"})
    await nc.flush()
    for _ in range(100):
        if plain:
            break
        await asyncio.sleep(0.01)
    assert subjects == ["bells.a", "bells.boom", "bells.b"]  # in order, a failing one logged
    assert parsed == []  # nats-py built no Msg for them
    assert [m.subject for m in plain] == ["other.x"] and plain[0].headers == {"Nats-Sequence": "7", "X": "y"}
    assert nc.stats["in_msgs"] - before == 4
    assert "subject-only subscription's callback failed" in caplog.text

    await bells.unsubscribe()
    await nc.publish("bells.c", b"")
    # A frame for it already on its way when the UNSUB went out: dropped, and forgotten.
    assert bells._id in natscompat.subject_only_callbacks(nc)
    await nc._process_msg(bells._id, b"bells.late", b"", b"", b"")
    assert bells._id not in natscompat.subject_only_callbacks(nc)
    again = await nc.subscribe("bells.>", cb=parsed_cb)  # a new subscription parses as usual
    await nc.publish("bells.d", b"", headers={"X": "z"})
    await nc.flush()
    for _ in range(100):
        if parsed:
            break
        await asyncio.sleep(0.01)
    assert subjects == ["bells.a", "bells.boom", "bells.b"]
    assert [m.subject for m in parsed] == ["bells.d"]
    natscompat.deliver_subjects_only(again, on_subject)
    await again.unsubscribe()
    natscompat.forget_subjects_only(again)
    assert again._id not in natscompat.subject_only_callbacks(nc)
    natscompat.forget_subjects_only(again)  # twice is harmless
    await other.unsubscribe()


async def test_deliver_subjects_only_survives_a_reconnect(server: NatsServer) -> None:
    subjects: list[str] = []

    async def never(msg: Msg) -> None:
        raise AssertionError("parsed")

    c = server.credentials
    nc = await nats.connect(
        server.url, user=c.user, password=c.password, reconnect_time_wait=0.1, max_reconnect_attempts=-1
    )
    try:
        sub = await nc.subscribe("ring.>", cb=never)
        natscompat.deliver_subjects_only(sub, subjects.append)
        server.kill()
        server.start()
        for _ in range(500):
            await asyncio.sleep(0.02)
            if nc.is_connected and nc.stats["reconnects"] >= 1:
                break
        assert nc.stats["reconnects"] >= 1
        await nc.publish("ring.x", b"", headers={"A": "b"})
        await nc.flush()
        for _ in range(100):
            if subjects:
                break
            await asyncio.sleep(0.01)
        assert subjects == ["ring.x"]
    finally:
        await nc.close()


async def test_jetstream_publish_stores_as_js_publish_does_and_raises_its_errors(nc: Client) -> None:
    from nats.js.api import StreamConfig

    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="JP", subjects=["jp.>"], duplicate_window=60))
    headers = natscompat.WireHeaders(_WIRE)
    # Before a connection's first request there is no reply mux: left to js.publish.
    assert natscompat.response_prefix(Client()) is None
    assert await natscompat.jetstream_publish(Client(), "jp.a", b"x", headers, timeout=5) is None
    await js.publish("jp.a", b"first", headers=dict(_WIRE))
    tracked: list[tuple[str, str]] = []
    ack = await natscompat.jetstream_publish(
        nc,
        "jp.a",
        b"body",
        natscompat.WireHeaders({**_WIRE, "Nats-Msg-Id": "m-1"}),
        timeout=5,
        track=lambda token, subject: tracked.append((token, subject)),
    )
    assert ack is not None and ack["stream"] == "JP" and ack["seq"] == 2 and not ack.get("duplicate")
    assert tracked and tracked[0][1] == "jp.a"
    stored = await js.get_msg("JP", seq=2)
    assert stored.data == b"body" and stored.headers == {**_WIRE, "Nats-Msg-Id": "m-1"}
    again = await natscompat.jetstream_publish(
        nc, "jp.a", b"body", natscompat.WireHeaders({**_WIRE, "Nats-Msg-Id": "m-1"}), timeout=5
    )
    assert again is not None and again["duplicate"] is True and again["seq"] == 2
    assert not natscompat.pending_responses(nc)  # every future taken out of the reply map

    with pytest.raises(jserr.NoStreamResponseError):  # no stream takes the subject: 503
        await natscompat.jetstream_publish(nc, "nostream.x", b"", headers, timeout=5)
    with pytest.raises(jserr.APIError) as refused:  # the stream answers with an error
        await natscompat.jetstream_publish(
            nc, "jp.a", b"", natscompat.WireHeaders({**_WIRE, "Nats-Expected-Stream": "OTHER"}), timeout=5
        )
    assert refused.value.err_code == 10060
    silent = await nc.subscribe("quiet.x")  # a responder that never answers
    with pytest.raises(nerr.TimeoutError):
        await natscompat.jetstream_publish(nc, "quiet.x", b"", headers, timeout=0.3)
    await silent.unsubscribe()
    assert not natscompat.pending_responses(nc)
    # The odd cases go back to the caller (js.publish then escapes or raises as ever).
    assert (
        await natscompat.jetstream_publish(
            nc, "jp.a", b"", natscompat.WireHeaders({"A": "x\r\nB"}), timeout=5
        )
        is None
    )
    assert (
        await natscompat.jetstream_publish(nc, "jp.a", b"x" * (nc.max_payload + 1), headers, timeout=5)
        is None
    )
    with pytest.raises(nerr.BadSubjectError):
        await natscompat.jetstream_publish(nc, "bad subject", b"", headers, timeout=5)


async def test_jetstream_publish_is_failed_like_a_request_when_its_future_is(nc: Client) -> None:
    """What fails nats-py's in-flight requests (Link.lost() on a dropped connection) fails
    this one too: its future is in the same reply map."""
    js = nc.jetstream()
    with contextlib.suppress(jserr.NoStreamResponseError):
        await js.publish("nostream.y", b"")  # makes the mux
    await nc.subscribe("quiet.y")
    task = asyncio.create_task(
        natscompat.jetstream_publish(nc, "quiet.y", b"", natscompat.WireHeaders(_WIRE), timeout=30)
    )
    for _ in range(100):
        if natscompat.pending_responses(nc):
            break
        await asyncio.sleep(0.01)
    for fut in list(natscompat.pending_responses(nc).values()):
        fut.set_exception(ConnectionResetError("dropped"))
    with pytest.raises(ConnectionResetError):
        await task
    assert not natscompat.pending_responses(nc)


def test_jetstream_publish_reads_attributes_nats_py_still_has() -> None:
    nc = Client()
    for name in ("_nuid", "_resp_map", "_resp_sub_prefix", "_flush_queue", "_max_payload", "stats"):
        assert hasattr(nc, name), name
    assert isinstance(nc._nuid.next(), bytearray)
