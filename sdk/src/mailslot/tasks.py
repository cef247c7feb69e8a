"""Stopping background tasks so that a stop always finishes, for code built on the SDK.

On Python before 3.12 ``asyncio.wait_for`` (which nats-py awaits every request through, and
so every receive) swallows a cancellation that arrives in the same loop iteration as the
awaited result (CPython gh-86296): a task looping on ``mailbox.receive()`` now and then
survives its one ``cancel()``, and ``await task`` after it never returns. Stop such tasks
with :func:`cancel_and_wait`, which cancels again until they end.
"""

from __future__ import annotations

from mailslot_broker.tasks import RECANCEL_EVERY, cancel_and_wait

__all__ = ["RECANCEL_EVERY", "cancel_and_wait"]
