"""Requests that are safe to repeat, asked again while a leader election leaves them
unanswered.

On a cluster a stream (or the meta leader) whose node was lost answers nothing until another
is elected, which takes seconds. A request that is idempotent (a read, a provisioning pass,
creating a consumer with the config it already has) is asked again for up to the client's
``failover_timeout``; one that is not (a write whose answer was lost may have landed) is never
repeated here and raises :class:`~mailslot.Timeout` as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors as nerr
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

T = TypeVar("T")

UNANSWERED = (nerr.TimeoutError, asyncio.TimeoutError)


async def ride_out(call: Callable[[], Awaitable[T]], *, patience: float) -> T:
    """``await call()``, again after an unanswered request, for up to ``patience`` seconds;
    then the last timeout is raised."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(UNANSWERED),
        stop=stop_after_delay(patience),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover
