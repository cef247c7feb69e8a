"""Bad input gets a clear, typed error before anything reaches the server, and loses nothing."""

import mailslot
import pytest
from mailslot_broker import protocol as p


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
