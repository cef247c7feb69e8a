"""The link to the broker that every feature module works through.

:class:`~mailslot.Mailslot` is the public face; the mailboxes, broadcasts, registry, dead
letters and views get a :class:`Link` instead, so they never import the client back: imports
point one way (client -> features -> link).

nats-py reconnects by itself (forever, every reconnect_time_wait). While it does, a call that
needs the server waits up to ``outage_timeout`` for it (connection.py wraps the connection's
``request`` with :meth:`Link.until_connected`), then raises Disconnected; requests in flight
when it dropped fail at once with Disconnected (their replies went to the old socket), and a
send retries them, up to the same bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from .errors import Disconnected, NotConnected
from .options import ConnectOptions

if TYPE_CHECKING:
    from ._boundary import PermissionGuard
    from .signing import KeyCache, Signer


class OpenMailbox(Protocol):
    """What the client does with an open mailbox when the connection drops, returns, closes."""

    address: str

    def _connection_lost(self) -> None: ...

    def _rebind(self) -> Coroutine[Any, Any, None]: ...

    def close(self) -> Coroutine[Any, Any, None]: ...


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # marks it retrieved: no "exception was never retrieved" log


class Link:
    """One nats connection, what it was opened with, and whether it is up right now."""

    def __init__(
        self,
        nc: NatsClient,
        options: ConnectOptions,
        *,
        url: str,
        tenant: str | None,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        #: What ``connect`` was called with; ``url`` and ``tenant`` as resolved (environment,
        #: credentials file, embedded broker).
        self.options = options
        self.url = url
        self.tenant = tenant
        self.name = options.name
        self.publish_retry_for = options.publish_retry_for
        self.outage_timeout = options.outage_timeout
        self.receive_outage_timeout = options.receive_outage_timeout
        self.closed = False
        #: An agent credential's signer (its mail is signed, its replies come through a
        #: consumer of its own); None for a tenant credential.
        self.signer: Signer | None = None
        #: The address of an agent credential (None for a tenant credential): its lease and
        #: record go through MAILSLOT_AGENT_WRITES, its mail through MAILSLOT_OUTBOX.
        self.agent: str | None = None
        #: The connection's permission guard (``connect`` installs it): a mailbox's open
        #: queues its subscriptions and has them confirmed while it reads.
        self.guard: PermissionGuard | None = None
        #: Senders' public keys, read on first check of a signed message (signing.py).
        self.key_cache: KeyCache | None = None
        #: The mailboxes open through this connection (a mailbox removes itself on close).
        self.mailboxes: set[OpenMailbox] = set()
        #: How often the connection dropped and came back (nats-py reconnects by itself).
        self.disconnects = 0
        self.reconnects = 0
        self._down_since: float | None = None
        self._up = asyncio.Event()
        self._up.set()
        self._wait_out_outages()

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload)

    @property
    def mail_max_payload(self) -> int:
        """What one mail message may take on the wire (headers included): the server's
        ``max_payload``, less for an agent credential, whose outbox leaves room for what the
        sidecar's mover adds to the mailbox copy (``protocol.views.OUTBOX_MOVE_ROOM``)."""
        if self.agent is None:
            return self.max_payload
        return self.max_payload - p.views.OUTBOX_MOVE_ROOM

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected) and not self.closed

    def check_open(self) -> None:
        if self.closed or self.nc.is_closed:
            raise NotConnected("this Mailslot client is closed")

    # -- outages ----------------------------------------------------------------------------

    def outage(self) -> float | None:
        """Seconds the connection has been down, None while it is up."""
        if self.nc.is_connected:
            return None
        now = time.monotonic()
        if self._down_since is None:  # noticed before the disconnect callback ran
            self._down_since = now
        return now - self._down_since

    def outage_exceeded(self) -> bool:
        down = self.outage()
        return down is not None and down >= self.outage_timeout

    def disconnected_error(self, down: float) -> Disconnected:
        return Disconnected(
            f"the connection to {self.url} is down (for {down:.1f} s; reconnecting in the background)"
        )

    async def until_connected(self, limit: float | None = None) -> None:
        """Return once connected; raise Disconnected if the connection is not back within
        ``limit`` (default ``outage_timeout``) seconds, NotConnected if the client closed."""
        if self.nc.is_connected:
            return
        deadline = time.monotonic() + (self.outage_timeout if limit is None else limit)
        while True:
            self.check_open()
            down = self.outage()
            if down is None:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.disconnected_error(down)
            with contextlib.suppress(asyncio.TimeoutError):
                # Polled as well: nats-py reports "connected" a moment before its callback.
                await asyncio.wait_for(self._up.wait(), min(remaining, 0.1))

    def _wait_out_outages(self) -> None:
        """Every request (JetStream API calls, publishes, acks, KV) made while the connection
        is down waits for it to come back, up to ``outage_timeout``, then raises Disconnected,
        instead of being buffered towards a timeout. One attribute check while connected."""
        nc = self.nc
        orig_request = nc.request

        async def request(
            subject: str,
            payload: bytes = b"",
            timeout: float = 0.5,
            old_style: bool = False,
            headers: dict[str, Any] | None = None,
        ) -> Any:
            if not nc.is_connected:
                await self.until_connected()
            return await orig_request(subject, payload, timeout=timeout, old_style=old_style, headers=headers)

        nc.request = request  # type: ignore[method-assign]

    # -- the connection callbacks (the client adds its mailboxes and subscriptions) ---------

    def lost(self) -> bool:
        """The connection dropped: fail what waits for a reply on the dead socket. False if
        there is nothing to do (closed, or already back)."""
        if self.closed or self.nc.is_connected:
            return False
        if self._down_since is None:
            self._down_since = time.monotonic()
        if self._up.is_set():
            self.disconnects += 1
        self._up.clear()
        # Replies to requests in flight went to the dead socket: fail them now rather than
        # after their timeout (a publish is retried with the same message id).
        err = self.disconnected_error(0.0)
        for fut in list(natscompat.pending_responses(self.nc).values()):
            if not fut.done():
                fut.set_exception(Disconnected(str(err)))
        for fut in list(natscompat.pending_publishes(self.js).values()):
            if not fut.done():
                fut.add_done_callback(_retrieve)  # nobody may be awaiting it
                fut.set_exception(Disconnected(str(err)))
        return True

    def back(self) -> float:
        """The connection is back; returns how long it was down."""
        down = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        self._down_since = None
        self.reconnects += 1
        self._up.set()
        return down

    def close(self) -> None:
        """No more calls: wake everything that waits for the connection."""
        self.closed = True
        self._up.set()

    def wake(self) -> None:
        self._up.set()


__all__ = ["Link", "OpenMailbox"]
