"""Checkpoint put / get latency: MailslotCheckpointer (JetStream KV, via the SDK's state store)
against LangGraph's AsyncSqliteSaver (a local file), on the same machine.

Run: ``.tools/bin/uv run --no-sync python -m bench.checkpointer [--n 300] [--values 4] [--size 1024]``

Each round puts a checkpoint whose ``values`` channels all changed (so every put writes
``values`` blobs plus the checkpoint record, as a graph step that touches every channel
does) and then gets the thread's latest checkpoint (``aget_tuple`` without an id: find the
newest, read the record, its blobs and its pending writes). The two savers alternate in
rounds on the same machine (it is shared and noisy): read the medians and the ratio. The
server is a single local nats-server (no replication); an R3 cluster adds one replication
round trip to every put.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import mailslot
from langgraph.checkpoint.base import BaseCheckpointSaver, create_checkpoint, empty_checkpoint
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from mailslot_broker import NatsServer
from mailslot_langgraph import MailslotCheckpointer


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t = time.perf_counter()
    await fn()
    return (time.perf_counter() - t) * 1000


async def _round(
    saver: BaseCheckpointSaver[Any], thread: str, i: int, values: int, size: int, out: dict[str, list[float]]
) -> None:
    cfg: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    prev = await saver.aget_tuple(cfg)
    base = prev.checkpoint if prev else empty_checkpoint()
    cp = create_checkpoint(base, None, i)
    versions = {
        f"ch{k}": saver.get_next_version(base["channel_versions"].get(f"ch{k}"), None) for k in range(values)
    }
    cp["channel_values"] = {f"ch{k}": ("x" * size) + str(i) for k in range(values)}
    cp["channel_versions"] = dict(versions)
    if prev:
        cfg["configurable"]["checkpoint_id"] = prev.checkpoint["id"]
    meta: Any = {"source": "loop", "step": i}
    out["put"].append(await _timed(lambda: saver.aput(cfg, cp, meta, versions)))
    latest = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    out["get"].append(await _timed(lambda: saver.aget_tuple(latest)))


async def run(n: int, values: int, size: int) -> dict[str, dict[str, list[float]]]:
    work = Path(tempfile.mkdtemp(prefix="bench-checkpointer-"))
    server = NatsServer(work / "nats").start()
    results: dict[str, dict[str, list[float]]] = {
        name: {"put": [], "get": []} for name in ("MailslotCheckpointer", "AsyncSqliteSaver")
    }
    try:
        c = server.credentials
        async with (
            await mailslot.connect(server.url, user=c.user, password=c.password, name="bench") as ms,
            AsyncSqliteSaver.from_conn_string(str(work / "bench.db")) as sqlite,
        ):
            savers: dict[str, BaseCheckpointSaver[Any]] = {
                "MailslotCheckpointer": MailslotCheckpointer(ms, namespace="bench"),
                "AsyncSqliteSaver": sqlite,
            }
            for saver in savers.values():  # warm up: bucket creation, connections, caches
                for i in range(10):
                    await _round(saver, "warmup", i, values, size, {"put": [], "get": []})
            for i in range(n):
                for name, saver in savers.items():
                    await _round(saver, "t", i, values, size, results[name])
            await savers["MailslotCheckpointer"].adelete_thread("t")
            await savers["MailslotCheckpointer"].adelete_thread("warmup")
    finally:
        server.stop()
    return results


def report(results: dict[str, dict[str, list[float]]], n: int, values: int, size: int) -> str:
    lines = [
        f"checkpoint put/get latency, {n} rounds, {values} channels x {size} B per checkpoint (ms)",
        f"{'saver':22} {'op':4} {'p50':>7} {'p95':>7} {'mean':>7}",
    ]
    for name, ops in results.items():
        for op, xs in ops.items():
            lines.append(
                f"{name:22} {op:4} {_pct(xs, 0.5):7.2f} {_pct(xs, 0.95):7.2f} {statistics.fmean(xs):7.2f}"
            )
    ms_, sq = results["MailslotCheckpointer"], results["AsyncSqliteSaver"]
    for op in ("put", "get"):
        lines.append(f"ratio {op} p50 (Mailslot / SQLite): {_pct(ms_[op], 0.5) / _pct(sq[op], 0.5):.1f}x")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="rounds (one put + one get per saver)")
    ap.add_argument("--values", type=int, default=4, help="channels changed per checkpoint")
    ap.add_argument("--size", type=int, default=1024, help="bytes per channel value")
    a = ap.parse_args()
    print(report(asyncio.run(run(a.n, a.values, a.size)), a.n, a.values, a.size))


if __name__ == "__main__":
    main()
