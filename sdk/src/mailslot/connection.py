"""Connecting: the embedded default, credentials, TLS, version and JetStream checks.

Kept apart from :mod:`mailslot.client` so that the client module holds only the operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import ssl
from collections.abc import Generator
from pathlib import Path
from typing import Any

import nats
import nats.errors as nerr
from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from mailslot_broker.config import nats_login
from mailslot_broker.local import ensure_local_broker
from mailslot_broker.provision import provision
from nats.js import errors as jserr
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from . import signing
from ._boundary import PermissionGuard, boundary
from ._boundary import address as check_address
from ._ride_out import UNANSWERED, ride_out
from .client import Mailslot
from .errors import (
    AuthenticationFailed,
    BrokerUnreachable,
    ConnectionFailed,
    JetStreamUnavailable,
    ServerTooOld,
)
from .options import DEFAULT_FAILOVER_TIMEOUT, ConnectOptions

log = logging.getLogger("mailslot.connection")

# -- connect ---------------------------------------------------------------------------------


class _Connect:
    """What :func:`connect` returns: await it, or use it as an async context manager."""

    def __init__(self, coro_factory: Any) -> None:
        self._factory = coro_factory
        self._client: Mailslot | None = None

    def __await__(self) -> Generator[Any, None, Mailslot]:
        return self._factory().__await__()

    async def __aenter__(self) -> Mailslot:
        self._client = await self._factory()
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()


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
) -> _Connect:
    """Connect to a Mailslot broker.

    With no ``url`` and no ``MAILSLOT_URL``, finds the local broker for this user (under
    ``MAILSLOT_HOME``) or starts one, detached, so mail outlives this process. With a URL (or
    a list of seed URLs for a cluster) it connects to any NATS 2.12+ server with JetStream.
    ``credentials`` is a Mailslot credentials JSON file or a NATS ``.creds`` file.

    Once connected, the client rides out a broker restart by itself: it reconnects (forever,
    every half second), re-binds its open mailboxes and resumes pending receives; topic
    subscriptions continue (one with ``replay`` also catches up on durable messages stored
    while it was away). While the connection is down, a call that needs the server waits up
    to ``outage_timeout`` seconds for it to come back, then raises
    :class:`~mailslot.Disconnected`. A request in flight when it dropped fails at once with
    ``Disconnected`` (its reply went to the old socket), except a ``send``: it retries with
    its message id (stored once) under the same bound, and its retrying of a leader election
    (``publish_retry_for``) stops once the connection has been down that long.
    ``receive(timeout=t)`` still returns within about ``t``, raising ``Disconnected`` rather
    than ``Timeout`` if the broker is unreachable at the deadline; a ``receive()`` (or ``async
    for``) without a timeout waits through an outage of up to ``receive_outage_timeout``
    seconds. ``close()`` never raises a connection error.

    On a cluster a receive waits out a leader election of one of its priorities (serving no
    lower one meanwhile) for up to ``failover_timeout`` seconds, then raises
    :class:`~mailslot.Unavailable`; each mailbox can change its own
    (``Mailbox.failover_timeout``).
    """
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
    return _Connect(lambda: open_client(options))


async def open_client(options: ConnectOptions) -> Mailslot:
    """Dial, check the server, provision, and hand the connection to a new client."""
    url, credentials, user, password = options.url, options.credentials, options.user, options.password
    tenant, name, timeout = options.tenant, options.name, options.timeout
    if name is not None:
        name = check_address(name)
    url = url or os.environ.get("MAILSLOT_URL") or None
    if isinstance(url, str) and "," in url:  # seed URLs of a cluster, e.g. from MAILSLOT_URL
        url = [u.strip() for u in url.split(",") if u.strip()]
    credentials = credentials or os.environ.get("MAILSLOT_CREDENTIALS") or None
    opts: dict[str, Any] = {}
    if url is None:
        with boundary():
            state = await asyncio.to_thread(ensure_local_broker)
        url = state.url
        credentials = credentials or state.credentials_path
    try:
        login = nats_login(credentials, user=user, password=password, token=options.token)
    except (OSError, ValueError) as exc:
        raise AuthenticationFailed(f"cannot read credentials file {credentials}: {exc}") from exc
    opts.update(login.options)
    tenant = tenant or login.tenant
    if login.agent is not None:  # an agent credential: its own address, nothing to provision
        name = name or login.agent
        options = dataclasses.replace(options, provision_streams=False)
    if options.tls_ca is not None:
        ctx = ssl.create_default_context(cafile=str(options.tls_ca))
        opts["tls"] = ctx
    servers = [url] if isinstance(url, str) else list(url)
    if any(s.startswith(("ws://", "wss://")) for s in servers):  # the `websocket` extra
        natscompat.patch_websocket_transport()

    errors: list[Exception] = []
    guard: PermissionGuard | None = None
    client: Mailslot | None = None  # set once connected: the callbacks below report to it

    async def _disconnected_cb() -> None:
        if client is not None:
            client._connection_lost()

    async def _reconnected_cb() -> None:
        if client is not None:
            client._connection_back()

    async def _closed_cb() -> None:
        if client is not None:
            client._connection_closed()

    async def _error_cb(exc: Exception) -> None:
        # Permission violations arrive here, asynchronously: the guard fails the operation
        # that caused one with PermissionDenied instead of letting it time out.
        if guard is not None and guard.handle(exc):
            return
        if client is not None:
            # Connected once: what arrives now are failed reconnect attempts (refused while
            # the broker is down, reset connections); reported through Disconnected instead.
            log.debug("nats: %r", exc)
            return
        if len(errors) < 100:
            errors.append(exc)
        # nats-py 2.16 never returns from connect() after a failed TLS handshake: give up
        # once every seed failed verification.
        tls_errors = sum(isinstance(e, ssl.SSLError) for e in errors)
        if guard is None and tls_errors >= len(servers) and not tls_failed.done():
            tls_failed.set_exception(exc)

    tls_failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    attempt = asyncio.ensure_future(
        nats.connect(
            servers=servers,
            connect_timeout=timeout,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.2,
            error_cb=_error_cb,
            disconnected_cb=_disconnected_cb,
            reconnected_cb=_reconnected_cb,
            closed_cb=_closed_cb,
            name=f"mailslot:{name}" if name else "mailslot",
            **opts,
        )
    )
    try:
        # Overall bound too, for the same nats-py hang on other handshake failures.
        waiters: set[asyncio.Future[Any]] = {attempt, tls_failed}
        await asyncio.wait(
            waiters, timeout=timeout * 2 * len(servers) + 5, return_when=asyncio.FIRST_COMPLETED
        )
        if tls_failed.done():
            tls_failed.exception()  # retrieved, whatever happens next
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            if tls_failed.done():
                raise ConnectionFailed(
                    f"TLS handshake with {', '.join(servers)} failed: {tls_failed.exception()} "
                    "(pass tls_ca= the CA file that signed the server certificate)"
                )
            raise asyncio.TimeoutError()
        nc = attempt.result()
    except (nerr.NoServersError, OSError, asyncio.TimeoutError, nerr.Error) as exc:
        for err in [*errors, exc]:
            if isinstance(err, nerr.AuthorizationError) or "authorization" in str(err).lower():
                raise AuthenticationFailed(
                    f"the server at {', '.join(servers)} refused the credentials"
                ) from exc
        raise BrokerUnreachable(f"no NATS server answered at {', '.join(servers)}") from exc
    guard = PermissionGuard(nc).install()
    # Connected once: from now on keep reconnecting for as long as it takes.
    natscompat.keep_reconnecting(nc, wait=0.5)
    try:
        v = nc.connected_server_version
        if (v.major, v.minor, v.patch) < p.MIN_SERVER_VERSION:
            need = ".".join(map(str, p.MIN_SERVER_VERSION))
            raise ServerTooOld(
                f"nats-server {v.major}.{v.minor}.{v.patch} is too old: Mailslot needs {need}+ "
                "(per-message TTL, message schedules)"
            )
        js = nc.jetstream()
        await _check_jetstream(js, timeout, patience=options.failover_timeout)
        report = None
        if options.provision_streams:
            report = await _provision_through_elections(js, options)
    except BaseException:
        await nc.close()
        raise
    client = Mailslot(
        nc, dataclasses.replace(options, name=name), url=servers[0], tenant=tenant, provisioned=report
    )
    client._link.guard = guard
    if login.agent is not None:
        client._link.agent = login.agent  # its lease, record and mail go through its own streams
    if login.agent is not None and login.seed is not None:
        signing.install(client._link, login.agent, login.seed)  # its mail carries a signature
    return client


async def _provision_through_elections(js: Any, options: ConnectOptions) -> Any:
    """Provision (idempotent), asked again while a stream does not answer: a stream whose
    leader was just lost answers nothing until the cluster elected another, and a client
    connecting meanwhile rides that out as a connected one does, for up to
    ``failover_timeout``, rather than failing on the first unanswered request."""

    async def once() -> Any:
        try:
            return await provision(js, options.settings)
        except UNANSWERED:
            raise
        except Exception:
            with boundary():
                raise

    try:
        return await ride_out(once, patience=options.failover_timeout)
    except UNANSWERED as exc:
        raise JetStreamUnavailable(
            f"Mailslot's streams did not answer for {options.failover_timeout:g} s while connecting "
            "(a stream without a leader: a cluster that lost nodes, or is still electing); try "
            "again, or raise failover_timeout"
        ) from exc


async def _check_jetstream(js: Any, timeout: float, *, patience: float) -> None:
    """JetStream is on for this account. A cluster whose routes are still settling (or that
    is electing its meta leader) may leave the request unanswered for a moment: asked again
    for up to ``patience`` (the client's ``failover_timeout``; each request bounded by
    ``timeout``), then JetStreamUnavailable."""
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((nerr.TimeoutError, asyncio.TimeoutError)),
            stop=stop_after_delay(max(patience, 2 * timeout)),
            wait=wait_exponential_jitter(multiplier=0.1, max=1.0),
            reraise=True,
        ):
            with attempt:
                await asyncio.wait_for(js.account_info(), timeout)
    except (jserr.ServiceUnavailableError, nerr.NoRespondersError) as exc:
        raise JetStreamUnavailable("JetStream is not enabled on this server or for this account") from exc
    except (nerr.TimeoutError, asyncio.TimeoutError) as exc:
        raise JetStreamUnavailable(
            "JetStream did not answer while connecting (a cluster may still be forming or electing "
            "its leader); try again"
        ) from exc
