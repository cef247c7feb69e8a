"""What every benchmark shares: the broker, the two clients, the raw header set, statistics.

The machine is shared and noisy, so each comparison interleaves Mailslot and raw rounds
(A B A B ...) on the same server and reports medians; ratios are what to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mailslot
import nats
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from mailslot_broker.protocol import ContentType, Header
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig

PAYLOAD_SIZE = 256


@dataclass(frozen=True)
class Scale:
    """How big each benchmark is; ``quick`` takes about three minutes."""

    name: str
    repeat: int
    send_one: int  # messages per round, one-at-a-time sends
    send_many: int  # messages per round, pipelined sends
    receive: int  # messages per round, receive
    latency: int  # samples per round
    backlogs: tuple[int, ...]
    lifecycle_cost: int  # agents opened+destroyed for the per-agent cost
    lapse_agents: int
    idle_mailboxes: int
    idle_window: float


SCALES = {
    "full": Scale("full", 7, 2000, 10000, 10000, 200, (10_000, 100_000), 100, 1000, 200, 21.0),
    "quick": Scale("quick", 5, 400, 3000, 2000, 60, (10_000,), 30, 200, 50, 21.0),
    "smoke": Scale("smoke", 1, 20, 100, 200, 10, (200,), 3, 5, 3, 0.5),
}


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def ratio(a: float, b: float) -> float:
    return float(f"{a / b:.4g}") if b else float("nan")


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of round-by-round ratios: rounds i of A and B ran back to back, so each pair saw
    about the same machine load; this resists load drift better than median(A) / median(B)."""
    return float(f"{median([x / y for x, y in zip(a, b, strict=True) if y]):.4g}")


def payload() -> bytes:
    return b"x" * PAYLOAD_SIZE


def raw_headers(to: str, prio: p.Priority = p.Priority.NORMAL, sender: str = "bench") -> dict[str, str]:
    """The header set Mailslot's ``send`` puts on a bytes payload, built the cheapest way a raw
    nats-py user could: a fresh id and timestamp per message, the rest constant."""
    mid = uuid.uuid4().hex
    return {
        Header.MSG_ID: mid,
        Header.NATS_MSG_ID: mid,
        Header.TO: to,
        Header.PRIORITY: prio.label,
        Header.CONTENT_TYPE: ContentType.BYTES,
        Header.SENT_AT: datetime.now(timezone.utc).isoformat(),
        Header.FROM: sender,
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Bench:
    """The broker and the two connections every benchmark uses."""

    server: NatsServer
    ms: mailslot.Mailslot
    raw: NatsClient
    scale: Scale
    notes: list[str] = field(default_factory=list)

    @property
    def js(self) -> Any:
        return self.raw.jetstream()

    async def add_raw_consumer(self, durable: str, address: str) -> None:
        """What a raw nats-py user makes to read one mailbox: a durable pull consumer on all
        of its priority subjects, explicit acks."""
        await self.js.add_consumer(
            p.MAIL_STREAM,
            ConsumerConfig(
                durable_name=durable,
                filter_subject=p.mail_subject_all_priorities(address),
                ack_policy=AckPolicy.EXPLICIT,
            ),
        )

    async def purge(self, address: str) -> None:
        await self.js.purge_stream(p.MAIL_STREAM, subject=p.mail_subject_all_priorities(address))

    async def api_total(self) -> int:
        info = await self.js.account_info()
        return int(info.api.total)

    def rss_kb(self) -> int:
        """Resident memory of the nats-server process, from /proc."""
        for line in Path(f"/proc/{self.server.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


@asynccontextmanager
async def bench_env(scale: Scale) -> AsyncIterator[Bench]:
    """A private nats-server in a temp dir (stopped at the end) and both clients."""
    with tempfile.TemporaryDirectory(prefix="mailslot-bench-") as tmp:
        srv = NatsServer(Path(tmp) / "nats")
        srv.start()
        try:
            c = srv.credentials
            ms = await mailslot.connect(srv.url, user=c.user, password=c.password, name="bench")
            raw = await nats.connect(srv.url, user=c.user, password=c.password, name="bench-raw")
            try:
                yield Bench(srv, ms, raw, scale)
            finally:
                await ms.close()
                await raw.drain()
        finally:
            srv.stop()


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended (whatever it ended with)."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(BaseException):
            await t


async def drain(mb: Any, n: int) -> float:
    """Receive ``n`` messages from ``mb`` with ``receive_batch(100)`` and a confirmed ``ack()``
    each; messages per second."""
    got, t0 = 0, time.perf_counter()
    while got < n:
        batch = await mb.receive_batch(max=100, timeout=10)
        if not batch:
            raise RuntimeError(f"receive stalled after {got} of {n}")
        await asyncio.gather(*(m.ack() for m in batch))
        got += len(batch)
    return n / (time.perf_counter() - t0)


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.t0
