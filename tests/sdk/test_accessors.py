"""Payload accessors are methods (``text()``, ``json()``, ``model()``: they decode and may raise
``DecodeError``); metadata are properties. The old property spelling ``msg.text`` still works
and warns."""

import warnings

import mailslot
import pytest
from mailslot import sync
from testsupport import unique


async def test_text_is_a_method_and_the_old_property_warns(shared_ms):
    box = unique("accessors")
    await shared_ms.send(box, "héllo")
    async with await shared_ms.open(box) as mb:
        m = await mb.receive(timeout=5)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert type(m.text()) is str and m.text() == "héllo"
        with pytest.warns(DeprecationWarning, match=r"call msg\.text\(\)"):
            assert m.text == "héllo"  # the property it used to be
        with pytest.warns(DeprecationWarning):
            assert m.text.upper() == "HÉLLO"
        with pytest.warns(DeprecationWarning):
            assert f"{m.text}!" == "héllo!"
        await m.ack()


async def test_decoders_raise_decode_error_metadata_never_does(shared_ms):
    box = unique("accessors")
    await shared_ms.send(box, b"\xff\xfe")
    async with await shared_ms.open(box) as mb:
        m = await mb.receive(timeout=5)
        for decode in (lambda: m.text(), m.json, lambda: m.model(dict)):
            with pytest.raises(mailslot.DecodeError):
                decode()
        assert (m.data, m.sender, m.content_type) == (b"\xff\xfe", "tester", "application/octet-stream")
        await m.ack()


async def test_broadcast_events_have_the_same_accessors(shared_ms):
    topic = unique("acc") + ".news"
    async with shared_ms.subscribe(topic) as sub:
        await sub.start()
        await shared_ms.publish(topic, {"n": 1})
        ev = await sub.next(timeout=5)
    assert (ev.json(), ev.text()) == ({"n": 1}, '{"n":1}')


def test_sync_twin_messages_too(shared_server):
    box = unique("accessors")
    c = shared_server.credentials
    with sync.connect(shared_server.url, user=c.user, password=c.password, name="twin") as ms:
        ms.send(box, "from the twin")
        with ms.open(box) as mb:
            m = mb.receive(timeout=5)
            assert (m.text(), m.sender) == ("from the twin", "twin")
            m.ack()


async def test_dead_letters_read_alike(shared_ms):
    box = unique("accessors")
    await shared_ms.send(box, "gave up")
    async with await shared_ms.open(box) as mb:
        await (await mb.receive(timeout=5)).term(reason="no")
    [dead] = await shared_ms.dead_letters.list(box)
    assert dead.text() == "gave up"
    with pytest.warns(DeprecationWarning):
        assert dead.text == "gave up"
