"""The sync twin: the same names and signatures as the async API, for sync callers
(scripts, CrewAI tools). Every call runs on one background event-loop thread. The twins of a
mailbox and its messages live in ``_sync_mail.py``, those of subscriptions and watches in
``_sync_streams.py``; import them all from here.

>>> from mailslot import sync
>>> with sync.connect() as ms:
...     ms.send("coder", {"task": 7}, priority="urgent")
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from mailslot_broker import protocol as p

from ._portal import PORTAL
from ._sync_audit import SyncAudit
from ._sync_claims import SyncClaims
from ._sync_devices import SyncDeviceBridge
from ._sync_mail import SyncDeadLetters, SyncMailbox, SyncMailboxView, SyncMessage, SyncReply, _SyncSends
from ._sync_mailwatch import SyncMailWatch
from ._sync_state import SyncStateStore, SyncStateWatch
from ._sync_streams import SyncAgentWatch, SyncTopicSubscription
from .broadcast import Published, Replay
from .client import Mailslot
from .connection import open_client
from .mailbox import AgentCard
from .message import Receipt
from .options import DEFAULT_FAILOVER_TIMEOUT, ConnectOptions
from .sending import DEFAULT_SEND_WINDOW


class SyncMailslot(_SyncSends):
    """Blocking twin of :class:`mailslot.Mailslot`. Create with :func:`connect`."""

    def __init__(self, client: Mailslot) -> None:
        self._c = client

    @property
    def aio(self) -> Mailslot:
        """The async client underneath (its loop is the background thread's)."""
        return self._c

    @property
    def url(self) -> str:
        return self._c.url

    @property
    def name(self) -> str | None:
        return self._c.name

    @property
    def server_version(self) -> str:
        return self._c.server_version

    @property
    def connected(self) -> bool:
        return self._c.connected

    @property
    def closed(self) -> bool:
        return self._c.closed

    def _sends_with(self) -> Mailslot:
        return self._c

    def send_many(
        self, messages: Iterable[Mapping[str, Any]], *, window: int = DEFAULT_SEND_WINDOW
    ) -> list[Receipt]:
        return PORTAL.call(self._c.send_many(messages, window=window))

    def open(
        self,
        address: str | None = None,
        *,
        ttl: float | timedelta = p.DEFAULT_LEASE_TTL,
        keep: float | timedelta | None = None,
        card: AgentCard | Mapping[str, Any] | None = None,
        ack_wait: float | timedelta = 30.0,
        max_deliver: int = 5,
        backoff: Iterable[float] = (),
        prefetch: int = 1,
        heartbeat: float | timedelta | None = None,
        require_verified: bool = False,
    ) -> SyncMailbox:
        mb = PORTAL.call(
            self._c.open(
                address,
                ttl=ttl,
                keep=keep,
                card=card,
                ack_wait=ack_wait,
                max_deliver=max_deliver,
                backoff=backoff,
                prefetch=prefetch,
                heartbeat=heartbeat,
                require_verified=require_verified,
            )
        )
        return SyncMailbox(mb)

    def publish(
        self,
        topic: str,
        payload: Any,
        *,
        durable: bool = False,
        ttl: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Published:
        return PORTAL.call(self._c.publish(topic, payload, durable=durable, ttl=ttl, headers=headers))

    def subscribe(
        self, pattern: str, *, queue: str | None = None, replay: Replay = None
    ) -> SyncTopicSubscription:
        """Listening when it returns; iterate it (blocking) or call ``next(timeout=...)``."""

        async def _start() -> Any:
            return await self._c.subscribe(pattern, queue=queue, replay=replay)

        return SyncTopicSubscription(PORTAL.call(_start()))

    def agents(
        self, *, capability: str | None = None, tag: str | None = None, include_offline: bool = False
    ) -> list[AgentCard]:
        return PORTAL.call(self._c.agents(capability=capability, tag=tag, include_offline=include_offline))

    def agent(self, address: str, *, include_offline: bool = False) -> AgentCard | None:
        return PORTAL.call(self._c.agent(address, include_offline=include_offline))

    @property
    def agent_address(self) -> str | None:
        return self._c.agent_address

    def discover(
        self, text: str | None = None, *, limit: int = 20, page: int = 1, include_offline: bool = False
    ) -> list[AgentCard]:
        return PORTAL.call(self._c.discover(text, limit=limit, page=page, include_offline=include_offline))

    def watch_agents(self, *, initial: bool = False) -> SyncAgentWatch:
        async def _start() -> Any:
            return await self._c.watch_agents(initial=initial)

        return SyncAgentWatch(PORTAL.call(_start()))

    def watch_mail(self, address: str, *, removals: bool = True) -> SyncMailWatch:
        """Listening when it returns; iterate it (blocking) or call ``next(timeout=...)``."""

        async def _start() -> Any:
            return await self._c.watch_mail(address, removals=removals)

        return SyncMailWatch(PORTAL.call(_start()))

    @property
    def dead_letters(self) -> SyncDeadLetters:
        return SyncDeadLetters(self._c.dead_letters)

    @property
    def audit(self) -> SyncAudit:
        return SyncAudit(self._c.audit)

    @property
    def claims(self) -> SyncClaims:
        return SyncClaims(self._c.claims)

    def state(self, namespace: str, *, agent: str | None = None) -> SyncStateStore:
        return SyncStateStore(self._c.state(namespace, agent=agent))

    def inspect(self, address: str) -> SyncMailboxView:
        return SyncMailboxView(self._c.inspect(address))

    def close(self) -> None:
        PORTAL.call(self._c.close())

    def __enter__(self) -> SyncMailslot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    url: str | list[str] | None = None,
    *,
    credentials: str | Path | None = None,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    tenant: str | None = None,
    name: str | None = None,
    timeout: float = 5.0,
    provision_streams: bool = True,
    settings: p.StreamSettings | None = None,
    tls_ca: str | Path | None = None,
    publish_retry_for: float = 20.0,
    outage_timeout: float = 5.0,
    receive_outage_timeout: float = 60.0,
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT,
) -> SyncMailslot:
    """Blocking twin of :func:`mailslot.connect` (same reconnect and outage behaviour: a call
    waits for a dropped connection up to ``outage_timeout``, then raises
    :class:`~mailslot.Disconnected`)."""

    options = ConnectOptions(
        url=url,
        credentials=credentials,
        user=user,
        password=password,
        token=token,
        tenant=tenant,
        name=name,
        timeout=timeout,
        provision_streams=provision_streams,
        settings=settings,
        tls_ca=tls_ca,
        publish_retry_for=publish_retry_for,
        outage_timeout=outage_timeout,
        receive_outage_timeout=receive_outage_timeout,
        failover_timeout=failover_timeout,
    )
    return SyncMailslot(PORTAL.call(open_client(options)))


def event_loop() -> asyncio.AbstractEventLoop:
    """The background loop every sync client runs on. Async objects obtained through ``.aio``
    belong to it: schedule work on it with ``asyncio.run_coroutine_threadsafe``."""
    return PORTAL.loop()


__all__ = [
    "SyncAgentWatch",
    "SyncAudit",
    "SyncClaims",
    "SyncDeadLetters",
    "SyncDeviceBridge",
    "SyncMailWatch",
    "SyncMailbox",
    "SyncMailboxView",
    "SyncMailslot",
    "SyncMessage",
    "SyncReply",
    "SyncStateStore",
    "SyncStateWatch",
    "SyncTopicSubscription",
    "connect",
    "event_loop",
]
