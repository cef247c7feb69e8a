"""No consumer leak: an idle deployment holds a constant, small number of consumers.

nats-py's ``KeyValue.keys()`` / ``watchall()`` create an ephemeral ordered consumer per call and
``KeyWatcher.stop()`` only unsubscribes, so the server kept every one of them for 300 s. The
sidecar's metrics loop, its sweeps and the SDK's registry did that on every call (measured on
an idle broker: ~12 new consumers a minute on each KV bucket from the metrics loop alone).
Reads now go through :mod:`mailslot_broker.kvscan` (no consumer); the watchers that must
exist delete their consumer when they close.

What an idle deployment is expected to hold: the reaper's one watcher on the agents bucket,
nothing else (an open mailbox without mail has no consumers: a level gets one when it may hold
mail).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.sidecar import SidecarConfig
from mailslot_broker.tasks import cancel_and_wait
from nats.js import JetStreamContext
from testsupport import unique

from .conftest import leader_of

#: Consumers an idle deployment may hold on the KV buckets (the reaper's watcher).
KV_BOUND = 2


async def consumer_counts(js: JetStreamContext) -> dict[str, int]:
    """Stream -> number of consumers, from one STREAM.LIST (exact, creates nothing)."""
    return {str(si.config.name): int(si.state.consumer_count) for si in await js.streams_info()}


async def _names(js: JetStreamContext, counts: dict[str, int], base: dict[str, int]) -> dict[str, list[str]]:
    """For a failure message: the consumers (name, created) of every stream whose count moved."""
    out = {}
    for stream in (s for s in counts if counts[s] != base.get(s)):
        out[stream] = [f"{c.name} {c.created}" for c in await js.consumers_info(stream)]
    return out


def _kv_total(counts: dict[str, int]) -> int:
    return sum(n for name, n in counts.items() if name.startswith("KV_"))


async def _idle_agent(
    ms: mailslot.Mailslot, address: str, *, primed: bool = False, **options: float
) -> tuple[mailslot.Mailbox, asyncio.Task[None]]:
    """An open mailbox whose agent waits for mail that never comes (``primed``: after one
    normal message waiting at open, so that level is bound)."""
    if primed:
        await ms.send(address, "primes the normal level")
    box = await ms.open(address, **options)

    async def receive() -> None:
        async for msg in box:
            await msg.ack()

    return box, asyncio.create_task(receive(), name=f"idle-agent:{address}")


async def _stop(box: mailslot.Mailbox, task: asyncio.Task[None]) -> None:
    """Cancelled again until it ends: a receive loop caught at the moment its wait completes
    can swallow one cancel on Python 3.11 (asyncio.wait_for), and awaiting it once hung."""
    await cancel_and_wait([task])
    await asyncio.wait_for(box.close(), 30)


async def _watch_once(ms: mailslot.Mailslot) -> None:
    watch = await ms.watch_agents(initial=True)
    try:
        await watch.next(timeout=5)  # the idle agent's join: the watcher really ran
    finally:
        await watch.close()


def _defaults() -> dict[str, float]:
    """The sidecar's own defaults (the ``make_sidecar`` fixture shortens some of them)."""
    names = ("leader_ttl", "sweep_interval", "metrics_interval", "reclaim_grace")
    return {f.name: float(f.default) for f in dataclasses.fields(SidecarConfig) if f.name in names}  # type: ignore[arg-type]


async def test_watch_agents_deletes_its_consumer_on_close(ms, make_sidecar) -> None:
    await leader_of(await make_sidecar(metrics_interval=0.2, sweep_interval=0.5))
    box, task = await _idle_agent(ms, "watched")
    try:
        base = await consumer_counts(ms.js)
        agents = p.kv_stream(p.AGENTS_BUCKET)
        watch = await ms.watch_agents(initial=True)
        assert (await watch.next(timeout=5)).address == "watched"
        assert (await consumer_counts(ms.js))[agents] == base[agents] + 1
        await watch.close()
        assert (await consumer_counts(ms.js))[agents] == base[agents]  # gone at once, not in 300 s
        assert [c.address for c in await ms.agents()] == ["watched"]
        assert await consumer_counts(ms.js) == base
    finally:
        await _stop(box, task)


async def test_busy_intervals_create_no_consumers(ms, make_sidecar) -> None:
    """~15 s of a sidecar refreshing metrics every 0.2 s and sweeping every 0.5 s, and a client
    listing and watching agents twice a second: today's code would add ~150 consumers."""
    await leader_of(await make_sidecar(metrics_interval=0.2, sweep_interval=0.5))
    box, task = await _idle_agent(ms, "busy")
    try:
        await asyncio.sleep(1.0)  # a few metric refreshes and sweeps have run
        base = await consumer_counts(ms.js)
        assert base[p.MAIL_STREAM] == 0  # no mail, no consumers
        assert _kv_total(base) <= KV_BOUND
        samples = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await ms.agents()
            await _watch_once(ms)
            samples.append(await consumer_counts(ms.js))
            await asyncio.sleep(0.5)
        assert len(samples) >= 10
        assert [s for s in samples if s != base] == []
    finally:
        await _stop(box, task)


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_idle_deployment_holds_constant_consumers(ms, make_sidecar, monkeypatch) -> None:
    """An idle sidecar (default intervals) and an idle agent, counted every 5 s for 80 s: the
    count found after start-up never changes. The window covers two of the sidecar's sweeps
    and, with the consumers' inactivity floor shortened from 300 s to 20 s (the agent's lease
    and its heartbeat are 5 s, so its consumers' threshold is the floor), four of the server's inactivity
    thresholds: an idle agent's waiting pulls keep its consumers, and nothing that comes and
    goes leaves one behind."""
    monkeypatch.setattr(p, "CONSUMER_IDLE_FLOOR", 20.0)
    await leader_of(await make_sidecar(**_defaults()), timeout=30)
    box, task = await _idle_agent(ms, "idle", ttl=5, heartbeat=5)
    try:
        for _ in range(3):  # watchers that come and go leave nothing behind
            await _watch_once(ms)
        await ms.agents()
        await asyncio.sleep(2 * _defaults()["metrics_interval"])
        base = await consumer_counts(ms.js)
        assert base[p.MAIL_STREAM] == 0  # no mail, no consumers
        assert _kv_total(base) <= KV_BOUND
        assert sum(base.values()) <= KV_BOUND
        changed = []
        start = time.monotonic()
        for i in range(16):
            await asyncio.sleep(max(0.0, start + 5 * (i + 1) - time.monotonic()))
            if i % 4 == 0:
                await _watch_once(ms)
                await ms.agents()
            counts = await consumer_counts(ms.js)
            settle = time.monotonic() + 5.0
            while i % 4 == 0 and counts != base and time.monotonic() < settle:
                # A watch's consumer that outlives its close for a moment is not one left
                # behind; one still there after 5 s is. (Seen in a serial run, cause not
                # proven. One way it happened, now closed: a watch stopped while nats-py was
                # still making a replacement consumer; tests/broker/test_natscompat.py.)
                await asyncio.sleep(0.25)
                counts = await consumer_counts(ms.js)
            if counts != base:
                changed.append((round(time.monotonic() - start), await _names(ms.js, counts, base)))
        assert changed == [], f"start-up: {base}"
        assert time.monotonic() - start >= max(4 * p.CONSUMER_IDLE_FLOOR, 2 * _defaults()["sweep_interval"])
    finally:
        await _stop(box, task)


async def test_idle_pulls_further_apart_than_the_floor_keep_the_consumers(ms, monkeypatch) -> None:
    """An agent whose heartbeat (its idle pulls' cadence; by default its ack wait, which agents
    doing long work set high) is longer than the consumers' inactivity floor: the threshold
    follows the heartbeat, so the server does not delete the idle agent's consumers between
    two waiting pulls (it did, with a threshold of 3 s and pulls 8 s apart). The level is
    bound by mail at open; once drained it is let go only after a heartbeat, and its consumer
    removed only a threshold after its last waiting pull expired."""
    monkeypatch.setattr(p, "CONSUMER_IDLE_FLOOR", 2.0)
    box, task = await _idle_agent(ms, unique("slow-beat"), primed=True, ttl=1, heartbeat=8)
    try:
        base = await consumer_counts(ms.js)
        assert base[p.MAIL_STREAM] == 1
        seen = []
        for _ in range(10):
            await asyncio.sleep(2)
            seen.append((await consumer_counts(ms.js))[p.MAIL_STREAM])
        assert seen == [1] * 10
    finally:
        await _stop(box, task)
