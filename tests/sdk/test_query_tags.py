"""Tags, filtered queries, deleting one waiting message and keep-latest keys (real server)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import mailslot
import pytest
from mailslot import sync
from testsupport import unique


async def test_tags_ride_with_the_message_and_a_query_filters_by_them(shared_ms: mailslot.Mailslot) -> None:
    box = unique("tagged")
    await shared_ms.send(box, "a", tags=["billing", "eu"])
    await shared_ms.send(box, "b", tags=["billing"], priority="urgent")
    await shared_ms.send(box, "c")
    view = shared_ms.inspect(box)
    assert [m.text() for m in await view.query(tags=["billing"])] == ["b", "a"]  # delivery order
    assert [m.text() for m in await view.query(tags=["billing", "eu"])] == ["a"]
    assert [m.text() for m in await view.query(tags=["nope"])] == []
    assert [m.text() for m in await view.query()] == ["b", "a", "c"]
    assert [m.text() for m in await view.query(limit=1)] == ["b"]
    inbox = await shared_ms.open(box)
    got = [await inbox.receive(timeout=5) for _ in range(3)]
    assert {m.text(): m.tags for m in got} == {"a": ("billing", "eu"), "b": ("billing",), "c": ()}
    await inbox.ack_many(got)
    await inbox.close()


async def test_query_since_and_key_take_nothing(shared_ms: mailslot.Mailslot) -> None:
    box = unique("since")
    await shared_ms.send(box, "old", replace_key="k1")
    await asyncio.sleep(0.01)
    cut = datetime.now(timezone.utc)
    await shared_ms.send(box, "new", replace_key="k2")
    view = shared_ms.inspect(box)
    assert [m.text() for m in await view.query(since=cut)] == ["new"]
    assert [m.text() for m in await view.query(since=cut.timestamp())] == ["new"]
    assert [m.text() for m in await view.query(since=cut - timedelta(hours=1))] == ["old", "new"]
    assert [m.text() for m in await view.query(key="k1")] == ["old"]
    assert (await view.stats()).total == 2  # nothing consumed


async def test_replace_key_keeps_the_latest_unlike_the_idempotency_key(shared_ms: mailslot.Mailslot) -> None:
    box = unique("latest")
    await shared_ms.send(box, "v1", replace_key="status")
    await shared_ms.send(box, "other", replace_key="other")
    await shared_ms.send(box, "v2", replace_key="status", priority="urgent")
    r3 = await shared_ms.send(box, "v3", replace_key="status")
    view = shared_ms.inspect(box)
    assert [m.text() for m in await view.query(key="status")] == ["v3"]
    assert sorted(m.text() for m in await view.peek(10)) == ["other", "v3"]
    assert (await view.query(key="status"))[0].seq == r3.seq
    # The idempotency key keeps the first instead.
    await shared_ms.send(box, "first", idempotency_key="once")
    dup = await shared_ms.send(box, "second", idempotency_key="once")
    assert dup.duplicate
    assert "second" not in [m.text() for m in await view.peek(10)]


async def test_delete_one_waiting_message_by_seq_id_or_message(shared_ms: mailslot.Mailslot) -> None:
    box, other = unique("del"), unique("del-other")
    r1 = await shared_ms.send(box, "one")
    r2 = await shared_ms.send(box, "two")
    r3 = await shared_ms.send(box, "three")
    foreign = await shared_ms.send(other, "not yours")
    view = shared_ms.inspect(box)
    await view.delete(r1.seq)
    await view.delete(r2.id)
    (m3,) = await view.peek(10)
    assert m3.seq == r3.seq
    await view.delete(m3)
    assert await view.peek(10) == []
    with pytest.raises(mailslot.MessageNotFound):
        await view.delete(r1.seq)  # deleted already
    with pytest.raises(mailslot.MessageNotFound):
        await view.delete(foreign.seq)  # another mailbox's: refused and kept
    with pytest.raises(mailslot.MessageNotFound):
        await view.delete("0" * 32)
    with pytest.raises(mailslot.MessageNotFound):
        await view.delete(0)
    assert [m.text() for m in await shared_ms.inspect(other).peek(10)] == ["not yours"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tags": "billing"},  # a str is not a list of tags
        {"tags": ["has space"]},
        {"tags": ["a,b"]},
        {"tags": [""]},
        {"tags": [7]},
        {"tags": ["x" * 65]},
        {"tags": [f"t{i}" for i in range(17)]},
        {"replace_key": ""},
        {"replace_key": 5},
        {"replace_key": "two\nlines"},
        {"replace_key": "k" * 257},
    ],
)
async def test_bad_tags_and_keys_are_refused_before_anything_is_written(
    shared_ms: mailslot.Mailslot, kwargs: dict[str, object]
) -> None:
    box = unique("bad")
    with pytest.raises(mailslot.InvalidInput):
        await shared_ms.send(box, "x", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(mailslot.InvalidInput):
        await shared_ms.send_many([{"to": box, "payload": "x", **kwargs}])
    assert await shared_ms.inspect(box).peek(10) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"tags": "a"}, {"key": ""}, {"since": "yesterday"}, {"since": True}, {"limit": 0}, {"limit": "5"}],
)
async def test_bad_query_arguments_are_typed_errors(
    shared_ms: mailslot.Mailslot, kwargs: dict[str, object]
) -> None:
    with pytest.raises(mailslot.InvalidInput):
        await shared_ms.inspect(unique("q")).query(**kwargs)  # type: ignore[arg-type]


async def test_bad_delete_arguments(shared_ms: mailslot.Mailslot) -> None:
    view = shared_ms.inspect(unique("q"))
    for ref in (None, 1.5, True, b"x"):
        with pytest.raises(mailslot.InvalidInput):
            await view.delete(ref)  # type: ignore[arg-type]


def test_sync_twins(shared_server) -> None:
    box = unique("sync-q")
    c = shared_server.credentials
    with sync.connect(shared_server.url, user=c.user, password=c.password, name="script") as ms:
        r = ms.send(box, "x", tags=["t"], replace_key="k")
        ms.send(box, "y", tags=["t"], replace_key="k")
        view = ms.inspect(box)
        (m,) = view.query(tags=["t"])
        assert (m.text(), m.tags, m.replace_key) == ("y", ("t",), "k")
        view.delete(m)
        with pytest.raises(mailslot.MessageNotFound):
            view.delete(r.seq)
        assert view.query() == []


async def test_send_many_keeps_the_latest_too(shared_ms: mailslot.Mailslot) -> None:
    box = unique("many-latest")
    await shared_ms.send_many({"to": box, "payload": f"v{i}", "replace_key": "k"} for i in range(3))
    assert [m.text() for m in await shared_ms.inspect(box).peek(10)] == ["v2"]


async def test_query_by_priority_and_after_and_last_seq(shared_ms: mailslot.Mailslot) -> None:
    box = unique("after")
    view = shared_ms.inspect(box)
    assert await view.last_seq() == 0
    r1 = await shared_ms.send(box, "n1")
    r2 = await shared_ms.send(box, "u1", priority="urgent")
    assert await view.last_seq() == r2.seq
    r3 = await shared_ms.send(box, "n2")
    assert [m.text() for m in await view.query(priority="normal")] == ["n1", "n2"]
    assert [m.text() for m in await view.query(after=r1.seq)] == ["u1", "n2"]
    assert [m.text() for m in await view.query(priority="urgent", after=r2.seq)] == []
    assert await view.last_seq() == r3.seq
    with pytest.raises(mailslot.InvalidInput):
        await view.query(priority="lowest")
    with pytest.raises(mailslot.InvalidInput):
        await view.query(after=-1)


async def test_queries_read_past_one_batch(shared_ms: mailslot.Mailslot) -> None:
    box = unique("deep")
    await shared_ms.send_many(
        [{"to": box, "payload": f"m{i}", "tags": ["odd"] if i % 2 else None} for i in range(600)]
    )
    view = shared_ms.inspect(box)
    assert [m.text() for m in await view.query(limit=1000)] == [f"m{i}" for i in range(600)]
    odd = await view.query(tags=["odd"], limit=1000)
    assert [m.text() for m in odd] == [f"m{i}" for i in range(1, 600, 2)]
    assert [m.text() for m in await view.query(tags=["odd"], limit=3)] == ["m1", "m3", "m5"]
    await view.delete(odd[-1].id)  # found by id past the first batch
    assert len(await view.query(limit=1000)) == 599
    await shared_ms.send(box, "k1", replace_key="deep")
    await shared_ms.send_many([{"to": box, "payload": "filler"} for _ in range(300)])
    await shared_ms.send(box, "k2", replace_key="deep")  # the older one sits past a batch
    assert [m.text() for m in await view.query(key="deep")] == ["k2"]
