"""The gateway's mail subjects spoken as the mq9 SDK speaks them (raw nats-py), every
decision of docs/mq9.md checked against a real server."""

from __future__ import annotations

import asyncio
import time

import mailslot
from mailslot_mq9 import Gateway
from mq9_support import texts
from testsupport import unique


def _addr(name: str) -> str:
    return unique(name).replace("-", "").replace("_", "").lower()


async def test_create_send_fetch_with_priorities_in_order(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("prio"))
    await c.send(box, "n1")
    await c.send(box, "u1", priority="urgent")
    await c.send(box, "c1", priority="critical")
    await c.send(box, "n2")
    msgs = await c.fetch(box)
    assert texts(msgs) == ["c1", "u1", "n1", "n2"]
    assert [m["priority"] for m in msgs] == ["critical", "urgent", "normal", "normal"]
    assert all(isinstance(m["msg_id"], int) and m["msg_id"] > 0 for m in msgs)
    assert all(abs(m["create_time"] - time.time()) < 60 for m in msgs)


async def test_create_without_name_and_twice(mq9) -> None:
    c, _, _ = mq9
    generated = await c.create()
    assert generated and generated.isalnum() and generated.islower()
    name = _addr("twice")
    assert await c.create(name) == name
    again = await c.call("MAILBOX.CREATE", {"name": name, "ttl": 0})
    assert (
        again == {"error": f"mailbox {name} already exists", "mail_address": ""}
        or again["error"] == f"mailbox {name} already exists"
    )


async def test_send_query_delete_to_unknown_mailbox(mq9) -> None:
    c, _, _ = mq9
    ghost = _addr("ghost")
    for subject, body in [
        (f"MSG.SEND.{ghost}", b"x"),
        (f"MSG.QUERY.{ghost}", b"{}"),
        (f"MSG.DELETE.{ghost}.5", b'""'),
        (
            f"MSG.FETCH.{ghost}",
            b'{"deliver":"earliest","force_deliver":false,"config":{"num_msgs":1,"max_wait_ms":0}}',
        ),
    ]:
        out = await c.call(subject, body)
        assert out["error"] == f"mailbox {ghost} does not exist", (subject, out)


async def test_stateless_fetch_consumes_nothing(mq9) -> None:
    c, ms, _ = mq9
    box = await c.create(_addr("stateless"))
    await c.send(box, "a")
    await c.send(box, "b")
    assert texts(await c.fetch(box)) == ["a", "b"]
    assert texts(await c.fetch(box)) == ["a", "b"]
    assert texts(await c.fetch(box, num=1)) == ["a"]
    assert (await ms.inspect(box).stats()).total == 2


async def test_group_ack_is_cumulative_in_hand_out_order_and_groups_are_independent(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("groups"))
    n1 = await c.send(box, "n1")
    await c.send(box, "n2")
    await c.send(box, "u1", priority="urgent")
    first = await c.fetch(box, group="g1", num=2)
    assert texts(first) == ["u1", "n1"]
    # Not acked yet: the group's offset has not moved, so the same come again.
    assert texts(await c.fetch(box, group="g1", num=2)) == ["u1", "n1"]
    # ACK of n1 (the second handed out) also covers u1, handed out before it (u1's id is higher).
    await c.ack(box, "g1", n1)
    assert texts(await c.fetch(box, group="g1")) == ["n2"]
    # A second group has its own offset over the same stored mail.
    assert texts(await c.fetch(box, group="g2")) == ["u1", "n1", "n2"]
    # Acks do not delete: stateless fetch still sees everything.
    assert texts(await c.fetch(box)) == ["u1", "n1", "n2"]
    # An unknown group cannot ack.
    out = await c.call(f"MSG.ACK.{box}", {"group_name": "nobody", "mail_address": box, "msg_id": n1})
    assert "not found" in out["error"]


async def test_latest_skips_waiting_mail_and_force_deliver_resets(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("latest"))
    await c.send(box, "old")
    assert await c.fetch(box, group="w", deliver="latest") == []
    await c.send(box, "new")
    assert texts(await c.fetch(box, group="w", deliver="latest")) == ["new"]
    # deliver applies only the first time, unless force_deliver
    assert texts(await c.fetch(box, group="w", deliver="earliest")) == ["new"]
    assert texts(await c.fetch(box, group="w", deliver="earliest", force=True)) == ["old", "new"]


async def test_from_id_and_from_time_are_inclusive(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("from"))
    await c.send(box, "a")
    b = await c.send(box, "b")
    await c.send(box, "c")
    assert texts(await c.fetch(box, deliver="from_id", from_id=b)) == ["b", "c"]
    assert texts(await c.fetch(box, deliver="from_time", from_time=int(time.time()) - 60)) == ["a", "b", "c"]
    assert await c.fetch(box, deliver="from_time", from_time=int(time.time()) + 60) == []


async def test_long_poll_fetch_is_woken_by_new_mail(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("poll"))
    t0 = time.monotonic()
    waiting = asyncio.ensure_future(c.fetch(box, group="p", deliver="latest", wait_ms=10_000))
    await asyncio.sleep(0.5)
    await c.send(box, "wake")
    msgs = await waiting
    assert texts(msgs) == ["wake"]
    assert time.monotonic() - t0 < 5  # woken, not the 10 s max_wait_ms
    # An empty stateless long-poll returns after about max_wait_ms.
    t0 = time.monotonic()
    assert await c.fetch(box, deliver="latest", wait_ms=300) == []
    assert 0.25 < time.monotonic() - t0 < 3


async def test_delayed_send_returns_minus_one_and_appears_later(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("delay"))
    assert await c.send(box, "later", delay=1) == -1
    assert await c.fetch(box) == []
    msgs = await c.fetch(box, group="d", deliver="earliest", wait_ms=8000)
    assert texts(msgs) == ["later"]


async def test_message_ttl_and_mailbox_ttl(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("ttl"))
    await c.send(box, "short", ttl=1)
    await c.send(box, "stays")
    assert texts(await c.fetch(box)) == ["short", "stays"]
    await asyncio.sleep(2.5)
    assert texts(await c.fetch(box)) == ["stays"]
    brief = await c.create(_addr("brief"), ttl=1)
    await c.send(brief, "goes with the mailbox")
    await asyncio.sleep(2.5)
    out = await c.call(f"MSG.SEND.{brief}", b"x")
    assert out["error"] == f"mailbox {brief} does not exist"
    # Its name is free again, and the old mail is gone with it.
    assert await c.create(brief) == brief
    assert await c.fetch(brief) == []


async def test_keyed_send_keeps_the_latest_and_query_by_key_limit_since(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("keyed"))
    await c.send(box, "v1", key="status")
    await c.send(box, "other")
    await c.send(box, "v2", key="status")
    assert texts(await c.fetch(box)) == ["other", "v2"]
    q = await c.ok(f"MSG.QUERY.{box}", {"key": "status"})
    assert texts(q["messages"]) == ["v2"]
    assert texts((await c.ok(f"MSG.QUERY.{box}", {"limit": 1}))["messages"]) == ["other"]
    assert texts((await c.ok(f"MSG.QUERY.{box}", {"since": int(time.time()) + 60}))["messages"]) == []
    assert texts((await c.ok(f"MSG.QUERY.{box}", {"since": int(time.time()) - 60}))["messages"]) == [
        "other",
        "v2",
    ]
    await c.send(box, "t", tags="a,b")
    assert texts((await c.ok(f"MSG.QUERY.{box}", {"tags": ["b"]}))["messages"]) == ["t"]


async def test_delete_then_delete_again(mq9) -> None:
    c, _, _ = mq9
    box = await c.create(_addr("del"))
    other = await c.create(_addr("del-other"))
    mid = await c.send(box, "x")
    foreign = await c.send(other, "y")
    assert await c.call(f"MSG.DELETE.{box}.{foreign}", b'""') == {"error": "message not found"}
    assert await c.call(f"MSG.DELETE.{box}.{mid}", b'""') == {"error": "", "deleted": True}
    assert await c.call(f"MSG.DELETE.{box}.{mid}", b"") == {"error": "message not found"}
    assert texts(await c.fetch(other)) == ["y"]


async def test_mail_crosses_between_mq9_and_mailslot_clients(mq9) -> None:
    c, ms, _ = mq9
    box = await c.create(_addr("cross"))
    await c.send(box, {"from": "mq9"}, priority="urgent", tags="x,y", key="k")
    inbox = await ms.open(box)
    got = await inbox.receive(timeout=5)
    assert got.json() == {"from": "mq9"}
    assert (got.priority, got.tags, got.replace_key) == (mailslot.Priority.URGENT, ("x", "y"), "k")
    await got.ack()
    # An A2A-style reply-to: a Mailslot agent's msg.reply() reaches the mq9 mailbox.
    back = await c.create(_addr("back"))
    await c.send(box, "question", **{"reply-to": back})
    q = await inbox.receive(timeout=5)
    assert q.reply_to == back and q.user_headers.get("mq9-reply-to") == back
    await q.reply("answer")
    await q.ack()
    assert texts(await c.fetch(back)) == ["answer"]
    await inbox.close()
    # The other way: a Mailslot agent's mailbox (never created through mq9) is known to mq9.
    agent = _addr("native")
    native = await ms.open(agent)
    await ms.send(agent, "hello mq9", priority="low")
    msgs = await c.fetch(agent)
    assert texts(msgs) == ["hello mq9"] and msgs[0]["priority"] == "normal"  # low reads as normal
    await c.send(agent, "hello mailslot")
    texts_got = set()
    for _ in range(2):
        m = await native.receive(timeout=5)
        texts_got.add(m.data.decode())
        await m.ack()
    assert texts_got == {"hello mq9", "hello mailslot"}
    await native.close()


async def test_two_replicas_answer_each_request_once(mq9, shared_server) -> None:
    c, _, gw1 = mq9
    cr = shared_server.credentials
    ms2 = await mailslot.connect(shared_server.url, user=cr.user, password=cr.password)
    try:
        async with Gateway(ms2) as gw2:
            box = await c.create(_addr("replicas"))
            one, two = gw1.served, gw2.served
            ids = [await c.send(box, f"m{i}") for i in range(30)]
            assert len(set(ids)) == 30
            assert (gw1.served - one) + (gw2.served - two) == 30  # each answered once
            assert gw1.served > one and gw2.served > two  # both share the work
            # Replies: only one per request reaches the requester.
            inbox = c.nc.new_inbox()
            sub = await c.nc.subscribe(inbox)
            await c.nc.publish(f"$mq9.AI.MSG.QUERY.{box}", b"{}", reply=inbox)
            first = await sub.next_msg(timeout=5)
            assert first.data
            await asyncio.sleep(0.3)
            assert sub.pending_msgs == 0
            await sub.unsubscribe()
    finally:
        await ms2.close()
    assert texts(await c.fetch(box, num=30)) == [f"m{i}" for i in range(30)]


async def test_concurrent_acks_through_two_replicas_lose_nothing(mq9, shared_server) -> None:
    c, _, _ = mq9
    cr = shared_server.credentials
    ms2 = await mailslot.connect(shared_server.url, user=cr.user, password=cr.password)
    try:
        async with Gateway(ms2):
            box = await c.create(_addr("cas"))
            for i in range(20):
                await c.send(box, f"m{i}", priority="urgent" if i % 3 == 0 else "normal")
            handed = await c.fetch(box, group="g", num=20)
            assert len(handed) == 20
            ids = [m["msg_id"] for m in handed]
            await asyncio.gather(*(c.ack(box, "g", i) for i in reversed(ids)))
            assert await c.fetch(box, group="g") == []  # every ack landed, none lost to a race
            await c.send(box, "after")
            assert texts(await c.fetch(box, group="g")) == ["after"]
    finally:
        await ms2.close()
