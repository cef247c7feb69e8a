"""Bad input gets a clear, typed error before anything reaches the server, and loses nothing."""

import asyncio
import math
import time
from datetime import timedelta

import mailslot
import pytest
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from nats.js.api import AckPolicy, ConsumerConfig


@pytest.mark.parametrize("to", ["a.*", "a.>", "a b", "", "a..b", "x" * 200, " coder"])
async def test_invalid_addresses(ms, to):
    with pytest.raises(mailslot.InvalidAddressError):
        await ms.send(to, "hi")
    with pytest.raises(mailslot.InvalidAddressError):
        await ms.open(to)


async def test_errors_are_value_errors_and_mailslot_errors(ms):
    with pytest.raises(ValueError):
        await ms.send("a b", "x")
    with pytest.raises(mailslot.MailslotError):
        await ms.send("a", "x", priority="asap")


@pytest.mark.parametrize("priority", ["asap", 9, -1, "", None])
async def test_unknown_priority(ms, priority):
    with pytest.raises(mailslot.UnknownPriorityError):
        await ms.send("a", "x", priority=priority)


@pytest.mark.parametrize("ttl", [0, 0.5, -3, "10"])
async def test_bad_ttl(ms, ttl):
    with pytest.raises(mailslot.InvalidTTLError):
        await ms.send("a", "x", ttl=ttl)
    with pytest.raises(mailslot.InvalidTTLError):
        await ms.send("a", "x", delay=ttl)


async def test_payload_too_large(ms):
    with pytest.raises(mailslot.PayloadTooLarge):
        await ms.send("a", b"x" * (ms.max_payload + 1))


async def test_unencodable_payload(ms):
    with pytest.raises(mailslot.InvalidPayload):
        await ms.send("a", object())


@pytest.mark.parametrize(
    "headers", [{"Nats-Msg-Id": "x"}, {"Mailslot-From": "evil"}, {"a b": "c"}, {"X": "line\nbreak"}]
)
async def test_reserved_or_bad_headers(ms, headers):
    with pytest.raises(mailslot.InvalidHeader):
        await ms.send("a", "x", headers=headers)


async def test_send_many_validates_everything_first(ms):
    items = [{"to": "ok", "payload": 1}, {"to": "bad address", "payload": 2}]
    with pytest.raises(mailslot.InvalidAddressError):
        await ms.send_many(items)
    assert (await ms.inspect("ok").stats()).total == 0  # nothing was sent


async def test_nothing_was_lost_by_a_rejected_send(ms):
    await ms.send("keep", "first")
    with pytest.raises(mailslot.InvalidTTLError):
        await ms.send("keep", "second", ttl=0.1)
    mb = await ms.open("keep")
    m = await mb.receive(timeout=5)
    assert m.text == "first"
    await m.ack()


async def test_bad_mailbox_options(ms):
    with pytest.raises(mailslot.InvalidInput):
        await ms.open("x", max_deliver=2, backoff=[1, 2, 3])
    with pytest.raises(mailslot.InvalidInput):
        await ms.open("x", prefetch=0)
    with pytest.raises(mailslot.InvalidTTLError):
        await ms.open("x", ttl=0.2)


async def test_malformed_foreign_message(ms):
    """A plain NATS client writes garbage without Mailslot headers: it is still delivered,
    metadata degrades to None and payload accessors raise DecodeError."""
    await ms.js.publish(p.mail_subject(p.Priority.URGENT, "foreign"), b"\xff\xfe not json")
    mb = await ms.open("foreign")
    m = await mb.receive(timeout=5)
    assert m.priority is mailslot.Priority.URGENT
    assert m.sender is None and m.reply_to is None and m.correlation_id is None
    assert m.data == b"\xff\xfe not json"
    with pytest.raises(mailslot.DecodeError):
        m.json()
    with pytest.raises(mailslot.DecodeError):
        _ = m.text
    with pytest.raises(mailslot.DecodeError):
        m.model(dict)
    await m.ack()
    with pytest.raises(mailslot.AlreadyAcknowledged):
        await m.ack()


# -- every number is checked, before anything is written ----------------------------------------

NOT_NUMBERS = [math.nan, math.inf, -math.inf, 1e30, 10**30, 10**400, True, "10", b"1", [1], object()]


async def _nothing_at(ms, address):
    """No record, no lease, no consumers for ``address``."""
    for bucket in (p.MAILBOXES_BUCKET, p.AGENTS_BUCKET):
        try:
            raw = await ms.js.get_msg(f"KV_{bucket}", subject=f"$KV.{bucket}.{address}", direct=True)
        except jserr.NotFoundError:
            continue
        assert not raw.data or (raw.headers or {}).get("KV-Operation"), (bucket, raw.data)
    for prio in p.PRIORITIES:
        with pytest.raises(jserr.NotFoundError):
            await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))
    return True


@pytest.mark.parametrize(
    ("arg", "value", "range_text"),
    [
        *(("ttl", v, "ttl must be .*between 1 s and 86400 s") for v in [*NOT_NUMBERS, 0, -1, 0.5, 86401]),
        ("ttl", timedelta(days=2), "ttl must be .*between 1 s and 86400 s"),
        *(
            ("keep", v, "keep must be .*between 0 s and 2419200 s")
            for v in [*NOT_NUMBERS, -1, p.MAX_KEEP + 1]
        ),
        *(
            ("ack_wait", v, "ack_wait must be .*between 1 s and 43200 s")
            for v in [*NOT_NUMBERS, 0, 0.5, 43201]
        ),
        *(
            ("heartbeat", v, "heartbeat must be .*between 1 s and 43200 s")
            for v in [*NOT_NUMBERS, 0, 0.5, 1e6]
        ),
    ],
)
async def test_open_refuses_bad_durations(ms, arg, value, range_text):
    with pytest.raises(mailslot.InvalidTTLError, match=range_text):
        await ms.open("durations", **{arg: value})
    assert await _nothing_at(ms, "durations")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_deliver": 0}, r"max_deliver must be between 1 and 1000000 \(or -1 for unlimited\), got 0"),
        ({"max_deliver": -2}, "max_deliver must be between 1 and 1000000"),
        ({"max_deliver": 2**63}, "max_deliver must be between 1 and 1000000"),
        ({"max_deliver": True}, "max_deliver must be an int, not bool"),
        ({"max_deliver": 5.0}, "max_deliver must be an int, not float"),
        ({"max_deliver": "5"}, "max_deliver must be an int, not str"),
        ({"backoff": "1,2"}, "backoff must be a sequence of seconds, not str"),
        ({"backoff": 5}, "backoff must be a sequence of seconds, not int"),
        ({"backoff": [1, -1]}, r"backoff\[1\] must be between 0.1 s and 43200 s"),
        ({"backoff": [math.nan]}, r"backoff\[0\] must be between 0.1 s and 43200 s \(12 h\), got nan"),
        ({"backoff": [0.01]}, r"backoff\[0\] must be between 0.1 s"),
        ({"backoff": [1e30]}, r"backoff\[0\] must be between"),
        ({"backoff": [True]}, r"backoff\[0\] must be a number of seconds"),
        ({"backoff": [1.0] * 101}, "backoff has more than 100 steps"),
        (
            {"max_deliver": 3, "backoff": [1, 2, 3]},
            r"max_deliver \(3\) must be larger than the number of backoff",
        ),
        ({"prefetch": 0}, "prefetch must be between 1 and 1000"),
        ({"prefetch": 1001}, "prefetch must be between 1 and 1000"),
        ({"prefetch": True}, "prefetch must be an int"),
        ({"prefetch": 1.5}, "prefetch must be an int"),
        ({"card": "planner"}, "card must be an AgentCard or a mapping"),
        ({"card": {"name": 5}}, "card is not a valid agent card"),
        ({"card": {"metadata": {"o": object()}}}, "card is not a valid agent card"),
        (
            {"card": {"description": "x" * (p.MAX_CARD_BYTES + 1)}},
            "card is .* bytes as JSON; the limit is 65536",
        ),
    ],
)
async def test_open_refuses_bad_options(ms, kwargs, message):
    with pytest.raises(mailslot.InvalidInput, match=message):
        await ms.open("options", **kwargs)
    assert await _nothing_at(ms, "options")


async def test_open_accepts_every_limit_and_the_server_does_too(ms):
    """The largest values Mailslot accepts are within what nats-server 2.15 accepts (int64
    nanoseconds): consumers with the longest ack wait and backoff, a lease of a day, mail with
    a TTL and a delay of a year."""
    mb = await ms.open(
        "limits",
        ttl=p.MAX_LEASE_TTL,
        keep=p.MAX_KEEP,
        ack_wait=p.MAX_ACK_WAIT,
        max_deliver=p.MAX_DELIVER_LIMIT,
        backoff=[p.MAX_ACK_WAIT] * p.MAX_BACKOFF_STEPS,
        prefetch=p.MAX_PREFETCH,
        heartbeat=timedelta(seconds=p.MAX_HEARTBEAT),
    )
    info = await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name("limits", p.Priority.NORMAL))
    assert info.config.max_deliver == p.MAX_DELIVER_LIMIT
    assert len(info.config.backoff or []) == p.MAX_BACKOFF_STEPS
    await mb.destroy()
    small = await ms.open("limits-low", ttl=1, keep=0, ack_wait=1, backoff=[0.1], max_deliver=-1, heartbeat=1)
    await small.destroy()
    assert (await ms.send("limits", "y", ttl=p.MAX_SECONDS)).seq
    assert (await ms.send("limits", "y", ttl=p.MAX_SECONDS, delay=p.MAX_SECONDS)).scheduled
    # ... and the server's own limit is where we measured it: just past int64 nanoseconds.
    whole = int(p.SERVER_MAX_SECONDS)
    await ms.js.publish(p.mail_subject(p.Priority.LOW, "limits"), b"x", headers={"Nats-TTL": f"{whole}s"})
    with pytest.raises(jserr.BadRequestError):
        await ms.js.publish(
            p.mail_subject(p.Priority.LOW, "limits"), b"x", headers={"Nats-TTL": f"{whole + 1}s"}
        )


# -- send and the other calls that take numbers -------------------------------------------------


@pytest.mark.parametrize("value", [*NOT_NUMBERS, p.MAX_SECONDS + 1, 1e10, timedelta(days=400)])
async def test_send_refuses_bad_ttl_and_delay(ms, value):
    with pytest.raises(mailslot.InvalidTTLError, match=r"ttl must be .*between 1 s and 31536000 s"):
        await ms.send("numbers", "x", ttl=value)
    with pytest.raises(mailslot.InvalidTTLError, match=r"delay must be .*between 1 s and 31536000 s"):
        await ms.send("numbers", "x", delay=value)
    with pytest.raises(mailslot.InvalidTTLError):
        await ms.send_many(
            [{"to": "numbers", "payload": "ok"}, {"to": "numbers", "payload": "x", "ttl": value}]
        )
    with pytest.raises(mailslot.InvalidTTLError):
        await ms.publish("numbers.topic", "x", durable=True, ttl=value)
    assert (await ms.inspect("numbers").stats()).total == 0


async def test_send_takes_timedeltas(ms):
    r = await ms.send("td", "x", ttl=timedelta(minutes=5), delay=timedelta(seconds=30))
    assert r.scheduled


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"headers": [("X-A", "b")]}, mailslot.InvalidHeader, "headers must be a mapping"),
        ({"headers": {"X-A": "\udcff"}}, mailslot.InvalidHeader, "not encodable as UTF-8"),
        ({"headers": {"X-A": " padded"}}, mailslot.InvalidHeader, "leading or trailing whitespace"),
        ({"headers": {"X-A": "nul\0"}}, mailslot.InvalidHeader, "single line"),
        ({"headers": {"X-A": 5}}, mailslot.InvalidHeader, "must be a str, not int"),
        ({"headers": {"a:b": "c"}}, mailslot.InvalidHeader, "invalid header name"),
        ({"headers": {5: "c"}}, mailslot.InvalidHeader, "invalid header name"),
        ({"correlation_id": "two\nlines"}, mailslot.InvalidInput, "correlation_id must be a single line"),
        ({"thread_id": 7}, mailslot.InvalidInput, "thread_id must be a str"),
        ({"sender": "\ud800"}, mailslot.InvalidInput, "sender is not encodable"),
        ({"idempotency_key": 42}, mailslot.InvalidInput, "idempotency_key must be a non-empty str"),
        ({"priority": 1.0}, mailslot.UnknownPriorityError, "unknown priority"),
        ({"priority": True}, mailslot.UnknownPriorityError, "unknown priority"),
    ],
)
async def test_send_refuses_bad_metadata(ms, kwargs, error, message):
    with pytest.raises(error, match=message):
        await ms.send("meta", "x", **kwargs)
    assert (await ms.inspect("meta").stats()).total == 0


@pytest.mark.parametrize("payload", [{"x": math.nan}, [math.inf], "\ud800 lone surrogate", {1, object()}])
async def test_send_refuses_payloads_that_are_not_json_or_text(ms, payload):
    with pytest.raises(mailslot.InvalidPayload):
        await ms.send("payloads", payload)
    assert (await ms.inspect("payloads").stats()).total == 0
    # The words themselves are fine inside a string.
    assert (await ms.send("payloads", {"text": "NaN and Infinity"})).seq


@pytest.mark.parametrize(
    ("items", "window", "message"),
    [
        ("to", 512, "iterable of mappings"),
        ([("to", "a")], 512, "item 0 must be a mapping"),
        ([{"to": "a", "payload": 1, "tll": 5}], 512, r"unknown keys \['tll'\]"),
        ([{"to": "a"}], 512, "needs 'to' and 'payload'"),
        ([{"to": "a", "payload": 1}], 0, "window must be between 1 and 65536"),
        ([{"to": "a", "payload": 1}], True, "window must be an int"),
    ],
)
async def test_send_many_refuses_malformed_batches(ms, items, window, message):
    with pytest.raises(mailslot.InvalidInput, match=message):
        await ms.send_many(items, window=window)
    assert (await ms.inspect("a").stats()).total == 0


@pytest.mark.parametrize("value", [math.inf, math.nan, -1, 1e30, True, "1", p.MAX_SECONDS + 1])
async def test_waits_and_nak_delays_are_checked(ms, value):
    mb = await ms.open("waits")
    await ms.send("waits", "x")
    with pytest.raises(mailslot.InvalidTTLError, match=r"timeout must be .*between 0 s and 31536000 s"):
        await mb.receive(timeout=value)
    with pytest.raises(mailslot.InvalidTTLError, match="timeout"):
        await mb.ask("waits", "q", timeout=value)
    with pytest.raises(mailslot.InvalidTTLError, match="ttl"):
        await mb.request("waits", "q", ttl=value)
    m = await mb.receive(timeout=5)
    with pytest.raises(mailslot.InvalidTTLError, match=r"delay must be .*between 0 s and 31536000 s"):
        await m.nak(delay=value)
    await m.ack()  # a refused nak settled nothing
    await mb.destroy()


# -- an open that fails half-way undoes what it wrote -------------------------------------------


async def _squat(ms, address):
    """Another consumer on the address's low level: the server refuses open's fourth consumer
    after the record, the lease and three consumers were written."""
    await ms.js.add_consumer(
        p.MAIL_STREAM,
        ConsumerConfig(
            name=f"squat-{address}",
            durable_name=f"squat-{address}",
            filter_subject=p.mail_subject(p.Priority.LOW, address),
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )


async def test_open_refused_by_the_server_leaves_nothing(ms):
    await _squat(ms, "half")
    with pytest.raises(mailslot.BrokerFailure, match="filtered consumer not unique"):
        await ms.open("half", ttl=3600)
    assert await _nothing_at(ms, "half")
    assert not any(a.address == "half" for a in await ms.agents())
    await ms.js.consumer_info(p.MAIL_STREAM, "squat-half")  # what was there before stays
    await ms.js.delete_consumer(p.MAIL_STREAM, "squat-half")
    mb = await ms.open("half")  # and the address is as good as new
    await mb.destroy()


async def _offline_mailbox(ms, address):
    record = p.MailboxRecord(
        opened_at=time.time() - 100, keep=3600.0, offline_since=time.time() - 50, card={"name": "away"}
    )
    kv = await ms.js.key_value(p.MAILBOXES_BUCKET)
    await kv.put(address, record.encode())
    await ms.send(address, "while you were away")
    return record.encode()


async def test_failed_open_of_an_offline_mailbox_keeps_its_record_and_mail(ms):
    original = await _offline_mailbox(ms, "away")
    await _squat(ms, "away")
    with pytest.raises(mailslot.BrokerFailure):
        await ms.open("away", keep=60, card={"name": "back"})
    kv = await ms.js.key_value(p.MAILBOXES_BUCKET)
    assert (await kv.get("away")).value == original  # retention clock and card as they were
    assert (await ms.inspect("away").stats()).total == 1
    assert not any(a.address == "away" for a in await ms.agents())
    await ms.js.delete_consumer(p.MAIL_STREAM, "squat-away")
    mb = await ms.open("away")
    assert (await mb.receive(timeout=5)).text == "while you were away"


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.004, 0.006, 0.01])
async def test_cancelled_open_leaves_nothing(ms, delay):
    task = asyncio.ensure_future(ms.open("cancelled", ttl=3600))
    await asyncio.sleep(delay)
    task.cancel()
    try:
        mb = await task
    except asyncio.CancelledError:
        assert await _nothing_at(ms, "cancelled")
    else:  # it was done before the cancel arrived
        await mb.destroy()


@pytest.mark.parametrize("delay", [0.0, 0.004, 0.008])
async def test_cancelled_open_of_an_offline_mailbox_keeps_it(ms, delay):
    original = await _offline_mailbox(ms, "away2")
    task = asyncio.ensure_future(ms.open("away2", keep=60))
    await asyncio.sleep(delay)
    task.cancel()
    try:
        mb = await task
    except asyncio.CancelledError:
        kv = await ms.js.key_value(p.MAILBOXES_BUCKET)
        assert (await kv.get("away2")).value == original
        assert (await ms.inspect("away2").stats()).total == 1
    else:
        await mb.close()


async def test_cancelled_open_leaves_a_live_replica_alone(ms):
    replica = await ms.open("pair", ttl=60)
    for delay in (0.0, 0.003, 0.006):
        task = asyncio.ensure_future(ms.open("pair", ttl=60))
        await asyncio.sleep(delay)
        task.cancel()
        try:
            other = await task
        except asyncio.CancelledError:
            pass
        else:
            await other.close()
    assert any(a.address == "pair" for a in await ms.agents())
    for prio in p.PRIORITIES:
        await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name("pair", prio))
    await ms.send("pair", "still served")
    assert (await replica.receive(timeout=5)).text == "still served"
    await replica.destroy()
