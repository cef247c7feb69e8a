"""Bad input gets a clear, typed error before anything reaches the server, and loses nothing."""

import asyncio
import math
import time
from datetime import timedelta

import mailslot
import pytest
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from testsupport import squat, unique


@pytest.mark.parametrize("to", ["a.*", "a.>", "a b", "", "a..b", "x" * 200, " coder"])
async def test_invalid_addresses(shared_ms, to):
    with pytest.raises(mailslot.InvalidAddress):
        await shared_ms.send(to, "hi")
    with pytest.raises(mailslot.InvalidAddress):
        await shared_ms.open(to)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("InvalidAddressError", mailslot.InvalidAddress),
        ("InvalidTopicError", mailslot.InvalidTopic),
        ("UnknownPriorityError", mailslot.UnknownPriority),
        ("InvalidTTLError", mailslot.InvalidTTL),
    ],
)
def test_the_old_error_names_are_the_same_classes(old, new):
    from mailslot import errors

    assert getattr(mailslot, old) is new and getattr(errors, old) is new
    assert old in mailslot.__all__ and old in errors.__all__
    assert new.__name__ == old.removesuffix("Error")  # what the CLI and MCP tools print


async def test_errors_are_value_errors_and_mailslot_errors(shared_ms):
    with pytest.raises(ValueError):
        await shared_ms.send("a b", "x")
    with pytest.raises(mailslot.MailslotError):
        await shared_ms.send("a", "x", priority="asap")


@pytest.mark.parametrize("priority", ["asap", 9, -1, "", None])
async def test_unknown_priority(shared_ms, priority):
    with pytest.raises(mailslot.UnknownPriority):
        await shared_ms.send("a", "x", priority=priority)


@pytest.mark.parametrize("ttl", [0, 0.5, -3, "10"])
async def test_bad_ttl(shared_ms, ttl):
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.send("a", "x", ttl=ttl)
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.send("a", "x", delay=ttl)


async def test_payload_too_large(shared_ms):
    with pytest.raises(mailslot.PayloadTooLarge):
        await shared_ms.send("a", b"x" * (shared_ms.max_payload + 1))


async def test_unencodable_payload(shared_ms):
    with pytest.raises(mailslot.InvalidPayload):
        await shared_ms.send("a", object())


@pytest.mark.parametrize(
    "headers", [{"Nats-Msg-Id": "x"}, {"Mailslot-From": "evil"}, {"a b": "c"}, {"X": "line\nbreak"}]
)
async def test_reserved_or_bad_headers(shared_ms, headers):
    with pytest.raises(mailslot.InvalidHeader):
        await shared_ms.send("a", "x", headers=headers)


async def test_send_many_validates_everything_first(shared_ms):
    ok_addr = unique("ok")
    items = [{"to": ok_addr, "payload": 1}, {"to": "bad address", "payload": 2}]
    with pytest.raises(mailslot.InvalidAddress):
        await shared_ms.send_many(items)
    assert (await shared_ms.inspect(ok_addr).stats()).total == 0  # nothing was sent


async def test_nothing_was_lost_by_a_rejected_send(shared_ms):
    keep_addr = unique("keep")
    await shared_ms.send(keep_addr, "first")
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.send(keep_addr, "second", ttl=0.1)
    mb = await shared_ms.open(keep_addr)
    m = await mb.receive(timeout=5)
    assert m.text() == "first"
    await m.ack()


async def test_bad_mailbox_options(shared_ms):
    with pytest.raises(mailslot.InvalidInput):
        await shared_ms.open("x", max_deliver=2, backoff=[1, 2, 3])
    with pytest.raises(mailslot.InvalidInput):
        await shared_ms.open("x", prefetch=0)
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.open("x", ttl=0.2)


async def test_malformed_foreign_message(shared_ms):
    """A plain NATS client writes garbage without Mailslot headers: it is still delivered,
    metadata degrades to None and payload accessors raise DecodeError."""
    foreign_addr = unique("foreign")
    await shared_ms.js.publish(p.mail_subject(p.Priority.URGENT, foreign_addr), b"\xff\xfe not json")
    mb = await shared_ms.open(foreign_addr)
    m = await mb.receive(timeout=5)
    assert m.priority is mailslot.Priority.URGENT
    assert m.sender is None and m.reply_to is None and m.correlation_id is None
    assert m.data == b"\xff\xfe not json"
    with pytest.raises(mailslot.DecodeError):
        m.json()
    with pytest.raises(mailslot.DecodeError):
        _ = m.text()
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
async def test_open_refuses_bad_durations(shared_ms, arg, value, range_text):
    durations_addr = unique("durations")
    with pytest.raises(mailslot.InvalidTTL, match=range_text):
        await shared_ms.open(durations_addr, **{arg: value})
    assert await _nothing_at(shared_ms, durations_addr)


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
async def test_open_refuses_bad_options(shared_ms, kwargs, message):
    options_addr = unique("options")
    with pytest.raises(mailslot.InvalidInput, match=message):
        await shared_ms.open(options_addr, **kwargs)
    assert await _nothing_at(shared_ms, options_addr)


async def test_open_accepts_every_limit_and_the_server_does_too(shared_ms):
    """The largest values Mailslot accepts are within what nats-server 2.15 accepts (int64
    nanoseconds): consumers with the longest ack wait and backoff, a lease of a day, mail with
    a TTL and a delay of a year."""
    limits_addr = unique("limits")
    limits_low_addr = unique("limits-low")
    await shared_ms.send(limits_addr, "binds normal at open")
    await shared_ms.send(limits_low_addr, "binds normal at open")
    mb = await shared_ms.open(
        limits_addr,
        ttl=p.MAX_LEASE_TTL,
        keep=p.MAX_KEEP,
        ack_wait=p.MAX_ACK_WAIT,
        max_deliver=p.MAX_DELIVER_LIMIT,
        backoff=[p.MAX_ACK_WAIT] * p.MAX_BACKOFF_STEPS,
        prefetch=p.MAX_PREFETCH,
        heartbeat=timedelta(seconds=p.MAX_HEARTBEAT),
    )
    info = await shared_ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(limits_addr, p.Priority.NORMAL))
    assert info.config.max_deliver == p.MAX_DELIVER_LIMIT
    assert len(info.config.backoff or []) == p.MAX_BACKOFF_STEPS
    await mb.destroy()
    small = await shared_ms.open(
        limits_low_addr, ttl=1, keep=0, ack_wait=1, backoff=[0.1], max_deliver=-1, heartbeat=1
    )
    await small.destroy()
    assert (await shared_ms.send(limits_addr, "y", ttl=p.MAX_SECONDS)).seq
    assert (await shared_ms.send(limits_addr, "y", ttl=p.MAX_SECONDS, delay=p.MAX_SECONDS)).scheduled
    # ... and the server's own limit is where we measured it: just past int64 nanoseconds.
    whole = int(p.SERVER_MAX_SECONDS)
    await shared_ms.js.publish(
        p.mail_subject(p.Priority.LOW, limits_addr), b"x", headers={"Nats-TTL": f"{whole}s"}
    )
    with pytest.raises(jserr.BadRequestError):
        await shared_ms.js.publish(
            p.mail_subject(p.Priority.LOW, limits_addr), b"x", headers={"Nats-TTL": f"{whole + 1}s"}
        )


# -- send and the other calls that take numbers -------------------------------------------------


@pytest.mark.parametrize("value", [*NOT_NUMBERS, p.MAX_SECONDS + 1, 1e10, timedelta(days=400)])
async def test_send_refuses_bad_ttl_and_delay(shared_ms, value):
    numbers_addr = unique("numbers")
    with pytest.raises(mailslot.InvalidTTL, match=r"ttl must be .*between 1 s and 31536000 s"):
        await shared_ms.send(numbers_addr, "x", ttl=value)
    with pytest.raises(mailslot.InvalidTTL, match=r"delay must be .*between 1 s and 31536000 s"):
        await shared_ms.send(numbers_addr, "x", delay=value)
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.send_many(
            [{"to": numbers_addr, "payload": "ok"}, {"to": numbers_addr, "payload": "x", "ttl": value}]
        )
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.publish(f"{numbers_addr}.topic", "x", durable=True, ttl=value)
    assert (await shared_ms.inspect(numbers_addr).stats()).total == 0


async def test_send_takes_timedeltas(shared_ms):
    td_addr = unique("td")
    r = await shared_ms.send(td_addr, "x", ttl=timedelta(minutes=5), delay=timedelta(seconds=30))
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
        ({"priority": 1.0}, mailslot.UnknownPriority, "unknown priority"),
        ({"priority": True}, mailslot.UnknownPriority, "unknown priority"),
    ],
)
async def test_send_refuses_bad_metadata(shared_ms, kwargs, error, message):
    meta_addr = unique("meta")
    with pytest.raises(error, match=message):
        await shared_ms.send(meta_addr, "x", **kwargs)
    assert (await shared_ms.inspect(meta_addr).stats()).total == 0


@pytest.mark.parametrize("payload", [{"x": math.nan}, [math.inf], "\ud800 lone surrogate", {1, object()}])
async def test_send_refuses_payloads_that_are_not_json_or_text(shared_ms, payload):
    payloads_addr = unique("payloads")
    with pytest.raises(mailslot.InvalidPayload):
        await shared_ms.send(payloads_addr, payload)
    assert (await shared_ms.inspect(payloads_addr).stats()).total == 0
    # The words themselves are fine inside a string.
    assert (await shared_ms.send(payloads_addr, {"text": "NaN and Infinity"})).seq


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
async def test_send_many_refuses_malformed_batches(shared_ms, items, window, message):
    to = unique("a")
    if isinstance(items, list):  # this test's own address in place of "a"
        items = [dict(item, to=to) if isinstance(item, dict) else item for item in items]
    with pytest.raises(mailslot.InvalidInput, match=message):
        await shared_ms.send_many(items, window=window)
    assert (await shared_ms.inspect(to).stats()).total == 0


@pytest.mark.parametrize("value", [math.inf, math.nan, -1, 1e30, True, "1", p.MAX_SECONDS + 1])
async def test_waits_and_nak_delays_are_checked(shared_ms, value):
    waits_addr = unique("waits")
    mb = await shared_ms.open(waits_addr)
    await shared_ms.send(waits_addr, "x")
    with pytest.raises(mailslot.InvalidTTL, match=r"timeout must be .*between 0 s and 31536000 s"):
        await mb.receive(timeout=value)
    with pytest.raises(mailslot.InvalidTTL, match="timeout"):
        await mb.ask(waits_addr, "q", timeout=value)
    with pytest.raises(mailslot.InvalidTTL, match="ttl"):
        await mb.request(waits_addr, "q", ttl=value)
    m = await mb.receive(timeout=5)
    with pytest.raises(mailslot.InvalidTTL, match=r"delay must be .*between 0 s and 31536000 s"):
        await m.nak(delay=value)
    await m.ack()  # a refused nak settled nothing
    await mb.destroy()


# -- an open that fails half-way undoes what it wrote -------------------------------------------


async def test_open_refused_by_the_server_leaves_nothing(shared_ms):
    half_addr = unique("half")
    await squat(shared_ms, half_addr)
    with pytest.raises(mailslot.BrokerFailure, match="filtered consumer not unique"):
        await shared_ms.open(half_addr, ttl=3600)
    assert await _nothing_at(shared_ms, half_addr)
    assert not any(a.address == half_addr for a in await shared_ms.agents())
    await shared_ms.js.consumer_info(p.MAIL_STREAM, f"squat-{half_addr}")  # what was there before stays
    await shared_ms.js.delete_consumer(p.MAIL_STREAM, f"squat-{half_addr}")
    mb = await shared_ms.open(half_addr)  # and the address is as good as new
    await mb.destroy()


async def _offline_mailbox(ms, address):
    record = p.MailboxRecord(
        opened_at=time.time() - 100, keep=3600.0, offline_since=time.time() - 50, card={"name": "away"}
    )
    kv = await ms.js.key_value(p.MAILBOXES_BUCKET)
    await kv.put(address, record.encode())
    await ms.send(address, "while you were away")
    return record.encode()


async def test_failed_open_of_an_offline_mailbox_keeps_its_record_and_mail(shared_ms):
    away_addr = unique("away")
    original = await _offline_mailbox(shared_ms, away_addr)
    await squat(shared_ms, away_addr)
    with pytest.raises(mailslot.BrokerFailure):
        await shared_ms.open(away_addr, keep=60, card={"name": "back"})
    kv = await shared_ms.js.key_value(p.MAILBOXES_BUCKET)
    assert (await kv.get(away_addr)).value == original  # retention clock and card as they were
    assert (await shared_ms.inspect(away_addr).stats()).total == 3  # with the squat's two
    assert not any(a.address == away_addr for a in await shared_ms.agents())
    await shared_ms.js.delete_consumer(p.MAIL_STREAM, f"squat-{away_addr}")
    mb = await shared_ms.open(away_addr)
    assert (await mb.receive(timeout=5)).text() == "while you were away"


async def _open_cancelled_after(ms, address, delay, **options):
    """``ms.open(address)`` cancelled ``delay`` seconds in: None, or the mailbox when the open
    was done before the cancel arrived."""
    task = asyncio.ensure_future(ms.open(address, **options))
    await asyncio.sleep(delay)
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return None


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.004, 0.006, 0.01])
async def test_cancelled_open_leaves_nothing(shared_ms, delay):
    cancelled_addr = unique("cancelled")
    mb = await _open_cancelled_after(shared_ms, cancelled_addr, delay, ttl=3600)
    if mb is None:
        assert await _nothing_at(shared_ms, cancelled_addr)
    else:  # it was done before the cancel arrived
        await mb.destroy()


@pytest.mark.parametrize("delay", [0.0, 0.004, 0.008])
async def test_cancelled_open_of_an_offline_mailbox_keeps_it(shared_ms, delay):
    away2_addr = unique("away2")
    original = await _offline_mailbox(shared_ms, away2_addr)
    mb = await _open_cancelled_after(shared_ms, away2_addr, delay, keep=60)
    if mb is None:
        kv = await shared_ms.js.key_value(p.MAILBOXES_BUCKET)
        assert (await kv.get(away2_addr)).value == original
        assert (await shared_ms.inspect(away2_addr).stats()).total == 1
    else:
        await mb.close()


async def test_cancelled_open_leaves_a_live_replica_alone(shared_ms):
    pair_addr = unique("pair")
    for prio in p.PRIORITIES:  # mail at every level: the replica holds all four consumers
        await shared_ms.send(pair_addr, "held", priority=prio.label)
    replica = await shared_ms.open(pair_addr, ttl=60)
    for delay in (0.0, 0.003, 0.006):
        other = await _open_cancelled_after(shared_ms, pair_addr, delay, ttl=60)
        if other is not None:
            await other.close()
    assert any(a.address == pair_addr for a in await shared_ms.agents())
    for prio in p.PRIORITIES:
        await shared_ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(pair_addr, prio))
    for _ in p.PRIORITIES:
        await (await replica.receive(timeout=5)).ack()
    await shared_ms.send(pair_addr, "still served")
    assert (await replica.receive(timeout=5)).text() == "still served"
    await replica.destroy()
