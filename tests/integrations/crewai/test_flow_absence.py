"""A Flow paused for mailbox feedback outlives an absence longer than the lease.

The service that paused the flows is killed while it waits; the reviewer answers while
nothing runs; the reply mailbox's lease lapses and the sidecar marks it offline (its
consumers go, its mail stays for its retention, ``keep``); a fresh process later resumes
each flow from the mailbox, and each completes with its reply, once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from _kit import CREWAI_OFFLINE, CREWAI_WARNINGS, MODES
from mailslot_broker import NatsServer
from testsupport import client_env

pytestmark = CREWAI_WARNINGS

HERE = Path(__file__).resolve().parent
PROC = str(HERE / "_flow_absence_proc.py")
REPLIES = "flow-replies"
TTL = 2.0
KEEP = 3600.0


async def test_paused_flow_outlives_an_absence_longer_than_the_lease(
    server: NatsServer, lifecycle: Any, children: Any, tmp_path: Path
) -> None:
    ms = lifecycle.ms
    db = str(tmp_path / "flows.db")
    (tmp_path / "child-home").mkdir()
    env = {**client_env(server), **CREWAI_OFFLINE, "HOME": str(tmp_path / "child-home")}
    reviewer = await ms.open("reviewer", ttl=30)
    announcements = await ms.open("announcements", ttl=30)

    # 1. A service opens the reply mailbox, pauses one flow per LLM mode, and waits for replies.
    start = children.spawn(
        [sys.executable, PROC, "start", db, str(TTL), str(KEEP), *MODES], env, cwd=tmp_path
    )
    paused: dict[str, str] = await children.result(start, timeout=180)
    assert set(paused) == set(MODES)
    questions = {}
    for _ in MODES:
        q = await reviewer.receive(timeout=30)
        questions[q.correlation_id] = q
    assert set(questions) == set(paused.values())
    assert not await lifecycle.lease_gone(REPLIES)

    # 2. It is killed (no close, no cleanup); the answers land while nothing runs.
    children.kill(start)
    killed = time.monotonic()
    for mode, flow_id in paused.items():
        q = questions[flow_id]
        assert q.reply_to == REPLIES
        await q.reply({"feedback": f"ship it ({mode})"})
        await q.ack()

    # 3. The lease lapses: offline, consumers released; the answers stay for `keep`.
    record = await lifecycle.wait_offline(REPLIES)
    assert record.keep == KEEP
    await asyncio.sleep(max(2.5, 2 * TTL - (time.monotonic() - killed)))  # > 2 sweeps, > 2 leases
    assert (await ms.inspect(REPLIES).stats()).total == len(MODES)
    assert await ms.dead_letters.count() == 0 and not lifecycle.reclaimed(REPLIES)
    away = time.monotonic() - killed

    # 4. A fresh process resumes both flows from the mailbox (one sync, one async resumer).
    resume = children.spawn([sys.executable, PROC, "resume", db, str(TTL), str(KEEP)], env, cwd=tmp_path)
    done = await children.finish(resume, timeout=180)
    took = time.monotonic() - killed
    print(f"\nflow service away {away:.1f} s (lease {TTL:g} s); resumed {took:.1f} s after kill")
    results = {r["flow_id"]: r for r in done["resumed"]}
    assert set(results) == set(paused.values())
    assert sorted(r["how"] for r in results.values()) == ["FlowResumer", "sync"]
    for mode, flow_id in paused.items():
        r = results[flow_id]
        assert (r["paused"], r["feedback"]) == (False, f"ship it ({mode})")
        assert r["result"] == {
            "draft": f"Release notes ({mode})",
            "feedback": f"ship it ({mode})",
            "crew": "announced",
        }
    # Exactly once: no further reply, no flow left pending, one announcement per flow,
    # the replies acked, and the reviewer was not asked again.
    assert (done["extra"], done["pending"]) == (False, [])
    notes = sorted([(await announcements.receive(timeout=10)).text() for _ in MODES])
    assert notes == sorted(f"Release notes ({m}): ship it ({m})" for m in MODES)
    assert await announcements.receive_batch(max=5, timeout=1.0) == []
    assert (await ms.inspect(REPLIES).stats()).total == 0
    assert await reviewer.receive_batch(max=5, timeout=0.5) == []
    assert await ms.dead_letters.count() == 0
    await reviewer.close()
    await announcements.close()
