"""Metrics and health: numbers derived from stream state plus what the sidecar observed.

Exact (read from the server at each refresh): mailbox depth per priority (top N mailboxes by
total), messages waiting, dead letters stored, active leases, opened mailboxes, and messages
ever stored in the mail stream (``last_seq``: this counts sends, plus requeues and aging copies).

Approximate (observed by this replica since it started, so they reset on restart and each
replica reports its own): ``delivered`` counts acks seen on ``$JS.ACK.MAILSLOT_MAIL.>``;
``expired`` is what left the stream between two refreshes minus what was acked, dead-lettered,
aged or reclaimed in that interval (a purge by someone else counts as expired). Counters of
actions (reclaimed, dead-lettered, aged) are incremented only by the replica that acted.

The HTTP endpoint (``/metrics``, ``/healthz``) runs on the sidecar's own event loop, so
``/healthz`` reflects the live NATS connection: 200 only while connected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js import errors as jserr
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from .. import kvscan
from .. import protocol as p


@dataclass
class Snapshot:
    """The server-derived numbers; also what ``mailslot stats`` shows."""

    stored: int = 0
    sent: int = 0
    removed: int = 0
    dead_letters: int = 0
    leases_active: int = 0
    mailboxes_opened: int = 0
    depth: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "sent": self.sent,
            "dead_letters": self.dead_letters,
            "leases_active": self.leases_active,
            "mailboxes_opened": self.mailboxes_opened,
            "depth": self.depth,
        }


async def _bucket_keys(js: JetStreamContext, bucket: str) -> int:
    """Keys holding a value. Read without a consumer (:mod:`mailslot_broker.kvscan`): this runs
    every ``metrics_interval``, and ``KeyValue.keys()`` left an ordered consumer behind each
    time for its 300 s inactive threshold."""
    try:
        return len(await kvscan.live_keys(js, bucket))
    except jserr.NotFoundError:  # BucketNotFoundError included
        return 0


async def snapshot(js: JetStreamContext, *, top: int = 20) -> Snapshot:
    """Read the numbers from the server (one stream info with subjects, two batched direct gets;
    no consumer is created)."""
    s = Snapshot()
    info = await js.stream_info(p.MAIL_STREAM, subjects_filter=f"{p.MAIL_PREFIX}.>")
    s.stored = int(info.state.messages)
    s.sent = int(info.state.last_seq)
    s.removed = s.sent - s.stored
    per: dict[str, dict[str, int]] = {}
    for subject, n in (info.state.subjects or {}).items():
        try:
            prio, address = p.parse_mail_subject(subject)
        except (ValueError, IndexError):
            continue
        per.setdefault(address, {q.label: 0 for q in p.PRIORITIES})[prio.label] = int(n)
    ranked = sorted(per.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:top]
    s.depth = dict(ranked)
    with contextlib.suppress(jserr.NotFoundError):
        s.dead_letters = int((await js.stream_info(p.DLQ_STREAM)).state.messages)
    s.leases_active = await _bucket_keys(js, p.AGENTS_BUCKET)
    s.mailboxes_opened = await _bucket_keys(js, p.MAILBOXES_BUCKET)
    return s


class Metrics:
    """One registry per sidecar (several may run in one process in tests)."""

    def __init__(self, *, top: int = 20) -> None:
        self.top = top
        r = self.registry = CollectorRegistry()
        self.depth = Gauge(
            "mailslot_mailbox_depth",
            "Waiting messages (top mailboxes)",
            ["address", "priority"],
            registry=r,
        )
        self.stored = Gauge("mailslot_messages_waiting", "Messages in the mail stream", registry=r)
        self.sent = Gauge(
            "mailslot_messages_sent", "Messages ever stored in the mail stream (last_seq)", registry=r
        )
        self.delivered = Counter(
            "mailslot_messages_delivered", "Acks observed by this replica (approximate)", registry=r
        )
        self.expired = Counter(
            "mailslot_messages_expired", "Messages that left without ack/DLQ (approximate)", registry=r
        )
        self.dead_lettered = Counter(
            "mailslot_messages_dead_lettered", "Messages this replica moved to the DLQ", registry=r
        )
        self.dlq = Gauge("mailslot_dead_letters", "Messages in the dead-letter stream", registry=r)
        self.aged = Counter("mailslot_messages_aged", "Messages moved up one level", registry=r)
        self.leases = Gauge("mailslot_leases_active", "Live agent leases", registry=r)
        self.mailboxes = Gauge("mailslot_mailboxes_opened", "Mailboxes with a record", registry=r)
        self.reclaimed = Counter("mailslot_leases_reclaimed", "Mailboxes this replica reclaimed", registry=r)
        self.purged = Counter(
            "mailslot_messages_reclaimed", "Messages purged by reclaims of this replica", registry=r
        )
        self.reaper_lag = Gauge(
            "mailslot_reaper_lag_seconds", "Lease expiry to reclaim, last reclaim", registry=r
        )
        self.leader = Gauge("mailslot_sidecar_leader", "1 if this replica leads", registry=r)
        self.connected = Gauge("mailslot_nats_connected", "1 while connected to NATS", registry=r)
        # Expiry estimate: removals seen in the stream minus removals explained by what the
        # sidecar observed, both cumulative since the first refresh. The removal side lags one
        # refresh so that an explanation arriving just after the removal is not an expiry.
        self._base_removed: int | None = None
        self._prev_removed = 0
        self._accounted = 0.0
        self._expired_seen = 0.0
        self._depth_labels: set[tuple[str, str]] = set()

    def account(self, n: float) -> None:
        """Removals the sidecar caused or saw (acks, DLQ, aging, reclaim): not expiries."""
        self._accounted += n

    def apply(self, s: Snapshot) -> None:
        self.stored.set(s.stored)
        self.sent.set(s.sent)
        self.dlq.set(s.dead_letters)
        self.leases.set(s.leases_active)
        self.mailboxes.set(s.mailboxes_opened)
        labels = set()
        for address, per in s.depth.items():
            for prio, n in per.items():
                self.depth.labels(address, prio).set(n)
                labels.add((address, prio))
        for gone in self._depth_labels - labels:
            with contextlib.suppress(KeyError):
                self.depth.remove(*gone)
        self._depth_labels = labels
        if self._base_removed is None:
            self._base_removed = s.removed
            self._accounted = 0.0
        target = max(0.0, self._prev_removed - self._accounted)
        if target > self._expired_seen:
            self.expired.inc(target - self._expired_seen)
            self._expired_seen = target
        self._prev_removed = s.removed - self._base_removed

    def values(self) -> dict[str, float]:
        """Flat name -> value (labels folded in), for tests and ``mailslot stats``."""
        out: dict[str, float] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name.endswith("_created"):
                    continue
                key = sample.name
                if sample.labels:
                    key += "{" + ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())) + "}"
                out[key] = sample.value
        return out


class HttpEndpoint:
    """``GET /metrics`` (Prometheus text) and ``GET /healthz`` on 127.0.0.1 by default."""

    def __init__(self, metrics: Metrics, healthy: Callable[[], bool], *, host: str, port: int) -> None:
        self._metrics = metrics
        self._healthy = healthy
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode(errors="replace").split()
            path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
            if path == "/metrics":
                status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
            elif path == "/healthz":
                ok = self._healthy()
                status, ctype = (200 if ok else 503), "text/plain; charset=utf-8"
                body = b"ok\n" if ok else b"nats disconnected\n"
            else:
                status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
