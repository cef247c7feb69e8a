"""The nats-py internals behind Mailslot's writes and reads on the connection
(mailslot_broker.natscompat.wire and .reader), checked against a real server: headers written
in one join, a JetStream publish as one coroutine, bells read by subject alone."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable

import nats
import nats.errors as nerr
import pytest
from mailslot_broker import NatsServer, natscompat
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import errors as jserr
from testsupport import wait_for

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
    await wait_for(lambda: len(got) == 3, timeout=2.5)
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
    await wait_for(lambda: plain, timeout=1)
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
    await wait_for(lambda: parsed, timeout=1)
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
        await wait_for(lambda: nc.is_connected and nc.stats["reconnects"] >= 1, timeout=10)
        await nc.publish("ring.x", b"", headers={"A": "b"})
        await nc.flush()
        await wait_for(lambda: subjects, timeout=1)
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
    assert ack is not None and ack.stream == "JP" and ack.seq == 2 and not ack.duplicate
    assert tracked and tracked[0][1] == "jp.a"
    stored = await js.get_msg("JP", seq=2)
    assert stored.data == b"body" and stored.headers == {**_WIRE, "Nats-Msg-Id": "m-1"}
    again = await natscompat.jetstream_publish(
        nc, "jp.a", b"body", natscompat.WireHeaders({**_WIRE, "Nats-Msg-Id": "m-1"}), timeout=5
    )
    assert again is not None and again.duplicate is True and again.seq == 2
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
    await wait_for(lambda: natscompat.pending_responses(nc), timeout=1)
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
