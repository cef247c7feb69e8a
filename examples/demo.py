"""Mailslot demo on the embedded local broker: no Docker, no API keys.

1. Start (or find) the local broker.
2. A sender process mails an agent that is offline (an urgent message sent last, and one
   with a 1 s TTL), then exits.
3. The agent comes online in another process and receives: urgent first, the expired
   message never.
4. Presence is not retention: an agent is killed, its lease lapses (it is *offline*), mail
   sent meanwhile waits in its mailbox, and when it comes back in a new process it gets it.
5. Retention running out: a mailbox with a short ``keep`` whose agent died is reclaimed; its
   unread mail goes to dead letters (reason ``mailbox reclaimed``), never silently, and the
   sender, who asked for it, gets a bounce notice.
6. Broadcast with durable history for a late joiner, and a durable ``ask``.

Run with ``make demo``. Each role is a separate Python process: the mail waits in the broker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone

import mailslot
from mailslot_broker import reclaim_expired, running_state, stop_local_broker
from mailslot_broker.reclaim import read_record
from rich.console import Console
from rich.markup import escape

console = Console()
HERE = os.path.abspath(__file__)


def step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def child(role: str, *, check: bool = True) -> None:
    """Run one role of the demo in a fresh Python process and wait for it."""
    subprocess.run([sys.executable, HERE, role], check=check)


async def wait_for(condition: Callable[[], Awaitable[bool]], *, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return True
        await asyncio.sleep(0.2)
    return False


async def until_quiet(inbox: mailslot.Mailbox, *, timeout: float) -> AsyncIterator[mailslot.Message]:
    """The inbox's mail, one message at a time, until none has come for ``timeout`` seconds."""
    while True:
        try:
            yield await inbox.receive(timeout=timeout)
        except mailslot.Timeout:
            return


# -- roles (each runs in its own process) ----------------------------------------------------


async def sender() -> None:
    async with mailslot.connect(name="planner") as ms:
        for n in (1, 2, 3):
            await ms.send("coder", {"task": f"refactor module {n}"})
        await ms.send("coder", {"task": "this one expires"}, ttl=1)
        r = await ms.send("coder", {"task": "PROD IS DOWN"}, priority="urgent")
        console.print(f"[green]planner[/green] sent 5 messages to offline 'coder' (last: {r.id[:8]}, urgent)")


async def coder() -> None:
    async with mailslot.connect() as ms:
        inbox = await ms.open("coder", ttl=30)
        console.print(f"[green]coder[/green] online; waiting: {(await inbox.stats()).counts}")
        async for msg in until_quiet(inbox, timeout=1.5):
            label = escape(f"[{msg.priority.label:>6}]")
            console.print(f"  received {label} {msg.json()['task']}  (from {msg.sender})")
            await msg.ack()
        await inbox.destroy()


async def worker_crashes() -> None:
    async with mailslot.connect() as ms:
        await ms.open("worker", ttl=2)  # a named mailbox: its mail waits 7 days (keep)
        console.print("[green]worker[/green] online with a 2 s lease... and is killed")
        os._exit(1)  # no close, no goodbye


async def worker_returns() -> None:
    async with mailslot.connect() as ms:
        inbox = await ms.open("worker", ttl=2)
        console.print(f"[green]worker[/green] back in a new process; waiting: {(await inbox.stats()).total}")
        async for msg in until_quiet(inbox, timeout=1.0):
            console.print(f"  received {msg.text()!r} (sent {msg.sent_at:%H:%M:%S} UTC, while offline)")
            await msg.ack()
        await inbox.destroy()  # the demo leaves nothing behind


async def temp_worker_crashes() -> None:
    async with mailslot.connect() as ms:
        await ms.open("temp-worker", ttl=2, keep=1)  # retention: 1 s after it is last seen
        console.print("[green]temp-worker[/green] online with a 2 s lease and keep=1 s... and is killed")
        os._exit(1)


async def broadcast_and_ask() -> None:
    async with mailslot.connect(name="planner") as ms:
        await ms.publish("build.done", {"commit": "abc123"}, durable=True)  # kept for late joiners
        async with ms.subscribe("build.>", replay="last") as late:
            ev = await late.next(timeout=10)
            console.print(f"  late subscriber replayed {ev.topic}: {ev.json()}")

        async def reviewer() -> None:
            inbox = await ms.open("reviewer")
            question = await inbox.receive(timeout=10)
            await question.reply({"verdict": "LGTM"})
            await question.ack()
            await inbox.destroy()

        task = asyncio.create_task(reviewer())
        planner = await ms.open("planner")
        answer = await planner.ask("reviewer", {"review": "PR 7"}, timeout=10)
        console.print(f"  planner asked reviewer, got: {answer.json()['verdict']}")
        await task
        await planner.destroy()


# -- orchestration ---------------------------------------------------------------------------


async def offline_and_back() -> None:
    """Step 4, between the two worker processes: the lease lapses, the mail waits."""
    async with mailslot.connect(name="planner") as ms:

        async def lapsed() -> bool:
            # The broker's sidecar notices the lapsed lease by itself (it releases the
            # consumers and starts the retention clock); running one retention pass here as
            # well is harmless (idempotent) and keeps the demo deterministic.
            await reclaim_expired(ms.js, grace=0)
            entry = await read_record(ms.js, "worker")
            return entry is not None and entry.record.offline_since is not None

        await wait_for(lapsed)
        entry = await read_record(ms.js, "worker")
        assert entry is not None and entry.record.offline_since is not None
        since = datetime.fromtimestamp(entry.record.offline_since, timezone.utc)
        listed = "worker" in {c.address for c in await ms.agents()}
        console.print(f"  lease lapsed: worker offline since {since:%H:%M:%S} UTC (listed: {listed})")
        days = entry.record.keep / 86400
        console.print(f"  its mail stays: the mailbox waits {days:.0f} days (keep) for it")
        for text in ("rebuild the index", "rotate the logs"):
            await ms.send("worker", text)
        console.print("  planner sent 2 messages to the offline worker")


async def retention_runs_out() -> None:
    """Step 5: the mailbox of a dead agent whose retention ran out is reclaimed."""
    async with mailslot.connect() as ms:
        await ms.dead_letters.purge("temp-worker")  # a clean count, even after an earlier run
        planner = await ms.open("planner")
        await planner.send("temp-worker", "a job nobody will do", notify_undelivered=True)
        view = ms.inspect("temp-worker")
        console.print(f"  planner mailed temp-worker: {(await view.stats()).total} message(s) waiting")

        async def reclaimed() -> bool:
            await reclaim_expired(ms.js, grace=0)  # the sidecar would do it within a second
            return await read_record(ms.js, "temp-worker") is None and (await view.stats()).total == 0

        await wait_for(reclaimed)
        dead = await ms.dead_letters.list("temp-worker")
        reasons = sorted({d.reason for d in dead})
        left = (await view.stats()).total
        console.print(f"  retention ran out -> reclaimed temp-worker: {left} message(s) left")
        console.print(f"  {len(dead)} in dead letters, reason: {', '.join(reasons)}")
        notice = await planner.receive(timeout=10)
        bounce = notice.bounce
        assert bounce is not None
        console.print(f"  planner got a bounce: {bounce.message_id[:8]} to {bounce.to}, {bounce.reason}")
        await notice.ack()
        await ms.dead_letters.purge("temp-worker")
        await planner.destroy()


def main() -> None:
    was_running = running_state() is not None
    t0 = time.perf_counter()
    step("1. start (or find) the local broker")
    asyncio.run(_touch())
    console.print(f"broker ready in {time.perf_counter() - t0:.2f} s at {running_state().url}")  # type: ignore[union-attr]

    step("2. planner mails 'coder', who is offline")
    child("sender")
    console.print("sender process exited; waiting 2 s so the 1 s-TTL message expires...")
    time.sleep(2)

    step("3. coder comes online in a new process: urgent first, expired never")
    child("coder")

    step("4. an agent that is killed goes offline; its mail waits until it comes back")
    child("worker-crashes", check=False)
    asyncio.run(offline_and_back())
    child("worker-returns")

    step("5. retention runs out: unread mail goes to dead letters, the sender is told")
    child("temp-worker-crashes", check=False)
    asyncio.run(retention_runs_out())

    step("6. broadcast with history for late joiners, and a durable ask")
    asyncio.run(broadcast_and_ask())

    if not was_running:
        stop_local_broker()
        console.print("\n[dim]local broker stopped (it was started by this demo)[/dim]")


async def _touch() -> None:
    async with mailslot.connect():
        pass


if __name__ == "__main__":
    roles = {
        "sender": sender,
        "coder": coder,
        "worker-crashes": worker_crashes,
        "worker-returns": worker_returns,
        "temp-worker-crashes": temp_worker_crashes,
    }
    if len(sys.argv) > 1:
        asyncio.run(roles[sys.argv[1]]())
    else:
        main()
