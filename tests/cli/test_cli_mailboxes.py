"""``mailslot mailboxes``, ``show ADDRESS ID`` and ``purge ADDRESS`` against a real server."""

from __future__ import annotations

import asyncio
import json
import re
import time

import mailslot
from mailslot_broker.reclaim import lease_alive, mark_offline, read_record
from testsupport import unique, wait_for

from .conftest import Cli


async def test_mailboxes_lists_depth_presence_last_seen_and_retention(
    ms: mailslot.Mailslot, cli: Cli
) -> None:
    here, away, nobody = unique("here"), unique("away"), unique("nobody")
    mb = await ms.open(here, ttl=30)
    gone = await ms.open(away, ttl=1, keep=3600)
    await gone.close()
    await asyncio.gather(
        ms.send(here, "a", priority="critical"),
        ms.send(here, "b", priority="low"),
        ms.send(here, "c", priority="low"),
        ms.send(away, "d"),
        ms.send(nobody, "e", priority="urgent"),
    )
    try:
        # What the sidecar does when a lease lapses: the retention clock starts.
        await wait_for(lambda: _not(lease_alive(ms.js, away)), timeout=15)
        entry = await read_record(ms.js, away)
        assert entry is not None
        await mark_offline(ms.js, entry, time.time() - 600)

        rows = {r["address"]: r for r in json.loads((await cli("mailboxes", "--json")).stdout)}
        assert rows[here]["depth"] == {"critical": 1, "urgent": 0, "normal": 0, "low": 2}
        assert rows[here]["total"] == 3 and rows[here]["presence"] == "online"
        assert rows[here]["last_seen"] is not None and rows[here]["retention_left_s"] is None
        assert rows[away]["presence"] == "offline" and rows[away]["depth"]["normal"] == 1
        assert 2900 < rows[away]["retention_left_s"] <= 3000  # kept 3600 s, offline for 600
        assert rows[nobody]["presence"] == "never opened" and rows[nobody]["depth"]["urgent"] == 1
        assert set(rows[here]) == {
            "address", "depth", "total", "presence", "last_seen", "keep_s", "retention_left_s"
        }  # fmt: skip

        human = (await cli("mailboxes")).stdout
        line = next(x for x in human.splitlines() if away in x)
        left = re.search(r"\b(\d+\.\d)m\b", line)  # minutes; each CLI run takes seconds under load
        assert "offline" in line and left and 48.3 <= float(left.group(1)) <= 50.0, line
    finally:
        await mb.close()


async def _not(coro: object) -> bool:
    return not await coro  # type: ignore[misc]


async def test_show_one_waiting_message(ms: mailslot.Mailslot, cli: Cli) -> None:
    box = unique("box")
    await ms.send(box, "first")
    r = await ms.send(box, {"task": 7}, thread_id="t-3", headers={"x-a": "1"})
    by_id, by_seq, human, missing = await asyncio.gather(
        cli("show", box, r.id, "--json"),
        cli("show", box, str(r.seq), "--json"),
        cli("show", box, r.id),
        cli("show", box, "no-such-id", code=1),
    )
    row = json.loads(by_id.stdout)
    assert row == json.loads(by_seq.stdout)
    assert row["id"] == r.id and row["payload"] == {"task": 7} and row["thread_id"] == "t-3"
    assert row["headers"] == {"x-a": "1"} and row["priority"] == "normal"
    assert f"id: {r.id}" in human.stdout and "{'" not in human.stdout
    assert 'payload: {"task": 7}' in human.stdout and "  x-a: 1" in human.stdout
    assert "no message no-such-id waiting in" in missing.stderr
    assert len(await ms.inspect(box).peek()) == 2  # nothing was taken


async def test_purge_asks_unless_yes(ms: mailslot.Mailslot, cli: Cli) -> None:
    box, other = unique("box"), unique("other")
    for i in range(3):
        await ms.send(box, f"m{i}", priority=("low", "normal", "critical")[i])
    await ms.send(other, "stays")
    await ms.send(box + ".sub", "a longer address stays")

    refused = await cli("purge", box, stdin="n\n", code=1)
    assert "Aborted" in refused.stderr
    assert (await ms.inspect(box).stats()).total == 3

    out = json.loads((await cli("purge", box, "--yes", "--json")).stdout)
    assert out == {"address": box, "purged": 3}
    assert (await ms.inspect(box).stats()).total == 0
    assert (await ms.inspect(other).stats()).total == 1
    assert (await ms.inspect(box + ".sub").stats()).total == 1

    await ms.send(box, "again")
    asked = await cli("purge", box, stdin="y\n")
    assert "purged 1 message(s)" in asked.stdout


async def test_looking_at_a_server_nobody_used_yet(cli: Cli) -> None:
    # No client connected before: the commands that look find nothing rather than failing
    # (stats, which provisions nothing, says in one line what is missing).
    boxes, inbox, dlq, stats = await asyncio.gather(
        cli("mailboxes", "--json"),
        cli("inbox", "nobody", "--json"),
        cli("dlq", "list", "--json"),
        cli("stats", code=None),
    )
    assert json.loads(boxes.stdout) == [] and json.loads(inbox.stdout) == [] and json.loads(dlq.stdout) == []
    assert stats.returncode in (0, 1) and "Traceback" not in stats.stderr
