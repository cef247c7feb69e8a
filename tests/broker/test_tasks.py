"""cancel_and_wait: a stop finishes even when a task survives its first cancel() (what
``asyncio.wait_for`` does to a nats-py request on Python < 3.12 now and then)."""

from __future__ import annotations

import asyncio

import pytest
from mailslot_broker.tasks import cancel_and_wait


async def _swallows_first_cancel(seen: list[str]) -> None:
    """A loop whose first cancellation is lost, as in CPython gh-86296."""
    swallowed = False
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if swallowed:
                seen.append("stopped")
                raise
            swallowed = True
            seen.append("swallowed")


async def test_a_task_that_swallows_a_cancel_is_cancelled_again() -> None:
    seen: list[str] = []
    task = asyncio.create_task(_swallows_first_cancel(seen))
    await asyncio.sleep(0.02)
    await asyncio.wait_for(cancel_and_wait([task], every=0.05), 5)
    assert task.cancelled() and seen == ["swallowed", "stopped"]


async def test_plain_cancel_of_such_a_task_never_finishes() -> None:
    """Why the helper exists: one cancel() and an await hang."""
    seen: list[str] = []
    task = asyncio.create_task(_swallows_first_cancel(seen))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), 0.3)
    assert not task.done()
    await cancel_and_wait([task])


async def test_failed_done_and_missing_tasks_are_fine() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    done = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait([failed, done, None])  # exceptions retrieved: no "never retrieved"
    assert failed.done() and done.done()
