"""What an online agent costs, and how that cost grows: ``python -m bench.scale``.

For each size N (default 100, 1,000, 5,000) on a fresh nats-server of its own:

* Mailslot: N mailboxes opened (``ttl=60``, 50 opens in flight at a time), each with a task
  blocked in ``receive()``: the open rate, the server's RSS growth per mailbox, JetStream API
  requests per second over an idle window, and send -> receive p50 latency measured on one of
  the N while the others wait.
* Raw nats-py on another fresh server of the same configuration: N durable pull consumers,
  each with a task in a ``fetch(1, timeout=5)`` long-poll loop: the create rate, RSS growth per
  consumer, API requests per second, and the same p50 through one of them.

Then, with the N online, open + destroy of one more mailbox (``ttl=5``), sequentially, against
one raw durable consumer created, deleted and its subjects purged (``open_destroy_ratio``):
interleaved round by round on the same server, medians, with the quartiles of each side.

Ratios are ``mailslot / raw`` at each size, plus ``latency_growth_ratio`` (Mailslot's p50 at
the largest size over its p50 at the smallest). The curve goes to stdout as a table and to
``bench/results/scale.json``. Each side runs on its own server because the Go heap freed by
one side would hide the other's growth.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mailslot
import nats
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from nats.js.api import AckPolicy, ConsumerConfig
from rich.console import Console
from rich.table import Table

from ._common import cancel_all, median, payload, ratio, raw_headers, unique

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
IN_FLIGHT = 50
LATENCY_SAMPLES = 40
#: Sequential open + destroy (raw: create + delete + purge) rounds per size, with the N online.
LIFECYCLE_ROUNDS = 30


def _rss_kb(pid: int | None) -> int:
    assert pid is not None, "the server is not running"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@asynccontextmanager
async def _server() -> AsyncIterator[NatsServer]:
    with tempfile.TemporaryDirectory(prefix="mailslot-scale-") as tmp:
        srv = NatsServer(Path(tmp) / "nats")
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


class SizeFailed(Exception):
    """A size the side could not reach: how far it got, and why."""

    def __init__(self, done: int, n: int, seconds: float, cause: BaseException) -> None:
        super().__init__(f"{done} of {n} in {seconds:.0f} s, then {type(cause).__name__}: {cause}")
        self.done = done


async def _bounded(n: int, make: Callable[[int], Awaitable[Any]]) -> tuple[list[Any], float]:
    """``make(i)`` for i < n with at most IN_FLIGHT at once; (results, seconds). The first
    failure stops it: :class:`SizeFailed` says how many were made."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    made: list[Any] = []

    async def one(i: int) -> None:
        async with gate:
            made.append(await make(i))

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    try:
        await asyncio.gather(*tasks)
    except Exception as exc:
        await cancel_all(tasks)
        raise SizeFailed(len(made), n, time.perf_counter() - t0, exc) from exc
    return made, time.perf_counter() - t0


async def _api_per_s(js: Any, window: float) -> float:
    a1 = int((await js.account_info()).api.total)
    await asyncio.sleep(window)
    a2 = int((await js.account_info()).api.total)
    return max(0, a2 - a1 - 1) / window


async def _p50(send: Callable[[], Awaitable[Any]], got: asyncio.Queue[float]) -> float:
    samples = []
    for _ in range(LATENCY_SAMPLES):
        t0 = time.perf_counter()
        await send()
        samples.append((await asyncio.wait_for(got.get(), 30) - t0) * 1000)
        await asyncio.sleep(0.005)
    return median(samples)


async def _mailslot(n: int, window: float) -> dict[str, Any]:
    async with _server() as srv:
        c = srv.credentials
        ms = await mailslot.connect(srv.url, user=c.user, password=c.password, name="scale")
        raw = await nats.connect(srv.url, user=c.user, password=c.password)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await asyncio.sleep(1.0)
            rss0 = _rss_kb(srv.pid)
            tag = unique("scale")
            boxes, took = await _bounded(n, lambda i: ms.open(f"{tag}-{i}", ttl=60))
            got: asyncio.Queue[float] = asyncio.Queue()

            async def wait(box: mailslot.Mailbox) -> None:
                while True:
                    m = await box.receive()
                    got.put_nowait(time.perf_counter())
                    await m.ack()

            tasks = [asyncio.create_task(wait(b)) for b in boxes]
            await asyncio.sleep(2.0)
            rss = (_rss_kb(srv.pid) - rss0) / n
            api = await _api_per_s(raw.jetstream(), window)
            target = boxes[n // 2].address
            p50 = await _p50(lambda: ms.send(target, payload()), got)
            # Interleaved on this server, with the N online: each round one Mailslot open +
            # destroy and one raw create + delete + purge (alternating which goes first), so
            # both sides see the same load; medians and the quartiles of each.
            rjs = raw.jetstream()

            async def open_destroy(i: int) -> None:
                box = await ms.open(f"{tag}-lc-{i}", ttl=5)
                await box.destroy()

            cycle, raw_cycle = await _timed_rounds(
                open_destroy, lambda i: _raw_cycle(rjs, f"{tag}-rawlc-{i}")
            )
            return {
                "open_per_s": n / took,
                "rss_kb": rss,
                "api_per_s": api,
                "p50_ms": p50,
                "cycle_ms": median(cycle),
                "cycle_iqr": _quartiles(cycle),
                "same_server_raw_cycle_ms": median(raw_cycle),
                "same_server_raw_cycle_iqr": _quartiles(raw_cycle),
            }
        finally:
            await cancel_all(tasks)
            await ms.close()
            await raw.close()


async def _raw(n: int, window: float) -> dict[str, float]:
    async with _server() as srv:
        c = srv.credentials
        nc = await nats.connect(srv.url, user=c.user, password=c.password)
        js = nc.jetstream()
        await _provision(srv)
        tasks: list[asyncio.Task[Any]] = []
        try:
            await asyncio.sleep(1.0)
            rss0 = _rss_kb(srv.pid)
            tag = unique("raw")

            async def make(i: int) -> Any:
                durable = f"{tag}-{i}"
                await _add_raw_consumer(js, durable)
                return await js.pull_subscribe_bind(durable, stream=p.MAIL_STREAM)

            subs, took = await _bounded(n, make)
            got: asyncio.Queue[float] = asyncio.Queue()

            async def wait(sub: Any) -> None:
                while True:
                    with contextlib.suppress(nats.errors.TimeoutError):
                        for m in await sub.fetch(1, timeout=5):
                            got.put_nowait(time.perf_counter())
                            await m.ack()

            tasks = [asyncio.create_task(wait(s)) for s in subs]
            await asyncio.sleep(2.0)
            rss = (_rss_kb(srv.pid) - rss0) / n
            api = await _api_per_s(js, window)
            target = f"{tag}-{n // 2}"
            subject = p.mail_subject(p.Priority.NORMAL, target)
            p50 = await _p50(lambda: js.publish(subject, payload(), headers=raw_headers(target)), got)
            [cycle] = await _timed_rounds(lambda i: _raw_cycle(js, f"{tag}-lc-{i}"))
            return {
                "open_per_s": n / took,
                "rss_kb": rss,
                "api_per_s": api,
                "p50_ms": p50,
                "cycle_ms": median(cycle),
            }
        finally:
            await cancel_all(tasks)
            await nc.close()


async def _timed_rounds(*cycles: Callable[[int], Awaitable[object]]) -> list[list[float]]:
    """LIFECYCLE_ROUNDS rounds run one after another; in round i each cycle runs once
    (``cycle(i)``, sequentially) and is timed in ms. With two cycles, which goes first
    alternates round by round so both see the same load. The samples, one list per cycle."""
    samples: list[list[float]] = [[] for _ in cycles]
    for i in range(LIFECYCLE_ROUNDS):
        order = range(len(cycles)) if i % 2 == 0 else reversed(range(len(cycles)))
        for side in order:
            t0 = time.perf_counter()
            await cycles[side](i)
            samples[side].append((time.perf_counter() - t0) * 1000)
    return samples


async def _add_raw_consumer(js: Any, durable: str) -> None:
    """A raw durable pull consumer on the mail stream, filtered to one address's subjects."""
    await js.add_consumer(
        p.MAIL_STREAM,
        ConsumerConfig(
            durable_name=durable,
            filter_subject=p.mail_subject_all_priorities(durable),
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )


async def _raw_cycle(js: Any, durable: str) -> None:
    """One raw durable consumer created, deleted and its subjects purged."""
    await _add_raw_consumer(js, durable)
    await js.delete_consumer(p.MAIL_STREAM, durable)
    await js.purge_stream(p.MAIL_STREAM, subject=p.mail_subject_all_priorities(durable))


def _quartiles(xs: list[float]) -> list[float]:
    """[p25, p75] of ``xs`` (the spread around the median)."""
    q = sorted(xs)
    return [round(q[len(q) // 4], 2), round(q[(3 * len(q)) // 4], 2)]


async def _provision(srv: NatsServer) -> None:
    """The same streams as Mailslot's, created by Mailslot itself (the raw side reads the mail
    stream's subjects like a raw user of the same deployment would)."""
    c = srv.credentials
    ms = await mailslot.connect(srv.url, user=c.user, password=c.password)
    await ms.close()


async def run(sizes: list[int], window: float, console: Console) -> dict[str, Any]:
    curve: list[dict[str, Any]] = []
    for n in sizes:
        console.log(f"[bold]{n}[/] online mailboxes ...")
        t0 = time.monotonic()
        try:
            ms = await _mailslot(n, window)
        except SizeFailed as exc:
            console.log(f"[red]Mailslot could not hold {n} online mailboxes[/]: {exc}")
            curve.append({"size": n, "mailslot_failed": str(exc), "mailslot_opened": exc.done})
            break
        raw = await _raw(n, window)
        row: dict[str, Any] = {
            "size": n,
            "mailslot_open_per_s": round(ms["open_per_s"], 1),
            "raw_consumer_create_per_s": round(raw["open_per_s"], 1),
            "mailslot_rss_kb_per_mailbox": round(ms["rss_kb"], 1),
            "raw_rss_kb_per_consumer": round(raw["rss_kb"], 1),
            "mailslot_idle_api_per_s": round(ms["api_per_s"], 2),
            "raw_idle_api_per_s": round(raw["api_per_s"], 2),
            "mailslot_idle_api_per_mailbox_per_min": round(ms["api_per_s"] * 60 / n, 3),
            "mailslot_p50_ms": round(ms["p50_ms"], 2),
            "raw_p50_ms": round(raw["p50_ms"], 2),
            "mailslot_open_destroy_ms": round(ms["cycle_ms"], 2),
            "mailslot_open_destroy_iqr_ms": ms["cycle_iqr"],
            "raw_create_delete_purge_ms": round(ms["same_server_raw_cycle_ms"], 2),
            "raw_create_delete_purge_iqr_ms": ms["same_server_raw_cycle_iqr"],
            "raw_create_delete_purge_own_server_ms": round(raw["cycle_ms"], 2),
            "open_rate_ratio": ratio(ms["open_per_s"], raw["open_per_s"]),
            "rss_ratio": ratio(ms["rss_kb"], raw["rss_kb"]),
            "p50_ratio": ratio(ms["p50_ms"], raw["p50_ms"]),
            # Against the raw cycle interleaved with it on the same server (same load).
            "open_destroy_ratio": ratio(ms["cycle_ms"], ms["same_server_raw_cycle_ms"]),
        }
        curve.append(row)
        console.log(f"{n} done in {time.monotonic() - t0:.1f} s")
    done = [row for row in curve if "mailslot_p50_ms" in row]
    return {
        "curve": curve,
        "latency_growth_ratio": ratio(done[-1]["mailslot_p50_ms"], done[0]["mailslot_p50_ms"])
        if done
        else None,
    }


def _table(results: dict[str, Any]) -> Table:
    t = Table(title="Online mailboxes: Mailslot vs raw nats-py (fresh server per side and size)")
    cols = [
        ("size", "N"),
        ("mailslot_open_per_s", "open/s"),
        ("raw_consumer_create_per_s", "raw create/s"),
        ("mailslot_rss_kb_per_mailbox", "KB/mailbox"),
        ("raw_rss_kb_per_consumer", "raw KB/consumer"),
        ("rss_ratio", "RSS ratio"),
        ("mailslot_idle_api_per_s", "idle API/s"),
        ("raw_idle_api_per_s", "raw idle API/s"),
        ("mailslot_p50_ms", "p50 ms"),
        ("raw_p50_ms", "raw p50 ms"),
        ("p50_ratio", "p50 ratio"),
        ("mailslot_open_destroy_ms", "open+destroy ms"),
        ("raw_create_delete_purge_ms", "raw cycle ms"),
        ("open_destroy_ratio", "cycle ratio"),
    ]
    for _, title in cols:
        t.add_column(title, justify="right")
    for row in results["curve"]:
        if "mailslot_failed" in row:
            t.add_row(str(row["size"]), f"failed: {row['mailslot_failed']}", *([""] * (len(cols) - 2)))
            continue
        t.add_row(*(str(row[k]) for k, _ in cols))
    t.caption = f"p50 at the largest size / p50 at the smallest: {results['latency_growth_ratio']}"
    return t


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    ap.add_argument("--sizes", default="100,1000,5000", help="comma-separated numbers of mailboxes")
    ap.add_argument("--window", type=float, default=30.0, help="idle window in seconds (>= 20: one renewal)")
    ap.add_argument("--quick", action="store_true", help="sizes 50,200,500 and a 21 s window")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    sizes = [50, 200, 500] if args.quick else [int(s) for s in args.sizes.split(",")]
    window = 21.0 if args.quick else args.window
    console = Console(stderr=True)
    started = time.monotonic()
    results = asyncio.run(run(sizes, window, console))
    results["meta"] = {
        "sizes": sizes,
        "window_s": window,
        "ttl_s": 60,
        "python": platform.python_version(),
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    Console(width=160).print(_table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.log(f"wrote {out} ({results['meta']['elapsed_s']} s)")
    return results


if __name__ == "__main__":
    main()
