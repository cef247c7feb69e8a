"""``mailslot send`` (every option of ``Mailslot.send``), ``publish`` and ``ask`` against a
real server: what arrives carries what the command line said; exit codes and JSON fields."""

from __future__ import annotations

import asyncio
import json

import mailslot
from testsupport import unique

from .conftest import Cli


async def test_send_takes_every_send_option(ms: mailslot.Mailslot, cli: Cli) -> None:
    box = unique("box")
    args = ["send", box, '{"n": 1}', "--content-type", "json", "--priority", "urgent", "--ttl", "600"]
    args += ["--from", "boss", "--reply-to", "boss-replies", "--correlation-id", "c-1", "--thread", "t-9"]
    args += ["-H", "x-team=blue", "--header", "x-run=7", "--idempotency-key", "once", "--json"]
    first, again, later, raw = await asyncio.gather(
        cli(*args),
        cli(*args),
        cli("send", box, "later", "--delay", "30", "--priority", "low", "--json"),
        cli(
            "send",
            box,
            "-",
            "--content-type",
            "bytes",
            "--notify-undelivered",
            "--from",
            "me",
            "--json",
            stdin="\x00\x01",
        ),
    )
    r1, r2 = json.loads(first.stdout), json.loads(again.stdout)
    assert {r1["duplicate"], r2["duplicate"]} == {False, True}  # one stored, one deduplicated
    assert r1["id"] == r2["id"] and r1["priority"] == "urgent"
    assert set(r1) == {"id", "to", "priority", "seq", "duplicate", "scheduled"}
    assert json.loads(later.stdout)["scheduled"] is True
    assert json.loads(raw.stdout)["scheduled"] is False

    waiting = await ms.inspect(box).peek(10)
    assert len(waiting) == 2  # the delayed one is not in the mailbox yet
    m = next(w for w in waiting if w.priority == mailslot.Priority.URGENT)
    assert m.json() == {"n": 1} and m.content_type.startswith("application/json")
    assert (m.sender, m.reply_to, m.correlation_id, m.thread_id) == ("boss", "boss-replies", "c-1", "t-9")
    assert m.user_headers == {"x-team": "blue", "x-run": "7"}
    assert m.ttl == 600
    b = next(w for w in waiting if w is not m)
    assert b.data == b"\x00\x01" and b.content_type == "application/octet-stream"


async def test_send_usage_errors_exit_2(cli: Cli) -> None:
    bad_json, bad_header, bad_type, missing = await asyncio.gather(
        cli("send", "box", "{nope", "--content-type", "json", code=2),
        cli("send", "box", "x", "-H", "novalue", code=2),
        cli("send", "box", "x", "--content-type", "xml", code=2),
        cli("send", "box", code=2),
    )
    assert "payload is not JSON" in bad_json.stderr
    assert "NAME=VALUE" in bad_header.stderr
    assert "--content-type" in bad_type.stderr
    assert "Missing argument" in missing.stderr


async def test_publish_reaches_subscribers_and_durable_history(ms: mailslot.Mailslot, cli: Cli) -> None:
    topic = unique("builds") + ".done"
    async with ms.subscribe(topic) as sub:
        live = await cli("publish", topic, "green", "-H", "x-k=v", "--json")
        ev = await sub.next(timeout=10)
    out = json.loads(live.stdout)
    assert out["topic"] == topic and out["durable"] is False and out["seq"] is None
    assert ev.text() == "green" and ev.user_headers == {"x-k": "v"}

    stored = json.loads(
        (await cli("publish", topic, '{"ok": true}', "-t", "json", "--durable", "--json")).stdout
    )
    assert stored["durable"] is True and stored["seq"] > 0
    async with ms.subscribe(topic, replay="all") as sub:
        replayed = await sub.next(timeout=10)
    assert replayed.replayed and replayed.json() == {"ok": True}
    human = await cli("publish", topic, "x")
    assert "published" in human.stdout and "ephemeral" in human.stdout


async def test_ask_waits_for_the_reply(ms: mailslot.Mailslot, cli: Cli) -> None:
    oracle = unique("oracle")
    mb = await ms.open(oracle, ttl=30)

    async def answer() -> None:
        m = await mb.receive(timeout=30)
        await m.reply({"answer": m.text().upper()})
        await m.ack()

    try:
        task = asyncio.create_task(answer())
        res = await cli("ask", oracle, "why", "--timeout", "30", "--thread", "t-1", "--json")
        await task
        row = json.loads(res.stdout)
        assert row["payload"] == {"answer": "WHY"} and row["thread_id"] == "t-1"
        assert row["from"] == oracle and row["correlation_id"]

        task = asyncio.create_task(answer())
        human = await cli("ask", oracle, "plain", "--timeout", "30")
        await task
        assert human.stdout.strip() == '{"answer": "PLAIN"}'
    finally:
        await mb.close()
    # The fresh mailboxes the asks used are gone: no record, no lease, no reply waiting.
    cards = await ms.agents(include_offline=True)
    assert [c.address for c in cards if c.address != oracle] == []


async def test_ask_without_reply_times_out_with_exit_4(ms: mailslot.Mailslot, cli: Cli) -> None:
    silent = unique("silent")
    res = await cli("ask", silent, "hello?", "--timeout", "1", code=4)
    assert res.stderr.startswith("error: Timeout:")
    assert len(await ms.inspect(silent).peek()) == 1  # the request itself was delivered
