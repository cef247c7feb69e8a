"""A durable wait outlives an absence longer than the lease, and says what happens after
retention.

The lease is presence only: when it lapses (``ttl`` seconds after a crash) the planner is
offline and its consumers go, but the reply waiting at its reply sub-address stays for the
mailbox's retention (``keep``). A process killed mid-wait, a reply landing while nothing runs,
a lapsed lease and a fresh process later: the graph completes with the reply, once. When
retention does run out, the reply is a dead letter (reason ``mailbox reclaimed``), never lost
silently, and requeueing it resumes the thread.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import mailslot
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from lg_absence_proc import build
from lg_helpers import HERE, assert_empty, child_env
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from mailslot_langgraph import MailContext, Resumer, is_mail_wait

TTL = 2.0
PROC = str(HERE / "lg_absence_proc.py")


async def test_reply_waits_out_an_absence_longer_than_the_lease(
    server: NatsServer, lifecycle: Any, coder: mailslot.Mailbox, children: Any, tmp_path: Path
) -> None:
    ms = lifecycle.ms
    env = child_env(server)
    db = str(tmp_path / "graph.db")
    replies = p.reply_address("planner")

    # 1. A planner process runs the graph to its wait and sits in its Resumer.
    start = children.spawn([sys.executable, PROC, "start", db, "th-away", str(TTL)], env)
    first = await children.result(start)
    [wait] = first["interrupts"]
    assert is_mail_wait(wait) and wait["thread_id"] == "th-away"
    assert first["waiting"] == [["th-away", wait["correlation_id"]]]
    req = await coder.receive(timeout=30)
    assert (req.id, req.reply_to, req.thread_id) == (wait["correlation_id"], replies, "th-away")
    assert not await lifecycle.lease_gone("planner")

    # 2. It is killed (no close, no cleanup); the reply lands while no planner runs.
    children.kill(start)
    killed = time.monotonic()
    await req.reply({"n": 42, "note": "while you were away"})
    await req.ack()

    # 3. The lease lapses: the sidecar marks the planner offline and releases its consumers;
    #    the reply stays, through more sweeps, for the mailbox's retention (default 7 days).
    record = await lifecycle.wait_offline("planner")
    assert record.keep == p.DEFAULT_KEEP
    await asyncio.sleep(max(2.5, 2 * TTL - (time.monotonic() - killed)))  # > 2 sweeps, > 2 leases
    assert (await ms.inspect(replies).stats()).total == 1
    assert await ms.dead_letters.count() == 0 and not lifecycle.reclaimed("planner")
    away = time.monotonic() - killed

    # 4. A fresh process, later: finds the wait in the checkpointer and resumes it.
    resume = children.spawn([sys.executable, PROC, "resume", db, "th-away", str(TTL)], env)
    done = await children.finish(resume)
    print(
        f"\nplanner away {away:.1f} s (lease {TTL:g} s); resumed {time.monotonic() - killed:.1f} s after kill"
    )
    assert done["error"] == "None"
    assert (done["waits"], done["thread_id"], done["correlation_id"]) == (1, "th-away", req.id)
    assert done["value"]["answer"] == {"n": 42, "note": "while you were away"}
    # Exactly once: one completion, no second result, nothing left to wait for or resume.
    assert done["value"]["finished"] == 1
    assert (done["extra"], done["rescan"], done["next"], done["pending"]) == (None, 0, [], 0)
    assert (await ms.inspect(replies).stats()).total == 0  # the reply was acked (deleted)
    await assert_empty(coder)  # the resumed node did not ask again
    assert await ms.dead_letters.count() == 0


async def test_after_retention_the_reply_is_a_dead_letter_and_requeue_resumes(
    lifecycle: Any, coder: mailslot.Mailbox
) -> None:
    ms = lifecycle.ms
    app = build(InMemorySaver())
    cfg = {"configurable": {"thread_id": "th-late"}}
    planner = await ms.open("planner", ttl=1, keep=2)
    out = await app.ainvoke({"q": 5}, cfg, context=MailContext(mailbox=planner), version="v2")
    [wait] = out.interrupts
    req = await coder.receive(timeout=10)
    assert req.id == wait.value["correlation_id"]
    await planner.close()
    await req.reply({"n": 10, "note": "too late"})
    await req.ack()

    # Offline for longer than keep: the mailbox is reclaimed and the reply, unread, is a
    # dead letter (never silently dropped).
    await lifecycle.wait_offline("planner")
    await lifecycle.wait_for_reclaim("planner")
    [dead] = await ms.dead_letters.list(p.reply_address("planner"))
    assert dead.reason == p.REASON_RECLAIMED
    assert dead.headers[p.Header.CORRELATION_ID] == req.id
    assert dead.json() == {"n": 10, "note": "too late"}

    # Back online: the thread still waits, but there is nothing to resume it with ...
    planner = await ms.open("planner", ttl=30)
    ctx = MailContext(mailbox=planner)
    async with Resumer(app, planner, context=ctx) as res:
        assert await res.scan() == 1
        with pytest.raises(asyncio.TimeoutError):
            await res.next_result(timeout=1.0)
        # ... until the dead letter is put back where it was going: the resumer takes it.
        assert await ms.dead_letters.requeue(dead) is not None
        done = await res.next_result(timeout=20)
    assert done.error is None, done.error
    assert done.output.value["answer"] == {"n": 10, "note": "too late"}
    assert done.output.value["finished"] == 1
    assert await ms.dead_letters.count() == 0
    await planner.close()
