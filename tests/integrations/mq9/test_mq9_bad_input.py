"""Bad requests: each gets a JSON object with an ``error`` string, nothing is half-written,
and the gateway keeps serving."""

from __future__ import annotations

import json

import pytest
from mq9_support import texts
from testsupport import unique


def _addr(name: str) -> str:
    return unique(name).replace("-", "").replace("_", "").lower()


@pytest.mark.parametrize(
    ("subject", "data"),
    [
        ("MAILBOX.CREATE", b"not json"),
        ("MAILBOX.CREATE", b"[1, 2]"),
        ("MAILBOX.CREATE", b'"a string"'),
        ("MAILBOX.CREATE", b'{"ttl": "ten"}'),
        ("MAILBOX.CREATE", b'{"ttl": -1}'),
        ("MAILBOX.CREATE", b'{"ttl": 1.5}'),
        ("MAILBOX.CREATE", b'{"ttl": true}'),
        ("MAILBOX.CREATE", b'{"ttl": 0, "name": 7}'),
        ("MAILBOX.CREATE", b'{"ttl": 0, "name": "Upper"}'),
        ("MAILBOX.CREATE", b'{"ttl": 0, "name": "a..b"}'),
        ("MAILBOX.CREATE", b'{"ttl": 0, "name": ".a"}'),
        ("MAILBOX.CREATE", b'{"ttl": 0, "name": "a-b"}'),
        ("MAILBOX.CREATE", b'{"ttl": 0, "name": "a.b.c.d.e.f.g.h.i"}'),  # 9 tokens: mq9 yes, Mailslot no
        ("MAILBOX.CREATE", json.dumps({"ttl": 0, "name": "a" * 129}).encode()),
        ("MAILBOX.CREATE", b"\xff\xfe"),
        ("MSG.FETCH.{box}", b'{"deliver": "sometime"}'),
        ("MSG.FETCH.{box}", b'{"config": {"num_msgs": 0}}'),
        ("MSG.FETCH.{box}", b'{"config": {"num_msgs": "5"}}'),
        ("MSG.FETCH.{box}", b'{"config": []}'),
        ("MSG.FETCH.{box}", b'{"force_deliver": "yes"}'),
        ("MSG.FETCH.{box}", b'{"deliver": "from_id"}'),
        ("MSG.FETCH.{box}", b'{"deliver": "from_time", "from_time": "noon"}'),
        ("MSG.FETCH.{box}", b'{"group_name": 5}'),
        ("MSG.ACK.{box}", b"{}"),
        ("MSG.ACK.{box}", b'{"group_name": "g"}'),
        ("MSG.ACK.{box}", b'{"group_name": "g", "msg_id": "1"}'),
        ("MSG.QUERY.{box}", b'{"limit": 0}'),
        ("MSG.QUERY.{box}", b'{"since": "yesterday"}'),
        ("MSG.QUERY.{box}", b'{"key": 5}'),
        ("MSG.QUERY.{box}", b'{"tags": 5}'),
        ("MSG.QUERY.{box}", b"nope"),
        ("MSG.DELETE.{box}.abc", b'""'),
        ("MSG.DELETE.{box}.-1", b'""'),
        ("MSG.SEND.Upper", b"x"),
        ("MSG.SEND.a.b.c.d.e.f.g.h.i", b"x"),
        ("AGENT.REGISTER", b"{}"),
        ("AGENT.REGISTER", b'{"mailbox": 5}'),
        ("AGENT.REGISTER", b'{"mailbox": "Not Valid"}'),
        ("AGENT.REGISTER", b"[]"),
        ("AGENT.UNREGISTER", b"{}"),
        ("AGENT.REPORT", b"x"),
        ("AGENT.DISCOVER", b'{"limit": "many"}'),
        ("AGENT.DISCOVER", b'{"page": 0}'),
        ("AGENT.DISCOVER", b'{"text": 5}'),
        ("AGENT.DISCOVER", json.dumps({"text": "x" * 5000}).encode()),
        ("NO.SUCH.COMMAND", b"{}"),
    ],
)
async def test_bad_requests_get_an_error_object_and_change_nothing(mq9, subject: str, data: bytes) -> None:
    c, ms, _ = mq9
    box = await c.create(_addr("bad"))
    await c.send(box, "kept")
    out = await c.raw(subject.format(box=box), data)
    assert isinstance(out, dict) and isinstance(out["error"], str) and out["error"], out
    # nothing half-written, and the gateway still serves
    assert texts(await c.fetch(box)) == ["kept"]
    assert (await ms.inspect(box).stats()).total == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"mq9-priority": "low"},
        {"mq9-priority": "URGENT"},
        {"mq9-delay": "soon"},
        {"mq9-delay": "-5"},
        {"mq9-ttl": "1.5"},
        {"mq9-tags": "has space"},
        {"mq9-key": "k" * 300},
        {"mq9-reply-to": "Not.Valid"},
    ],
)
async def test_bad_send_headers_store_nothing(mq9, headers: dict[str, str]) -> None:
    c, ms, _ = mq9
    box = await c.create(_addr("badhdr"))
    out = await c.raw(f"MSG.SEND.{box}", b"x", headers)
    assert isinstance(out, dict) and out["error"], out
    assert await ms.inspect(box).peek(10) == []


async def test_oversize_payload_is_an_error(mq9) -> None:
    c, ms, _ = mq9
    box = await c.create(_addr("big"))
    # Fits in one NATS message, not once the gateway adds Mailslot's headers.
    big = b"x" * (c.nc.max_payload - 200)
    out = await c.raw(f"MSG.SEND.{box}", big)
    assert (
        "PayloadTooLarge" in out["error"] or "too large" in out["error"].lower() or "bytes" in out["error"]
    ), out
    assert await ms.inspect(box).peek(10) == []
    assert texts(await c.fetch(box)) == []


async def test_a_failed_create_leaves_the_name_free(mq9) -> None:
    c, _, _ = mq9
    name = _addr("free")
    out = await c.call("MAILBOX.CREATE", {"ttl": "x", "name": name})
    assert out["error"]
    assert await c.create(name) == name


async def test_no_reply_subject_is_ignored_and_serving_goes_on(mq9) -> None:
    c, _, _ = mq9
    await c.nc.publish("$mq9.AI.MAILBOX.CREATE", b"{}")  # no reply: nobody to answer
    await c.nc.flush()
    assert await c.create(_addr("after"))
