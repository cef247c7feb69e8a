"""How many replicas a new stream or bucket gets when the settings leave it to the
deployment: as many as it has nodes, up to three, and never silently fewer.

A count that is too high costs one refused create; one that is too low is for good (only an
operator raises replicas), so the size is read generously and a refusal of the full count
is waited out for a moment before fewer are created, with a warning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from nats.js import JetStreamContext
from nats.js import errors as jserr
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from . import natscompat
from . import protocol as p

__all__ = ["FULL_COUNT_WAIT", "cluster_size", "create_replicated", "deployment_size"]

#: Replicas a stream or bucket is created with when the settings leave it to the deployment:
#: the most the cluster accepts, tried from min(3, its size) down (see :func:`cluster_size`).
_REPLICA_CHOICES = (3, 2, 1)
#: How long a refusal of the deployment's full count is retried before fewer replicas are
#: created, for good. A node of a cluster that is still forming can be in the INFO's node
#: list before JetStream can place a replica on it: the likeliest way a fresh three-node
#: cluster under load got R2 streams (a flaky test; not reproduced in 27 tries since). A
#: node that can never be placed on (no JetStream) costs the first create this long, once
#: per provisioning.
FULL_COUNT_WAIT = 5.0


def cluster_size(info: Mapping[str, Any], *, known: Iterable[str] = ()) -> int | None:
    """How many servers the deployment has, from its server's INFO and the ``host:port`` of
    the servers the connection ``known``; None when it cannot tell.

    A single server sends no ``cluster``. A cluster node lists every node's client URL, its
    own included, in ``connect_urls`` (not with ``no_advertise``, nor while it has no route
    yet: unknown then). That list is from connect time, and a node that joined since (a
    cluster still forming) is only in the connection's server list, from the server's later
    INFO updates: so both count. Counting too many costs a refused create; too few would
    create fewer replicas than the cluster has, for good.
    """
    if not info.get("cluster"):
        return 1
    urls = info.get("connect_urls")
    if not urls:
        return None
    return len({*urls, *known})


def deployment_size(js: JetStreamContext) -> int | None:
    """:func:`cluster_size` for the connection behind ``js``, as it stands now (asked at
    create time, once JetStream has answered, so the INFO updates before that are in)."""
    nc = natscompat.js_connection(js)
    return cluster_size(
        natscompat.server_info(nc), known=[f"{u.hostname}:{u.port or 4222}" for u in nc.servers]
    )


def _replica_attempts(requested: int | None, size: int | None) -> tuple[int, ...]:
    """An operator's count alone; else from min(3, size) down. The counts below stay as a
    fallback for a node JetStream cannot place on (one without JetStream, or not yet a peer:
    the cluster then refuses the full count; a node that is merely stopped is still placed
    on) and for a size that is not known (all of them, from 3)."""
    if requested is not None:
        return (requested,)
    return tuple(n for n in _REPLICA_CHOICES if size is None or n <= size)


def _replica_refused(exc: BaseException) -> bool:
    """The server's answer to more replicas than it can place (single server: "replicas > 1
    not supported in non-clustered mode"; cluster: insufficient resources / no suitable peers)."""
    return p.jsapi.is_replicas_refused(exc)


async def create_replicated(
    js: JetStreamContext,
    name: str,
    create: Callable[[int], Awaitable[object]],
    requested: int | None,
    *,
    wait_for_full_count: bool = True,
) -> tuple[int, str | None]:
    """``create(n)`` with the most replicas the deployment takes; returns that count and,
    when it is below the deployment's size, a warning for the operator."""
    size = deployment_size(js) if requested is None else None
    attempts = _replica_attempts(requested, size)
    for i, n in enumerate(attempts):
        try:
            if i == 0 and size is not None and size > 1 and wait_for_full_count:
                await _create_full_count(create, n)
            else:
                await create(n)
        except jserr.APIError as exc:
            # Checked before anything else: a cluster refuses too many replicas with a 400
            # (10005), which would otherwise read as "someone created it first".
            if i + 1 < len(attempts) and _replica_refused(exc):
                continue
            raise
        if n == attempts[0]:
            return n, None
        return n, (
            f"{name} was created with {n} replica(s): the deployment refused {attempts[0]} "
            f"(a node without JetStream, or not a peer yet?); raising replicas is an operator action: "
            f"provision(js, StreamSettings(replicas={attempts[0]}), raise_replicas=True)"
        )
    raise AssertionError("unreachable")


async def _create_full_count(create: Callable[[int], Awaitable[object]], n: int) -> None:
    """``create(n)`` with a refusal retried for :data:`FULL_COUNT_WAIT` (the deployment's
    size is known, so a refusal is a node not placeable yet, or never)."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_replica_refused),
        stop=stop_after_delay(FULL_COUNT_WAIT),
        wait=wait_exponential(multiplier=0.1, max=1.0),
        reraise=True,
    ):
        with attempt:
            await create(n)
