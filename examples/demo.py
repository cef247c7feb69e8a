"""Mailslot demo on the embedded local broker: no Docker, no API keys.

1. A sender process mails an agent that is offline (an urgent message sent last, and one
   with a 1 s TTL), then exits.
2. The agent comes online in another process and receives: urgent first, the expired
   message never.
3. An agent that dies without closing loses its mailbox once its lease lapses.
4. Broadcast with durable history for a late joiner, and a durable ``ask``.

Run with ``make demo``. Each step is a separate Python process: the mail waits in the broker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import mailslot
from mailslot_broker import reclaim_expired, running_state, stop_local_broker
from rich.console import Console
from rich.markup import escape

console = Console()
HERE = os.path.abspath(__file__)


def step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def child(role: str) -> None:
    """Run one role of the demo in a fresh Python process and wait for it."""
    subprocess.run([sys.executable, HERE, role], check=True)


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
        while True:
            try:
                msg = await inbox.receive(timeout=1.5)
            except mailslot.Timeout:
                break
            label = escape(f"[{msg.priority.label:>6}]")
            console.print(f"  received {label} {msg.json()['task']}  (from {msg.sender})")
            await msg.ack()
        await inbox.destroy()


async def mortal() -> None:
    async with mailslot.connect() as ms:
        await ms.open("temp-worker", ttl=2)  # leased; never closed
        await ms.send("temp-worker", "a job nobody will do")
        console.print("[green]temp-worker[/green] opened with a 2 s lease... and crashes")
        os._exit(1)  # no close, no goodbye


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


async def lifecycle_check() -> None:
    async with mailslot.connect() as ms:
        view = ms.inspect("temp-worker")
        console.print(f"  right after the crash: {(await view.stats()).total} message(s) waiting")
        # The broker's sidecar reaps lapsed leases by itself; calling the reaper's function here
        # as well is harmless (reclaiming is idempotent) and keeps the demo deterministic.
        for _ in range(50):
            await asyncio.sleep(0.2)
            await reclaim_expired(ms.js)
            if (await view.stats()).total == 0 and "temp-worker" not in {
                c.address for c in await ms.agents()
            }:
                break
        console.print(
            f"  lease lapsed -> reclaimed temp-worker: {(await view.stats()).total} message(s) left, "
            "lease and card gone"
        )


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

    step("4. an agent that dies loses its mailbox when its lease lapses")
    subprocess.run([sys.executable, HERE, "mortal"], check=False)
    asyncio.run(lifecycle_check())

    step("5. broadcast with history for late joiners, and a durable ask")
    asyncio.run(broadcast_and_ask())

    if not was_running:
        stop_local_broker()
        console.print("\n[dim]local broker stopped (it was started by this demo)[/dim]")


async def _touch() -> None:
    async with mailslot.connect():
        pass


if __name__ == "__main__":
    roles = {"sender": sender, "coder": coder, "mortal": mortal}
    if len(sys.argv) > 1:
        asyncio.run(roles[sys.argv[1]]())
    else:
        main()
