"""Stopping background tasks so that a stop always finishes.

Why this module exists: on Python before 3.12, ``asyncio.wait_for`` swallows a cancellation
that arrives in the same loop iteration as the awaited result (CPython gh-86296, fixed in 3.12
by rewriting ``wait_for`` on ``asyncio.timeout``). nats-py awaits every request through
``wait_for``, so a background loop that keeps talking to the server (a lease renewal, a
metrics refresh, a leader heartbeat) now and then survives its one ``cancel()`` and goes on
looping, and ``await task`` after it never returns: a ``close()`` or a sidecar ``stop()`` that
hangs, seen as a rare five-minute test timeout on a loaded machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

#: How often a task that is still running after ``cancel()`` is cancelled again (seconds).
RECANCEL_EVERY = 0.25


async def cancel_and_wait(
    tasks: Iterable[asyncio.Future[Any] | None], *, every: float = RECANCEL_EVERY
) -> None:
    """Cancel ``tasks`` and wait until each has finished, cancelling again any that is still
    running ``every`` seconds later. Their results and exceptions are retrieved and dropped
    (the caller is stopping them); a cancellation of the caller itself still propagates."""
    todo = [t for t in tasks if t is not None]
    pending = {t for t in todo if not t.done()}
    for t in pending:
        t.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=every)
        for t in pending:
            t.cancel()
    for t in todo:
        if not t.cancelled():
            t.exception()


__all__ = ["RECANCEL_EVERY", "cancel_and_wait"]
