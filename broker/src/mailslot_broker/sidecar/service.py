"""The sidecar service: wires the reaper, dead letters, aging, metrics and leader election to
one NATS connection, and keeps them right across reconnects.

Stateless: everything it knows is read from the server, so any replica can take over. Every
replica watches and serves metrics/health; only the elected leader (see :mod:`.leader`) acts.
Whenever something may have been missed -- this replica just became leader, or NATS came back
after a disconnect -- it re-sweeps: lapsed leases, exhausted messages, aging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors as nerr
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from .. import natscompat
from .. import protocol as p
from ..config import nats_login
from ..launcher import pid_alive
from ..provision import provision
from ..tasks import cancel_and_wait
from .aging import Aging
from .deadletter import DeadLetterResult, dead_letter, parse_advisory, probe_exhausted, sweep_exhausted
from .leader import LeaderElection
from .metrics import HttpEndpoint, Metrics, snapshot
from .outbox import OutboxMover
from .reaper import Reaper, ReclaimEvent
from .views import MailboxViews

log = logging.getLogger("mailslot.sidecar")


@dataclass
class SidecarConfig:
    """Deployment knobs. ``age_after=None`` turns priority aging off (the default)."""

    url: str | list[str]
    credentials: str | Path | None = None
    user: str | None = None
    password: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int | None = 0
    age_after: float | None = None
    sweep_interval: float = 30.0
    leader_ttl: float = 5.0
    metrics_interval: float = 5.0
    top: int = 20
    reclaim_grace: float = 2.0
    #: How long mail waits at an address nobody opened before it goes to dead letters.
    unclaimed_keep: float = p.DEFAULT_UNCLAIMED_KEEP
    #: How often idle consumers with unacked mail are probed for exhausted messages.
    probe_interval: float = p.EXHAUSTED_PROBE_INTERVAL
    replica_id: str | None = None
    exit_with_pid: int | None = None
    provision: bool = True


async def _ignore(msg: Msg) -> None:
    return None


class Sidecar:
    def __init__(self, config: SidecarConfig) -> None:
        self.config = config
        self.replica_id = config.replica_id or (
            f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
        self.metrics = Metrics(top=config.top)
        self.http: HttpEndpoint | None = None
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.leader: LeaderElection | None = None
        self.reaper: Reaper | None = None
        self.aging: Aging | None = None
        self.outbox: OutboxMover | None = None
        self.views: MailboxViews | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._resync = asyncio.Event()
        self._advisories: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._stop_started = False
        self._stopping: asyncio.Task[None] | None = None
        self.reclaims: list[ReclaimEvent] = []
        self._probe_inbox = ""
        self.dead: list[DeadLetterResult] = []

    # -- state ------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    @property
    def is_leader(self) -> bool:
        return self.leader is not None and self.leader.is_leader

    @property
    def metrics_url(self) -> str | None:
        return f"{self.http.base_url}/metrics" if self.http else None

    @property
    def health_url(self) -> str | None:
        return f"{self.http.base_url}/healthz" if self.http else None

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "replica_id": self.replica_id,
            "metrics_url": self.metrics_url,
            "health_url": self.health_url,
        }

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        if cfg.http_port is not None:
            self.http = HttpEndpoint(
                self.metrics, lambda: self.healthy, host=cfg.http_host, port=cfg.http_port
            )
            await self.http.start()
        self.nc = await self._connect()
        self.js = self.nc.jetstream()
        if cfg.provision:
            await provision(self.js)
        self.metrics.connected.set(1)
        self.leader = LeaderElection(self.js, self.replica_id, ttl=cfg.leader_ttl, on_elected=self._elected)
        self._probe_inbox = self.nc.new_inbox()
        # Replies to probe pulls say nothing we need (409 / 404); the advisories do the work.
        await self.nc.subscribe(self._probe_inbox, cb=_ignore)
        self.reaper = Reaper(
            self.js,
            is_leader=lambda: self.is_leader,
            on_reclaimed=self._reclaimed,
            on_dead=self._dead,
            probe=self._probe_address,
            grace=cfg.reclaim_grace,
            unclaimed_keep=cfg.unclaimed_keep,
            horizon=cfg.sweep_interval,
        )
        if cfg.age_after:
            self.aging = Aging(self.js, age_after=cfg.age_after)
        for kind in (p.ADVISORY_MAX_DELIVERIES, p.ADVISORY_TERMINATED):
            await self.nc.subscribe(p.consumer_advisory_subject(kind), cb=self._on_advisory)
        await self.nc.subscribe(p.ack_subject_all(), cb=self._on_ack)
        self.reaper.start()
        self.leader.start()
        self._spawn(self._advisory_worker(), "advisories")
        self._spawn(self._sweep_loop(), "sweep")
        self._spawn(self._probe_loop(), "probe")
        self._spawn(self._metrics_loop(), "metrics")
        # agent credentials' mail, from their outbox to the mailboxes (sidecar/outbox.py)
        self.outbox = OutboxMover(self.js, is_leader=lambda: self.is_leader)
        self._spawn(self.outbox.run(), "outbox")
        # agent credentials' reads of their own mailbox, on every replica (sidecar/views.py)
        self.views = MailboxViews(self.js)
        await self.views.start()
        if self.aging is not None:
            self._spawn(self._aging_loop(), "aging")

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"sidecar-{name}"))

    async def _connect(self) -> NatsClient:
        cfg = self.config
        opts = nats_login(cfg.credentials, user=cfg.user, password=cfg.password).options
        servers = [cfg.url] if isinstance(cfg.url, str) else list(cfg.url)

        async def _err(exc: Exception) -> None:
            log.debug("nats: %s", exc)

        while True:  # a service waits for its server; /healthz says 503 meanwhile
            try:
                nc = await nats.connect(
                    servers=servers,
                    name=f"mailslot-sidecar:{self.replica_id}",
                    connect_timeout=5,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.2,
                    error_cb=_err,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    **opts,
                )
                break
            except (nerr.NoServersError, OSError, asyncio.TimeoutError, nerr.Error) as exc:
                log.warning("cannot reach NATS at %s (%s); retrying", servers, exc)
                await asyncio.sleep(1.0)
        natscompat.keep_reconnecting(nc, wait=0.5)
        return nc

    async def stop(self) -> None:
        """Resign leadership (so a replica takes over at once), close NATS and HTTP. A second
        call waits for the first to finish."""
        if self._stop_started:
            await self._stopped.wait()
            return
        self._stop_started = True
        if self.reaper is not None:
            await self.reaper.stop()
        if self.views is not None:
            await self.views.stop()
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self.leader is not None:
            await self.leader.stop(resign=self.healthy)
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.close()
        if self.http is not None:
            await self.http.stop()
        self._stopped.set()

    async def run_forever(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Sidecar:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- connection events ------------------------------------------------------------------

    async def _disconnected(self) -> None:
        self.metrics.connected.set(0)

    async def _reconnected(self) -> None:
        self.metrics.connected.set(1)
        log.info("reconnected to NATS; re-sweeping")
        if self.reaper is not None:
            await self.reaper.restart()
        self._resync.set()

    async def _elected(self) -> None:
        self.metrics.leader.set(1)
        self._resync.set()

    # -- actions ----------------------------------------------------------------------------

    def _reclaimed(self, ev: ReclaimEvent) -> None:
        self.reclaims.append(ev)
        self.metrics.reclaimed.inc()
        self.metrics.purged.inc(ev.report.messages_dead_lettered)
        if ev.lag is not None:
            self.metrics.reaper_lag.set(ev.lag)

    async def _on_ack(self, msg: Msg) -> None:
        body = msg.data or b""
        if body in (b"", b"+ACK"):
            self.metrics.delivered.inc()
            self.metrics.account(1)
        elif body.startswith(b"+TERM"):
            self.metrics.account(1)

    async def _on_advisory(self, msg: Msg) -> None:
        adv = parse_advisory(msg)
        if adv is not None:
            self._advisories.put_nowait(adv)

    async def _advisory_worker(self) -> None:
        while True:
            adv = await self._advisories.get()
            if not self.is_leader:
                continue  # the leader acts; a missed one is found by sweep_exhausted
            try:
                res = await dead_letter(self.js, **adv)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dead letter for seq %s failed (the sweep retries): %s", adv, exc)
                continue
            if res is not None:
                await self._dead(res)

    async def _dead(self, res: DeadLetterResult) -> None:
        if res.duplicate:
            return
        self.dead.append(res)
        self.metrics.dead_lettered.inc()
        if not res.body_lost:
            self.metrics.account(1)
        body = {
            "address": res.address,
            "priority": res.priority.label,
            "reason": res.reason,
            "deliveries": res.deliveries,
            "dlq_seq": res.dlq_seq,
            "mail_seq": res.mail_seq,
        }
        with contextlib.suppress(Exception):
            assert self.js is not None
            await self.js.publish(
                p.system_event_subject(p.EVENT_MAIL_DEAD),
                json.dumps(body).encode(),
                headers={p.Header.NATS_MSG_ID: f"dead-event-{res.mail_seq}"},
                timeout=5.0,
            )

    async def sweep(self) -> None:
        """Everything that may have been missed: lapsed leases, exhausted messages."""
        if not self.is_leader:
            return
        assert self.reaper is not None and self.js is not None
        await self.reaper.sweep()
        for res in await sweep_exhausted(self.js):
            await self._dead(res)

    async def _sweep_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._resync.wait(), self.config.sweep_interval)
            self._resync.clear()
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sweep failed: %s", exc)
                await asyncio.sleep(1.0)
                if self.is_leader:
                    self._resync.set()

    async def _probe_address(self, address: str) -> None:
        """Before an offline agent's consumers go: make the server report exhausted mail."""
        assert self.nc is not None and self.js is not None
        if await probe_exhausted(self.nc, self.js, self._probe_inbox, address=address):
            await asyncio.sleep(0.2)  # let the advisories arrive while the consumers exist

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.probe_interval)
            if not self.is_leader or not self.healthy:
                continue
            assert self.nc is not None and self.js is not None
            try:
                await probe_exhausted(self.nc, self.js, self._probe_inbox)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("exhausted-mail probe failed: %s", exc)

    async def _aging_loop(self) -> None:
        assert self.aging is not None
        interval = max(0.5, min(self.config.sweep_interval, self.aging.age_after / 4))
        while True:
            await asyncio.sleep(interval)
            if not self.is_leader:
                continue
            try:
                moved = await self.aging.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("aging sweep failed: %s", exc)
                continue
            if moved:
                self.metrics.aged.inc(moved)
                # a move removes one message and stores one: the removal is not an expiry
                self.metrics.account(moved)

    async def refresh_metrics(self) -> None:
        assert self.js is not None
        self.metrics.leader.set(1 if self.is_leader else 0)
        self.metrics.connected.set(1 if self.healthy else 0)
        if self.healthy:
            self.metrics.apply(await snapshot(self.js, top=self.config.top))

    async def _metrics_loop(self) -> None:
        while True:
            try:
                await self.refresh_metrics()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("metrics refresh failed: %s", exc)
            pid = self.config.exit_with_pid
            if pid is not None and not pid_alive(pid):
                log.info("process %s is gone; the sidecar exits with it", pid)
                self._stopping = asyncio.create_task(self.stop())
                return
            await asyncio.sleep(self.config.metrics_interval)
